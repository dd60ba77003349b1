#!/usr/bin/python3
"""User enumeration through Login timing, against the real agent server (grpcio).

    /usr/bin/python3 agent_enumeration.py --port P [--host H] [--tries 200]

Registers --tries/2 accounts, then makes --tries Login calls with a wrong password (two per
account, below the growing delay that starts after three failures) and --tries with unknown
emails, one at a time, in pairs: each pair is one call of each kind back to back, in a random
order. Both must fail alike (UNAUTHENTICATED, the same message), and the median of the pairs'
ratios (unknown email / wrong password) must be within 10% of 1: an unknown email is checked
against a dummy hash, so it costs what a wrong password costs. Pairing neighbours cancels what
changes slowly on a busy machine (another process's load), which comparing two medians over the
whole run does not: a CI run saw 17.5% between the medians of identical work. Prints both.

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

    wrong_attempts = [(email, f"wrong password {k}") for email in accounts for k in range(2)]
    unknown_attempts = [(f"nobody-{tag}-{i}@example.com", PASSWORD) for i in range(args.tries)]
    shuffler = random.Random(7)
    shuffler.shuffle(wrong_attempts)
    answers = set()

    def timed(email, password):
        started = time.perf_counter()
        try:
            login(field(1, email) + field(2, password), timeout=60)
            answers.add("OK")
        except grpc.RpcError as error:
            answers.add(f"{error.code().name}: {error.details()}")
        return time.perf_counter() - started

    wrong_times, unknown_times, ratios = [], [], []
    for wrong, unknown in zip(wrong_attempts, unknown_attempts):
        if shuffler.random() < 0.5:
            wrong_time = timed(*wrong)
            unknown_time = timed(*unknown)
        else:
            unknown_time = timed(*unknown)
            wrong_time = timed(*wrong)
        wrong_times.append(wrong_time)
        unknown_times.append(unknown_time)
        ratios.append(unknown_time / wrong_time)

    report(answers == {"UNAUTHENTICATED: Invalid email or password"},
           f"every failed login answered alike: {sorted(answers)}")
    ratio = statistics.median(ratios)
    report(abs(ratio - 1) < 0.10,
           f"median Login: wrong password {statistics.median(wrong_times) * 1000:.1f} ms, unknown email "
           f"{statistics.median(unknown_times) * 1000:.1f} ms; median ratio of {len(ratios)} back-to-back pairs "
           f"{ratio:.3f} (limit 1 ± 0.10)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
