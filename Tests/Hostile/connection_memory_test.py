#!/usr/bin/python3
"""Connections must not cost memory after they close: `rpc-interop server` is warmed up with
WARM_UP connections, then takes 20,000 more, half of them clean calls (h2load, one Echo each) and
half hostile (random bytes, an HTTP/1 request, a bad frame after the preface, a call abandoned
mid-request, a call reset at once, a bare connect), interleaved in batches of 500. From the end of
the first 1,000 of those to the end of the last (19,000 connections), its heap in use may grow by
less than HEAP_LIMIT_MB (55 bytes a connection) and its RSS, once it has returned its free pages,
by less than SERVER_RSS_LIMIT_MB: a handler kept alive by a reference cycle once cost 1 KB a
connection, 19 MB here.

The client side: `rpc-interop client-churn` makes Echo calls, one after another, against a
server here (python3-h2) that closes every connection: after answering one call with GOAWAY, at
once on accept, after its SETTINGS with GOAWAY, mid-call, or with garbage. Each call therefore
opens a new connection (calls the server never started are retried on another). The client's RSS
may grow by less than RSS_LIMIT_MB over CLIENT_RECONNECTS calls after a warm-up.

    /usr/bin/python3 Tests/Hostile/connection_memory_test.py [--server-bin PATH] [--connections N]
        [--reconnects N] [--side server|client|calls|all]

The client's calls: `rpc-interop load` makes every kind of call (unary, streaming both ways,
cancelled, expired) for 12 s; after its first window its RSS may grow by less than RSS_LIMIT_MB.

Needs h2load (Debian's nghttp2-client) and python3-h2. Prints PASS/FAIL lines and
"N passed, M failed" last.
"""
import argparse
import json
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import hpack

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from h2wire import (ECHO, END_HEADERS, END_STREAM, HEADERS, PREFACE, echo_request,  # noqa: E402
                    frame, grpc_message, request_headers, rst_stream, settings_frame)
from hostile_test import DEFAULT_BIN, Server  # noqa: E402

RSS_LIMIT_MB = 4
# The server side is measured on the server's own report (SIGUSR1): its heap in use, and its RSS
# after it has handed its free pages back (malloc_trim). Untrimmed, the RSS rose by 4–5 MB in
# steps over these 19,000 connections while the heap in use grew by 0.1 MB: the arenas keep the
# high-water mark of 500 connections at once, which a 4 MB bound on raw RSS failed on at random.
HEAP_LIMIT_MB = 1
SERVER_RSS_LIMIT_MB = 2
SETTLE_SECONDS = 0.3
BATCH = 500
# The allocator's high-water marks for 500 connections at once settle within about 5,000
# connections (measured: +3 MB over the first 5,000 of a debug build, flat after); the issue's
# 2,000 left that inside the measurement.
WARM_UP = 6_000
CLIENT_WARM_UP = 2_000
CLIENT_RECONNECTS = 5_000


def echo_head(end_stream):
    block = hpack.Encoder().encode(request_headers(ECHO))
    return frame(HEADERS, END_HEADERS | (END_STREAM if end_stream else 0), 1, block)


def hostile_kinds():
    rng = random.Random(7)
    return [
        bytes(rng.randrange(256) for _ in range(256)),                       # random bytes
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",                                # HTTP/1
        PREFACE + settings_frame() + frame(0x0, 0, 0, b"x" * 16),            # DATA on stream 0
        PREFACE + settings_frame() + echo_head(False) + frame(0x0, 0, 1, grpc_message(b"\x0a")[:3]),  # abandoned mid-message
        PREFACE + settings_frame() + echo_head(False) + rst_stream(1),      # reset at once
        b"",                                                                 # connect and close
    ]


def hostile_batch(port, kinds, count):
    for index in range(count):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            payload = kinds[index % len(kinds)]
            if payload:
                try:
                    sock.sendall(payload)
                except OSError:
                    pass


def clean_batch(port, request_file, count):
    result = subprocess.run(
        ["h2load", "-n", str(count), "-c", str(count), "-t", "1", "-d", request_file,
         "-H", "content-type: application/grpc", "-H", "te: trailers", f"http://127.0.0.1:{port}{ECHO}"],
        capture_output=True, text=True, timeout=120)
    line = next((l for l in result.stdout.splitlines() if l.startswith("requests:")), "")
    if f"{count} succeeded" not in line:
        raise RuntimeError(f"h2load: {line or result.stdout[-300:]}")


