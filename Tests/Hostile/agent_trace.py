#!/usr/bin/python3
"""One trace through an agent execution's every hop, checked at a real OTLP receiver
(scripts/agent-trace.sh runs it, with the platform up and exporting to the receiver).

    agent_trace.py --agent HOST:PORT --bench-dir DIR --spans SPANS.jsonl

DIR is what `scripts/agent_bench.py setup` wrote (the token, and code.bin: a sync
StartExecution of an agent with knowledge_rag, text_to_sql and code_executor). Sends that request
once with a W3C `traceparent` of its own (random trace id and parent span id, flags 01), expects
COMPLETED, then reads the receiver's spans (Tests/Tracing/otlp_receiver.py's JSON lines; up to
30 s: exporters send in batches) and checks, one PASS/FAIL line each:
  - spans with that trace id come from agent, persona, knowledge, text-to-sql and code-sandbox
    (their service.name);
  - the agent's StartExecution server span is the child of the caller's span;
  - persona's RenderPersona, knowledge's Search, text-to-SQL's AskQuestion and the sandbox's
    ExecuteCode server spans each have that trace id and, as parent, the agent's client span of
    the same method in the same trace (the agent propagated the context on each call);
  - no server span of those methods in the call's time carries another trace id.
On a failure, the spans found per service follow. Ends with "agent trace: N passed, M failed";
exits 1 on any failure.
"""
import argparse
import json
import os
import secrets
import sys
import time
from collections import Counter

import grpc

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from platform_protos import load  # noqa: E402

common_pb2, agent_pb2 = load("platform/common/v1/common.proto", "platform/agent/v1/agent.proto")

START = "/platform.agent.v1.ExecutionService/StartExecution"
HOPS = {
    "persona": "/platform.persona.v1.PersonaService/RenderPersona",
    "knowledge": "/platform.knowledge.v1.KnowledgeService/Search",
    "text-to-sql": "/platform.texttosql.v1.QueryService/AskQuestion",
    "code-sandbox": "/platform.codesandbox.v1.CodeSandboxService/ExecuteCode",
}
SERVICES = ["agent", *HOPS]
WAIT_SECONDS = 30

PASSED = 0
FAILED = 0


def check(ok, name, detail=""):
    global PASSED, FAILED
    if ok:
        PASSED += 1
        print(f"PASS {name}", flush=True)
    else:
        FAILED += 1
        print(f"FAIL {name}" + (f": {detail}" if detail else ""), flush=True)
    return ok


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


def server_spans(spans, service, method):
    return [s for s in spans if s["service"] == service and s["kind"] == "SERVER" and s["name"] == method]


def complete(ours):
    """Everything the checks look at has arrived: the agent's server span (it ends last, so the
    agent's client spans were exported with it or before) and each hop's server span."""
    return bool(server_spans(ours, "agent", START)) and all(server_spans(ours, s, m) for s, m in HOPS.items())


