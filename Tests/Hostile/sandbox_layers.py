#!/usr/bin/python3
"""The code sandbox's isolation layers, each on its own, through the real launcher.

    /usr/bin/python3 sandbox_layers.py --launcher path/to/sandbox-exec [--bwrap /usr/bin/bwrap]
                                       [--bwrap-args run.json] [--uid 61090]

The escape suite (sandbox_escape.py) attacks the whole sandbox, where one layer can hide a hole
in another. Here every layer is switched on alone and attacked with what it must stop, and each
attack is also run once with that layer off (the control), so a test that would pass anyway fails
instead ("the control was stopped too").

`sandbox-exec launch` (Services/CodeSandbox/Exec/sandbox_exec.c) already lets layers be chosen
one by one, without a change to it:
- the slot uid: `--uid U --gid U`, or nothing (stays root);
- rlimits: `--cpu-seconds`, `--nproc`, `--fsize`, `--nofile`, each only when given (RLIMIT_CORE is
  always 0);
- the cgroup: `--cgroup-procs FILE`, or nothing;
- seccomp and bubblewrap: the launcher compiles the filter and execs `--bwrap PATH` with
  `--seccomp FD` first. PATH is the real bubblewrap (namespaces and the filter, as in the
  service), a shim that drops `--seccomp FD` and execs bubblewrap (namespaces only), or a shim
  that drops it and execs the program (neither). For seccomp alone the real bubblewrap loads the
  filter, as in the service, with arguments that isolate nothing (`--dev-bind / /`: the host's
  file system and devices, pid, network, ipc and uts namespaces, and root keeps its capabilities).

Layers and what each must stop on its own:
- seccomp (root, host namespaces): ptrace, process_vm_readv, unshare, clone with namespace flags,
  setns, mount, chroot, keyctl, bpf, perf_event_open, userfaultfd killed with SIGSYS;
  personality, TIOCSTI, raw/packet/netlink sockets, io_uring, clone3 refused with an error.
- bubblewrap's namespaces (root, no seccomp), with the service's own arguments (--bwrap-args, a
  real run's command line the escape suite saved; else a copy of Sandbox.bubblewrapArguments):
  the host's loopback (TCP, UDP, abstract AF_UNIX), its processes (/proc/*/environ, signals), its
  files (/etc/shadow, host paths) and the launcher's environment.
- the slot uid (no namespaces, no seccomp): /etc/shadow, root's and another slot's processes.
- rlimits (under the slot uid, since RLIMIT_NPROC means nothing to root): processes, file size,
  open files, CPU seconds, no core dumps.
- the cgroup (root, nothing else): memory (the OOM killer), processes, CPU quota.

One "PASS layer <layer>: <case>" or "FAIL layer <layer>: <case>: why" line per case, then
"sandbox layers: N of N held on their own"; exit 1 if any failed, 2 if it cannot run (not root).
Every case takes under 5 s; nothing is left behind (processes of the test uids, cgroups, files).
"""
import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid

PYTHON = "/usr/bin/python3"

# Sandbox.bubblewrapArguments (Services/CodeSandbox/Sources/Sandbox/Sandbox.swift), for when no
# real run's command line is given: namespaces, the read-only /usr, capped tmpfs, cleared env.
MIRRORED_BWRAP_ARGS = [
    "--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup", "--unshare-net",
    "--die-with-parent", "--new-session", "--clearenv", "--cap-drop", "ALL", "--hostname", "sandbox",
    "--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin", "--symlink", "usr/lib", "/lib",
    "--symlink", "usr/lib64", "/lib64", "--symlink", "usr/sbin", "/sbin",
] + [a for path in ["/etc/ld.so.cache", "/etc/alternatives", "/etc/matplotlibrc", "/etc/fonts"]
     if os.access(path, os.R_OK) for a in ("--ro-bind", path, path)] + [
    "--proc", "/proc", "--dev", "/dev", "--size", str(64 << 20), "--tmpfs", "/tmp", "--size", str(64 << 20), "--tmpfs", "/work",
    "--remount-ro", "/", "--chdir", "/work",
    "--setenv", "HOME", "/work", "--setenv", "LANG", "C.UTF-8", "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "TMPDIR", "/tmp",
]

# seccomp alone: bubblewrap loads the filter, and isolates nothing else.
SECCOMP_ONLY_BWRAP_ARGS = ["--dev-bind", "/", "/", "--die-with-parent"]

# Prepended to every payload: result() reports one JSON line; isolated(fn) runs fn in a child of
# its own (seccomp kills the whole process at a denied call) and says how it went: "ok[ value]",
# "errno NAME" or "signal N".
PRELUDE = r'''
import ctypes, errno, json, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
def result(**fields):
    sys.stdout.write("RESULT " + json.dumps(fields) + "\n")
    sys.stdout.flush()
def check(r):
    if r == -1:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return r
def isolated(fn):
    r, w = os.pipe()
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            out = fn()
            text = "ok" if out is None else "ok " + str(out)
        except OSError as e:
            text = "errno " + errno.errorcode.get(e.errno, str(e.errno))
        except BaseException as e:
            text = "error " + repr(e)
        os.write(w, text.encode())
        os._exit(0)
    os.close(w)
    data = b""
    while True:
        chunk = os.read(r, 4096)
        if not chunk:
            break
        data += chunk
    os.close(r)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return "signal %d" % os.WTERMSIG(status)
    return data.decode()
def attempt(fn):
    try:
        out = fn()
        return "ok" if out is None else "ok " + str(out)
    except OSError as e:
        return "errno " + errno.errorcode.get(e.errno, str(e.errno))
'''

