#!/usr/bin/python3
"""The code-sandbox escape suite: programs that try to get out, against the real service.

    JWT_PRIVATE_KEY=private.jwk /usr/bin/python3 sandbox_escape.py --port P --canary TEXT [--uid-base 61000 --slots N]

Each case runs hostile code through ExecuteCode (Python or JavaScript) and checks from the host
that it was contained: the host's loopback listeners, UDP socket and Unix sockets heard nothing,
no file appeared outside the sandbox, no secret of the service's (the --canary value is in the
service's environment, next to its DATABASE_URL) reached the output, limits ended what had to
end, and the service still answers. After every case nothing may be left behind: no process of a
slot uid, no sandbox cgroup holding a process, no file of a slot uid in /tmp or /var/tmp.

One "PASS escape <case>" or "FAIL escape <case>: why" line per case, then "N of N contained";
exit 1 if any failed.
"""
import argparse
import os
import socket
import subprocess
import sys
import threading
import time
import uuid

import grpc

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "Interop", "persona"))
from persona_client import channel_for, mint_token, signing_key  # noqa: E402
from platform_protos import load  # noqa: E402

sandbox_pb2, = load("platform/codesandbox/v1/code_sandbox.proto")
common_pb2 = sys.modules["platform.common.v1.common_pb2"]
STATUS = {v.number: v.name.replace("EXECUTION_STATUS_", "") for v in common_pb2.DESCRIPTOR.enum_types_by_name["ExecutionStatus"].values}
REASON = {v.number: v.name.replace("TERMINATION_REASON_", "") for v in sandbox_pb2.DESCRIPTOR.enum_types_by_name["TerminationReason"].values}


class Contained(Exception):
    pass


