#!/usr/bin/python3
"""The workflow engine's speed (scripts/benchmark-workflow.sh runs it against a release build).

    JWT_PRIVATE_KEY=private.jwk workflow_bench.py --target 127.0.0.1:PORT [--runs 30] [--duration 10] [--concurrency 16]

  chain     a 100-node chain (start, 98 template nodes, end), run sync --runs times one after
            another: the engine's own cost per node, persistence included, from the node rows'
            timestamps: each node's start to the next node's start (its run, its two commits, the
            next node's decision), p50/p99 over every node of every run; and per run, the first
            node's start to the last node's completion divided by 100.
  fan-out   start, 50 template branches, an aggregate, end (50 branches in flight,
            WORKFLOW_MAX_PARALLEL at a time), run sync --runs times: the call's latency and the
            run's execution time, p50/p99.
  runs/s    a 5-node workflow (start, template, condition, template, end) run sync by
            --concurrency client threads for --duration seconds: completed runs per second and
            latency p50/p99. Every run must be COMPLETED.
"""
import argparse
import concurrent.futures
import os
import sys
import threading
import time
import uuid

from google.protobuf import struct_pb2

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(REPO, "Tests", "Interop", "persona"))
sys.path.insert(0, os.path.join(REPO, "Tests", "Hostile"))
from persona_client import channel_for, mint_token, signing_key  # noqa: E402
from platform_protos import load  # noqa: E402

workflow_pb2, = load("platform/workflow/v1/workflow.proto")
common_pb2 = sys.modules["platform.common.v1.common_pb2"]
SERVICE = "platform.workflow.v1.WorkflowService"


def struct(value):
    message = struct_pb2.Struct()
    message.update(value)
    return message


def percentile(values, p):
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


class Client:
    def __init__(self, target):
        host, port = target.rsplit(":", 1)
        self.channel = channel_for(host, int(port))
        key = signing_key()
        self.metadata = [("authorization", "Bearer " + mint_token(key, str(uuid.uuid4()), roles=["developer"], ttl=3600))]

    def call(self, method, request, response_type, timeout=120):
        stub = self.channel.unary_unary(f"/{SERVICE}/{method}", request_serializer=lambda m: m.SerializeToString(),
                                        response_deserializer=response_type.FromString)
        return stub(request, metadata=self.metadata, timeout=timeout)

    def create(self, name, nodes, edges):
        workflow = workflow_pb2.Workflow(name=name)
        for node_id, kind, data in nodes:
            workflow.nodes.add(id=node_id, type=kind, data=struct(data))
        for source, target in edges:
            workflow.edges.add(id=f"{source}-{target}", source=source, target=target,
                               source_handle="true" if source == "check" and target == "yes" else ("false" if source == "check" else ""))
        return self.call("CreateWorkflow", workflow_pb2.CreateWorkflowRequest(workflow=workflow), workflow_pb2.Workflow).id

    def run(self, workflow_id, inputs=None):
        started = time.perf_counter()
        execution = self.call("RunWorkflow", workflow_pb2.RunWorkflowRequest(workflow_id=workflow_id, sync=True, inputs=struct(inputs or {})),
                              workflow_pb2.WorkflowExecution)
        return execution, (time.perf_counter() - started) * 1000


def seconds(timestamp):
    return timestamp.seconds + timestamp.nanos / 1e9


def chain(client, runs):
    nodes = [("start", "start", {})] + [(f"t{i}", "template", {"template": f"step {i} of {{{{input.name}}}}"}) for i in range(1, 99)] + [("end", "end", {})]
    ids = [n[0] for n in nodes]
    workflow_id = client.create("bench chain", nodes, list(zip(ids, ids[1:])))
    client.run(workflow_id, {"name": "warm-up"})
    gaps, per_node = [], []
    for _ in range(runs):
        execution, _ = client.run(workflow_id, {"name": "bench"})
        assert execution.status == common_pb2.EXECUTION_STATUS_COMPLETED, execution.error.message
        by_id = {n.node_id: n for n in execution.node_executions}
        starts = [seconds(by_id[i].start_time) for i in ids]
        gaps += [(b - a) * 1000 for a, b in zip(starts, starts[1:])]
        per_node.append((seconds(by_id["end"].complete_time) - starts[0]) * 1000 / len(ids))
    print(f"chain (100 nodes, {runs} runs): per node start-to-next-start p50 {percentile(gaps, 50):.2f} ms p99 {percentile(gaps, 99):.2f} ms; "
          f"per run (first start to last completion) / 100: p50 {percentile(per_node, 50):.2f} ms p99 {percentile(per_node, 99):.2f} ms", flush=True)
    return percentile(gaps, 50)


def fan_out(client, runs):
    nodes = [("start", "start", {})] + [(f"b{i}", "template", {"template": f"branch {i}"}) for i in range(50)] + [("join", "aggregate", {}), ("end", "end", {})]
    edges = [("start", f"b{i}") for i in range(50)] + [(f"b{i}", "join") for i in range(50)] + [("join", "end")]
    workflow_id = client.create("bench fan-out", nodes, edges)
    client.run(workflow_id)
    latencies, executions = [], []
    for _ in range(runs):
        execution, latency = client.run(workflow_id)
        assert execution.status == common_pb2.EXECUTION_STATUS_COMPLETED, execution.error.message
        latencies.append(latency)
        executions.append(execution.execution_time_ms)
    print(f"fan-out (50 branches, {runs} runs): call p50 {percentile(latencies, 50):.1f} ms p99 {percentile(latencies, 99):.1f} ms; "
          f"run execution_time_ms p50 {percentile(executions, 50):.0f} p99 {percentile(executions, 99):.0f}", flush=True)


def throughput(client, duration, concurrency):
    nodes = [("start", "start", {}), ("greet", "template", {"template": "Hello {{input.name}}"}),
             ("check", "condition", {"expression": "input.score > 5"}), ("yes", "template", {"template": "{{nodes.greet.output.text}}!"}),
             ("end", "end", {})]
    edges = [("start", "greet"), ("greet", "check"), ("check", "yes"), ("yes", "end")]
    workflow_id = client.create("bench five", nodes, edges)
    client.run(workflow_id, {"name": "warm", "score": 9})
    latencies, failures = [], []
    lock = threading.Lock()
    stop = time.monotonic() + duration

    def worker():
        while time.monotonic() < stop:
            try:
                execution, latency = client.run(workflow_id, {"name": "x", "score": 9})
                ok = execution.status == common_pb2.EXECUTION_STATUS_COMPLETED
            except Exception as error:  # noqa: BLE001
                ok, latency, execution = False, 0, error
            with lock:
                (latencies if ok else failures).append(latency if ok else str(execution)[:200])

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        for _ in range(concurrency):
            pool.submit(worker)
    elapsed = time.monotonic() - started
    print(f"runs/s (5 nodes, {concurrency} clients, {elapsed:.0f} s): {len(latencies) / elapsed:.0f} runs/s completed; "
          f"latency p50 {percentile(latencies, 50):.1f} ms p99 {percentile(latencies, 99):.1f} ms; failed {len(failures)}", flush=True)
    if failures:
        print("first failure:", failures[0], flush=True)
        return False
    return True


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", required=True)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    client = Client(args.target)
    per_node = chain(client, args.runs)
    fan_out(client, args.runs)
    ok = throughput(client, args.duration, args.concurrency)
    print(f"target: per-node p50 <= 2 ms: {'met' if per_node <= 2 else 'NOT met'} ({per_node:.2f} ms)", flush=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