# The system calls seccomp must deny, each tried in a child of its own, as root in the host's
# namespaces (where, without the filter, each one succeeds).
SECCOMP_PAYLOAD = r'''
import socket, fcntl, termios, tty, select, signal
mountpoint = sys.argv[1]
target = os.fork()
if target == 0:
    time.sleep(30)
    os._exit(0)

def trace(request):
    return check(libc.ptrace(request, target, 0, 0))

def clone_newuser():
    r = libc.syscall(56, 0x10000000 | 17, 0, 0, 0, 0)
    if r == 0:
        os._exit(0)
    check(r)
    os.waitpid(r, 0)

def setns():
    return check(libc.setns(os.open("/proc/self/ns/net", os.O_RDONLY), 0))

def mount():
    check(libc.mount(b"none", mountpoint.encode(), b"tmpfs", 0, None))
    libc.umount2(mountpoint.encode(), 0)

def bpf():
    attr = (ctypes.c_uint32 * 32)(2, 4, 4, 1)  # BPF_MAP_CREATE of a 1-entry array
    return check(libc.syscall(321, 0, attr, 128))

def perf():
    attr = (ctypes.c_uint32 * 32)()
    attr[0], attr[1] = 1, 128  # PERF_TYPE_SOFTWARE, size; config 0: cpu clock
    return check(libc.syscall(298, attr, 0, -1, -1, 0))

def clone3():
    args = (ctypes.c_uint64 * 11)()
    args[4] = 17  # exit_signal SIGCHLD: a plain fork
    r = libc.syscall(435, args, 88)
    if r == 0:
        os._exit(0)
    check(r)
    os.waitpid(r, 0)

def tiocsti():
    master, slave = os.openpty()
    name = os.ttyname(slave)
    os.setsid()
    fd = os.open(name, os.O_RDWR)  # the new session's controlling terminal
    try:
        fcntl.ioctl(fd, termios.TIOCSCTTY, 0)
    except OSError:
        pass
    tty.setraw(fd)
    for c in b"id\n":
        fcntl.ioctl(fd, termios.TIOCSTI, bytes([c]))
    ready, _, _ = select.select([fd], [], [], 0.3)
    return "injected %r" % os.read(fd, 100) if ready else "nothing queued"

killed = {
    "ptrace(PTRACE_ATTACH)": lambda: trace(16),
    "ptrace(PTRACE_SEIZE)": lambda: trace(0x4206),
    "process_vm_readv": lambda: check(libc.syscall(310, target, None, 0, None, 0, 0)),
    "unshare(CLONE_NEWNS)": lambda: check(libc.unshare(0x20000)),
    "unshare(CLONE_NEWUSER)": lambda: check(libc.unshare(0x10000000)),
    "clone(CLONE_NEWUSER)": clone_newuser,
    "setns": setns,
    "mount(tmpfs)": mount,
    "chroot": lambda: check(libc.chroot(b"/")),
    "keyctl(KEYCTL_GET_KEYRING_ID)": lambda: check(libc.syscall(250, 0, -3, 0)),
    "bpf(BPF_MAP_CREATE)": bpf,
    "perf_event_open": perf,
    "userfaultfd": lambda: check(libc.syscall(323, os.O_CLOEXEC)),
}
refused = {
    "personality(ADDR_NO_RANDOMIZE)": lambda: check(libc.personality(0x0040000)),
    "ioctl(TIOCSTI) on its controlling pty": tiocsti,
    "socket(AF_PACKET, SOCK_RAW)": lambda: socket.socket(17, socket.SOCK_RAW, 0).close(),
    "socket(AF_INET, SOCK_RAW, ICMP)": lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, 1).close(),
    "socket(AF_NETLINK, SOCK_DGRAM)": lambda: socket.socket(16, socket.SOCK_DGRAM, 0).close(),
    "io_uring_setup": lambda: check(libc.syscall(425, 1, (ctypes.c_uint8 * 120)())),
    "clone3": clone3,
}
table = killed if sys.argv[2] == "killed" else refused
outcomes = {name: isolated(fn) for name, fn in table.items()}
os.kill(target, signal.SIGKILL)
os.waitpid(target, 0)
result(outcomes=outcomes)
'''


class Failed(Exception):
    pass


class Run:
    def __init__(self, returncode, stdout, stderr, elapsed):
        self.returncode, self.stdout, self.stderr, self.elapsed = returncode, stdout, stderr, elapsed
        self.result = None
        for line in stdout.splitlines():
            if line.startswith("RESULT "):
                self.result = json.loads(line[7:])

    def __repr__(self):
        return f"exit {self.returncode}, {self.elapsed:.1f} s, stdout {self.stdout[-300:]!r}, stderr {self.stderr[-300:]!r}"


