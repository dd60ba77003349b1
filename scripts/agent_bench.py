#!/usr/bin/python3
"""The agent fan-out benchmark's gRPC side (scripts/benchmark-agent.sh runs it; h2load sends the
load).

    JWT_PRIVATE_KEY=… agent_bench.py setup --agent HOST:PORT --persona … --knowledge … --sql …
        --sandbox … --sqlite-dir DIR --out DIR
    JWT_PRIVATE_KEY=… agent_bench.py count --agent HOST:PORT --dir DIR

`setup` registers a user (agent_db needs it) and signs a developer token for it, then makes a
persona, a knowledge base with one document, a SQLite database registered and synced, and two
agents: `rag` (knowledge_rag + text_to_sql) and `code` (the same + code_executor). It writes into
DIR the token and gRPC-framed request bodies for h2load: sync StartExecution of each agent, and
the direct calls the rag agent's plugins make (knowledge Search, text-to-SQL AskQuestion), each
checked once through grpcio first (the execution must complete and cite each plugin).

`count` prints how many of the user's executions are in each status: every execution h2load saw
answered must be COMPLETED.
"""
import argparse
import json
import os
import sqlite3
import struct
import sys
import time
import uuid

import grpc

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "Tests", "Hostile"))
sys.path.insert(0, os.path.join(HERE, "..", "Tests", "Interop", "persona"))
from persona_client import mint_token, signing_key  # noqa: E402
from platform_protos import load  # noqa: E402

agent_pb2, persona_pb2, knowledge_pb2, sql_pb2, sandbox_pb2 = load(
    "platform/agent/v1/agent.proto", "platform/persona/v1/persona.proto", "platform/knowledge/v1/knowledge.proto",
    "platform/texttosql/v1/text_to_sql.proto", "platform/codesandbox/v1/code_sandbox.proto")
from google.protobuf import struct_pb2  # noqa: E402


def framed(message):
    body = message.SerializeToString()
    return struct.pack(">BI", 0, len(body)) + body


def call(channel, path, request, response_type, metadata=(), timeout=60):
    method = channel.unary_unary(path, request_serializer=lambda m: m.SerializeToString(),
                                 response_deserializer=response_type.FromString)
    return method(request, metadata=list(metadata), timeout=timeout)


def to_struct(values):
    message = struct_pb2.Struct()
    message.update(values)
    return message


MESSAGE = "How many customers are there?"
STATUS = {1: "pending", 2: "running", 3: "completed", 4: "failed", 5: "cancelled", 6: "timeout"}


