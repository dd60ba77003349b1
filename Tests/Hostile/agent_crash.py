#!/usr/bin/python3
"""Crash safety of agent executions: the agent service killed with SIGKILL mid-run.

    JWT_PRIVATE_KEY=private.jwk PSQL=psql /usr/bin/python3 agent_crash.py \
        --agent-bin AGENT --agent-env agent.env --agent-pidfile agent.pid --logs DIR \
        --agent-port A --persona-port P --sandbox-port S --knowledge-port K --agent-db DB \
        [--uid-base 61200 --slots 4] [--persona-pid PID --sandbox-pid PID --knowledge-pid PID]

scripts/agent-crash.sh starts persona, code-sandbox and knowledge; this starts the agent itself,
with the KEY=VALUE lines of --agent-env over its own environment, and again after each kill (its
log DIR/agent-<n>.log; the running one's pid in --agent-pidfile, so the script can stop it).

  1. A user registered through AuthService, a developer token for them (signed with
     $JWT_PRIVATE_KEY, no session), a persona, an agent, a code_executor plugin, a knowledge base
     and a file_upload plugin that makes documents of an execution's files there.
  2. Two executions that run Python in the sandbox: B sync (run by the StartExecution call
     itself), with a file, sleeping 20 s, then A async (a job), sleeping 6 s then printing
     "survived". Both are RUNNING, with "Plugin code_executor started" logged and their sandbox
     runs RUNNING; B's file is a knowledge document (tag execution-file, B's id in its metadata).
  3. kill -9 of the agent: the process is gone and its port closed; B's call fails; the
     sandbox ends both runs (their calls' streams died) as CANCELLED or FAILED, not COMPLETED, and
     leaves no process of a slot uid.
  4. The agent restarted with the same environment and port: A's job comes back when its 30 s
     lease lapses, and A runs again from the start, COMPLETED within 120 s of the kill, logging
     "Resumed from the start", its citation the program's stdout "survived\\n"; its job
     succeeded.
  5. The agent restarted again with AGENT_EXECUTION_TIMEOUT_SECONDS=5: B, which no job can resume,
     is failed by the interrupted-execution sweep (at start, then every 60 s: older than the
     timeout + 60 s, with no queued or running job) with error code "interrupted", within 90 s;
     the document made of its file, which its killed run never deleted, is deleted within 60 s.
     Nothing in agent_db is left pending or running, and no job queued or running.

One "PASS crash <check>" or "FAIL crash <check>: why" line per check, "INFO crash …" lines with
the timings, then "agent crash: N passed, M failed"; exit 1 if any failed.
"""
import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid

import grpc
from google.protobuf import json_format, struct_pb2

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "Tests", "Interop", "persona"))
from persona_client import channel_for, mint_token, signing_key  # noqa: E402
from platform_protos import load  # noqa: E402

agent_pb2, persona_pb2, sandbox_pb2, knowledge_pb2 = load(
    "platform/agent/v1/agent.proto", "platform/persona/v1/persona.proto", "platform/codesandbox/v1/code_sandbox.proto",
    "platform/knowledge/v1/knowledge.proto")
common_pb2 = sys.modules["platform.common.v1.common_pb2"]
STATUS = {v.number: v.name.replace("EXECUTION_STATUS_", "") for v in common_pb2.DESCRIPTOR.enum_types_by_name["ExecutionStatus"].values}
FINISHED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"}
TIMEOUT = 30  # seconds per unary call

CODE_A = "import time\ntime.sleep(6)\nprint('survived')"
CODE_B = "import time\ntime.sleep(20)\nprint('sync survived')"
PLUGIN = "code_executor"


class Failure(Exception):
    pass


def struct(value):
    message = struct_pb2.Struct()
    message.update(value)
    return message


