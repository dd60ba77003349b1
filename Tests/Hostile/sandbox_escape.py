#!/usr/bin/python3
"""The code-sandbox escape suite: programs that try to get out, against the real service.

    JWT_PRIVATE_KEY=private.jwk /usr/bin/python3 sandbox_escape.py --port P --canary TEXT [--uid-base 61000 --slots N]
        [--tmp-mb 64] [--save-bwrap-args FILE]

Each case runs hostile code through ExecuteCode (Python or JavaScript) and checks from the host
that it was contained: the host's loopback listeners, UDP socket and Unix sockets heard nothing,
no file appeared outside the sandbox, no secret of the service's (the --canary value is in the
service's environment, next to its DATABASE_URL) reached the output, limits ended what had to
end, and the service still answers. After every case nothing may be left behind: no process of a
slot uid, no sandbox cgroup holding a process, no file of a slot uid in /tmp or /var/tmp.

A case passes only on evidence that the attack was stopped, not on the absence of a symptom:
/etc/shadow must be refused and none of its lines printed; filling tmp must end in ENOSPC (the
tmpfs cap, --tmp-mb, the service's SANDBOX_TMP_MB) and many small files in ENOSPC or the memory
limit, quickly, never the wall clock; ptrace of another concurrent run (attach and seize, by its
host pids) must be refused while the host sees no tracer on it; TIOCSTI is tried on a pty the
program opens and makes its controlling terminal, not only on its pipes.

Each isolation layer on its own (seccomp, namespaces, uid, rlimits, cgroup) is sandbox_layers.py's
job; --save-bwrap-args keeps a real run's bubblewrap command line for it.

One "PASS escape <case>" or "FAIL escape <case>: why" line per case, then "N of N contained";
exit 1 if any failed.
"""
import argparse
import json
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
        c("reading /etc/shadow, /proc/1/environ, every /proc/*/environ", self.host_secrets)
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
        c("filling the disk (tmp and the working directory)", self.disk_fill)
        c("many small files", self.small_files)
        c("deep recursion", lambda: self.limited(
            "import sys\nsys.setrecursionlimit(10**8)\ndef f(n): return f(n + 1) + 1\nf(0)", {"FAILED"}))
        c("deep recursion in JavaScript", lambda: self.limited("function f(n) { return f(n + 1) + 1 }\nf(0)", {"FAILED"}, language="javascript"))
        c("killing every process it can see", lambda: self.limited(
            "import os, signal\nos.kill(-1, signal.SIGKILL)\nprint('still here')", {"COMPLETED", "FAILED"}))
        c("another concurrent run: unseen, unkillable", self.neighbour)
        c("ptrace", lambda: self.denied("import ctypes\nctypes.CDLL(None).ptrace(16, 1, 0, 0)"))
        c("ptrace (attach and seize) of another concurrent run", self.neighbour_ptrace)
        c("mount, unshare, setns, chroot, keyctl, bpf", self.syscalls)
        c("setuid binaries", lambda: self.printed(
            "import subprocess, os\nfor cmd in [['/usr/bin/su', '-c', 'id'], ['/usr/bin/mount', '-t', 'tmpfs', 'x', '/tmp'], ['/usr/bin/passwd', '-S']]:\n"
            " try:\n  r = subprocess.run(cmd, capture_output=True, timeout=5, input=b'')\n  print(cmd[0], r.returncode, r.stdout[:80], r.stderr[:80])\n"
            " except OSError as e: print(cmd[0], 'refused', e.errno)\nprint('euid', os.geteuid())", forbidden="uid=0("))
        c("ioctl TIOCSTI (its own pty as the controlling terminal, and its pipes)", self.tiocsti)
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

    def slot_processes(self):
        """(pid, comm, uid) of every process of a slot uid, from the host."""
        out = subprocess.run(["ps", "-e", "-o", "uid=,pid=,comm="], capture_output=True, text=True).stdout
        found = []
        for line in out.splitlines():
            fields = line.split()
            if len(fields) >= 3 and self.args.uid_base <= int(fields[0]) < self.args.uid_base + self.args.slots:
                found.append((int(fields[1]), fields[2], int(fields[0])))
        return found

    def start_victim(self, marker, seconds):
        """A concurrent run that prints `marker`, sleeps, then prints 'survived'; returns the
        thread (its result lands in the dict) once its python3 is running, with the host pids of
        its processes (bubblewrap, the init, python3)."""
        results = {}

        def victim():
            results["victim"] = self.run(f"import time\nprint('{marker}', flush=True)\ntime.sleep({seconds})\nprint('survived')",
                                         timeout_ms=int(seconds * 1000) + 5000)
        thread = threading.Thread(target=victim)
        thread.start()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not any(comm == "python3" for _, comm, _ in self.slot_processes()):
            time.sleep(0.05)
        time.sleep(0.2)
        victims = self.slot_processes()
        self.save_bwrap_arguments(victims)
        return thread, results, victims

    def save_bwrap_arguments(self, processes):
        """Keeps the bubblewrap command line of a real run (--save-bwrap-args), so that
        sandbox_layers.py tests bubblewrap's namespaces with exactly the service's arguments."""
        if not self.args.save_bwrap_args or os.path.exists(self.args.save_bwrap_args):
            return
        for pid, comm, _ in processes:
            if comm != "bwrap":
                continue
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    argv = [a.decode() for a in f.read().split(b"\0")[:-1]]
            except OSError:
                continue
            if "--seccomp" in argv and "/sandbox/init" in argv:
                with open(self.args.save_bwrap_args, "w") as f:
                    json.dump(argv, f)
                return

    def neighbour(self):
        marker = "neighbour-" + self.tag
        thread, results, _ = self.start_victim(marker, 2)
        attacker = self.run(
            "import os, signal\nseen = []\nfor pid in range(1, 5000):\n try: os.kill(pid, 0); seen.append(pid)\n except OSError: pass\n"
            f"found = [p for p in seen if b'{marker}' in open('/proc/%d/cmdline' % p, 'rb').read()] if seen else []\n"
            "print('seen', seen, 'found', found)\nfor pid in seen:\n if pid != os.getpid():\n  try: os.kill(pid, signal.SIGKILL)\n  except OSError: pass")
        thread.join()
        victim = results.get("victim")
        self.expect("found []" in attacker.stdout, f"the attacker saw the other run: {attacker.stdout[:200]!r}")
        self.expect(victim is not None and STATUS[victim.status] == "COMPLETED" and "survived" in victim.stdout,
                    f"the other run did not survive: {victim and (STATUS[victim.status], victim.stdout)}")

    def host_secrets(self):
        """/etc/shadow must be refused (it is not in the sandbox at all): no line of the host's
        shadow file, and no line starting root:, may be printed. /proc/1/environ and every
        /proc/*/environ are the sandbox's own (its pid namespace); the canary check covers the
        service's."""
        result = self.printed(
            "import glob, errno, sys\nfor p in ['/etc/shadow', '/etc/gshadow', '/proc/1/environ'] + glob.glob('/proc/*/environ'):\n"
            " try:\n  data = open(p, 'rb').read()[:4000]\n  print(p, 'READ', len(data))\n"
            "  sys.stdout.write(data.replace(b'\\0', b'\\n').decode('latin-1') + '\\n')\n"
            " except OSError as e: print(p, 'refused', errno.errorcode.get(e.errno, e.errno))", forbidden=None)
        text = result.stdout
        self.expect("/etc/shadow refused" in text and "/etc/gshadow refused" in text,
                    f"/etc/shadow was not refused: {text[:300]!r}")
        lines = text.splitlines()
        self.expect(not any(line.startswith("root:") for line in lines), f"a shadow line was printed: {text[:300]!r}")
        try:
            with open("/etc/shadow") as f:
                host = [line.split(":")[0] + ":" + line.split(":")[1] for line in f if line.count(":") >= 2]
        except OSError:
            host = []
        leaked = [entry for entry in host if any(line.startswith(entry + ":") for line in lines)]
        self.expect(not leaked, f"the host's /etc/shadow entries were printed: {leaked[:3]}")

    def disk_fill(self):
        """/tmp and /work: one growing file ends at RLIMIT_FSIZE (EFBIG) or the tmpfs cap (ENOSPC);
        then 4 MiB files, each under the file size limit, one after another, so only the tmpfs cap
        (--size, SANDBOX_TMP_MB) can stop them: ENOSPC, at most the cap written, quickly."""
        cap = self.args.tmp_mb << 20
        started = time.monotonic()
        result = self.run(
            "import os, errno, time\nfor d in ['/tmp', '/work']:\n t = time.monotonic()\n"
            " try:\n  with open(d + '/big', 'wb') as f:\n   while True: f.write(b'x' * (1 << 20))\n"
            " except OSError as e: print(d, 'big', errno.errorcode.get(e.errno, e.errno), os.path.getsize(d + '/big'), flush=True)\n"
            " os.remove(d + '/big')\n"
            " try:\n  for i in range(10**6):\n   with open('%s/part%d' % (d, i), 'wb') as f:\n"
            "    for _ in range(4): f.write(b'x' * (1 << 20))\n"
            " except OSError as e:\n"
            "  parts = [n for n in os.listdir(d) if n.startswith('part')]\n"
            "  print(d, 'parts', errno.errorcode.get(e.errno, e.errno), sum(os.path.getsize(d + '/' + n) for n in parts), round(time.monotonic() - t, 2), flush=True)\n"
            "  for n in parts: os.remove(d + '/' + n)", timeout_ms=10000)
        elapsed = time.monotonic() - started
        lines = [line.split() for line in result.stdout.splitlines()]
        for d in ("/tmp", "/work"):
            big = [f for f in lines if f[:2] == [d, "big"]]
            parts = [f for f in lines if f[:2] == [d, "parts"]]
            self.expect(big and big[0][2] in ("EFBIG", "ENOSPC") and int(big[0][3]) <= cap,
                        f"{d}: one growing file was not stopped by the file size limit or the tmpfs cap: {result.stdout[:300]!r} "
                        f"({STATUS[result.status]}, {REASON[result.termination_reason]})")
            self.expect(parts and parts[0][2] == "ENOSPC" and int(parts[0][3]) <= cap,
                        f"{d}: files under the size limit were not stopped by the {self.args.tmp_mb} MiB tmpfs cap (ENOSPC): "
                        f"{result.stdout[:300]!r} ({STATUS[result.status]}, {REASON[result.termination_reason]})")
        self.expect(STATUS[result.status] == "COMPLETED", f"ended {STATUS[result.status]} ({REASON[result.termination_reason]})")
        self.expect(elapsed < 8, f"took {elapsed:.1f} s")

    def small_files(self):
        """1-byte files in /tmp: the tmpfs cap stops them (ENOSPC, one page each, so at most
        cap / 4 KiB files); empty files in /work use no pages, only inodes, whose kernel memory the
        run's memory cgroup is charged for: ENOSPC (inodes) or the memory limit. Never the wall
        clock."""
        started = time.monotonic()
        result = self.run(
            "import os, errno, time\nt = time.monotonic()\nn = 0\n"
            "try:\n for i in range(10**7):\n  with open('/tmp/s%d' % i, 'wb') as f: f.write(b'x')\n  n += 1\n"
            "except OSError as e: print('small', errno.errorcode.get(e.errno, e.errno), n, round(time.monotonic() - t, 2), flush=True)\n"
            "t = time.monotonic()\nn = 0\n"
            "try:\n for i in range(10**7):\n  os.close(os.open('/work/e%d' % i, os.O_CREAT | os.O_WRONLY, 0o644))\n  n += 1\n"
            "except OSError as e: print('empty', errno.errorcode.get(e.errno, e.errno), n, round(time.monotonic() - t, 2), flush=True)\n"
            "print('NOT STOPPED')", timeout_ms=10000)
        elapsed = time.monotonic() - started
        lines = [line.split() for line in result.stdout.splitlines()]
        small = [f for f in lines if f[:1] == ["small"]]
        empty = [f for f in lines if f[:1] == ["empty"]]
        ending = f"{STATUS[result.status]} ({REASON[result.termination_reason]})"
        self.expect(small and small[0][1] == "ENOSPC" and int(small[0][2]) <= (self.args.tmp_mb << 20) // 4096,
                    f"1-byte files were not stopped by the tmpfs cap (ENOSPC): {result.stdout[:200]!r}, {ending}")
        stopped = (empty and empty[0][1] in ("ENOSPC", "ENOMEM", "EDQUOT")) or REASON[result.termination_reason] == "MEMORY_LIMIT"
        self.expect(stopped and "NOT STOPPED" not in result.stdout,
                    f"empty files were not stopped by inode exhaustion or the memory limit: {result.stdout[:200]!r}, {ending}")
        self.expect(STATUS[result.status] != "TIMEOUT" and elapsed < 8, f"only the wall clock stopped it: {ending} after {elapsed:.1f} s")

    def neighbour_ptrace(self):
        """PTRACE_ATTACH and PTRACE_SEIZE (ctypes) on a concurrent run's processes, by their host
        pids (the host looks them up) and by the pids the attacker can see in its own namespace.
        Each attempt is made in a child of its own (seccomp kills the caller with SIGSYS); every
        one must be refused, and the other run must never show a tracer and must finish."""
        marker = "ptraced-" + self.tag
        thread, results, victims = self.start_victim(marker, 3)
        targets = sorted({pid for pid, _, _ in victims})
        self.expect(targets, "the other run's processes could not be found on the host")
        traced, watching = [], [True]

        def watch():
            while watching[0]:
                for pid in targets:
                    try:
                        with open(f"/proc/{pid}/status") as f:
                            status = dict(line.split(":\t", 1) for line in f.read().splitlines() if ":\t" in line)
                    except OSError:
                        continue
                    if status.get("TracerPid", "0").strip() != "0" or status.get("State", "").startswith(("t", "T")):
                        traced.append((pid, status.get("TracerPid", "").strip(), status.get("State", "").strip()))
                time.sleep(0.01)
        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            attacker = self.run(
                "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"
                f"targets = sorted(set({targets!r} + [int(p) for p in os.listdir('/proc') if p.isdigit() and int(p) != os.getpid()]))\n"
                "for pid in targets:\n for name, request in (('ATTACH', 16), ('SEIZE', 0x4206)):\n"
                "  child = os.fork()\n  if child == 0:\n"
                "   r = libc.ptrace(request, pid, 0, 0)\n"
                "   os.write(1, (f'ATTACHED {name} {pid}\\n' if r == 0 else f'refused {name} {pid} errno {ctypes.get_errno()}\\n').encode())\n"
                "   os._exit(0)\n"
                "  _, status = os.waitpid(child, 0)\n"
                "  if os.WIFSIGNALED(status): print('refused', name, pid, 'signal', os.WTERMSIG(status), flush=True)\n"
                "print('attempts', 2 * len(targets), flush=True)")
        finally:
            thread.join()
            watching[0] = False
            watcher.join()
        victim = results.get("victim")
        out = attacker.stdout
        attempts = [line for line in out.splitlines() if line.startswith("refused ")]
        self.expect("ATTACHED" not in out, f"ptrace succeeded: {out[:300]!r}")
        self.expect(f"attempts {len(attempts)}" in out and len(attempts) >= 2 * len(targets),
                    f"not every attempt was made and refused: {out[:300]!r} {attacker.stderr[:200]!r}")
        self.expect(not traced, f"the other run was traced or stopped: {traced[:3]}")
        self.expect(victim is not None and STATUS[victim.status] == "COMPLETED" and "survived" in victim.stdout,
                    f"the other run did not survive: {victim and (STATUS[victim.status], victim.stdout)}")

    def tiocsti(self):
        """TIOCSTI on a terminal the program controls: it opens a pty of its own (the sandbox's
        private devpts), makes the slave its controlling terminal in a new session, puts it in raw
        mode and tries to push "id\n" into its input queue, then checks that nothing arrived. Without
        the seccomp rule this succeeds on a kernel with dev.tty.legacy_tiocsti=1 (this one). Its
        pipes too (ENOTTY regardless). If no pty can be opened inside, no terminal exists to inject
        into: that is containment as well, and the output says so."""
        result = self.printed(
            "import os, fcntl, termios, tty, select, errno\n"
            "for fd in [0, 1, 2]:\n try: fcntl.ioctl(fd, termios.TIOCSTI, b'x'); print('INJECTED pipe', fd, flush=True)\n"
            " except OSError as e: print('pipe', fd, 'refused', errno.errorcode.get(e.errno, e.errno), flush=True)\n"
            "try:\n master, slave = os.openpty()\nexcept OSError as e:\n"
            " print('NO PTY: no terminal can be opened inside the sandbox, so none can be injected into:', errno.errorcode.get(e.errno, e.errno))\n"
            " raise SystemExit(0)\n"
            "name = os.ttyname(slave)\nchild = os.fork()\n"
            "if child == 0:\n os.setsid()\n fd = os.open(name, os.O_RDWR)\n"
            " try: fcntl.ioctl(fd, termios.TIOCSCTTY, 0)\n except OSError: pass\n"
            " tty.setraw(fd)\n"
            " try:\n  for c in b'id\\n': fcntl.ioctl(fd, termios.TIOCSTI, bytes([c]))\n  print('INJECTED pty', name, flush=True)\n"
            " except OSError as e: print('pty', name, 'refused', errno.errorcode.get(e.errno, e.errno), flush=True)\n"
            " ready, _, _ = select.select([fd], [], [], 0.3)\n"
            " print('QUEUED', os.read(fd, 100) if ready else 'nothing queued', flush=True)\n"
            " os._exit(0)\n"
            "os.waitpid(child, 0)", forbidden="INJECTED")
        out = result.stdout
        self.expect("QUEUED" not in out.replace("QUEUED nothing queued", ""), f"input was queued: {out[:300]!r}")
        self.expect("NO PTY" in out or ("pty /dev/pts/" in out and "refused" in out and "QUEUED nothing queued" in out),
                    f"TIOCSTI on a pty was not tried and refused: {out[:300]!r} {result.stderr[:200]!r}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--canary", required=True)
    parser.add_argument("--uid-base", type=int, default=61000)
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--tmp-mb", type=int, default=64, help="the service's SANDBOX_TMP_MB")
    parser.add_argument("--save-bwrap-args", help="write a real run's bubblewrap command line here (JSON), for sandbox_layers.py")
    suite = Suite(parser.parse_args())
    suite.cases()
    total = suite.passed + suite.failed
    print(f"sandbox escape: {suite.passed} of {total} contained", flush=True)
    return 1 if suite.failed else 0


if __name__ == "__main__":
    sys.exit(main())