def heap_mb(server):
    """The server's heap in use (allocated and not freed, every arena), which it prints as
    `HEAP <bytes>` on SIGUSR1."""
    def reports():
        server.log.flush()
        with open(server.log.name, errors="replace") as log:
            return [line for line in log.read().splitlines() if line.startswith("HEAP ")]
    before = len(reports())
    server.process.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        lines = reports()
        if len(lines) > before:
            return int(lines[-1].split()[1]) / (1024 * 1024)
        time.sleep(0.02)
    raise RuntimeError("the server did not report its heap within 5 s")


def server_side(args, request_file):
    server = Server(args.server_bin)
    server.start()
    try:
        kinds = hostile_kinds()
        for _ in range(WARM_UP // BATCH // 2):
            clean_batch(server.port, request_file, BATCH)
            hostile_batch(server.port, kinds, BATCH)
        # Measured from the end of the first round to the end of the last, both taken the same
        # way (a moment after a round, once its last connections are torn down).
        rounds = args.connections // BATCH // 2
        heap, rss = [], []
        for _ in range(rounds):
            clean_batch(server.port, request_file, BATCH)
            hostile_batch(server.port, kinds, BATCH)
            time.sleep(SETTLE_SECONDS)
            heap.append(heap_mb(server))
            rss.append(server.rss_mb())
        measured = (rounds - 1) * BATCH * 2
        heap_growth, rss_growth = heap[-1] - heap[0], rss[-1] - rss[0]
        alive = server.alive()
        detail = (f"heap in use {heap[0]:.2f} → {heap[-1]:.2f} MB over {measured} connections "
                  f"({heap_growth * 1024 * 1024 / measured:.0f} bytes each, limit {HEAP_LIMIT_MB} MB); "
                  f"RSS {rss[0]:.1f} → {rss[-1]:.1f} MB (limit {SERVER_RSS_LIMIT_MB} MB)")
        if alive and heap_growth < HEAP_LIMIT_MB and rss_growth < SERVER_RSS_LIMIT_MB:
            print(f"PASS connection_memory: {detail}")
            return True
        print(f"FAIL connection_memory: {detail}; server alive: {alive}; after each round of "
              f"{BATCH * 2}, heap: " + " ".join(f"{sample:.2f}" for sample in heap)
              + "; RSS: " + " ".join(f"{sample:.1f}" for sample in rss))
        return False
    finally:
        server.stop()


class ClosingServer:
    """Accepts connections one at a time and ends each one, in turn: after answering its first
    call (then GOAWAY), at once, after SETTINGS + GOAWAY, after reading the call (no answer), or
    after SETTINGS and 64 random bytes."""

    KINDS = ("answer", "close", "goaway", "drop", "answer", "garbage")

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self.answered = 0
        self.rng = random.Random(11)
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            kind = self.KINDS[self.connections % len(self.KINDS)]
            self.connections += 1
            try:
                sock.settimeout(5)
                self.end(sock, kind)
            except (OSError, h2.exceptions.ProtocolError):
                pass
            finally:
                sock.close()

    def end(self, sock, kind):
        if kind == "close":
            return
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        conn.initiate_connection()
        if kind == "goaway":
            conn.close_connection()
        sock.sendall(conn.data_to_send())
        if kind == "goaway":
            return
        if kind == "garbage":
            sock.sendall(bytes(self.rng.randrange(256) for _ in range(64)))
            return
        body = b""
        while True:
            data = sock.recv(65536)
            if not data:
                return
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.DataReceived):
                    body += event.data
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, h2.events.StreamEnded):
                    if kind == "drop":
                        return
                    sid = event.stream_id
                    conn.send_headers(sid, [(":status", "200"), ("content-type", "application/grpc")])
                    conn.send_data(sid, body)
                    conn.send_headers(sid, [("grpc-status", "0")], end_stream=True)
                    conn.close_connection(last_stream_id=sid)
                    sock.sendall(conn.data_to_send())
                    self.answered += 1
                    return
            pending = conn.data_to_send()
            if pending:
                sock.sendall(pending)

    def close(self):
        self.listener.close()