class Cgroup:
    """A cgroup of the test's own, beside the test's (v1: under its own cgroup of each controller;
    v2: beside it), removed with whatever is left in it."""

    ROOT = "/sys/fs/cgroup"

    def __init__(self, label):
        own = {}
        with open("/proc/self/cgroup") as f:
            for line in f:
                _, controllers, path = line.rstrip("\n").split(":", 2)
                for controller in controllers.split(","):
                    own[controller] = path
        self.v2 = os.path.exists(f"{self.ROOT}/cgroup.controllers")
        self.directories = {}
        if self.v2:
            parent = self.ROOT + os.path.dirname(own.get("", "/")).rstrip("/") if own.get("", "/") != "/" else self.ROOT
            for controller in ("+memory", "+pids", "+cpu"):
                self.write(f"{parent}/cgroup.subtree_control", controller, required=False)
            directory = f"{parent}/{label}"
            os.mkdir(directory)
            self.directories = {"memory": directory, "pids": directory, "cpu": directory}
        else:
            for controller in ("memory", "pids", "cpu"):
                if os.path.exists(f"{self.ROOT}/{controller}/cgroup.procs"):
                    mine = own.get(controller, "/")
                    directory = f"{self.ROOT}/{controller}{'' if mine == '/' else mine}/{label}"
                    os.mkdir(directory)
                    self.directories[controller] = directory

    @staticmethod
    def write(path, value, required=True):
        try:
            with open(path, "w") as f:
                f.write(value)
        except OSError:
            if required:
                raise

    def read(self, controller, name):
        with open(f"{self.directories[controller]}/{name}") as f:
            return f.read()

    def limit_memory(self, limit):
        directory = self.directories["memory"]
        if self.v2:
            self.write(f"{directory}/memory.max", str(limit))
            self.write(f"{directory}/memory.swap.max", "0", required=False)
        else:
            self.write(f"{directory}/memory.limit_in_bytes", str(limit))
            self.write(f"{directory}/memory.memsw.limit_in_bytes", str(limit), required=False)

    def oom_kills(self):
        text = self.read("memory", "memory.events" if self.v2 else "memory.oom_control")
        for line in text.splitlines():
            if line.startswith("oom_kill "):
                return int(line.split()[1])
        return 0

    @property
    def procs_files(self):
        return sorted({f"{d}/cgroup.procs" for d in self.directories.values()})

    def remove(self):
        for directory in set(self.directories.values()):
            for _ in range(100):
                try:
                    with open(f"{directory}/cgroup.procs") as f:
                        pids = [int(p) for p in f.read().split()]
                except OSError:
                    pids = []
                if not pids:
                    break
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
                time.sleep(0.02)
            try:
                os.rmdir(directory)
            except OSError as e:
                raise Failed(f"the cgroup {directory} could not be removed: {e}")