class Agent:
    """The agent process: started (and restarted) here, so its exit is ours to see."""

    def __init__(self, args):
        self.args = args
        self.env = dict(os.environ)
        with open(args.agent_env, encoding="utf-8") as f:
            for line in f:
                if "=" in line.strip():
                    name, value = line.strip().split("=", 1)
                    self.env[name] = value
        self.process = None
        self.starts = 0

    def start(self, **overrides):
        self.starts += 1
        env = dict(self.env, **overrides)
        log = open(os.path.join(self.args.logs, f"agent-{self.starts}.log"), "wb")
        self.process = subprocess.Popen([self.args.agent_bin], env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        with open(self.args.agent_pidfile, "w", encoding="utf-8") as f:
            f.write(str(self.process.pid))
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise Failure(f"the agent exited at start ({self.process.returncode}); see agent-{self.starts}.log")
            if subprocess.run([sys.executable, os.path.join(REPO, "scripts", "health_check.py"), f"127.0.0.1:{self.args.agent_port}"],
                              capture_output=True).returncode == 0:
                return
            time.sleep(0.2)
        raise Failure("the agent did not answer SERVING within 90 s")

    def kill(self):
        os.kill(self.process.pid, signal.SIGKILL)
        return self.process.wait(timeout=10)

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


class Suite:
    def __init__(self, args):
        self.args = args
        self.key = signing_key()
        if self.key is None:
            raise SystemExit("agent_crash.py: JWT_PRIVATE_KEY is not set")
        self.agent_process = Agent(args)
        self.agent = channel_for("127.0.0.1", args.agent_port)
        self.persona = channel_for("127.0.0.1", args.persona_port)
        self.sandbox = channel_for("127.0.0.1", args.sandbox_port)
        self.knowledge = channel_for("127.0.0.1", args.knowledge_port)
        self.passed = self.failed = 0
        self.psql = os.environ.get("PSQL") or "psql"
        self.metadata = []

    # --- plumbing --------------------------------------------------------------------------------

    def call(self, channel, service, method, request, response_type, timeout=TIMEOUT, metadata=None):
        stub = channel.unary_unary(f"/{service}/{method}", request_serializer=lambda m: m.SerializeToString(),
                                   response_deserializer=response_type.FromString)
        return stub(request, metadata=self.metadata if metadata is None else metadata, timeout=timeout)

    def executions(self, method, request, response_type, timeout=TIMEOUT):
        return self.call(self.agent, "platform.agent.v1.ExecutionService", method, request, response_type, timeout)

    def get(self, execution_id):
        return self.executions("GetExecution", agent_pb2.GetExecutionRequest(id=execution_id), agent_pb2.Execution)

    def logs(self, execution_id):
        return list(self.executions("ListExecutionLogs", agent_pb2.ListExecutionLogsRequest(execution_id=execution_id, page_size=200),
                                    agent_pb2.ListExecutionLogsResponse).logs)

    def sandbox_runs(self):
        """The user's sandbox runs by code: [(status, id)] each, newest first."""
        response = self.call(self.sandbox, "platform.codesandbox.v1.CodeSandboxService", "ListCodeExecutions",
                             sandbox_pb2.ListCodeExecutionsRequest(page_size=50), sandbox_pb2.ListCodeExecutionsResponse)
        runs = {}
        for run in response.executions:
            runs.setdefault(run.code, []).append((STATUS[run.status], run.id))
        return runs

    def sql(self, query):
        out = subprocess.run([self.psql, "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-d", self.args.agent_db, "-c", query],
                             capture_output=True, text=True, timeout=30)
        if out.returncode != 0:
            raise Failure(f"psql: {out.stderr.strip()}")
        return out.stdout.strip()

    def slot_processes(self):
        out = subprocess.run(["ps", "-e", "-o", "uid=,pid=,comm="], capture_output=True, text=True).stdout
        base, slots = self.args.uid_base, self.args.slots
        return [line.strip() for line in out.splitlines() if line.split() and base <= int(line.split()[0]) < base + slots]

    def check(self, name, condition, why):
        if condition:
            self.passed += 1
            print(f"PASS crash {name}", flush=True)
        else:
            self.failed += 1
            print(f"FAIL crash {name}: {why}", flush=True)
        return condition

    @staticmethod
    def info(text):
        print(f"INFO crash {text}", flush=True)

    @staticmethod
    def wait_for(what, seconds, probe, interval=0.25):
        """probe() until it returns something true; Failure naming `what` after `seconds`."""
        deadline = time.monotonic() + seconds
        last = None
        while True:
            try:
                value = probe()
                if value:
                    return value
                last = value
            except grpc.RpcError as e:
                last = f"{e.code().name}: {e.details()}"
            if time.monotonic() >= deadline:
                raise Failure(f"{what} not within {seconds} s (last: {last})")
            time.sleep(interval)

    # --- the run ---------------------------------------------------------------------------------

    def setup(self):
        self.agent_process.start()
        email = f"crash-{uuid.uuid4().hex[:12]}@example.com"
        user = self.call(self.agent, "platform.agent.v1.AuthService", "Register",
                         agent_pb2.RegisterRequest(email=email, password="crash test password " + uuid.uuid4().hex, name="Crash"),
                         agent_pb2.User, metadata=[])
        self.user_id = user.id
        self.metadata = [("authorization", "Bearer " + mint_token(self.key, user.id, roles=("developer",), ttl=3600))]
        persona = self.call(self.persona, "platform.persona.v1.PersonaService", "CreatePersona",
                            persona_pb2.CreatePersonaRequest(persona=persona_pb2.Persona(
                                name="Crash " + uuid.uuid4().hex[:8], template="You survive crashes.")), persona_pb2.Persona)
        agent = self.call(self.agent, "platform.agent.v1.AgentService", "CreateAgent",
                          agent_pb2.CreateAgentRequest(agent=agent_pb2.Agent(persona_id=persona.id, name="Crash agent")), agent_pb2.Agent)
        self.agent_id = agent.id
        # 30 s for the program (default 10): B sleeps 20 s and must still be running when killed.
        plugin = self.call(self.agent, "platform.agent.v1.AgentService", "AddPlugin",
                           agent_pb2.AddPluginRequest(agent_id=agent.id, plugin=agent_pb2.AgentPlugin(
                               plugin_type=agent_pb2.PLUGIN_TYPE_CODE_EXECUTOR, config=struct({"timeout_ms": 30000}))),
                           agent_pb2.AgentPlugin)
        if plugin.name != PLUGIN:
            raise Failure(f"the plugin is named {plugin.name!r}, not {PLUGIN!r}")
        base = self.call(self.knowledge, "platform.knowledge.v1.KnowledgeService", "CreateKnowledgeBase",
                         knowledge_pb2.CreateKnowledgeBaseRequest(knowledge_base=knowledge_pb2.KnowledgeBase(name="crash files")),
                         knowledge_pb2.KnowledgeBase)
        self.call(self.agent, "platform.agent.v1.AgentService", "AddPlugin",
                  agent_pb2.AddPluginRequest(agent_id=agent.id, plugin=agent_pb2.AgentPlugin(
                      plugin_type=agent_pb2.PLUGIN_TYPE_FILE_UPLOAD, config=struct({"target": "knowledge", "knowledge_base_id": base.id}))),
                  agent_pb2.AgentPlugin)
        self.check("setup", True, "")

    def run_documents(self, execution_id):
        """The knowledge documents made of an execution's files (as file_upload tags them)."""
        request = knowledge_pb2.ListDocumentsRequest(filter=knowledge_pb2.SearchFilter(
            tags_any=["execution-file"], metadata=struct({"execution_id": execution_id})))
        return list(self.call(self.knowledge, "platform.knowledge.v1.KnowledgeService", "ListDocuments", request,
                              knowledge_pb2.ListDocumentsResponse).documents)

    def running_with_plugin(self, execution_id):
        execution = self.get(execution_id)
        if STATUS[execution.status] in FINISHED:
            raise Failure(f"execution {execution_id} ended before the kill: {STATUS[execution.status]} {execution.error}")
        return STATUS[execution.status] == "RUNNING" and any(l.message == f"Plugin {PLUGIN} started" for l in self.logs(execution_id))

    def start_both(self):
        # B first: it sleeps 20 s, A only 6, so A starts last and is surely still running at the kill.
        self.b_result = {}

        def sync_call():
            try:
                self.b_result["execution"] = self.executions("StartExecution", agent_pb2.StartExecutionRequest(
                    agent_id=self.agent_id, input=struct({"message": "sync crash test", "code": CODE_B}), sync=True,
                    files=[agent_pb2.ExecutionFile(name="notes.md", content_type="text/markdown",
                                                   content=b"# Notes\n\nOnly for the length of the run.\n")]),
                    agent_pb2.Execution, timeout=120)
            except grpc.RpcError as e:
                self.b_result["error"] = e.code()
        self.b_thread = threading.Thread(target=sync_call, daemon=True)
        self.b_thread.start()

        def b_id():
            listed = self.executions("ListExecutions", agent_pb2.ListExecutionsRequest(agent_id=self.agent_id, page_size=10),
                                     agent_pb2.ListExecutionsResponse).executions
            return listed[0].id if listed else None
        self.b = self.wait_for("the sync execution listed", 30, b_id)
        self.wait_for("the sync execution RUNNING with its plugin started", 60, lambda: self.running_with_plugin(self.b))
        self.wait_for("B's sandbox run RUNNING", 30, lambda: any(s == "RUNNING" for s, _ in self.sandbox_runs().get(CODE_B, [])))

        a = self.executions("StartExecution", agent_pb2.StartExecutionRequest(
            agent_id=self.agent_id, input=struct({"message": "crash test", "code": CODE_A})), agent_pb2.Execution)
        self.a = a.id
        self.check("async start", STATUS[a.status] == "PENDING", f"StartExecution answered {STATUS[a.status]}")
        self.wait_for("the async execution RUNNING with its plugin started", 60, lambda: self.running_with_plugin(self.a))
        # The program itself running, not only the call on its way.
        self.wait_for("A's sandbox run RUNNING", 30, lambda: any(s == "RUNNING" for s, _ in self.sandbox_runs().get(CODE_A, [])))
        self.check("both running", STATUS[self.get(self.b).status] == "RUNNING" and STATUS[self.get(self.a).status] == "RUNNING",
                   "one of them ended before the kill")
        documents = self.run_documents(self.b)
        self.check("the sync execution's file is a document", [d.title for d in documents] == ["notes.md"], f"{documents}")

    def kill(self):
        pid = self.agent_process.process.pid
        self.killed_at = time.monotonic()
        status = self.agent_process.kill()
        gone = not os.path.exists(f"/proc/{pid}")
        try:
            socket.create_connection(("127.0.0.1", self.args.agent_port), timeout=2).close()
            closed = False
        except OSError:
            closed = True
        self.check("kill -9", status == -signal.SIGKILL and gone and closed,
                   f"exit status {status}, /proc/{pid} {'gone' if gone else 'still there'}, port {'closed' if closed else 'open'}")
        self.b_thread.join(timeout=15)
        self.check("sync call ends with the process", "error" in self.b_result,
                   f"StartExecution(sync) {'is still waiting' if self.b_thread.is_alive() else 'answered ' + str(self.b_result)}")
        self.info(f"the sync call failed with {self.b_result.get('error')}")

    def sandbox_after_kill(self):
        def ended():
            runs = self.sandbox_runs()
            states = {name: runs.get(code, [("NONE", "")])[0][0] for name, code in (("A", CODE_A), ("B", CODE_B))}
            return states if all(s in FINISHED for s in states.values()) else None
        try:
            states = self.wait_for("the sandbox runs ended", 15, ended, interval=0.1)
            elapsed = time.monotonic() - self.killed_at
            self.info(f"the sandbox ended the killed agent's runs {elapsed:.1f} s after the kill: A {states['A']}, B {states['B']}")
            self.check("sandbox ends the orphaned runs", all(s in ("CANCELLED", "FAILED") for s in states.values()),
                       f"A {states['A']}, B {states['B']} (a run whose caller died should not run to completion)")
        except Failure as e:
            self.check("sandbox ends the orphaned runs", False, str(e))
        try:
            self.wait_for("no process of a slot uid", 10, lambda: not self.slot_processes() or None, interval=0.2)
            self.check("no sandbox process left", True, "")
        except Failure:
            self.check("no sandbox process left", False, "; ".join(self.slot_processes()))

    def resumed(self):
        self.agent_process.start()
        self.info(f"agent restarted (same environment and port), SERVING {time.monotonic() - self.killed_at:.1f} s after the kill")
        mid = STATUS[self.get(self.b).status]
        self.info(f"the sync execution after the first restart: {mid}")

        def finished():
            execution = self.get(self.a)
            return execution if STATUS[execution.status] in FINISHED else None
        try:
            execution = self.wait_for("the async execution finished", max(5, 120 - (time.monotonic() - self.killed_at)), finished, 0.5)
        except Failure as e:
            self.check("async execution resumed to COMPLETED", False, str(e))
            return
        elapsed = time.monotonic() - self.killed_at
        logs = self.logs(self.a)
        resumed = [l for l in logs if l.message.startswith("Resumed from the start")]
        if resumed:
            self.info(f"resumed at {resumed[0].create_time.ToDatetime().isoformat()}Z; COMPLETED {elapsed:.1f} s after the kill")
        self.check("async execution resumed to COMPLETED", STATUS[execution.status] == "COMPLETED",
                   f"{STATUS[execution.status]} {json_format.MessageToDict(execution.error)} after {elapsed:.1f} s")
        self.check("resumption logged", len(resumed) == 1 and resumed[0].level == agent_pb2.LOG_LEVEL_WARNING,
                   f"logs: {[(agent_pb2.LogLevel.Name(l.level), l.message) for l in logs]}")
        started = [l for l in logs if l.message == f"Plugin {PLUGIN} started"]
        self.check("plugin ran again after the resumption", len(started) == 2 and resumed and started[1].id > resumed[0].id,
                   f"'Plugin {PLUGIN} started' lines: {len(started)}")
        output = json_format.MessageToDict(execution.output)
        stdouts = [c.get("stdout") for c in output.get("citations", []) if c.get("type") == "code"]
        self.check("output cites the program's stdout", stdouts == ["survived\n"], f"output {output}")
        job = self.sql(f"SELECT state || ' ' || attempts || ' ' || coalesce(last_error, '-') FROM jobs WHERE dedup_key = 'execution:{self.a}'")
        events = self.sql(f"SELECT string_agg(event || '#' || attempt, ', ' ORDER BY e.id) FROM job_events e JOIN jobs j ON j.id = e.job_id "
                          f"WHERE j.dedup_key = 'execution:{self.a}'")
        self.info(f"its job: {job}; events: {events}")
        self.check("its job succeeded", job.startswith("succeeded "), job)
        runs = self.sandbox_runs().get(CODE_A, [])
        self.check("the sandbox ran it again to completion", runs and runs[0][0] == "COMPLETED" and len(runs) == 2, f"runs of A: {runs}")

    def interrupted(self):
        self.agent_process.kill()
        self.agent_process.start(AGENT_EXECUTION_TIMEOUT_SECONDS="5")
        restarted = time.monotonic()
        self.info(f"agent restarted with AGENT_EXECUTION_TIMEOUT_SECONDS=5, {restarted - self.killed_at:.1f} s after the first kill")

        def failed():
            execution = self.get(self.b)
            return execution if STATUS[execution.status] in FINISHED else None
        try:
            execution = self.wait_for("the sync execution ended", 90, failed, 0.5)
        except Failure as e:
            self.check("sync execution failed as interrupted", False, str(e))
            return
        self.info(f"the sync execution ended {time.monotonic() - restarted:.1f} s after the restart, "
                  f"{time.monotonic() - self.killed_at:.1f} s after the kill")
        error = json_format.MessageToDict(execution.error)
        self.check("sync execution failed as interrupted", STATUS[execution.status] == "FAILED" and execution.error.code == "interrupted",
                   f"{STATUS[execution.status]} {error}")
        self.info(f"its error: {error}")
        try:
            self.wait_for("the interrupted execution's documents deleted", 60, lambda: self.run_documents(self.b) == [], 0.5)
            self.check("the interrupted execution's document deleted", True, "")
        except Failure as e:
            self.check("the interrupted execution's document deleted", False, str(e))

    def nothing_left(self):
        left = self.sql("SELECT coalesce(string_agg(id || ' ' || status, ', '), '') FROM executions WHERE status IN ('pending', 'running')")
        self.check("no execution left pending or running", left == "", left)
        jobs = self.sql("SELECT coalesce(string_agg(dedup_key || ' ' || state, ', '), '') FROM jobs WHERE state IN ('queued', 'running')")
        self.check("no job left queued or running", jobs == "", jobs)
        for name, pid in (("persona", self.args.persona_pid), ("code-sandbox", self.args.sandbox_pid),
                          ("knowledge", self.args.knowledge_pid)):
            if pid:
                alive = os.path.exists(f"/proc/{pid}") and not open(f"/proc/{pid}/stat").read().split(") ")[1].startswith("Z")
                self.check(f"{name} still up", alive, f"process {pid} is gone")
        for n in range(1, self.agent_process.starts + 1):
            with open(os.path.join(self.args.logs, f"agent-{n}.log"), encoding="utf-8", errors="replace") as f:
                text = f.read()
            bad = [line for line in text.splitlines() if "fatal" in line.lower() or "panic" in line.lower()]
            self.check(f"agent-{n}.log shows no crash", not bad, "; ".join(bad[:3]))

    def run(self):
        try:
            self.setup()
            self.start_both()
            self.kill()
            self.sandbox_after_kill()
            self.resumed()
            self.interrupted()
            self.nothing_left()
        except Failure as e:
            self.check("run", False, str(e))
        except grpc.RpcError as e:
            self.check("run", False, f"{e.code().name}: {e.details()}")
        finally:
            self.agent_process.stop()
        print(f"agent crash: {self.passed} passed, {self.failed} failed", flush=True)
        return 1 if self.failed else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--agent-bin", required=True)
    parser.add_argument("--agent-env", required=True)
    parser.add_argument("--agent-pidfile", required=True)
    parser.add_argument("--logs", required=True)
    parser.add_argument("--agent-port", type=int, required=True)
    parser.add_argument("--persona-port", type=int, required=True)
    parser.add_argument("--sandbox-port", type=int, required=True)
    parser.add_argument("--knowledge-port", type=int, required=True)
    parser.add_argument("--agent-db", required=True)
    parser.add_argument("--uid-base", type=int, default=61200)
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--persona-pid", type=int)
    parser.add_argument("--sandbox-pid", type=int)
    parser.add_argument("--knowledge-pid", type=int)
    sys.exit(Suite(parser.parse_args()).run())


if __name__ == "__main__":
    main()
