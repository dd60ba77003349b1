#!/usr/bin/python3
"""Connections must not cost memory after they close: `rpc-interop server` is warmed up with
WARM_UP connections, then takes 20,000 more, half of them clean calls (h2load, one Echo each) and
half hostile (random bytes, an HTTP/1 request, a bad frame after the preface, a call abandoned
mid-request, a call reset at once, a bare connect), interleaved in batches of 500. Its RSS may
grow by less than RSS_LIMIT_MB over those 20,000: a handler kept alive by a reference cycle once
cost 1 KB a connection, 20 MB here.

    /usr/bin/python3 Tests/Hostile/connection_memory_test.py [--server-bin PATH] [--connections N]

Needs h2load (Debian's nghttp2-client) and python3-h2. Prints PASS/FAIL lines and
"N passed, M failed" last.
"""
import argparse
import os
import random
import socket
import struct
import subprocess
import sys
import tempfile
import time

import hpack

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from h2wire import (ECHO, END_HEADERS, END_STREAM, HEADERS, PREFACE, echo_request,  # noqa: E402
                    frame, grpc_message, request_headers, rst_stream, settings_frame)
from hostile_test import DEFAULT_BIN, Server  # noqa: E402

RSS_LIMIT_MB = 4
BATCH = 500
# The allocator's high-water marks for 500 connections at once settle within about 5,000
# connections (measured: +3 MB over the first 5,000 of a debug build, flat after); the issue's
# 2,000 left that inside the measurement.
WARM_UP = 6_000


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


def settle(server):
    """RSS once the server has finished with the last connections."""
    time.sleep(1.5)
    return server.rss_mb()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server-bin", default=DEFAULT_BIN)
    parser.add_argument("--connections", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.NamedTemporaryFile(suffix=".grpc", delete=False) as request:
        request.write(grpc_message(echo_request("hello")))
    server = Server(args.server_bin)
    server.start()
    passed = failed = 0
    try:
        kinds = hostile_kinds()
        for _ in range(WARM_UP // BATCH // 2):
            clean_batch(server.port, request.name, BATCH)
            hostile_batch(server.port, kinds, BATCH)
        before = settle(server)
        for _ in range(args.connections // BATCH // 2):
            clean_batch(server.port, request.name, BATCH)
            hostile_batch(server.port, kinds, BATCH)
        after = settle(server)
        growth = after - before
        alive = server.alive()
        if alive and growth < RSS_LIMIT_MB:
            passed += 1
            print(f"PASS connection_memory: RSS {before:.1f} → {after:.1f} MB over {args.connections} connections "
                  f"({growth * 1024 * 1024 / args.connections:.0f} bytes each, limit {RSS_LIMIT_MB} MB)")
        else:
            failed += 1
            print(f"FAIL connection_memory: RSS {before:.1f} → {after:.1f} MB over {args.connections} connections "
                  f"(limit {RSS_LIMIT_MB} MB); server alive: {alive}")
    finally:
        server.stop()
        os.unlink(request.name)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
