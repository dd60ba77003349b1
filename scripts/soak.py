#!/usr/bin/python3
"""The soak benchmark's run (scripts/soak.sh builds and calls this): `rpc-interop server` (release)
under ten minutes of mixed traffic at half its measured peak, with a trickle of hostile
connections, sampled every window.

    /usr/bin/python3 scripts/soak.py --rpc-interop PATH [--minutes 10] [--window 10] [--fraction 0.5]

1. Starts the server on CPU 0; the load (`rpc-interop load`) runs on CPU 1.
2. Peak: a closed loop of 64 callers with the soak's mix for --peak-seconds; the soak rate is
   --fraction (half) of the calls per second it reached.
3. Soak: the open-loop load at that rate (60% unary Echo, 15% server streaming, 15%
   bidirectional, 5% cancelled mid-stream, 5% with a deadline that expires mid-stream), and a
   hostile connection every 0.2 s (the connection memory test's kinds: random bytes, HTTP/1, a
   bad frame, a call abandoned mid-message, a call reset at once, a bare connect).
4. Every window: the server's RSS and open file descriptors (sampled with no hostile connection
   open; those that are not an established connection to its port are the ones checked, as the
   load's pool opens and closes connections), calls per second, failures, p50/p99 latency from
   each call's due time.

Fails (exit 1) if, after the first minute, RSS grows by more than 8 MB, the file descriptors
grow at all, p99 drifts by more than 50% (the median p99 of the last minute against that of the
first), any call fails other than as its kind intends, or the server dies.
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "../Tests/Hostile"))
from connection_memory_test import hostile_kinds  # noqa: E402

RSS_GROWTH_LIMIT_MB = 8
P99_DRIFT_LIMIT = 0.5
SERVER_CPU, LOAD_CPU = "0", "1"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, binary, log):
        self.port = free_port()
        self.process = subprocess.Popen(
            ["taskset", "-c", SERVER_CPU, binary, "server", "--port", str(self.port)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("the server did not listen within 15 s")

    def rss_mb(self):
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return 0.0

    def fds(self):
        return len(os.listdir(f"/proc/{self.process.pid}/fd"))

    def connections(self):
        """Established TCP connections to the server's port: the load's pool opens and closes
        connections as it needs them, so the fds to watch are the others (a leaked socket sits
        in CLOSE_WAIT, not ESTABLISHED)."""
        count = 0
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                with open(table) as lines:
                    next(lines)
                    for line in lines:
                        fields = line.split()
                        if int(fields[1].rsplit(":", 1)[1], 16) == self.port and fields[3] == "01":
                            count += 1
            except OSError:
                pass
        return count

    def alive(self):
        return self.process.poll() is None

    def stop(self):
        if self.alive():
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()


class HostileTrickle:
    """One hostile connection every `interval` seconds. `quiet()` holds off new ones and waits
    until the last one is closed, so a sample never counts a hostile socket."""

    def __init__(self, port, interval=0.2):
        self.port, self.interval = port, interval
        self.kinds = hostile_kinds()
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.count = 0
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stopped.wait(self.interval):
            with self.lock:
                payload = self.kinds[self.count % len(self.kinds)]
                self.count += 1
                try:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
                        if payload:
                            sock.sendall(payload)
                except OSError:
                    pass

    def quiet(self):
        self.lock.acquire()
        time.sleep(0.05)  # the server closes its side once it reads the EOF

    def resume(self):
        self.lock.release()

    def stop(self):
        self.stopped.set()
        self.thread.join()


def load_command(binary, port, *args):
    return ["taskset", "-c", LOAD_CPU, binary, "load", "--port", str(port), *map(str, args)]


def median(values):
    ordered = sorted(values)
    return ordered[len(ordered) // 2] if ordered else 0.0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rpc-interop", required=True)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--window", type=int, default=10)
    parser.add_argument("--peak-seconds", type=int, default=20)
    parser.add_argument("--fraction", type=float, default=0.5, help="the soak rate as a share of the peak")
    parser.add_argument("--log", default="/tmp/soak-server.log")
    args = parser.parse_args()

    with open(args.log, "w") as log:
        server = Server(args.rpc_interop, log)
        try:
            return soak(args, server)
        finally:
            server.stop()


def soak(args, server):
    peak_run = subprocess.run(
        load_command(args.rpc_interop, server.port, "--concurrency", 64, "--duration", args.peak_seconds,
                     "--window", args.peak_seconds),
        capture_output=True, text=True, timeout=args.peak_seconds + 60)
    peak_lines = [json.loads(line) for line in peak_run.stdout.splitlines() if line.startswith("{")]
    if peak_run.returncode != 0 or not peak_lines:
        print(f"soak: the peak run failed: {peak_run.stderr[-500:]}")
        return 1
    peak = peak_lines[-1]["rate"]
    rate = int(peak * args.fraction)
    duration = int(args.minutes * 60)
    print(f"# Soak ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} CPUs)")
    print()
    print(f"Peak (closed loop, 64 callers, {args.peak_seconds} s): {peak:.0f} calls/s, p99 {peak_lines[-1]['p99_ms']:.2f} ms; "
          f"soak at {rate} calls/s ({args.fraction:.0%} of it) for {duration} s, mix unary 60 / server 15 / bidi 15 / cancel 5 / deadline 5 %, "
          f"a hostile connection every 0.2 s.")
    print()
    print("| t (s) | calls/s | failed | p50 (ms) | p99 (ms) | unary p99 (ms) | in flight | RSS (MB) | fds | connections | other fds |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    sys.stdout.flush()

    trickle = HostileTrickle(server.port)
    load = subprocess.Popen(
        load_command(args.rpc_interop, server.port, "--rate", rate, "--concurrency", 2000, "--duration", duration,
                     "--window", args.window),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    samples = []
    try:
        for line in load.stdout:
            if not line.startswith("{"):
                continue
            window = json.loads(line)
            trickle.quiet()
            try:
                rss, fds, connections = server.rss_mb(), server.fds(), server.connections()
            finally:
                trickle.resume()
            window.update(rss=rss, fds=fds, connections=connections, other_fds=fds - connections)
            samples.append(window)
            print(f"| {window['t']:.0f} | {window['rate']:.0f} | {window['failed']} | {window['p50_ms']:.3f} | "
                  f"{window['p99_ms']:.3f} | {window['unary_p99_ms']:.3f} | {window['in_flight']} | {rss:.1f} | {fds} | "
                  f"{connections} | {fds - connections} |")
            sys.stdout.flush()
    finally:
        load.wait()
        trickle.stop()

    problems = []
    if load.returncode != 0:
        problems.append(f"the load exited {load.returncode}: {load.stderr[-300:]}")
    if not server.alive():
        problems.append("the server died")
    first = [s for s in samples if s["t"] <= 60.5]
    later = [s for s in samples if s["t"] > 60.5]
    if not first or not later:
        problems.append("too few windows (run at least two minutes)")
    else:
        base = first[-1]
        rss_growth = max(s["rss"] for s in later) - base["rss"]
        fd_growth = max(s["other_fds"] for s in later) - base["other_fds"]
        first_p99 = median([s["p99_ms"] for s in first[1:] or first])
        last_p99 = median([s["p99_ms"] for s in samples[-max(1, 60 // args.window):]])
        drift = last_p99 / first_p99 - 1 if first_p99 > 0 else 0.0
        failed = sum(s["failed"] for s in samples)
        calls = sum(s["calls"] for s in samples)
        print()
        print(f"After the first minute: RSS {base['rss']:.1f} → max {base['rss'] + rss_growth:.1f} MB "
              f"({rss_growth:+.1f} MB, limit +{RSS_GROWTH_LIMIT_MB}); fds other than open connections {base['other_fds']} → max "
              f"{base['other_fds'] + fd_growth}; "
              f"p99 {first_p99:.3f} ms (first minute, median) → {last_p99:.3f} ms (last minute) = {drift:+.0%} "
              f"(limit +{P99_DRIFT_LIMIT:.0%}); {calls} calls, {failed} failed; {trickle.count} hostile connections.")
        if rss_growth > RSS_GROWTH_LIMIT_MB:
            problems.append(f"RSS grew by {rss_growth:.1f} MB")
        if fd_growth > 0:
            problems.append(f"file descriptors grew by {fd_growth}")
        if drift > P99_DRIFT_LIMIT:
            problems.append(f"p99 drifted by {drift:.0%}")
        if failed:
            outcomes = {}
            for s in samples:
                for kind, counts in s["outcomes"].items():
                    for name, count in counts.items():
                        if name != "ok":
                            outcomes[f"{kind}:{name}"] = outcomes.get(f"{kind}:{name}", 0) + count
            problems.append(f"{failed} calls failed: {outcomes}")
    print()
    if problems:
        print("FAIL soak: " + "; ".join(problems))
        return 1
    print("PASS soak")
    return 0


if __name__ == "__main__":
    sys.exit(main())
