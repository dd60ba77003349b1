#!/usr/bin/python3
"""Crash safety of workflow runs: the workflow service killed with SIGKILL mid-run, with real
processes, a real PostgreSQL and Redis, and a counting HTTP server behind the runs' http nodes.

    JWT_PRIVATE_KEY=private.jwk /usr/bin/python3 workflow_crash.py --workflow-bin WORKFLOW \
        --env workflow.env --pidfile workflow.pid --logs DIR --port P

This starts the workflow service itself, with the KEY=VALUE lines of --env over its own
environment (log DIR/workflow-<n>.log; the running one's pid in --pidfile), and the counting
server (Tests/WorkflowTests/counting_server.py).

  1. Two async runs (jobs), each start → first (POST) → slow (6 s) → last (POST) → end:
     U's slow node is a POST (not idempotent, one attempt); I's slow node is a GET (idempotent).
     Both are killed with SIGKILL while their slow node is in flight: the process is gone.
  2. Restarted with the same environment: each run's job comes back when its 30 s lease lapses.
     I goes on from its committed state: its slow GET runs again (the history says
     "interrupted ... runs again"), then last; COMPLETED. U's slow POST is not sent again: the
     node fails as interrupted (the history says why) and the run is FAILED.
  3. The counting server proves it: no completed node's request was sent twice (first once in
     each run, last once in I); U's slow POST was sent once.
  4. ResumeWorkflowExecution on U (the user decides to send the POST again): slow, then last,
     run; COMPLETED; first is still at one request.
  5. Nothing is left pending or running.

One "PASS crash <check>" or "FAIL crash <check>: why" line per check, then
"workflow crash: N passed, M failed"; exit 1 if any failed.
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid

import grpc
from google.protobuf import struct_pb2

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "Tests", "Interop", "persona"))
from persona_client import channel_for, mint_token, signing_key  # noqa: E402
from platform_protos import load  # noqa: E402

workflow_pb2, = load("platform/workflow/v1/workflow.proto")
common_pb2 = sys.modules["platform.common.v1.common_pb2"]
STATUS = {v.number: v.name.replace("EXECUTION_STATUS_", "") for v in common_pb2.DESCRIPTOR.enum_types_by_name["ExecutionStatus"].values}
EVENT = {v.number: v.name.replace("NODE_EVENT_KIND_", "") for v in workflow_pb2.DESCRIPTOR.enum_types_by_name["NodeEventKind"].values}
SERVICE = "platform.workflow.v1.WorkflowService"


class Failure(Exception):
    pass


def struct(value):
    message = struct_pb2.Struct()
    message.update(value)
    return message


class Process:
    def __init__(self, args):
        self.args = args
        self.env = dict(os.environ)
        with open(args.env, encoding="utf-8") as f:
            for line in f:
                if "=" in line.strip():
                    name, value = line.strip().split("=", 1)
                    self.env[name] = value
        self.process = None
        self.starts = 0

    def start(self):
        self.starts += 1
        log = open(os.path.join(self.args.logs, f"workflow-{self.starts}.log"), "wb")
        self.process = subprocess.Popen([self.args.workflow_bin], env=self.env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        with open(self.args.pidfile, "w", encoding="utf-8") as f:
            f.write(str(self.process.pid))
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise Failure(f"the workflow service exited at start ({self.process.returncode}); see workflow-{self.starts}.log")
            if subprocess.run([sys.executable, os.path.join(REPO, "scripts", "health_check.py"), f"127.0.0.1:{self.args.port}"],
                              capture_output=True).returncode == 0:
                return
            time.sleep(0.2)
        raise Failure("the workflow service did not answer SERVING within 90 s")

    def kill(self):
        os.kill(self.process.pid, signal.SIGKILL)
        return self.process.wait(timeout=10)

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()


class Counter:
    """The counting HTTP server."""

    def __init__(self):
        self.process = subprocess.Popen([sys.executable, os.path.join(REPO, "Tests", "WorkflowTests", "counting_server.py")],
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.port = int(self.process.stdout.readline())

    def request(self, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data, method="GET" if body is None else "POST",
                                         headers={"Content-Type": "application/json"})
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(request, timeout=10) as response:
            return json.loads(response.read() or b"null")

    def counts(self):
        return self.request("/_counts")["counts"]

    def stop(self):
        self.process.kill()


class Suite:
    def __init__(self, args):
        self.args = args
        key = signing_key()
        if key is None:
            raise SystemExit("workflow_crash.py: JWT_PRIVATE_KEY is not set")
        self.metadata = [("authorization", "Bearer " + mint_token(key, str(uuid.uuid4()), roles=["developer"], ttl=3600))]
        self.service = Process(args)
        self.channel = channel_for("127.0.0.1", args.port)
        self.counter = Counter()
        self.passed = self.failed = 0

    def call(self, method, request, response_type, timeout=30):
        stub = self.channel.unary_unary(f"/{SERVICE}/{method}", request_serializer=lambda m: m.SerializeToString(),
                                        response_deserializer=response_type.FromString)
        return stub(request, metadata=self.metadata, timeout=timeout)

    def check(self, name, condition, why=""):
        if condition:
            self.passed += 1
            print(f"PASS crash {name}", flush=True)
        else:
            self.failed += 1
            print(f"FAIL crash {name}: {why}", flush=True)

    def create(self, name, slow_method):
        base = f"http://127.0.0.1:{self.counter.port}/n"
        nodes = [
            ("start", "start", {}),
            ("first", "http", {"url": f"{base}/{name}-first", "method": "POST", "body": {"run": name}}),
            ("slow", "http", {"url": f"{base}/{name}-slow", "method": slow_method, "retry": {"timeout_seconds": 60}}),
            ("last", "http", {"url": f"{base}/{name}-last", "method": "POST"}),
            ("end", "end", {}),
        ]
        workflow = workflow_pb2.Workflow(name=f"crash {name}")
        for node_id, kind, data in nodes:
            workflow.nodes.add(id=node_id, type=kind, data=struct(data))
        for source, target in [("start", "first"), ("first", "slow"), ("slow", "last"), ("last", "end")]:
            workflow.edges.add(id=f"{source}-{target}", source=source, target=target)
        return self.call("CreateWorkflow", workflow_pb2.CreateWorkflowRequest(workflow=workflow), workflow_pb2.Workflow).id

    def get(self, execution_id):
        return self.call("GetWorkflowExecution", workflow_pb2.GetWorkflowExecutionRequest(id=execution_id), workflow_pb2.WorkflowExecution)

    def node(self, execution, node_id):
        return next(n for n in execution.node_executions if n.node_id == node_id)

    def wait_for(self, execution_id, predicate, seconds):
        deadline = time.monotonic() + seconds
        while True:
            try:
                execution = self.get(execution_id)
                if predicate(execution):
                    return execution
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline:
                raise Failure(f"waited {seconds} s for execution {execution_id}")
            time.sleep(0.2)

    def history(self, execution_id):
        stub = self.channel.unary_stream(f"/{SERVICE}/WatchWorkflowExecution", request_serializer=lambda m: m.SerializeToString(),
                                         response_deserializer=workflow_pb2.WorkflowExecutionEvent.FromString)
        events = []
        for event in stub(workflow_pb2.WatchWorkflowExecutionRequest(id=execution_id), metadata=self.metadata, timeout=30):
            if event.WhichOneof("event") == "node":
                events.append((event.node.node_id, EVENT[event.node_event], event.message))
        return events

    def run(self):
        self.service.start()
        self.counter.request("/_script", {"U-slow": {"delay": 6}, "I-slow": {"delay": 6}})
        unsafe = self.create("U", "POST")
        safe = self.create("I", "GET")
        runs = {}
        for name, workflow_id in (("U", unsafe), ("I", safe)):
            runs[name] = self.call("RunWorkflow", workflow_pb2.RunWorkflowRequest(workflow_id=workflow_id), workflow_pb2.WorkflowExecution).id
        for name in runs:
            self.wait_for(runs[name], lambda e: self.node(e, "slow").status == common_pb2.EXECUTION_STATUS_RUNNING, 30)
        time.sleep(0.5)
        code = self.service.kill()
        killed_at = time.monotonic()
        self.check("killed mid-run: the process is gone", code == -signal.SIGKILL, f"exit status {code}")
        counts = self.counter.counts()
        self.check("at the kill, each run had sent first and slow once", all(counts.get(f"{n}-{s}") == 1 for n in runs for s in ("first", "slow")),
                   f"{counts}")

        self.service.start()
        finished = {}
        for name in runs:
            finished[name] = self.wait_for(runs[name], lambda e: STATUS[e.status] in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"), 120)
        print(f"INFO crash both runs ended {time.monotonic() - killed_at:.1f} s after the kill", flush=True)
        safe_run, unsafe_run = finished["I"], finished["U"]
        self.check("the idempotent run went on to COMPLETED", STATUS[safe_run.status] == "COMPLETED", f"{STATUS[safe_run.status]} {safe_run.error.message}")
        history = self.history(runs["I"])
        self.check("its history says the slow GET was interrupted and runs again",
                   any(n == "slow" and k == "INTERRUPTED" and "runs again" in m for n, k, m in history), f"{history}")
        self.check("the unsafe run FAILED rather than send its POST again", STATUS[unsafe_run.status] == "FAILED",
                   f"{STATUS[unsafe_run.status]}")
        slow = self.node(unsafe_run, "slow")
        self.check("its slow node failed as interrupted", slow.error.code == "interrupted", f"{slow.error.code}: {slow.error.message}")
        history = self.history(runs["U"])
        self.check("its history says why it was not run again",
                   any(n == "slow" and k == "INTERRUPTED" and "not run again" in m for n, k, m in history), f"{history}")
        counts = self.counter.counts()
        self.check("no completed node's request was sent twice", counts.get("U-first") == 1 and counts.get("I-first") == 1 and counts.get("I-last") == 1,
                   f"{counts}")
        self.check("the idempotent GET ran again, the POST did not", counts.get("I-slow") == 2 and counts.get("U-slow") == 1, f"{counts}")
        self.check("the unsafe run sent nothing after its failed node", counts.get("U-last") is None, f"{counts}")

        self.counter.request("/_script", {"U-slow": {"delay": 0}})
        self.call("ResumeWorkflowExecution", workflow_pb2.ResumeWorkflowExecutionRequest(id=runs["U"]), workflow_pb2.WorkflowExecution)
        resumed = self.wait_for(runs["U"], lambda e: STATUS[e.status] in ("COMPLETED", "FAILED"), 60)
        self.check("resumed, the unsafe run COMPLETED", STATUS[resumed.status] == "COMPLETED", f"{STATUS[resumed.status]} {resumed.error.message}")
        counts = self.counter.counts()
        self.check("the resume sent slow and last once more and first never again",
                   counts.get("U-first") == 1 and counts.get("U-slow") == 2 and counts.get("U-last") == 1, f"{counts}")
        listed = self.call("ListWorkflowExecutions", workflow_pb2.ListWorkflowExecutionsRequest(page_size=100),
                           workflow_pb2.ListWorkflowExecutionsResponse)
        left = [e.id for e in listed.executions if STATUS[e.status] in ("PENDING", "RUNNING")]
        self.check("nothing is left pending or running", not left, f"{left}")

    def close(self):
        self.service.stop()
        self.counter.stop()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--workflow-bin", required=True)
    parser.add_argument("--env", required=True)
    parser.add_argument("--pidfile", required=True)
    parser.add_argument("--logs", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    suite = Suite(args)
    try:
        suite.run()
    except Failure as failure:
        suite.check("the run", False, str(failure))
    finally:
        suite.close()
    print(f"workflow crash: {suite.passed} passed, {suite.failed} failed", flush=True)
    sys.exit(1 if suite.failed else 0)


if __name__ == "__main__":
    main()
