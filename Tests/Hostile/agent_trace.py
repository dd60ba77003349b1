#!/usr/bin/python3
"""One trace through an agent execution's every hop, checked at a real OTLP receiver
(scripts/agent-trace.sh runs it, with the platform up and exporting to the receiver).

    agent_trace.py --agent HOST:PORT --bench-dir DIR --spans SPANS.jsonl

DIR is what `scripts/agent_bench.py setup` wrote (the token, and code.bin: a sync
StartExecution of an agent with knowledge_rag, text_to_sql and code_executor). Sends that request
once with a W3C `traceparent` of its own, expects COMPLETED, then reads the receiver's spans
(up to 30 s: exporters send in batches) and checks, one PASS/FAIL line each:
  - spans with that trace id come from agent, persona, knowledge, text-to-sql and code-sandbox;
  - the agent's StartExecution server span is the child of the caller's span;
  - persona's RenderPersona, knowledge's Search, text-to-SQL's AskQuestion and the sandbox's
    ExecuteCode server spans each have that trace id and a parent that is a client span the
    agent recorded in the same trace (the agent propagated the context on each call);
  - no server span of those methods in the call's time carries another trace id.
Ends with "agent trace: N passed, M failed"; exits 1 on any failure.
"""
import argparse
import json
import os
import secrets
import sys
import time

import grpc

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from platform_protos import load  # noqa: E402

(agent_pb2,) = load("platform/agent/v1/agent.proto")

PASSED = 0
FAILED = 0


def check(ok, name, detail=""):
    global PASSED, FAILED
    if ok:
        PASSED += 1
        print(f"PASS {name}")
    else:
        FAILED += 1
        print(f"FAIL {name}" + (f": {detail}" if detail else ""))
    return ok


HOPS = {
    "persona": "/platform.persona.v1.PersonaService/RenderPersona",
    "knowledge": "/platform.knowledge.v1.KnowledgeService/Search",
    "text-to-sql": "/platform.texttosql.v1.QueryService/AskQuestion",
    "code-sandbox": "/platform.codesandbox.v1.CodeSandboxService/ExecuteCode",
}


def read_spans(path):
    spans = []
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    spans.append(json.loads(line))
    except FileNotFoundError:
        pass
    return spans


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--agent", required=True)
    parser.add_argument("--bench-dir", required=True)
    parser.add_argument("--spans", required=True)
    args = parser.parse_args()

    token = open(os.path.join(args.bench_dir, "token")).read().strip()
    framed = open(os.path.join(args.bench_dir, "code.bin"), "rb").read()
    request = agent_pb2.StartExecutionRequest.FromString(framed[5:])

    trace_id = secrets.token_hex(16)
    caller_span = secrets.token_hex(8)
    metadata = [("authorization", "Bearer " + token), ("traceparent", f"00-{trace_id}-{caller_span}-01")]
    channel = grpc.insecure_channel(args.agent)
    start = channel.unary_unary("/platform.agent.v1.ExecutionService/StartExecution",
                                request_serializer=lambda m: m.SerializeToString(),
                                response_deserializer=agent_pb2.Execution.FromString)
    began = time.time_ns()
    execution, call = start.with_call(request, metadata=metadata, timeout=60)
    ended = time.time_ns()
    check(execution.status == 3, "the execution completes (knowledge, text-to-SQL and the sandbox)",
          f"status {execution.status}: {execution.error}")
    answered = dict(call.initial_metadata()).get("x-trace-id", "")
    check(answered == trace_id, "the agent answers with the caller's trace id (x-trace-id)", answered)

    wanted = {"agent"} | set(HOPS)
    deadline = time.time() + 30
    while True:
        spans = read_spans(args.spans)
        ours = [s for s in spans if s["trace_id"] == trace_id]
        services = {s["service"] for s in ours}
        hops_seen = {service for service, method in HOPS.items()
                     if any(s["service"] == service and s["kind"] == "SERVER" and s["name"] == method for s in ours)}
        if (wanted <= services and hops_seen == set(HOPS)) or time.time() > deadline:
            break
        time.sleep(0.5)

    by_service = {}
    for s in ours:
        by_service.setdefault(s["service"], []).append(f'{s["kind"]} {s["name"]}')
    summary = "; ".join(f"{k}: {sorted(set(v))[:6]}" for k, v in sorted(by_service.items())) or "no spans with the trace id"
    check(wanted <= services, "spans with the caller's trace id come from agent, persona, knowledge, text-to-sql and code-sandbox",
          f"missing {sorted(wanted - services)}; {summary}")

    server = [s for s in ours if s["service"] == "agent" and s["kind"] == "SERVER"
              and s["name"] == "/platform.agent.v1.ExecutionService/StartExecution"]
    check(len(server) == 1 and server[0]["parent_span_id"] == caller_span,
          "the agent's StartExecution span is the child of the caller's span",
          f"{[(s['span_id'], s['parent_span_id']) for s in server]} (caller {caller_span})")

    agent_clients = {s["span_id"]: s for s in ours if s["service"] == "agent" and s["kind"] == "CLIENT"}
    for service, method in HOPS.items():
        hops = [s for s in ours if s["service"] == service and s["kind"] == "SERVER" and s["name"] == method]
        parents = [agent_clients.get(s["parent_span_id"]) for s in hops]
        check(len(hops) >= 1 and all(p is not None for p in parents),
              f"{service}'s {method.rsplit('/', 1)[1]} is in the trace, the child of an agent client span",
              f"{len(hops)} span(s), parents {[s['parent_span_id'] for s in hops]}; {summary}")

    # Nothing of the call's hops under another trace (a hop that started a trace of its own).
    strays = [s for s in read_spans(args.spans)
              if s["trace_id"] != trace_id and s["kind"] == "SERVER" and (s["service"], s["name"]) in HOPS.items()
              and began <= s.get("start_ns", 0) <= ended]
    check(not strays, "no hop of the call has a trace of its own", str(strays[:3]))

    print(f"agent trace: {PASSED} passed, {FAILED} failed")
    sys.exit(1 if FAILED else 0)


if __name__ == "__main__":
    main()