class Suite:
    def __init__(self, args):
        self.args = args
        key = signing_key()
        if key is None:
            raise SystemExit("sandbox_escape.py: JWT_PRIVATE_KEY is not set")
        self.user = str(uuid.uuid4())
        self.metadata = [("authorization", "Bearer " + mint_token(key, self.user, roles=("developer",)))]
        self.channel = channel_for("127.0.0.1", args.port)
        self.execute = self.channel.unary_unary(
            "/platform.codesandbox.v1.CodeSandboxService/ExecuteCode",
            request_serializer=lambda m: m.SerializeToString(), response_deserializer=sandbox_pb2.CodeExecution.FromString)
        self.health = self.channel.unary_unary("/grpc.health.v1.Health/Check", request_serializer=lambda b: b,
                                               response_deserializer=lambda b: b)
        self.passed = self.failed = 0
        self.tag = uuid.uuid4().hex[:10]

    def run(self, code, language="python", timeout_ms=3000, memory_mb=128, **fields):
        request = sandbox_pb2.ExecuteCodeRequest(code=code, **fields)
        request.language = {"python": sandbox_pb2.LANGUAGE_PYTHON, "javascript": sandbox_pb2.LANGUAGE_JAVASCRIPT}[language]
        request.limits.timeout_ms = timeout_ms
        request.limits.memory_mb = memory_mb
        result = self.execute(request, metadata=self.metadata, timeout=90)
        out = result.stdout + result.stderr
        if self.args.canary in out or "DATABASE_URL" in out or "JWT_PRIVATE" in out:
            raise Contained(f"a secret of the service's reached the output: {out[:300]!r}")
        return result

    # --- what must hold after every case ---------------------------------------------------------

    def leftovers(self):
        problems = []
        base, slots = self.args.uid_base, self.args.slots
        out = subprocess.run(["ps", "-e", "-o", "uid=,pid=,comm="], capture_output=True, text=True).stdout
        for line in out.splitlines():
            fields = line.split()
            if len(fields) >= 2 and base <= int(fields[0]) < base + slots:
                problems.append(f"process {fields[1]} ({' '.join(fields[2:])}) of uid {fields[0]} is still running")
        for root in ("/tmp", "/var/tmp", "/dev/shm"):
            found = subprocess.run(["find", root, "-xdev", "-uid", f"+{base - 1}", "-uid", f"-{base + slots}", "-print", "-quit"],
                                   capture_output=True, text=True).stdout.strip()
            if found:
                problems.append(f"{found} belongs to a slot uid")
        cgroups = subprocess.run(["sh", "-c", "cat /sys/fs/cgroup/*/*/code-sandbox-*/run-*/cgroup.procs "
                                  "/sys/fs/cgroup/*/code-sandbox-*/run-*/cgroup.procs "
                                  "/sys/fs/cgroup/code-sandbox-*/run-*/cgroup.procs 2>/dev/null"],
                                 capture_output=True, text=True).stdout.split()
        if cgroups:
            problems.append(f"sandbox cgroups still hold processes {cgroups[:5]}")
        return problems

    def case(self, name, body):
        try:
            body()
            try:
                self.health(b"", timeout=5)
            except grpc.RpcError as e:
                raise Contained(f"the service stopped answering health checks: {e.code().name}")
            deadline = time.monotonic() + 3
            while (problems := self.leftovers()) and time.monotonic() < deadline:
                time.sleep(0.1)
            if problems:
                raise Contained("left behind: " + "; ".join(problems))
        except Contained as e:
            self.failed += 1
            print(f"FAIL escape {name}: {e}", flush=True)
        except grpc.RpcError as e:
            self.failed += 1
            print(f"FAIL escape {name}: {e.code().name}: {e.details()}", flush=True)
        else:
            self.passed += 1
            print(f"PASS escape {name}", flush=True)

    @staticmethod
    def expect(condition, why):
        if not condition:
            raise Contained(why)

    # --- the cases ------------------------------------------------------------------------------

    def cases(self):
        c = self.case
        c("TCP to a listener on the host's loopback", self.tcp)
        c("UDP to a socket on the host's loopback", self.udp)
        c("DNS", lambda: self.printed("import socket\ntry:\n socket.getaddrinfo('example.com', 80)\n print('RESOLVED')\n"
                                      "except OSError as e: print('refused', e)", forbidden="RESOLVED"))
        c("raw and packet sockets", lambda: self.printed(
            "import socket\nfor args in [(socket.AF_INET, socket.SOCK_RAW, 1), (socket.AF_PACKET, socket.SOCK_RAW, 0)]:\n"
            " try:\n  socket.socket(*args); print('OPENED')\n except OSError as e: print('refused', e.errno)", forbidden="OPENED"))
        c("AF_UNIX sockets of the host (a path and an abstract name)", self.unix)
        c("writing outside the sandbox's tmp", self.write_outside)
        c("reading /etc/shadow, /proc/1/environ, every /proc/*/environ", lambda: self.printed(
            "import glob\nfor p in ['/etc/shadow', '/proc/1/environ'] + glob.glob('/proc/*/environ'):\n"
            " try: print(p, open(p, 'rb').read()[:2000])\n except OSError as e: print(p, 'refused', e.errno)", forbidden=None))
        c("the service's environment and database URL", lambda: self.printed(
            "import os\nprint(sorted(os.environ.items()))", forbidden="postgres://"))
        c("/proc/self/root, /proc/*/cwd and symlinks out", lambda: self.printed(
            "import os, glob\nfor p in ['/proc/self/root/etc/shadow', '/proc/1/root/etc/passwd'] + [d + '/etc/hostname' for d in glob.glob('/proc/*/cwd')]:\n"
            " try: print(p, open(p).read()[:200])\n except OSError as e: print(p, 'refused', e.errno)\n"
            "os.symlink('/etc/passwd', 'outputs/passwd')\nos.symlink('/proc/self/root', 'outputs/root')\nprint(os.listdir('/'))",
            forbidden="root:x:0:0", outputs_empty=True))
        c("hard links to host files", lambda: self.printed(
            "import os\nfor src in ['/usr/bin/python3', '/etc/ld.so.cache', '/usr/lib/os-release']:\n"
            " try: os.link(src, 'outputs/' + os.path.basename(src)); print('LINKED', src)\n except OSError as e: print('refused', src, e.errno)",
            forbidden="LINKED"))
        c("fork bomb", lambda: self.limited("import os\nwhile True:\n try: os.fork()\n except OSError: pass", {"TIMEOUT", "FAILED"}))
        c("fork bomb in JavaScript", lambda: self.limited(
            "const {spawn} = require('child_process'); for (;;) { try { spawn('/usr/bin/sleep', ['100']) } catch (e) {} }",
            {"TIMEOUT", "FAILED"}, language="javascript"))
        c("memory bomb", lambda: self.limited("x = []\nwhile True: x.append(bytearray(10 << 20))", {"FAILED"}, reason="MEMORY_LIMIT"))
        c("CPU spin", lambda: self.limited("while True: pass", {"TIMEOUT"}, timeout_ms=1000))
        c("sleeping forever", lambda: self.limited("import time\ntime.sleep(10**6)", {"TIMEOUT"}, timeout_ms=1000))
        c("a daemon outliving its parent", lambda: self.limited(
            "import os, time\nif os.fork() == 0:\n os.setsid()\n time.sleep(10**6)\nprint('parent done')", {"COMPLETED"}))
        c("output flood", lambda: self.limited("import sys\nwhile True: sys.stdout.write('x' * 65536)", {"FAILED"}, reason="OUTPUT_LIMIT"))
        c("filling the disk (tmp and the working directory)", lambda: self.printed(
            "import os\nfor d in ['/tmp', '/work']:\n try:\n  with open(d + '/fill', 'wb') as f:\n   while True: f.write(b'x' * (1 << 20))\n"
            " except OSError as e: print(d, 'full', e.errno)\n os.remove(d + '/fill')", forbidden=None))
        c("many small files", lambda: self.limited(
            "import os\nfor i in range(10**7):\n open('/tmp/f%d' % i, 'w').close()", {"TIMEOUT", "FAILED", "COMPLETED"}, timeout_ms=2000))
        c("deep recursion", lambda: self.limited(
            "import sys\nsys.setrecursionlimit(10**8)\ndef f(n): return f(n + 1) + 1\nf(0)", {"FAILED"}))
        c("deep recursion in JavaScript", lambda: self.limited("function f(n) { return f(n + 1) + 1 }\nf(0)", {"FAILED"}, language="javascript"))
        c("killing every process it can see", lambda: self.limited(
            "import os, signal\nos.kill(-1, signal.SIGKILL)\nprint('still here')", {"COMPLETED", "FAILED"}))
        c("another concurrent run: unseen, unkillable", self.neighbour)
        c("ptrace", lambda: self.denied("import ctypes\nctypes.CDLL(None).ptrace(16, 1, 0, 0)"))
        c("mount, unshare, setns, chroot, keyctl, bpf", self.syscalls)
        c("setuid binaries", lambda: self.printed(
            "import subprocess, os\nfor cmd in [['/usr/bin/su', '-c', 'id'], ['/usr/bin/mount', '-t', 'tmpfs', 'x', '/tmp'], ['/usr/bin/passwd', '-S']]:\n"
            " try:\n  r = subprocess.run(cmd, capture_output=True, timeout=5, input=b'')\n  print(cmd[0], r.returncode, r.stdout[:80], r.stderr[:80])\n"
            " except OSError as e: print(cmd[0], 'refused', e.errno)\nprint('euid', os.geteuid())", forbidden="uid=0("))
        c("ioctl TIOCSTI", lambda: self.printed(
            "import fcntl, termios, os\nfor fd in [0, 1, 2]:\n try: fcntl.ioctl(fd, termios.TIOCSTI, b'x'); print('INJECTED', fd)\n"
            " except OSError as e: print('refused', fd, e.errno)", forbidden="INJECTED"))
        c("the kernel's interfaces (/proc/sys, /sys, /dev)", lambda: self.printed(
            "import os\nfor p in ['/proc/sys/kernel/hostname', '/sys/kernel/uevent_helper', '/proc/sysrq-trigger']:\n"
            " try: open(p, 'w').write('x'); print('WROTE', p)\n except OSError as e: print('refused', p, e.errno)\nprint(sorted(os.listdir('/dev')))",
            forbidden="WROTE"))

    def printed(self, code, forbidden, outputs_empty=False, language="python"):
        result = self.run(code, language=language)
        text = result.stdout + result.stderr
        self.expect(forbidden is None or forbidden not in text, f"the output shows {forbidden!r}: {text[:400]!r}")
        if outputs_empty:
            self.expect(all(not f.content.startswith(b"root:") for f in result.outputs) and not any(f.name.startswith("root") for f in result.outputs),
                        f"output files carried host files: {[f.name for f in result.outputs]}")
        return result

    def limited(self, code, statuses, reason=None, language="python", timeout_ms=3000):
        started = time.monotonic()
        result = self.run(code, language=language, timeout_ms=timeout_ms)
        status = STATUS[result.status]
        self.expect(status in statuses, f"ended {status} ({REASON[result.termination_reason]}), expected {sorted(statuses)}: {result.stderr[:200]!r}")
        self.expect(reason is None or REASON[result.termination_reason] == reason, f"reason {REASON[result.termination_reason]}, expected {reason}")
        self.expect(time.monotonic() - started < timeout_ms / 1000 + 5, f"took {time.monotonic() - started:.1f} s")

    def denied(self, code):
        result = self.run(code)
        self.expect(REASON[result.termination_reason] == "DENIED_SYSCALL" and result.signal == 31,
                    f"ended {STATUS[result.status]} ({REASON[result.termination_reason]}, signal {result.signal})")

    def syscalls(self):
        calls = {"mount": "ctypes.CDLL(None).mount(b'x', b'/tmp', b'tmpfs', 0, None)", "unshare": "ctypes.CDLL(None).unshare(0x10000000)",
                 "setns": "ctypes.CDLL(None).setns(0, 0)", "chroot": "ctypes.CDLL(None).chroot(b'/tmp')",
                 "keyctl": "ctypes.CDLL(None).syscall(250, 0, 0, 0, 0, 0)", "bpf": "ctypes.CDLL(None).syscall(321, 0, 0, 0)",
                 "clone(CLONE_NEWUSER)": "ctypes.CDLL(None).syscall(56, 0x10000000 | 17, 0, 0, 0, 0)"}
        for name, call in calls.items():
            result = self.run("import ctypes\n" + call + "\nprint('SURVIVED')")
            self.expect(REASON[result.termination_reason] == "DENIED_SYSCALL" and "SURVIVED" not in result.stdout,
                        f"{name}: ended {STATUS[result.status]} ({REASON[result.termination_reason]}), stdout {result.stdout[:100]!r}")

    def tcp(self):
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        listener.settimeout(0.2)
        port = listener.getsockname()[1]
        accepted = []

        def accept():
            end = time.monotonic() + 4
            while time.monotonic() < end:
                try:
                    accepted.append(listener.accept())
                except OSError:
                    pass
        thread = threading.Thread(target=accept)
        thread.start()
        self.printed(f"import socket\nfor host in ['127.0.0.1', 'localhost', '::1', '0.0.0.0']:\n"
                     f" try:\n  socket.create_connection((host, {port}), timeout=1); print('CONNECTED', host)\n"
                     f" except OSError as e: print('refused', host, e.errno)", forbidden="CONNECTED")
        thread.join()
        listener.close()
        self.expect(not accepted, "the host's listener accepted a connection")

    def udp(self):
        receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(1)
        port = receiver.getsockname()[1]
        self.printed(f"import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                     f"for i in range(20):\n try: s.sendto(b'escape', ('127.0.0.1', {port}))\n except OSError as e: print('refused', e.errno)",
                     forbidden=None)
        try:
            data = receiver.recv(100)
        except OSError:
            data = None
        receiver.close()
        self.expect(data is None, f"the host's UDP socket received {data!r}")

    def unix(self):
        path = f"/tmp/escape-{self.tag}.sock"
        named = socket.socket(socket.AF_UNIX)
        named.bind(path)
        named.listen(4)
        abstract = socket.socket(socket.AF_UNIX)
        abstract.bind(f"\0escape-{self.tag}")
        abstract.listen(4)
        named.settimeout(0.5)
        abstract.settimeout(0.5)
        try:
            self.printed(f"import socket\nfor addr in ['{path}', '\\0escape-{self.tag}', '/run/postgresql/.s.PGSQL.5432', '/var/run/docker.sock']:\n"
                         f" s = socket.socket(socket.AF_UNIX)\n try: s.connect(addr); print('CONNECTED', repr(addr))\n"
                         f" except OSError as e: print('refused', repr(addr), e.errno)", forbidden="CONNECTED")
            for server in (named, abstract):
                try:
                    server.accept()
                    raise Contained("a host Unix socket accepted a connection")
                except socket.timeout:
                    pass
        finally:
            named.close()
            abstract.close()
            os.unlink(path)

    def write_outside(self):
        targets = ["/usr/escape-" + self.tag, "/etc/escape-" + self.tag, "/escape-" + self.tag, "/proc/escape-" + self.tag,
                   "/sandbox/escape-" + self.tag, "/usr/bin/python3"]
        self.printed("for p in %r:\n try: open(p, 'a').write('x'); print('WROTE', p)\n except OSError as e: print('refused', p, e.errno)" % targets,
                     forbidden="WROTE")
        for path in targets[:3]:
            self.expect(not os.path.exists(path), f"{path} appeared on the host")

    def neighbour(self):
        marker = "neighbour-" + self.tag
        results = {}

        def victim():
            results["victim"] = self.run(f"import time\nprint('{marker}', flush=True)\ntime.sleep(2)\nprint('survived')", timeout_ms=6000)
        thread = threading.Thread(target=victim)
        thread.start()
        time.sleep(0.8)
        attacker = self.run(
            "import os, signal\nseen = []\nfor pid in range(1, 5000):\n try: os.kill(pid, 0); seen.append(pid)\n except OSError: pass\n"
            f"found = [p for p in seen if b'{marker}' in open('/proc/%d/cmdline' % p, 'rb').read()] if seen else []\n"
            "print('seen', seen, 'found', found)\nfor pid in seen:\n if pid != os.getpid():\n  try: os.kill(pid, signal.SIGKILL)\n  except OSError: pass")
        thread.join()
        victim = results.get("victim")
        self.expect("found []" in attacker.stdout, f"the attacker saw the other run: {attacker.stdout[:200]!r}")
        self.expect(victim is not None and STATUS[victim.status] == "COMPLETED" and "survived" in victim.stdout,
                    f"the other run did not survive: {victim and (STATUS[victim.status], victim.stdout)}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--canary", required=True)
    parser.add_argument("--uid-base", type=int, default=61000)
    parser.add_argument("--slots", type=int, default=4)
    suite = Suite(parser.parse_args())
    suite.cases()
    total = suite.passed + suite.failed
    print(f"sandbox escape: {suite.passed} of {total} contained", flush=True)
    return 1 if suite.failed else 0


if __name__ == "__main__":
    sys.exit(main())