def setup(args):
    key = signing_key()
    agent = grpc.insecure_channel(args.agent)
    persona = grpc.insecure_channel(args.persona)
    knowledge = grpc.insecure_channel(args.knowledge)
    sql = grpc.insecure_channel(args.sql)
    email = f"bench-{uuid.uuid4().hex[:12]}@example.com"
    user = call(agent, "/platform.agent.v1.AuthService/Register",
                agent_pb2.RegisterRequest(email=email, password="benchmark password 1", name="Bench"), agent_pb2.User)
    token = mint_token(key, user.id, roles=("developer",))
    md = [("authorization", "Bearer " + token)]

    created = call(persona, "/platform.persona.v1.PersonaService/CreatePersona",
                   persona_pb2.CreatePersonaRequest(persona=persona_pb2.Persona(name="Bench", template="You count.")),
                   persona_pb2.Persona, md)
    base = call(knowledge, "/platform.knowledge.v1.KnowledgeService/CreateKnowledgeBase",
                knowledge_pb2.CreateKnowledgeBaseRequest(knowledge_base=knowledge_pb2.KnowledgeBase(name="bench")),
                knowledge_pb2.KnowledgeBase, md)
    document = call(knowledge, "/platform.knowledge.v1.KnowledgeService/CreateDocument",
                    knowledge_pb2.CreateDocumentRequest(
                        knowledge_base_id=base.id, title="Customers", content_type="text/plain",
                        content="The shop has customers in France and Germany. Customers order lamps and tables."),
                    knowledge_pb2.Document, md)
    deadline = time.time() + 60
    while call(knowledge, "/platform.knowledge.v1.KnowledgeService/GetDocument",
               knowledge_pb2.GetDocumentRequest(id=document.id), knowledge_pb2.Document, md).status != knowledge_pb2.DOCUMENT_STATUS_READY:
        if time.time() > deadline:
            sys.exit("the benchmark document was not indexed within 60 s")
        time.sleep(0.1)

    db = sqlite3.connect(os.path.join(args.sqlite_dir, "shop.db"))
    db.executescript("""
        DROP TABLE IF EXISTS customers;
        CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, country TEXT);
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500)
        INSERT INTO customers SELECT i, 'c' || i, CASE i % 2 WHEN 0 THEN 'Germany' ELSE 'France' END FROM n;
    """)
    db.commit()
    db.close()
    database = call(sql, "/platform.texttosql.v1.DatabaseService/RegisterDatabase",
                    sql_pb2.RegisterDatabaseRequest(database=sql_pb2.Database(
                        name="shop", database_type=sql_pb2.DATABASE_TYPE_SQLITE,
                        connection=sql_pb2.ConnectionConfig(database_name="shop.db"))),
                    sql_pb2.Database, md)
    call(sql, "/platform.texttosql.v1.DatabaseService/SyncSchema", sql_pb2.SyncSchemaRequest(database_id=database.id),
         sql_pb2.SyncSchemaResponse, md)

    agents = {}
    for name, plugins in (("rag", ("knowledge", "sql")), ("code", ("knowledge", "sql", "code"))):
        made = call(agent, "/platform.agent.v1.AgentService/CreateAgent",
                    agent_pb2.CreateAgentRequest(agent=agent_pb2.Agent(name=name, persona_id=created.id)), agent_pb2.Agent, md)
        configs = {
            "knowledge": (agent_pb2.PLUGIN_TYPE_KNOWLEDGE_RAG, {"knowledge_base_ids": [base.id], "top_k": 3, "mode": "keyword"}),
            "sql": (agent_pb2.PLUGIN_TYPE_TEXT_TO_SQL, {"database_id": database.id}),
            "code": (agent_pb2.PLUGIN_TYPE_CODE_EXECUTOR, {"language": "python"}),
        }
        for order, plugin in enumerate(plugins):
            kind, config = configs[plugin]
            call(agent, "/platform.agent.v1.AgentService/AddPlugin",
                 agent_pb2.AddPluginRequest(agent_id=made.id, plugin=agent_pb2.AgentPlugin(
                     plugin_type=kind, order_index=order, config=to_struct(config))), agent_pb2.AgentPlugin, md)
        agents[name] = made.id

    requests = {
        "rag": agent_pb2.StartExecutionRequest(agent_id=agents["rag"], sync=True, input=to_struct({"message": MESSAGE})),
        "code": agent_pb2.StartExecutionRequest(agent_id=agents["code"], sync=True,
                                                input=to_struct({"message": MESSAGE, "code": "print(1)"})),
        "search": knowledge_pb2.SearchRequest(knowledge_base_ids=[base.id], query=MESSAGE, top_k=3,
                                              mode=knowledge_pb2.SEARCH_MODE_KEYWORD),
        "ask": sql_pb2.AskQuestionRequest(database_id=database.id, question=MESSAGE, max_rows=100),
        # What the code agent's code_executor asks the sandbox for.
        "run": sandbox_pb2.ExecuteCodeRequest(language=sandbox_pb2.LANGUAGE_PYTHON, code="print(1)"),
    }
    # Each once through grpcio: the executions complete and cite what they should.
    for name, types in (("rag", {"chunk", "sql"}), ("code", {"chunk", "sql", "code"})):
        execution = call(agent, "/platform.agent.v1.ExecutionService/StartExecution", requests[name], agent_pb2.Execution, md)
        cited = {c.struct_value.fields["type"].string_value for c in execution.output.fields["citations"].list_value.values}
        if execution.status != 3 or cited != types:  # EXECUTION_STATUS_COMPLETED
            sys.exit(f"the {name} execution did not complete citing {sorted(types)}: {execution}")
    call(knowledge, "/platform.knowledge.v1.KnowledgeService/Search", requests["search"], knowledge_pb2.SearchResponse, md)
    call(sql, "/platform.texttosql.v1.QueryService/AskQuestion", requests["ask"], sql_pb2.AskQuestionResponse, md)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "token"), "w") as f:
        f.write(token)
    for name, request in requests.items():
        with open(os.path.join(args.out, name + ".bin"), "wb") as f:
            f.write(framed(request))


def count(args):
    with open(os.path.join(args.dir, "token")) as f:
        md = [("authorization", "Bearer " + f.read().strip())]
    agent = grpc.insecure_channel(args.agent)
    totals = {}
    token = ""
    while True:
        page = call(agent, "/platform.agent.v1.ExecutionService/ListExecutions",
                    agent_pb2.ListExecutionsRequest(page_size=200, page_token=token), agent_pb2.ListExecutionsResponse, md)
        for execution in page.executions:
            name = STATUS.get(execution.status, str(execution.status))
            totals[name] = totals.get(name, 0) + 1
        token = page.next_page_token
        if not token:
            break
    print(json.dumps(totals, sort_keys=True))


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("setup")
    for name in ("agent", "persona", "knowledge", "sql", "sandbox", "sqlite-dir", "out"):
        s.add_argument("--" + name, required=True)
    c = sub.add_parser("count")
    c.add_argument("--agent", required=True)
    c.add_argument("--dir", required=True)
    args = parser.parse_args()
    setup(args) if args.command == "setup" else count(args)


if __name__ == "__main__":
    main()
