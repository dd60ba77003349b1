#!/usr/bin/python3
"""Hostile requests against the real persona server (grpcio), each of which once took it down or
made it store or send without bound. After every one the server must still answer.

    JWT_PRIVATE_KEY=… /usr/bin/python3 persona_hostile.py --port P [--host H]

One "PASS hostile <check>" or "FAIL hostile <check>: why" line per check; exit 1 if any failed.
"""
import argparse
import os
import sys
import uuid

import grpc

from persona_client import (TIMEOUT, Persona, TestFailure, auth, channel_for, expect, expect_code,
                            health_pb2, mint_token, persona_pb2, signing_key, struct)

MIB = 1 << 20


def varint(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def nested_list_value(levels):
    """A google.protobuf.Value of `levels` lists in lists, encoded by hand: protobuf's own encoder
    (and decoder) would refuse, and this is what an attacker sends."""
    body = b""
    for level in range(levels - 1, -1, -1):
        tag = 0x32 if level % 2 == 0 else 0x0A   # Value.list_value : ListValue.values
        body = bytes([tag]) + varint(len(body)) + body
    return body


class Hostile:
    def __init__(self, channel, key):
        self.stub = Persona(channel)
        self.health = channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString)
        # RenderPersona with a request serialized by hand.
        self.raw_render = channel.unary_unary(
            "/platform.persona.v1.PersonaService/RenderPersona",
            request_serializer=lambda b: b,
            response_deserializer=persona_pb2.RenderPersonaResponse.FromString)
        self.user = str(uuid.uuid4())
        self.token = mint_token(key, self.user)
        self.passed = self.failed = 0

    def check(self, name, fn):
        try:
            note = fn()
            self.still_serving()
        except TestFailure as e:
            self.failed += 1
            print(f"FAIL hostile {name}: {e}", flush=True)
            return
        except grpc.RpcError as e:
            self.failed += 1
            print(f"FAIL hostile {name}: unexpected {e.code().name}: {e.details()!r}", flush=True)
            return
        self.passed += 1
        print(f"PASS hostile {name}" + (f" ({note})" if note else ""), flush=True)

    def still_serving(self):
        reply = self.health(health_pb2.HealthCheckRequest(service=""), timeout=5)
        expect(reply.status == health_pb2.HealthCheckResponse.SERVING, "the server is not SERVING afterwards")

    def create(self, template="Hi {{name}}.", description="", variables=None, is_public=False, name=None):
        request = persona_pb2.CreatePersonaRequest(persona=persona_pb2.Persona(
            name=name or f"hostile-{uuid.uuid4().hex[:8]}", description=description, template=template,
            variables=struct(variables or {"type": "object"}), is_public=is_public))
        return self.stub.create(request, metadata=auth(self.token), timeout=TIMEOUT)

    def refused(self, what, field, **fields):
        e = expect_code(lambda: self.create(**fields), grpc.StatusCode.INVALID_ARGUMENT, what)
        expect(e.details().startswith(field), f"{what}: the message names {e.details()[:80]!r}, not {field}")
        return e.details()[:100]

    # depth -------------------------------------------------------------------------------------

    def deep_templates(self):
        notes = []
        for depth in (1_000, 3_000):
            template = "{{#a}}" * depth + "x" + "{{/a}}" * depth
            notes.append(self.refused(f"{depth} nested sections", "persona.template", template=template))
        ok = self.create(template="{{#a}}" * 16 + "x" + "{{/a}}" * 16)
        expect(ok.id, "16 nested sections (the default limit) were refused")
        return notes[-1]

    def deep_schema(self):
        def nested(wraps):
            schema = {"type": "object"}
            for _ in range(wraps):
                schema = {"type": "object", "properties": {"p": schema}}
            return schema
        note = self.refused("a schema nested 19 levels", "persona.variables", variables=nested(9))
        # Far deeper: refused by the runtime while decoding, before any handler runs.
        expect_code(lambda: self.create(variables=nested(40)), grpc.StatusCode.INVALID_ARGUMENT,
                    "a schema nested 81 levels")
        return note

    def deep_struct(self):
        persona = self.create()
        notes = []
        for levels in (1_000, 100_000):
            value = nested_list_value(levels)
            entry = b"\x0a\x01a" + b"\x12" + varint(len(value)) + value             # {"a": value}
            variables = b"\x0a" + varint(len(entry)) + entry                        # Struct.fields
            request = (b"\x0a" + varint(len(persona.id)) + persona.id.encode()       # persona_id = 1
                       + b"\x12" + varint(len(variables)) + variables)              # variables = 2
            e = expect_code(lambda: self.raw_render(request, metadata=auth(self.token), timeout=TIMEOUT),
                            grpc.StatusCode.INVALID_ARGUMENT, f"variables nested {levels} levels")
            notes.append(e.details()[:80])
        return notes[-1]

    # bytes -------------------------------------------------------------------------------------

    def wide_description(self):
        # 3,000 grapheme clusters of 1,200 bytes each: a letter with 599 combining marks.
        cluster = "e" + "\u0301" * 599
        return self.refused("a 3.6 MB description of 3,000 characters", "persona.description",
                            description=cluster * 3000)

    def big_schema(self):
        properties = {f"p{i}": {"type": "string", "description": "x" * 6500} for i in range(600)}
        return self.refused("a 3.9 MB schema of 1,803 values", "persona.variables",
                            variables={"type": "object", "properties": properties})

    def listing_stays_small(self):
        """Public personas at every byte limit; a default include_public listing must still
        arrive (grpcio refuses responses over 4 MiB) and page through all of them."""
        tag = uuid.uuid4().hex[:8]
        schema = {"type": "object", "properties": {f"p{i}": {"type": "string", "description": "d" * 600}
                                                   for i in range(90)}}
        created = set()
        for i in range(30):
            p = self.create(name=f"big-{tag}-{i}", template="T" * (64 * 1024 - 16) + "{{p0}}",
                            description="😀" * 4096, variables=schema, is_public=True)
            created.add(p.id)
        seen, pages, token, largest = set(), 0, "", 0
        while True:
            reply = self.stub.list(persona_pb2.ListPersonasRequest(include_public=True, page_token=token),
                                   metadata=auth(self.token), timeout=TIMEOUT)
            size = reply.ByteSize()
            largest = max(largest, size)
            expect(size < 4 * MIB, f"a page of {size} bytes")
            ids = [p.id for p in reply.personas]
            expect(not (set(ids) & seen), "a persona appeared on two pages")
            seen.update(ids)
            pages += 1
            token = reply.next_page_token
            if not token:
                break
            expect(pages < 100, "the listing does not end")
        expect(created <= seen, f"{len(created - seen)} personas never listed")
        expect(pages > 1, "all 30 large personas (about 5 MB) came in one page")
        return f"{pages} pages, largest {largest} bytes"

    def all(self):
        self.check("1,000 and 3,000 nested template sections: INVALID_ARGUMENT; 16 are fine", self.deep_templates)
        self.check("a schema nested past the limit: INVALID_ARGUMENT", self.deep_schema)
        self.check("variables nested 1,000 and 100,000 levels (hand-encoded): INVALID_ARGUMENT", self.deep_struct)
        self.check("a description of few characters but many bytes: INVALID_ARGUMENT", self.wide_description)
        self.check("a schema of few values but many bytes: INVALID_ARGUMENT", self.big_schema)
        self.check("an include_public listing of large public personas pages under 4 MiB", self.listing_stays_small)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    key = signing_key()
    if not key:
        print("persona_hostile.py: set JWT_PRIVATE_KEY (the key the server's JWT_PUBLIC_KEYS trusts)", file=sys.stderr)
        return 2
    with channel_for(args.host, args.port) as channel:
        h = Hostile(channel, key)
        h.all()
    print(f"hostile: {h.passed} passed, {h.failed} failed", file=sys.stderr)
    return 0 if h.failed == 0 and h.passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