def client_side(args):
    """`client-churn` reports its RSS after a warm-up and at the end; the server counts the
    connections in between, which must be at least `args.reconnects`."""
    server = ClosingServer()
    name = "client_connection_memory"
    rss, connections, errors = {}, {}, []
    # Some connections end a call as a failure, and one that closes as it opens costs a (short)
    # backoff (the client waits it out), so a call is worth about one reconnect or more.
    process = subprocess.Popen(
        [args.server_bin, "client-churn", "--port", str(server.port),
         "--warm-up", str(CLIENT_WARM_UP), "--calls", str(args.reconnects)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in process.stdout:
            fields = line.split()
            if len(fields) == 5 and fields[0] == "RSS":
                # The client reports after a pause with no call in flight: the count is exact.
                connections[fields[1]] = server.connections
                rss[fields[1]] = (int(fields[2]) / 1024, int(fields[3]), int(fields[4]))
            elif line.startswith("ERROR"):
                errors.append(line.strip())
        process.wait(600)
    finally:
        server.close()
    if process.returncode != 0 or set(rss) != {"warm-up", "end"}:
        print(f"FAIL {name}: client-churn exited {process.returncode}: {process.stderr.read()[-600:]}")
        return False
    (before, warm_answered, _), (after, answered, failed) = rss["warm-up"], rss["end"]
    growth = after - before
    reconnects = connections["end"] - connections["warm-up"]
    # The measurement must cover the reconnects asked for, and answered calls as well as the
    # failure paths.
    enough = reconnects >= args.reconnects and answered - warm_answered >= args.reconnects // 10
    detail = (f"RSS {before:.1f} → {after:.1f} MB over {reconnects} reconnects after a warm-up of "
              f"{connections['warm-up']} ({answered} calls answered, {failed} failed as the server ended them")
    if enough and growth < RSS_LIMIT_MB:
        print(f"PASS {name}: {detail}; {growth * 1024 * 1024 / reconnects:.0f} bytes a reconnect, "
              f"limit {RSS_LIMIT_MB} MB)")
        return True
    print(f"FAIL {name}: {detail}; limit {RSS_LIMIT_MB} MB, at least {args.reconnects} reconnects); "
          f"first errors: {errors}")
    return False


def rss_of(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def client_calls_side(args):
    """Every kind of call must cost the client nothing once it ends: `rpc-interop load` (our
    client, a closed loop of 16 callers) makes unary, server-streaming, bidirectional, cancelled
    and deadline-expired calls in equal shares against `rpc-interop server`; after the first
    window its RSS may grow by less than RSS_LIMIT_MB over the rest. A streaming call's response
    queue once kept its stream alive, 1 KB a call, 40 MB here."""
    name = "client_call_memory"
    server = Server(args.server_bin)
    server.start()
    samples = []
    try:
        load = subprocess.Popen(
            [args.server_bin, "load", "--port", str(server.port), "--concurrency", "16", "--duration", "12",
             "--window", "3", "--mix", "unary=20,server=20,bidi=20,cancel=20,deadline=20"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for line in load.stdout:
            if line.startswith("{"):
                window = json.loads(line)
                samples.append((rss_of(load.pid), window["calls"], window["failed"]))
        load.wait(60)
    finally:
        server.stop()
    if load.returncode != 0 or len(samples) < 3:
        print(f"FAIL {name}: the load exited {load.returncode} after {len(samples)} windows: {load.stderr.read()[-400:]}")
        return False
    before, after = samples[0][0], samples[-1][0]
    calls = sum(calls for _, calls, _ in samples[1:])
    failed = sum(failed for _, _, failed in samples)
    growth = after - before
    detail = f"RSS {before:.1f} → {after:.1f} MB over {calls} calls after the first window, {failed} failed"
    if growth < RSS_LIMIT_MB and calls >= 10_000 and failed == 0:
        print(f"PASS {name}: {detail} ({growth * 1024 * 1024 / calls:.0f} bytes a call, limit {RSS_LIMIT_MB} MB)")
        return True
    print(f"FAIL {name}: {detail} (limit {RSS_LIMIT_MB} MB, at least 10000 calls, none failed)")
    return False


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server-bin", default=DEFAULT_BIN)
    parser.add_argument("--connections", type=int, default=20_000)
    parser.add_argument("--reconnects", type=int, default=CLIENT_RECONNECTS)
    parser.add_argument("--side", choices=("server", "client", "calls", "all"), default="all")
    args = parser.parse_args()
    with tempfile.NamedTemporaryFile(suffix=".grpc", delete=False) as request:
        request.write(grpc_message(echo_request("hello")))
    results = []
    try:
        if args.side in ("server", "all"):
            results.append(server_side(args, request.name))
        if args.side in ("client", "all"):
            results.append(client_side(args))
        if args.side in ("calls", "all"):
            results.append(client_calls_side(args))
    finally:
        os.unlink(request.name)
    passed = results.count(True)
    failed = len(results) - passed
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
