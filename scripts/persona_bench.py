#!/usr/bin/python3
"""The persona benchmark's gRPC side (scripts/benchmark-persona.sh runs it; h2load sends the load).

    JWT_PRIVATE_KEY=… /usr/bin/python3 persona_bench.py setup --port P --out DIR
    JWT_PRIVATE_KEY=… /usr/bin/python3 persona_bench.py usage --port P --dir DIR

`setup` creates one private persona for a fresh user and writes into DIR what h2load needs:
`token` (that user's JWT), `get.bin` and `render.bin` (one gRPC-framed GetPersona and
RenderPersona request each), and `get.size` and `render.size`: the DATA bytes of a correct reply
to each, so the benchmark can tell answers from errors (h2load does not see grpc-status).

`usage` prints the persona's usage_count: every render the server acknowledged must be in it.

Message code and tokens come from the persona interop client (Tests/Interop/persona).
"""
import argparse
import importlib.util
import os
import struct
import sys
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location(
    "persona_client", os.path.join(HERE, "..", "Tests", "Interop", "persona", "persona_client.py"))
client = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(client)
pb = client.persona_pb2


def framed(message):
    """A gRPC length-prefixed message: uncompressed flag, 4-byte big-endian length, bytes."""
    body = message.SerializeToString()
    return struct.pack(">BI", 0, len(body)) + body


def get_method(channel):
    return channel.unary_unary(client.SERVICE + "GetPersona",
                               request_serializer=pb.GetPersonaRequest.SerializeToString,
                               response_deserializer=pb.Persona.FromString)


def write(directory, name, data):
    with open(os.path.join(directory, name), "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)


def setup(args, key):
    token = client.mint_token(key, str(uuid.uuid4()))
    metadata = client.auth(token)
    with client.channel_for(args.host, args.port) as channel:
        stub = client.Persona(channel)
        persona = stub.create(pb.CreatePersonaRequest(
            persona=pb.Persona(name="Benchmark pirate", description="h2load target",
                               template=client.TEMPLATE, variables=client.struct(client.SCHEMA)),
            request_id=str(uuid.uuid4())), metadata=metadata, timeout=client.TIMEOUT)
        get = pb.GetPersonaRequest(id=persona.id)
        render = pb.RenderPersonaRequest(persona_id=persona.id,
                                         variables=client.struct({"role": client.ROLE}))
        rendered = stub.render(render, metadata=metadata, timeout=client.TIMEOUT)
        if rendered.text != client.EXPECTED_TEXT:
            print(f"setup: rendered {rendered.text!r}, want {client.EXPECTED_TEXT!r}", file=sys.stderr)
            return 1
        # The Get reply read after the render above: its size holds while only Gets run.
        fetched = get_method(channel)(get, metadata=metadata, timeout=client.TIMEOUT)
    write(args.out, "token", token)
    write(args.out, "persona_id", persona.id)
    write(args.out, "get.bin", framed(get))
    write(args.out, "render.bin", framed(render))
    write(args.out, "get.size", str(len(framed(fetched))))
    write(args.out, "render.size", str(len(framed(rendered))))
    return 0


def usage(args, _secret):
    with open(os.path.join(args.dir, "token")) as f:
        token = f.read().strip()
    with open(os.path.join(args.dir, "persona_id")) as f:
        persona_id = f.read().strip()
    # ListPersonas reads the database; GetPersona answers from the cache, whose copy is the one
    # of the last write (its usage_count does not follow renders).
    with client.channel_for(args.host, args.port) as channel:
        listing = channel.unary_unary(client.SERVICE + "ListPersonas",
                                      request_serializer=pb.ListPersonasRequest.SerializeToString,
                                      response_deserializer=pb.ListPersonasResponse.FromString)
        page = listing(pb.ListPersonasRequest(page_size=1000), metadata=client.auth(token), timeout=client.TIMEOUT)
    print(next(p.usage_count for p in page.personas if p.id == persona_id))
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("setup", help="create the persona and write the request files")
    s.add_argument("--out", required=True)
    u = sub.add_parser("usage", help="print the persona's usage_count")
    u.add_argument("--dir", required=True)
    for p in (s, u):
        p.add_argument("--host", default="127.0.0.1")
        p.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    key = client.signing_key()
    if not key:
        print("persona_bench.py: set JWT_PRIVATE_KEY (the key the server's JWT_PUBLIC_KEYS trusts)", file=sys.stderr)
        return 2
    return (setup if args.command == "setup" else usage)(args, key)


if __name__ == "__main__":
    sys.exit(main())
