#!/usr/bin/python3
"""The code-sandbox benchmark's client (scripts/benchmark-sandbox.sh runs it).

    JWT_PRIVATE_KEY=… sandbox_bench.py --port P --runs N --seconds S --concurrency C

For Python `print(1)` and JavaScript `console.log(1)`: the bare interpreter started N times
(`python3 -I -c`, `node -e`, with the sandbox's small environment), then N ExecuteCode calls one at a time through gRPC (end to end:
request, analysis, the row written, the sandbox, the row updated, the reply), then S seconds of
C concurrent callers and S seconds of C bare interpreters at once. Prints p50/p99 of each, the
sandbox's own share (execution_time_ms: from the launcher's start to the report), and runs per
second through the sandbox and bare.
"""
import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "Tests", "Hostile"))
sys.path.insert(0, os.path.join(HERE, "..", "Tests", "Interop", "persona"))
from persona_client import channel_for, mint_token, signing_key  # noqa: E402
from platform_protos import load  # noqa: E402

sandbox_pb2, = load("platform/codesandbox/v1/code_sandbox.proto")
PROGRAMS = {
    "python": (sandbox_pb2.LANGUAGE_PYTHON, "print(1)", ["/usr/bin/python3", "-I", "-c", "print(1)"]),
    "javascript": (sandbox_pb2.LANGUAGE_JAVASCRIPT, "console.log(1)", ["/usr/bin/node", "-e", "console.log(1)"]),
}


def percentiles(samples):
    ordered = sorted(samples)
    return statistics.median(ordered) * 1000, ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    key = signing_key()
    channel = channel_for("127.0.0.1", args.port)
    execute = channel.unary_unary("/platform.codesandbox.v1.CodeSandboxService/ExecuteCode",
                                  request_serializer=lambda m: m.SerializeToString(),
                                  response_deserializer=sandbox_pb2.CodeExecution.FromString)

    def caller():
        return [("authorization", "Bearer " + mint_token(key, str(uuid.uuid4()), roles=("developer",)))]

    print(f"{'':24} {'p50 ms':>8} {'p99 ms':>8}")
    for name, (language, code, bare) in PROGRAMS.items():
        # The environment the sandbox gives a program: this shell's may slow an interpreter down
        # (NODE_EXTRA_CA_CERTS alone costs node 40 ms).
        clean = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/tmp"}
        for _ in range(5):
            subprocess.run(bare, capture_output=True, check=True, env=clean)
        times = []
        for _ in range(args.runs):
            started = time.perf_counter()
            subprocess.run(bare, capture_output=True, check=True, env=clean)
            times.append(time.perf_counter() - started)
        bare50, bare99 = percentiles(times)

        metadata = caller()
        request = sandbox_pb2.ExecuteCodeRequest(language=language, code=code)
        for _ in range(5):
            execute(request, metadata=metadata, timeout=60)
        times, inside = [], []
        for _ in range(args.runs):
            started = time.perf_counter()
            result = execute(request, metadata=metadata, timeout=60)
            times.append(time.perf_counter() - started)
            inside.append(result.execution_time_ms / 1000)
            assert result.stdout == "1\n", result
        e2e50, e2e99 = percentiles(times)
        in50, in99 = percentiles(inside)
        print(f"{name + ' bare':24} {bare50:8.1f} {bare99:8.1f}")
        print(f"{name + ' sandbox run':24} {in50:8.1f} {in99:8.1f}   (execution_time_ms: launcher start to report)")
        print(f"{name + ' through gRPC':24} {e2e50:8.1f} {e2e99:8.1f}   overhead over bare: p50 {e2e50 - bare50:+.1f} ms")

        done = [0]
        lock = threading.Lock()
        stop = time.monotonic() + args.seconds

        def loop():
            md = caller()
            while time.monotonic() < stop:
                execute(request, metadata=md, timeout=60)
                with lock:
                    done[0] += 1
        threads = [threading.Thread(target=loop) for _ in range(args.concurrency)]
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        sandboxed = done[0] / (time.monotonic() - started)

        # The same concurrency of bare interpreters, for the ratio.
        bare_done = [0]
        stop = time.monotonic() + args.seconds

        def bare_loop():
            while time.monotonic() < stop:
                subprocess.run(bare, capture_output=True, check=True, env=clean)
                with lock:
                    bare_done[0] += 1
        threads = [threading.Thread(target=bare_loop) for _ in range(args.concurrency)]
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        bare_rate = bare_done[0] / (time.monotonic() - started)
        print(f"{name + ' full pool':24} {sandboxed:8.1f} runs/s with {args.concurrency} callers;"
              f" bare at the same concurrency {bare_rate:.1f}/s (ratio {sandboxed / bare_rate:.2f})")


if __name__ == "__main__":
    main()
