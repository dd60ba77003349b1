#!/usr/bin/env python3
"""GET/SET through our Redis client (redis-bench) side by side with redis-benchmark, the C anchor.

Starts its own redis-server on a free loopback port, pinned to CPU 0; each load tool runs pinned
to CPU 1 with the same clients (-c), pipelining (-P), command count (-n) and value size (-d), on
the same key. Prints commands per second of both, the ratio, and each tool's CPU time per
command (user + system, from the kernel's accounting of the child process).

  scripts/benchmark-redis.py [--bench .build/release/redis-bench] [--requests N] [--rounds R]
"""
import argparse, os, resource, shutil, socket, subprocess, sys, tempfile, time

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

def run_measured(command):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    elapsed = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return output, cpu, elapsed

def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bench", default=".build/release/redis-bench")
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--config", action="append",
                        help='clients and pipeline as "C:P" (repeatable; default 50:1, 50:16, 1:1)')
    args = parser.parse_args()
    configs = [tuple(map(int, c.split(":"))) for c in (args.config or ["1:1", "50:1", "50:16"])]
    if not os.access(args.bench, os.X_OK):
        sys.exit(f"{args.bench} is missing: swift build -c release --product redis-bench")
    for tool in ("redis-server", "redis-benchmark", "taskset"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing (scripts/local-services.sh up installs redis)")
    cpus = os.cpu_count() or 1
    server_cpu, client_cpu = ("0", "1") if cpus > 1 else ("0", "0")
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="redis-bench-")
    server = subprocess.Popen(
        ["taskset", "-c", server_cpu, "redis-server", "--port", str(port), "--bind", "127.0.0.1",
         "--save", "", "--appendonly", "no", "--dir", workdir],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        rows = []
        for clients, pipeline in configs:
            for test in ("get", "set"):
                n = args.requests if pipeline > 1 or clients > 1 else args.requests // 10
                results = {"c": [], "swift": []}
                for _ in range(args.rounds):
                    out, cpu, _ = run_measured(
                        ["taskset", "-c", client_cpu, "redis-benchmark", "-p", str(port), "-c", str(clients),
                         "-P", str(pipeline), "-n", str(n), "-d", "3", "-t", test, "--csv"])
                    line = [l for l in out.splitlines() if l.startswith(f'"{test.upper()}"')][0]
                    rps = float(line.split(",")[1].strip('"'))
                    results["c"].append((rps, cpu / n * 1e6))
                    out, cpu, _ = run_measured(
                        ["taskset", "-c", client_cpu, args.bench, "--url", f"redis://127.0.0.1:{port}",
                         "-c", str(clients), "-P", str(pipeline), "-n", str(n), "-d", "3", "-t", test])
                    fields = dict(f.split("=") for f in out.split()[1:])
                    results["swift"].append((float(fields["rps"]), cpu / int(fields["commands"]) * 1e6))
                mean = lambda xs, i: sum(x[i] for x in xs) / len(xs)
                rows.append((test.upper(), clients, pipeline,
                             mean(results["c"], 0), mean(results["swift"], 0),
                             mean(results["c"], 1), mean(results["swift"], 1)))
        print("| command | -c | -P | redis-benchmark req/s | ours req/s | ours / redis-benchmark "
              "| redis-benchmark CPU µs/cmd | ours CPU µs/cmd |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for test, c, p, c_rps, s_rps, c_cpu, s_cpu in rows:
            print(f"| {test} | {c} | {p} | {c_rps:,.0f} | {s_rps:,.0f} | {s_rps / c_rps:.2f} | {c_cpu:.2f} | {s_cpu:.2f} |")
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(workdir, ignore_errors=True)

if __name__ == "__main__":
    main()
