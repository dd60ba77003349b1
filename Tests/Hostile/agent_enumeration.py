#!/usr/bin/python3
"""User enumeration through Login timing, against the real agent server (grpcio).

    /usr/bin/python3 agent_enumeration.py --port P [--host H] [--tries 200]

Registers --tries/2 accounts, then makes --tries Login calls with a wrong password (two per
account, below the growing delay that starts after three failures) and --tries with unknown
emails, shuffled together, one at a time. Both must fail alike (UNAUTHENTICATED, the same
message), and their median latencies must differ by less than 10%: an unknown email is checked
against a dummy hash, so it costs what a wrong password costs. Prints the medians.

One "PASS enumeration …" or "FAIL enumeration …" line per check; exit 1 if any failed. The server
must allow this many attempts per address (AGENT_LOGIN_ATTEMPTS_PER_PEER).
"""
import argparse
import random
import statistics
import sys
import time
import uuid

import grpc

SERVICE = "/platform.agent.v1.AuthService/"
PASSWORD = "correct horse battery staple"


def field(number, text):
    data = text.encode()
    length, out = len(data), bytearray([number << 3 | 2])
    while True:
        byte, length = length & 0x7F, length >> 7
        out.append(byte | (0x80 if length else 0))
        if not length:
            break
    return bytes(out) + data


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tries", type=int, default=200)
    args = parser.parse_args()
    failed = 0

    def report(ok, text):
        nonlocal failed
        failed += 0 if ok else 1
        print(("PASS" if ok else "FAIL") + " enumeration " + text, flush=True)

    channel = grpc.insecure_channel(f"{args.host}:{args.port}", options=[("grpc.enable_http_proxy", 0)])
    register = channel.unary_unary(SERVICE + "Register", request_serializer=bytes, response_deserializer=bytes)
    login = channel.unary_unary(SERVICE + "Login", request_serializer=bytes, response_deserializer=bytes)
    tag = uuid.uuid4().hex[:8]
    accounts = [f"enum-{tag}-{i}@example.com" for i in range(args.tries // 2)]
    for email in accounts:
        register(field(1, email) + field(2, PASSWORD) + field(3, "Enumeration"), timeout=60)

    attempts = [("wrong password", email, f"wrong password {k}") for email in accounts for k in range(2)]
    attempts += [("unknown email", f"nobody-{tag}-{i}@example.com", PASSWORD) for i in range(args.tries)]
    random.Random(7).shuffle(attempts)
    latencies = {"wrong password": [], "unknown email": []}
    answers = set()
    for kind, email, password in attempts:
        started = time.perf_counter()
        try:
            login(field(1, email) + field(2, password), timeout=60)
            answers.add("OK")
        except grpc.RpcError as error:
            answers.add(f"{error.code().name}: {error.details()}")
        latencies[kind].append(time.perf_counter() - started)

    report(answers == {"UNAUTHENTICATED: Invalid email or password"},
           f"every failed login answered alike: {sorted(answers)}")
    wrong = statistics.median(latencies["wrong password"]) * 1000
    unknown = statistics.median(latencies["unknown email"]) * 1000
    difference = abs(wrong - unknown) / min(wrong, unknown)
    report(difference < 0.10,
           f"median Login: wrong password {wrong:.1f} ms, unknown email {unknown:.1f} ms over "
           f"{len(latencies['wrong password'])} and {len(latencies['unknown email'])} tries "
           f"({difference * 100:.1f}% apart, limit 10%)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