def summary(spans, trace_id, began, ended):
    """The spans per service: the trace's gRPC spans (kind, method, span and parent ids), how many
    others (SQL, Redis) it has, and the server spans of the call's time in other traces."""
    lines = []
    extra = sorted({s["service"] for s in spans if s["trace_id"] == trace_id} - set(SERVICES), key=str)
    for service in SERVICES + extra:
        mine = [s for s in spans if s["service"] == service and s["trace_id"] == trace_id]
        others = [s for s in spans if s["service"] == service and s["trace_id"] != trace_id and s["kind"] == "SERVER"
                  and began <= s.get("start_ns", 0) <= ended]
        rpcs = sorted((s for s in mine if s["name"].startswith("/")), key=lambda s: s.get("start_ns", 0))
        rest = Counter(s["kind"] for s in mine if not s["name"].startswith("/"))
        lines.append(f"  {service}: {len(mine)} span(s) in the trace"
                     + (", of them SQL/Redis: " + ", ".join(f"{n} {kind}" for kind, n in sorted(rest.items())) if rest else ""))
        for s in rpcs:
            lines.append(f"    {s['kind']} {s['name']} span {s['span_id']} parent {s['parent_span_id'] or '-'}")
        for s in others[:6]:
            lines.append(f"    in trace {s['trace_id']} during the call: SERVER {s['name']} parent {s['parent_span_id'] or '-'}")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--agent", required=True)
    parser.add_argument("--bench-dir", required=True)
    parser.add_argument("--spans", required=True)
    args = parser.parse_args()

    token = open(os.path.join(args.bench_dir, "token")).read().strip()
    framed = open(os.path.join(args.bench_dir, "code.bin"), "rb").read()
    request = agent_pb2.StartExecutionRequest.FromString(framed[5:])   # gRPC framing: 1 + 4 bytes

    trace_id = secrets.token_hex(16)
    caller_span = secrets.token_hex(8)
    print(f"INFO traceparent 00-{trace_id}-{caller_span}-01", flush=True)
    metadata = [("authorization", "Bearer " + token), ("traceparent", f"00-{trace_id}-{caller_span}-01")]
    channel = grpc.insecure_channel(args.agent)
    start = channel.unary_unary(START, request_serializer=lambda m: m.SerializeToString(),
                                response_deserializer=agent_pb2.Execution.FromString)
    began = time.time_ns()
    try:
        execution, call = start.with_call(request, metadata=metadata, timeout=60)
    except grpc.RpcError as error:
        check(False, "the execution completes (knowledge, text-to-SQL and the sandbox)",
              f"StartExecution failed: {error.code()} {error.details()}")
        print(f"agent trace: {PASSED} passed, {FAILED} failed")
        sys.exit(1)
    ended = time.time_ns()
    check(execution.status == common_pb2.EXECUTION_STATUS_COMPLETED,
          "the execution completes (knowledge, text-to-SQL and the sandbox)",
          f"status {common_pb2.ExecutionStatus.Name(execution.status)}: {execution.error}")
    answered = dict(call.initial_metadata()).get("x-trace-id", "")
    check(answered == trace_id, "the agent answers with the caller's trace id (x-trace-id)", answered or "none")

    deadline = time.time() + WAIT_SECONDS
    while True:
        spans = read_spans(args.spans)
        ours = [s for s in spans if s["trace_id"] == trace_id]
        if complete(ours) or time.time() > deadline:
            break
        time.sleep(0.25)
    waited = WAIT_SECONDS - max(0.0, deadline - time.time())
    print(f"INFO {len(spans)} span(s) at the receiver, {len(ours)} in the trace, after {waited:.1f} s", flush=True)

    services = {s["service"] for s in ours}
    check(set(SERVICES) <= services,
          "spans with the caller's trace id come from agent, persona, knowledge, text-to-sql and code-sandbox",
          f"missing {sorted(set(SERVICES) - services)}")

    server = server_spans(ours, "agent", START)
    check(len(server) == 1 and server[0]["parent_span_id"] == caller_span,
          "the agent's StartExecution span is the child of the caller's span",
          f"{len(server)} span(s), parents {[s['parent_span_id'] for s in server]} (caller {caller_span})")

    agent_clients = {s["span_id"]: s for s in ours if s["service"] == "agent" and s["kind"] == "CLIENT"}
    for service, method in HOPS.items():
        hops = server_spans(ours, service, method)
        parents = [agent_clients.get(s["parent_span_id"]) for s in hops]
        check(hops and all(p is not None and p["name"] == method for p in parents),
              f"{service}'s {method.rsplit('/', 1)[1]} is in the trace, the child of the agent's client span of it",
              f"{len(hops)} server span(s) in the trace, parents "
              f"{[(s['parent_span_id'], p['name'] if p else 'not an agent client span') for s, p in zip(hops, parents)]}")

    # Nothing of the call's hops under another trace (a hop that started a trace of its own).
    strays = [s for s in spans
              if s["trace_id"] != trace_id and s["kind"] == "SERVER" and HOPS.get(s["service"]) == s["name"]
              and began <= s.get("start_ns", 0) <= ended]
    check(not strays, "no hop of the call has a trace of its own",
          "; ".join(f"{s['service']} {s['name']} in trace {s['trace_id']} (parent {s['parent_span_id'] or 'none'})"
                    for s in strays[:4]))

    if FAILED:
        print("Spans per service (trace " + trace_id + "):")
        print(summary(spans, trace_id, began, ended))
    print(f"agent trace: {PASSED} passed, {FAILED} failed")
    sys.exit(1 if FAILED else 0)


if __name__ == "__main__":
    main()