class Layers:
    def __init__(self, args):
        self.args = args
        self.uid = args.uid
        self.other_uid = args.uid + 1  # "another slot"
        self.tag = uuid.uuid4().hex[:10]
        self.passed = self.failed = 0
        self.dir = tempfile.mkdtemp(prefix="sandbox-layers-")
        os.chmod(self.dir, 0o755)
        self.shim_none = self.shim("no-bwrap", 'exec "$@"')
        self.shim_namespaces = self.shim("bwrap-without-seccomp", f'exec {args.bwrap} "$@"')
        self.work = os.path.join(self.dir, "work")  # the slot uid's working directory
        os.mkdir(self.work, 0o700)
        os.chown(self.work, self.uid, self.uid)
        self.secret = "layer-secret-" + self.tag
        self.host_file = os.path.join(self.dir, "host-file")
        with open(self.host_file, "w") as f:
            f.write(self.secret)
        os.chmod(self.host_file, 0o644)
        self.bwrap_args, self.bwrap_args_source = self.production_bwrap_args(args.bwrap_args)
        # Processes of the host's: root's, with the secret in its environment, and another slot's.
        environment = {"PATH": "/usr/bin:/bin", "LAYER_SECRET": self.secret}
        self.root_decoy = subprocess.Popen(["/usr/bin/sleep", "300"], env=environment)
        self.slot_decoy = subprocess.Popen(["/usr/bin/sleep", "300"], env=environment, user=self.other_uid, group=self.other_uid,
                                           extra_groups=[])

    def shim(self, name, command):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(f'#!/bin/sh\n# sandbox-exec launch runs this as "bubblewrap": drop --seccomp FD\n'
                    f'[ "$1" = --seccomp ] && shift 2\n{command}\n')
        os.chmod(path, 0o755)
        return path

    @staticmethod
    def production_bwrap_args(path):
        """bubblewrap's arguments from a real run's command line: without argv[0], `--seccomp FD`
        and the program (`/sandbox/init` and what follows it)."""
        if path and os.path.exists(path):
            with open(path) as f:
                argv = json.load(f)
            argv = argv[1:]
            if argv[:1] == ["--seccomp"]:
                argv = argv[2:]
            program = len(argv) - 1 - argv[::-1].index("/sandbox/init")
            return argv[:program], f"a real run's ({path})"
        return list(MIRRORED_BWRAP_ARGS), "a copy of Sandbox.bubblewrapArguments (no --bwrap-args)"

    def close(self):
        for decoy in (self.root_decoy, self.slot_decoy):
            decoy.kill()
            decoy.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    # --- running the launcher ---------------------------------------------------------------------

    def launch(self, payload, *, mode="none", uid=False, rlimits=(), cgroup=None, arguments=(), environment=None, timeout=8):
        """`sandbox-exec launch` with only the layers asked for; the payload is Python."""
        command = [self.args.launcher, "launch"]
        if uid:
            command += ["--uid", str(self.uid), "--gid", str(self.uid)]
        for file in cgroup.procs_files if cgroup else []:
            command += ["--cgroup-procs", file]
        for option, value in rlimits:
            command += [option, str(value)]
        program, bwrap_args = {
            "none": (self.shim_none, []),
            "namespaces": (self.shim_namespaces, self.bwrap_args),
            "seccomp": (self.args.bwrap, SECCOMP_ONLY_BWRAP_ARGS),
            # seccomp's control: the same bubblewrap, without the filter.
            "seccomp-control": (self.shim_namespaces, SECCOMP_ONLY_BWRAP_ARGS),
        }[mode]
        command += ["--bwrap", program, "--"] + bwrap_args + [PYTHON, "-I", "-c", PRELUDE + payload] + [str(a) for a in arguments]
        started = time.monotonic()
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                                   cwd=self.work if uid else self.dir, env=environment or {"PATH": "/usr/bin:/bin"})
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            stdout, stderr = process.communicate()
            raise Failed(f"still running after {timeout} s: {stdout[-200:]!r} {stderr[-200:]!r}")
        finally:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except OSError:
                pass
        run = Run(process.returncode, stdout, stderr, time.monotonic() - started)
        if self.args.verbose:
            print(f"    {mode}{' uid' if uid else ''}{' cgroup' if cgroup else ''} {rlimits or ''}: {run.result if run.result else run}", flush=True)
        return run

    def outcome(self, run, what):
        if run.result is None:
            raise Failed(f"{what}: no result: {run}")
        return run.result

    # --- what must hold after every case ----------------------------------------------------------

    def leftovers(self, clean=False):
        """What a case left: processes of the test uids, files on the host (removed when `clean`,
        so that one failure does not spill into the next case)."""
        problems = []
        out = subprocess.run(["ps", "-e", "-o", "uid=,pid=,comm="], capture_output=True, text=True).stdout
        for line in out.splitlines():
            fields = line.split()
            if len(fields) >= 2 and int(fields[0]) in (self.uid, self.other_uid) and int(fields[1]) != self.slot_decoy.pid:
                problems.append(f"process {fields[1]} ({' '.join(fields[2:])}) of uid {fields[0]}")
                if clean:
                    try:
                        os.kill(int(fields[1]), signal.SIGKILL)
                    except OSError:
                        pass
        paths = [p for p in self.host_targets() if os.path.exists(p)]
        paths += [os.path.join(self.dir, n) for n in sorted(set(os.listdir(self.dir)) - self.own_files)]
        for path in paths:
            problems.append(f"{path} was left on the host")
            if clean:
                shutil.rmtree(path) if os.path.isdir(path) and not os.path.islink(path) else os.remove(path)
        return problems

    own_files = {"no-bwrap", "bwrap-without-seccomp", "work", "host-file"}

    def host_targets(self):
        """Host paths the cases try to write (as root, when a layer is missing)."""
        return ["/usr/escape-" + self.tag, "/etc/escape-" + self.tag, "/escape-" + self.tag]

    def case(self, layer, name, body, *setup):
        started = time.monotonic()
        failure = None
        try:
            body(*setup)
        except Failed as e:
            failure = str(e)
        except Exception as e:  # a broken case is a failure, not a crash of the suite
            failure = f"{type(e).__name__}: {e}"
        elapsed = time.monotonic() - started
        deadline = time.monotonic() + 2
        while (problems := self.leftovers()) and time.monotonic() < deadline:
            time.sleep(0.05)
        if problems:
            self.leftovers(clean=True)
            failure = (failure + "; " if failure else "") + "left behind: " + "; ".join(problems)
        if failure is None and elapsed > 5:
            failure = f"took {elapsed:.1f} s (at most 5)"
        if failure:
            self.failed += 1
            print(f"FAIL layer {layer}: {name}: {failure}", flush=True)
        else:
            self.passed += 1
            print(f"PASS layer {layer}: {name} ({elapsed:.1f} s)", flush=True)

    @staticmethod
    def expect(condition, why):
        if not condition:
            raise Failed(why)

    # --- the cases --------------------------------------------------------------------------------

    def cases(self):
        print(f"bubblewrap's arguments: {self.bwrap_args_source}", flush=True)
        c = self.case
        c("seccomp", "killed with SIGSYS: ptrace, process_vm_readv, unshare, clone(NEWUSER), setns, mount, chroot, keyctl, bpf, "
          "perf_event_open, userfaultfd (as root, host namespaces)", self.seccomp, "killed")
        c("seccomp", "refused with an error: personality, TIOCSTI on a controlling pty, raw/packet/netlink sockets, io_uring, clone3",
          self.seccomp, "refused")
        c("namespaces", "the host's loopback: TCP, UDP and an abstract AF_UNIX socket (as root, no seccomp)", self.ns_network)
        c("namespaces", "the host's processes: /proc/*/environ, /proc/1, signals", self.ns_processes)
        c("namespaces", "the host's files: /etc/shadow, a host file, writing to /usr, /etc, /", self.ns_files)
        c("namespaces", "the launcher's environment (--clearenv)", self.ns_environment)
        c("uid", "/etc/shadow, root's and another slot's processes (signals, ptrace, /proc/PID/environ)", self.uid_alone)
        c("rlimits", "a fork bomb stops at RLIMIT_NPROC (slot uid)", self.rlimit_nproc)
        c("rlimits", "a growing file stops at RLIMIT_FSIZE", self.rlimit_fsize)
        c("rlimits", "opening files stops at RLIMIT_NOFILE", self.rlimit_nofile)
        c("rlimits", "a CPU spin is killed at RLIMIT_CPU", self.rlimit_cpu)
        c("rlimits", "no core dumps (RLIMIT_CORE 0, always)", self.rlimit_core)
        c("cgroup", "a memory bomb is killed by the memory cgroup (as root, nothing else)", self.cgroup_memory)
        c("cgroup", "a fork bomb stops at pids.max, even as root", self.cgroup_pids)
        c("cgroup", "a CPU spin gets only its CPU quota", self.cgroup_cpu)

    def seccomp(self, which):
        mountpoint = os.path.join(self.dir, "mnt")
        os.mkdir(mountpoint)
        try:
            run = self.launch(SECCOMP_PAYLOAD, mode="seccomp", arguments=[mountpoint, which])
            control = self.launch(SECCOMP_PAYLOAD, mode="seccomp-control", arguments=[mountpoint, which])
        finally:
            os.rmdir(mountpoint)
        outcomes = self.outcome(run, "with the filter")["outcomes"]
        controls = self.outcome(control, "the control")["outcomes"]
        wanted = {"killed": lambda name: "signal 31",
                  "refused": lambda name: "errno ENOSYS" if name in ("io_uring_setup", "clone3") else "errno EPERM"}[which]
        wrong = [f"{name}: {outcome} (want {wanted(name)})" for name, outcome in outcomes.items() if outcome != wanted(name)]
        self.expect(not wrong, "with only the filter: " + "; ".join(wrong))
        # Without the filter each call must succeed here, or the check above proves nothing.
        unproven = [f"{name}: {outcome}" for name, outcome in controls.items() if not outcome.startswith("ok")
                    or "injected" not in outcome and name.startswith("ioctl(TIOCSTI")]
        self.expect(not unproven, "the control (no filter) was refused too, so the filter is not what stops: " + "; ".join(unproven))

    def ns_network(self):
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.settimeout(0.1)
        receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(0.1)
        abstract = socket.socket(socket.AF_UNIX)
        abstract.bind("\0sandbox-layers-" + self.tag)
        abstract.listen(8)
        abstract.settimeout(0.1)
        payload = (
            "import socket\nport, udp, name = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]\n"
            "def tcp(host):\n s = socket.create_connection((host, port), timeout=1)\n s.close()\n"
            "def datagram():\n s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            " for _ in range(5): s.sendto(b'escape', ('127.0.0.1', udp))\n"
            "def unix():\n s = socket.socket(socket.AF_UNIX)\n s.settimeout(1)\n s.connect('\\0' + name)\n s.close()\n"
            "result(tcp=attempt(lambda: tcp('127.0.0.1')), tcp_any=attempt(lambda: tcp('0.0.0.0')), udp=attempt(datagram),\n"
            "       unix=attempt(unix), interfaces=sorted(n for _, n in socket.if_nameindex()))\n")
        arguments = [listener.getsockname()[1], receiver.getsockname()[1], "sandbox-layers-" + self.tag]

        def heard():
            got = []
            for server in (listener, abstract):
                try:
                    connection, _ = server.accept()
                    connection.close()
                    got.append(server.family.name)
                except OSError:
                    pass
            try:
                receiver.recv(100)
                got.append("udp")
            except OSError:
                pass
            return got
        try:
            run = self.launch(payload, mode="namespaces", arguments=arguments)
            got = heard()
            control = self.launch(payload, mode="none", arguments=arguments)
            control_got = heard()
        finally:
            listener.close()
            receiver.close()
            abstract.close()
        out = self.outcome(run, "in the namespaces")
        self.expect(all(not out[k].startswith("ok") for k in ("tcp", "tcp_any", "unix")) and not got,
                    f"the host's loopback was reached from the namespaces: {out}, the host heard {got}")
        self.expect(out["interfaces"] == ["lo"], f"the network namespace has more than its own loopback: {out['interfaces']}")
        ctl = self.outcome(control, "the control")
        self.expect(ctl["tcp"].startswith("ok") and set(control_got) >= {"AF_INET", "AF_UNIX", "udp"},
                    f"the control (no namespaces) did not reach the host, so the test proves nothing: {ctl}, heard {control_got}")

    def ns_processes(self):
        payload = (
            "import signal\nsecret, decoy = sys.argv[1][::-1], int(sys.argv[2])\nfound = []\n"
            "for pid in [p for p in os.listdir('/proc') if p.isdigit()]:\n"
            " for name in ('environ', 'cmdline'):\n"
            "  try:\n   if secret.encode() in open('/proc/%s/%s' % (pid, name), 'rb').read(): found.append(pid + '/' + name)\n"
            "  except OSError: pass\n"
            "result(found=found, pids=len([p for p in os.listdir('/proc') if p.isdigit()]),\n"
            "       init=open('/proc/1/cmdline', 'rb').read().split(b'\\0')[0].decode(),\n"
            "       signal=attempt(lambda: os.kill(decoy, 0)))\n")
        arguments = [self.secret[::-1], self.root_decoy.pid]  # reversed: its own command line must not hold it
        out = self.outcome(self.launch(payload, mode="namespaces", arguments=arguments), "in the namespaces")
        self.expect(not out["found"], f"the host's processes were visible: {out}")
        self.expect(out["signal"] == "errno ESRCH", f"kill(host pid {self.root_decoy.pid}, 0) gave {out['signal']}")
        self.expect(out["pids"] <= 5 and "bwrap" in out["init"], f"pid 1 is not the sandbox's own, or too many processes: {out}")
        ctl = self.outcome(self.launch(payload, mode="none", arguments=arguments), "the control")
        self.expect(ctl["found"] and ctl["signal"] == "ok",
                    f"the control (no namespaces) did not see the host's process, so the test proves nothing: {ctl}")

    def ns_files(self):
        payload = (
            "targets = sys.argv[2:]\n"
            "def write(path):\n with open(path, 'a') as f: f.write('x')\n"
            "result(shadow=attempt(lambda: open('/etc/shadow').read(1)), host_file=attempt(lambda: open(sys.argv[1]).read()),\n"
            "       writes={p: attempt(lambda p=p: write(p)) for p in targets}, root=sorted(os.listdir('/')))\n")
        host_target = os.path.join(self.dir, "written-" + self.tag)
        targets = self.host_targets() + [host_target]
        run = self.launch(payload, mode="namespaces", arguments=[self.host_file] + targets)
        appeared = [p for p in targets if os.path.exists(p)]
        for path in appeared:
            os.remove(path)
        self.expect(not appeared, f"files appeared on the host: {appeared}")
        out = self.outcome(run, "in the namespaces")
        self.expect(not out["shadow"].startswith("ok") and not out["host_file"].startswith("ok"),
                    f"host files were readable: /etc/shadow {out['shadow']}, {self.host_file} {out['host_file']}")
        self.expect(all(not v.startswith("ok") for v in out["writes"].values()), f"host paths were writable: {out['writes']}")
        ctl = self.outcome(self.launch(payload, mode="none", arguments=[self.host_file] + [host_target]), "the control")
        written = os.path.exists(host_target)
        if written:
            os.remove(host_target)
        self.expect(ctl["shadow"].startswith("ok") and ctl["host_file"].startswith("ok") and written,
                    f"the control (no namespaces, root) could not read or write the host's files, so the test proves nothing: {ctl}")

    def ns_environment(self):
        payload = "result(environment=dict(os.environ))\n"
        environment = {"PATH": "/usr/bin:/bin", "LAYER_CANARY": self.secret, "DATABASE_URL": f"postgres://x:{self.secret}@127.0.0.1/db"}
        out = self.outcome(self.launch(payload, mode="namespaces", environment=environment), "in the namespaces")
        self.expect(self.secret not in json.dumps(out), f"the launcher's environment reached the program: {out}")
        ctl = self.outcome(self.launch(payload, mode="none", environment=environment), "the control")
        self.expect(self.secret in json.dumps(ctl), f"the control (no bubblewrap) did not see the environment: {ctl}")

    def uid_alone(self):
        payload = (
            "root_decoy, slot_decoy = int(sys.argv[1]), int(sys.argv[2])\n"
            "def environ(pid):\n return open('/proc/%d/environ' % pid, 'rb').read(1)\n"
            "result(ids=[os.getuid(), os.geteuid(), os.getgid(), os.getegid(), os.getgroups()],\n"
            "       shadow=attempt(lambda: open('/etc/shadow').read(1)),\n"
            "       signal_root=attempt(lambda: os.kill(root_decoy, 0)), signal_slot=attempt(lambda: os.kill(slot_decoy, 0)),\n"
            "       environ_root=attempt(lambda: environ(root_decoy)), environ_slot=attempt(lambda: environ(slot_decoy)),\n"
            "       ptrace_root=isolated(lambda: check(libc.ptrace(0x4206, root_decoy, 0, 0))),\n"
            "       ptrace_slot=isolated(lambda: check(libc.ptrace(0x4206, slot_decoy, 0, 0))),\n"
            "       write_root_directory=attempt(lambda: open(sys.argv[3], 'w').close()))\n")
        written = os.path.join(self.dir, "written-" + self.tag)  # root's directory, 0755
        arguments = [self.root_decoy.pid, self.slot_decoy.pid, written]
        out = self.outcome(self.launch(payload, uid=True, arguments=arguments), "under the slot uid")
        self.expect(out["ids"] == [self.uid] * 4 + [[]], f"the launcher did not drop to uid/gid {self.uid} without groups: {out['ids']}")
        attacks = {k: v for k, v in out.items() if k != "ids"}
        allowed = [f"{k}: {v}" for k, v in attacks.items() if not v.startswith("errno E")]
        self.expect(not allowed, "the slot uid was allowed: " + "; ".join(allowed))
        ctl = self.outcome(self.launch(payload, uid=False, arguments=arguments), "the control")
        if os.path.exists(written):
            os.remove(written)
        refused = [f"{k}: {v}" for k, v in ctl.items() if k != "ids" and not v.startswith("ok")]
        self.expect(not refused, "the control (root) was refused too, so the uid is not what stops: " + "; ".join(refused))

    FORKS = (
        "children, stopped = [], None\n"
        "for i in range(48):\n"
        " try:\n  pid = os.fork()\n except OSError as e:\n  stopped = errno.errorcode.get(e.errno); break\n"
        " if pid == 0:\n  time.sleep(3); os._exit(0)\n children.append(pid)\n"
        "for pid in children: os.kill(pid, 9); os.waitpid(pid, 0)\n"
        "result(forked=len(children), stopped=stopped)\n")

    def rlimit_nproc(self):
        out = self.outcome(self.launch(self.FORKS, uid=True, rlimits=[("--nproc", 16)]), "with RLIMIT_NPROC 16")
        self.expect(out["stopped"] == "EAGAIN" and out["forked"] < 16, f"the fork bomb was not stopped at 16 processes: {out}")
        ctl = self.outcome(self.launch(self.FORKS, uid=True), "the control")
        self.expect(ctl["forked"] == 48, f"the control (no RLIMIT_NPROC) could not fork 48, so the test proves nothing: {ctl}")

    def rlimit_fsize(self):
        payload = (
            "name = 'big-' + sys.argv[1]\n"
            "try:\n with open(name, 'wb') as f:\n  for _ in range(4): f.write(b'x' * (1 << 20))\n stopped = None\n"
            "except OSError as e: stopped = errno.errorcode.get(e.errno)\n"
            "size = os.path.getsize(name)\nos.remove(name)\nresult(stopped=stopped, size=size)\n")
        out = self.outcome(self.launch(payload, uid=True, rlimits=[("--fsize", 1 << 20)], arguments=[self.tag]), "with RLIMIT_FSIZE")
        self.expect(out["stopped"] == "EFBIG" and out["size"] <= 1 << 20, f"the file grew past 1 MiB: {out}")
        ctl = self.outcome(self.launch(payload, uid=True, arguments=[self.tag]), "the control")
        self.expect(ctl["size"] == 4 << 20, f"the control could not write 4 MiB: {ctl}")

    def rlimit_nofile(self):
        payload = (
            "fds, stopped = [], None\n"
            "try:\n for _ in range(100): fds.append(os.open('/dev/null', os.O_RDONLY))\n"
            "except OSError as e: stopped = errno.errorcode.get(e.errno)\nresult(opened=len(fds), stopped=stopped)\n")
        out = self.outcome(self.launch(payload, uid=True, rlimits=[("--nofile", 32)]), "with RLIMIT_NOFILE 32")
        self.expect(out["stopped"] == "EMFILE" and out["opened"] < 32, f"more than 32 files were opened: {out}")
        ctl = self.outcome(self.launch(payload, uid=True), "the control")
        self.expect(ctl["opened"] == 100, f"the control could not open 100 files: {ctl}")

    def rlimit_cpu(self):
        payload = "while time.process_time() < float(sys.argv[1]): pass\nresult(cpu=time.process_time())\n"
        # The control at the same time (two cores), so that the case takes one spin's time.
        controls = []
        thread = threading.Thread(target=lambda: controls.append(self.launch(payload, uid=True, arguments=[1.2])))
        thread.start()
        run = self.launch(payload, uid=True, rlimits=[("--cpu-seconds", 1)], arguments=[3])
        thread.join()
        # The launcher sets the soft and hard limits alike: SIGKILL at the hard limit (the kernel
        # checks it before sending SIGXCPU at the soft one).
        self.expect(run.returncode in (-signal.SIGKILL, -signal.SIGXCPU) and run.result is None and run.elapsed < 2.5,
                    f"the spin was not killed after 1 s of CPU: {run}")
        self.expect(controls, "the control did not run")
        ctl = self.outcome(controls[0], "the control")
        self.expect(ctl["cpu"] >= 1.2, f"the control did not spin: {ctl}")

    def rlimit_core(self):
        payload = "import resource\nresult(core=resource.getrlimit(resource.RLIMIT_CORE))\n"
        out = self.outcome(self.launch(payload, uid=True), "with no rlimit options")
        self.expect(out["core"] == [0, 0], f"RLIMIT_CORE is {out['core']}, not 0")

    def cgroup_memory(self):
        payload = (
            "chunks = []\n"
            "for i in range(16):\n chunks.append(b'x' * (8 << 20))\n print('allocated', 8 * len(chunks), flush=True)\n"
            "result(allocated=8 * len(chunks))\n")
        cgroup = Cgroup(f"sandbox-layers-{os.getpid()}-{self.tag}-memory")
        try:
            cgroup.limit_memory(48 << 20)
            run = self.launch(payload, cgroup=cgroup)
            kills = cgroup.oom_kills()
        finally:
            cgroup.remove()
        allocated = [int(line.split()[1]) for line in run.stdout.splitlines() if line.startswith("allocated ")]
        self.expect(run.returncode == -signal.SIGKILL and run.result is None and kills >= 1 and max(allocated or [0]) <= 48,
                    f"the memory bomb was not killed by the 48 MiB cgroup (oom_kill {kills}, allocated up to {max(allocated or [0])} MiB): {run}")
        ctl = self.outcome(self.launch(payload), "the control")
        self.expect(ctl["allocated"] == 128, f"the control could not allocate 128 MiB: {ctl}")

    def cgroup_pids(self):
        cgroup = Cgroup(f"sandbox-layers-{os.getpid()}-{self.tag}-pids")
        try:
            self.expect("pids" in cgroup.directories, "no pids controller here")
            Cgroup.write(f"{cgroup.directories['pids']}/pids.max", "16")
            out = self.outcome(self.launch(self.FORKS, cgroup=cgroup), "with pids.max 16")
        finally:
            cgroup.remove()
        self.expect(out["stopped"] == "EAGAIN" and out["forked"] < 16, f"the fork bomb was not stopped at 16 processes: {out}")
        ctl = self.outcome(self.launch(self.FORKS), "the control")
        self.expect(ctl["forked"] == 48, f"the control (root, no cgroup) could not fork 48: {ctl}")

    def cgroup_cpu(self):
        payload = "end = time.monotonic() + 1\nwhile time.monotonic() < end: pass\nresult(cpu=time.process_time())\n"
        cgroup = Cgroup(f"sandbox-layers-{os.getpid()}-{self.tag}-cpu")
        try:
            self.expect("cpu" in cgroup.directories, "no cpu controller here")
            directory = cgroup.directories["cpu"]
            if cgroup.v2:
                Cgroup.write(f"{directory}/cpu.max", "10000 100000")
            else:
                Cgroup.write(f"{directory}/cpu.cfs_period_us", "100000")
                Cgroup.write(f"{directory}/cpu.cfs_quota_us", "10000")
            out = self.outcome(self.launch(payload, cgroup=cgroup), "with a 10% CPU quota")
        finally:
            cgroup.remove()
        ctl = self.outcome(self.launch(payload), "the control")
        # The payload's own start (about 30 ms of CPU) is included in both.
        self.expect(out["cpu"] <= 0.3, f"a second of spinning used {out['cpu']:.2f} s of CPU under a 10% quota")
        self.expect(ctl["cpu"] >= 2 * out["cpu"] + 0.2, f"the control used only {ctl['cpu']:.2f} s of CPU, so the test proves nothing")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--launcher", required=True, help="sandbox-exec")
    parser.add_argument("--bwrap", default="/usr/bin/bwrap")
    parser.add_argument("--bwrap-args", help="a real run's bubblewrap command line (JSON), as sandbox_escape.py --save-bwrap-args writes it")
    parser.add_argument("--verbose", action="store_true", help="print what every run reported")
    parser.add_argument("--uid", type=int, default=61090, help="the slot uid to drop to (and uid + 1 as another slot's)")
    args = parser.parse_args()
    args.launcher, args.bwrap = os.path.abspath(args.launcher), os.path.abspath(args.bwrap)
    if os.geteuid() != 0:
        print("sandbox_layers.py: needs root (uids, cgroups), as CI", file=sys.stderr)
        return 2
    if not os.access(args.launcher, os.X_OK) or not os.access(args.bwrap, os.X_OK):
        print(f"sandbox_layers.py: no launcher at {args.launcher} or bubblewrap at {args.bwrap}", file=sys.stderr)
        return 2
    layers = Layers(args)
    try:
        layers.cases()
    finally:
        layers.close()
    total = layers.passed + layers.failed
    print(f"sandbox layers: {layers.passed} of {total} held on their own", flush=True)
    return 1 if layers.failed else 0


if __name__ == "__main__":
    sys.exit(main())
