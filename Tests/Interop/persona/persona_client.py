#!/usr/bin/python3
"""grpcio client of platform.persona.v1.PersonaService: the persona service's Python interop test.

    /usr/bin/python3 persona_client.py health --port P [--host H] [--timeout S] [--pid PID]
    JWT_PRIVATE_KEY=… /usr/bin/python3 persona_client.py run --port P [--host H] [--handoff FILE]
    JWT_PRIVATE_KEY=… /usr/bin/python3 persona_client.py trace --port P --spans SPANS.jsonl

`trace` makes a CreatePersona and a GetPersona call, each with its own `traceparent`, and checks
the spans an OTLP receiver (Tests/Tracing/otlp_receiver.py) wrote to SPANS.jsonl: the server's
span is the caller's span's child, and the call's SQL and Redis spans are the server span's
children, with no parameter values in any of them.

`health` polls grpc.health.v1.Health/Check (service "") until the server answers SERVING; it
gives up after --timeout seconds or as soon as process --pid is gone (exit 1).

`run` mints EdDSA JWTs for two fresh users A and B with $JWT_PRIVATE_KEY (iss/aud "platform", or
$JWT_ISSUER/$JWT_AUDIENCE; role developer), creates 3 personas for A (the third public) and 1 for
B, then checks rendering, paging, visibility and the error codes, printing one
"PASS py <check>" or "FAIL py <check>: why" line per check; exit status 1 if any failed. With
--handoff it writes, for the C client, three lines: a token of A, the id of A's first (private)
persona, its name.

Run it with Debian's /usr/bin/python3 (python3-grpcio, python3-protobuf). The message code comes
from Debian's `protoc --python_out` at run time, into a temporary directory that is removed
again; nothing generated is committed. There is no grpc_tools, so calls go through grpcio's
generic multi-callables.
"""
import argparse
import base64
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid

import grpc
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from google.protobuf import json_format, struct_pb2

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", "..", ".."))
PROTOS = os.path.join(REPO, "Protos")
SERVICE = "/platform.persona.v1.PersonaService/"
TIMEOUT = 30  # seconds per call: no check should ever hang the run

TEMPLATE = "You are {{role}}. Speak {{tone}}."
SCHEMA = {
    "type": "object",
    "properties": {
        "role": {"type": "string"},
        "tone": {"type": "string", "default": "calmly"},
    },
    "required": ["role"],
}
ROLE = "a pirate"
EXPECTED_TEXT = "You are a pirate. Speak calmly."


# --- generated messages ---------------------------------------------------------------------------

def _load_protos():
    """Generates persona_pb2 and health_pb2 into a temporary directory and loads them by path
    (the proto packages `platform` and `grpc` would shadow the stdlib module and grpcio)."""
    files = {"persona": "platform/persona/v1/persona.proto", "health": "grpc/health/v1/health.proto"}
    includes = ["-I" + PROTOS]
    if os.path.exists("/usr/include/google/protobuf/struct.proto"):
        includes.append("-I/usr/include")   # the well-known types (libprotobuf-dev)
    modules = {}
    with tempfile.TemporaryDirectory(prefix="persona-interop-py-") as tmp:
        subprocess.run(["protoc", *includes, "--python_out=" + tmp]
                       + [os.path.join(PROTOS, p) for p in files.values()], check=True)
        for name, proto in files.items():
            path = os.path.join(tmp, proto[:-len(".proto")] + "_pb2.py")
            spec = importlib.util.spec_from_file_location(f"persona_interop_{name}_pb2", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            modules[name] = module
    return modules["persona"], modules["health"]


persona_pb2, health_pb2 = _load_protos()


# --- tokens ---------------------------------------------------------------------------------------

def _b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def signing_key():
    """The private JWK tokens are signed with: $JWT_PRIVATE_KEY, the JSON or a file holding it
    (scripts/jwt_keys.py generate). None when unset."""
    value = os.environ.get("JWT_PRIVATE_KEY", "").strip()
    if not value:
        return None
    if not value.startswith("{"):
        with open(value, encoding="utf-8") as f:
            value = f.read()
    return json.loads(value)


def other_key(key):
    """A key under the same kid that the server does not trust: its tokens are forgeries."""
    forged = Ed25519PrivateKey.generate()
    d = forged.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    return dict(key, d=_b64url(d))


def mint_token(key, sub, roles=("developer",), permissions=(), ttl=3600, now=None):
    """An EdDSA (Ed25519) JWT as the agent service signs it: header alg EdDSA with the key's kid;
    claims sub, iss, aud, iat, exp, roles, permissions."""
    now = int(time.time()) if now is None else now
    header = {"alg": "EdDSA", "typ": "JWT", "kid": key["kid"]}
    claims = {
        "sub": sub,
        "iss": os.environ.get("JWT_ISSUER", "platform"),
        "aud": os.environ.get("JWT_AUDIENCE", "platform"),
        "iat": now,
        "exp": now + ttl,
        "roles": list(roles),
        "permissions": list(permissions),
    }
    signing_input = ".".join(_b64url(json.dumps(part, separators=(",", ":")).encode())
                             for part in (header, claims))
    d = base64.urlsafe_b64decode(key["d"] + "=" * (-len(key["d"]) % 4))
    signature = Ed25519PrivateKey.from_private_bytes(d).sign(signing_input.encode("ascii"))
    return signing_input + "." + _b64url(signature)


# --- calls ----------------------------------------------------------------------------------------

class TestFailure(Exception):
    pass


def expect(condition, message):
    if not condition:
        raise TestFailure(message)


class Persona:
    """The PersonaService methods this test uses, over generic multi-callables."""

    def __init__(self, channel):
        def method(name, request, response):
            return channel.unary_unary(SERVICE + name,
                                       request_serializer=request.SerializeToString,
                                       response_deserializer=response.FromString)
        self.create = method("CreatePersona", persona_pb2.CreatePersonaRequest, persona_pb2.Persona)
        self.render = method("RenderPersona", persona_pb2.RenderPersonaRequest,
                             persona_pb2.RenderPersonaResponse)
        self.list = method("ListPersonas", persona_pb2.ListPersonasRequest,
                           persona_pb2.ListPersonasResponse)
        self.get = method("GetPersona", persona_pb2.GetPersonaRequest, persona_pb2.Persona)


def auth(token):
    return [("authorization", "Bearer " + token)] if token is not None else []


def struct(value):
    s = struct_pb2.Struct()
    s.update(value)
    return s


def expect_code(fn, code, what):
    """Runs fn, which must fail with `code`; returns the RpcError."""
    try:
        fn()
    except grpc.RpcError as e:
        expect(e.code() == code, f"{what}: want {code.name}, got {e.code().name}: {e.details()!r}")
        return e
    raise TestFailure(f"{what}: want {code.name}, but the call succeeded")


def channel_for(host, port):
    # No proxy: the server is on loopback whatever http_proxy says.
    return grpc.insecure_channel(f"{host}:{port}", options=[("grpc.enable_http_proxy", 0)])


# --- health ---------------------------------------------------------------------------------------

def health(args):
    deadline = time.monotonic() + args.timeout
    last = "no answer yet"
    with channel_for(args.host, args.port) as channel:
        check = channel.unary_unary("/grpc.health.v1.Health/Check",
                                    request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
                                    response_deserializer=health_pb2.HealthCheckResponse.FromString)
        while time.monotonic() < deadline:
            if args.pid:
                try:
                    os.kill(args.pid, 0)
                except ProcessLookupError:
                    print(f"health: the server (pid {args.pid}) exited", file=sys.stderr)
                    return 1
            try:
                reply = check(health_pb2.HealthCheckRequest(service=""), timeout=2)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return 0
                last = "status " + health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
            except grpc.RpcError as e:
                last = f"{e.code().name}: {e.details()}"
            time.sleep(0.2)
    print(f"health: not SERVING after {args.timeout}s ({last})", file=sys.stderr)
    return 1


# --- the checks -----------------------------------------------------------------------------------

class Run:
    def __init__(self, stub, key):
        self.stub = stub
        self.key = key
        self.user_a = str(uuid.uuid4())
        self.user_b = str(uuid.uuid4())
        self.token_a = mint_token(key, self.user_a)
        self.token_b = mint_token(key, self.user_b)
        self.tag = uuid.uuid4().hex[:8]
        self.a = []           # A's personas as created: [private, private, public]
        self.b = None         # B's persona
        self.first_request = None
        self.passed = self.failed = 0

    def check(self, name, fn):
        try:
            note = fn()
        except TestFailure as e:
            self._fail(name, str(e))
            return False
        except grpc.RpcError as e:
            self._fail(name, f"unexpected {e.code().name}: {e.details()!r}")
            return False
        except Exception as e:  # a bug on our side or a reply we cannot handle: still a FAIL line
            self._fail(name, f"{type(e).__name__}: {e}")
            return False
        self.passed += 1
        print(f"PASS py {name}" + (f" ({note})" if note else ""), flush=True)
        return True

    def _fail(self, name, why):
        self.failed += 1
        print(f"FAIL py {name}: {why}", flush=True)

    # creation -------------------------------------------------------------------------------------

    def _create(self, token, user, name, is_public, request_id=None):
        request = persona_pb2.CreatePersonaRequest(
            persona=persona_pb2.Persona(name=name, description="interop test persona",
                                        template=TEMPLATE, variables=struct(SCHEMA),
                                        is_public=is_public),
            request_id=request_id or str(uuid.uuid4()))
        p = self.stub.create(request, metadata=auth(token), timeout=TIMEOUT)
        what = f"CreatePersona {name!r}"
        try:
            uuid.UUID(p.id)
        except ValueError:
            raise TestFailure(f"{what}: id {p.id!r} is not a UUID")
        expect(p.user_id == user, f"{what}: user_id {p.user_id!r}, want {user!r}")
        expect(p.name == name, f"{what}: name {p.name!r}")
        expect(p.template == TEMPLATE, f"{what}: template {p.template!r}")
        got_schema = json_format.MessageToDict(p.variables)
        expect(got_schema == SCHEMA, f"{what}: variables {got_schema!r}, want {SCHEMA!r}")
        expect(p.is_public == is_public, f"{what}: is_public {p.is_public}")
        expect(p.version == 1, f"{what}: version {p.version}, want 1")
        expect(p.usage_count == 0, f"{what}: usage_count {p.usage_count}, want 0")
        expect(not p.HasField("rating"), f"{what}: rating set ({p.rating}) before any rating")
        expect(p.HasField("create_time") and p.create_time.seconds > 0, f"{what}: no create_time")
        expect(not p.HasField("delete_time"), f"{what}: delete_time set")
        return request, p

    def create_all(self):
        names = [f"interop-a1-{self.tag}", f"interop-a2-{self.tag}", f"interop-a3-public-{self.tag}"]
        for i, name in enumerate(names):
            request, p = self._create(self.token_a, self.user_a, name, is_public=(i == 2))
            if i == 0:
                self.first_request = request
            self.a.append(p)
        _, self.b = self._create(self.token_b, self.user_b, f"interop-b1-{self.tag}", False)
        return f"A: {', '.join(p.id for p in self.a)}; B: {self.b.id}"

    def create_idempotent(self):
        again = self.stub.create(self.first_request, metadata=auth(self.token_a), timeout=TIMEOUT)
        expect(again.id == self.a[0].id,
               f"retrying CreatePersona with request_id {self.first_request.request_id} made a "
               f"new persona {again.id}, want {self.a[0].id}")

    # rendering ------------------------------------------------------------------------------------

    def _render(self, token, persona_id, variables):
        return self.stub.render(
            persona_pb2.RenderPersonaRequest(persona_id=persona_id, variables=struct(variables)),
            metadata=auth(token), timeout=TIMEOUT)

    def render(self):
        reply = self._render(self.token_a, self.a[0].id, {"role": ROLE})
        expect(reply.text == EXPECTED_TEXT, f"text {reply.text!r}, want {EXPECTED_TEXT!r}")
        expect(reply.persona_version == 1, f"persona_version {reply.persona_version}, want 1")
        expect(list(reply.defaulted_variables) == ["tone"],
               f"defaulted_variables {list(reply.defaulted_variables)}, want ['tone']")
        return repr(reply.text)

    def render_missing_variable(self):
        e = expect_code(lambda: self._render(self.token_a, self.a[0].id, {"tone": "loudly"}),
                        grpc.StatusCode.INVALID_ARGUMENT, "RenderPersona without `role`")
        return repr(e.details())

    def render_missing_variable_named(self):
        e = expect_code(lambda: self._render(self.token_a, self.a[0].id, {}),
                        grpc.StatusCode.INVALID_ARGUMENT, "RenderPersona without variables")
        expect("role" in (e.details() or ""),
               f"the message does not name the missing variable `role`: {e.details()!r}")
        return repr(e.details())

    def render_public_by_other_user(self):
        reply = self._render(self.token_b, self.a[2].id, {"role": ROLE})
        expect(reply.text == EXPECTED_TEXT, f"text {reply.text!r}, want {EXPECTED_TEXT!r}")

    def render_private_by_other_user(self):
        e = expect_code(lambda: self._render(self.token_b, self.a[0].id, {"role": ROLE}),
                        grpc.StatusCode.NOT_FOUND, "B renders A's private persona")
        return repr(e.details())

    # auth -----------------------------------------------------------------------------------------

    def _render_with(self, token):
        return lambda: self._render(token, self.a[0].id, {"role": ROLE})

    def no_token(self):
        e = expect_code(self._render_with(None), grpc.StatusCode.UNAUTHENTICATED,
                        "RenderPersona without authorization")
        return repr(e.details())

    def bad_signature(self):
        token = mint_token(other_key(self.key), self.user_a)
        expect_code(self._render_with(token), grpc.StatusCode.UNAUTHENTICATED,
                    "RenderPersona with a token signed by another key under the server's kid")

    def expired(self):
        token = mint_token(self.key, self.user_a, now=int(time.time()) - 7200, ttl=3600)
        expect_code(self._render_with(token), grpc.StatusCode.UNAUTHENTICATED,
                    "RenderPersona with a token expired an hour ago")

    # listing --------------------------------------------------------------------------------------

    def _list(self, token, **fields):
        return self.stub.list(persona_pb2.ListPersonasRequest(**fields), metadata=auth(token),
                              timeout=TIMEOUT)

    def list_pages(self):
        first = self._list(self.token_a, page_size=2)
        expect(len(first.personas) == 2, f"page 1: {len(first.personas)} personas, want 2")
        expect(first.next_page_token != "", "page 1: no next_page_token")
        second = self._list(self.token_a, page_size=2, page_token=first.next_page_token)
        expect(len(second.personas) == 1, f"page 2: {len(second.personas)} personas, want 1")
        expect(second.next_page_token == "",
               f"page 2: next_page_token {second.next_page_token!r} after the last persona")
        ids = [p.id for p in first.personas] + [p.id for p in second.personas]
        expect(len(set(ids)) == len(ids), f"a persona listed twice: {ids}")
        want = {p.id for p in self.a}
        expect(set(ids) == want, f"listed {sorted(ids)}, want A's {sorted(want)}")
        by_id = {p.id: p for p in list(first.personas) + list(second.personas)}
        for created in self.a:
            listed = by_id[created.id]
            expect(listed.name == created.name and listed.template == TEMPLATE
                   and listed.user_id == self.user_a and listed.is_public == created.is_public,
                   f"listed persona {created.id} differs from the created one: {listed}")
        return f"next_page_token of {len(first.next_page_token)} characters"

    def list_total_size(self):
        first = self._list(self.token_a, page_size=2)
        expect(first.total_size == 3, f"total_size {first.total_size}, want 3")

    def list_include_public(self):
        reply = self._list(self.token_b, include_public=True)
        ids = {p.id for p in reply.personas}
        expect(self.a[2].id in ids, f"B does not see A's public persona {self.a[2].id}")
        expect(self.b.id in ids, f"B does not see its own persona {self.b.id}")
        leaked = ids & {self.a[0].id, self.a[1].id}
        expect(not leaked, f"B sees A's private persona(s) {sorted(leaked)}")
        return f"{len(ids)} visible to B"

    def list_own_only(self):
        reply = self._list(self.token_b)
        ids = [p.id for p in reply.personas]
        expect(ids == [self.b.id], f"B's own list is {ids}, want only {self.b.id}")

    def all(self):
        if not self.check("create (3 personas for A, one public; 1 for B)", self.create_all):
            return
        self.check("create is idempotent per request_id", self.create_idempotent)
        self.check("render A's persona {role: a pirate}", self.render)
        self.check("list A's personas in pages of 2", self.list_pages)
        self.check("list total_size", self.list_total_size)
        self.check("list include_public as B sees A's public persona only", self.list_include_public)
        self.check("list as B without include_public: only B's", self.list_own_only)
        self.check("render with a required variable missing: INVALID_ARGUMENT",
                   self.render_missing_variable)
        self.check("render with a required variable missing names it", self.render_missing_variable_named)
        self.check("render without a token: UNAUTHENTICATED", self.no_token)
        self.check("render with a badly signed token: UNAUTHENTICATED", self.bad_signature)
        self.check("render with an expired token: UNAUTHENTICATED", self.expired)
        self.check("B renders A's private persona: NOT_FOUND", self.render_private_by_other_user)
        self.check("B renders A's public persona", self.render_public_by_other_user)


# --- traces ---------------------------------------------------------------------------------------

class TraceRun(Run):
    """Calls made with a caller's `traceparent` must reach the OTLP receiver as the server's span
    (child of the caller's span) with the SQL and Redis spans of the call as its children."""

    def __init__(self, stub, key, spans_file):
        super().__init__(stub, key)
        self.spans_file = spans_file
        self.calls = {}

    def _traced_call(self, name, fn, request):
        trace_id, parent = uuid.uuid4().hex, uuid.uuid4().hex[:16]
        metadata = auth(self.token_a) + [("traceparent", f"00-{trace_id}-{parent}-01"),
                                         ("tracestate", "probe=persona-interop")]
        reply, call = fn.with_call(request, metadata=metadata, timeout=TIMEOUT)
        header = dict(call.initial_metadata()).get("x-trace-id")
        expect(header == trace_id, f"{name}: x-trace-id {header!r}, want the caller's trace {trace_id}")
        self.calls[name] = (trace_id, parent)
        return reply

    def call(self):
        self.persona_name = f"traced-secret-name-{self.tag}"
        created = self._traced_call("CreatePersona", self.stub.create, persona_pb2.CreatePersonaRequest(
            persona=persona_pb2.Persona(name=self.persona_name, template=TEMPLATE, variables=struct(SCHEMA)),
            request_id=str(uuid.uuid4())))
        self._traced_call("GetPersona", self.stub.get, persona_pb2.GetPersonaRequest(id=created.id))
        return "x-trace-id is the caller's trace id"

    def _spans(self, trace_id, want_children, within=20):
        """The spans of `trace_id` once its server span and `want_children` children arrived."""
        deadline = time.monotonic() + within
        while True:
            spans = []
            if os.path.exists(self.spans_file):
                with open(self.spans_file, encoding="utf-8") as f:
                    spans = [s for s in map(json.loads, f) if s["trace_id"] == trace_id]
            servers = [s for s in spans if s["kind"] == "SERVER"]
            children = [s for s in spans if servers and s["parent_span_id"] == servers[0]["span_id"]]
            if (servers and len(children) >= want_children) or time.monotonic() > deadline:
                return spans, servers, children
            time.sleep(0.2)

    def _server_span(self, method, want_children):
        trace_id, parent = self.calls[method]
        spans, servers, children = self._spans(trace_id, want_children)
        expect(len(servers) == 1, f"{method}: {len(servers)} server spans of trace {trace_id} reached the receiver "
               f"({len(spans)} spans of it in all), want 1")
        server = servers[0]
        expect(server["name"].endswith("/" + method), f"{method}: server span named {server['name']!r}")
        expect(server["parent_span_id"] == parent,
               f"{method}: server span's parent {server['parent_span_id']!r}, want the caller's span {parent}")
        expect(server["service"] == "persona", f"{method}: service.name {server['service']!r}")
        expect(server["attributes"].get("rpc.system") == "grpc" and server["attributes"].get("rpc.grpc.status_code") == 0,
               f"{method}: server span attributes {server['attributes']!r}")
        return spans, server, children

    def create_spans(self):
        spans, server, children = self._server_span("CreatePersona", 2)
        sql = [s for s in children if s["attributes"].get("db.system.name") == "postgresql"]
        redis = [s for s in children if s["attributes"].get("db.system.name") == "redis"]
        expect(any(s["name"] == "INSERT personas" for s in sql),
               f"CreatePersona: no 'INSERT personas' SQL span under the server span (children: {[s['name'] for s in children]})")
        expect(redis, f"CreatePersona: no Redis span under the server span (children: {[s['name'] for s in children]})")
        expect(all(s["kind"] == "CLIENT" and s["duration_ns"] > 0 for s in sql + redis),
               "CreatePersona: SQL/Redis spans must be CLIENT spans with a duration")
        return f"{len(sql)} SQL and {len(redis)} Redis spans under {server['name']}"

    def get_spans(self):
        _, server, children = self._server_span("GetPersona", 1)
        expect(children, "GetPersona: no SQL or Redis span under the server span")
        return f"children: {', '.join(sorted(s['name'] for s in children))}"

    def no_values(self):
        # Statement text has placeholders; the values (the persona's name, the caller's token) and
        # Redis arguments (keys, cached documents) never appear in a span.
        for method, (trace_id, _) in self.calls.items():
            spans, _, _ = self._spans(trace_id, 0, within=0)
            text = json.dumps(spans)
            expect(self.persona_name not in text, f"{method}: the persona's name appears in a span")
            expect(self.token_a not in text and self.user_a not in text, f"{method}: the caller's token or id appears in a span")
        return None

    def all(self):
        if not self.check("traced calls answer x-trace-id with the caller's trace", self.call):
            return
        self.check("CreatePersona: server span (child of the caller's) with SQL and Redis child spans",
                   self.create_spans)
        self.check("GetPersona: server span with its child spans", self.get_spans)
        self.check("spans carry no parameter values", self.no_values)


def trace(args):
    key = signing_key()
    if not key:
        print("persona_client.py trace: set JWT_PRIVATE_KEY (the key the server's JWT_PUBLIC_KEYS trusts)", file=sys.stderr)
        return 2
    with channel_for(args.host, args.port) as channel:
        r = TraceRun(Persona(channel), key, args.spans)
        r.all()
    print(f"trace: {r.passed} passed, {r.failed} failed", file=sys.stderr)
    return 0 if r.failed == 0 and r.passed > 0 else 1


def run(args):
    key = signing_key()
    if not key:
        print("persona_client.py run: set JWT_PRIVATE_KEY (the key the server's JWT_PUBLIC_KEYS trusts)", file=sys.stderr)
        return 2
    with channel_for(args.host, args.port) as channel:
        r = Run(Persona(channel), key)
        r.all()
    if args.handoff and r.a:
        with open(args.handoff, "w") as f:
            f.write(f"{mint_token(key, r.user_a)}\n{r.a[0].id}\n{r.a[0].name}\n")
    print(f"python: {r.passed} passed, {r.failed} failed", file=sys.stderr)
    return 0 if r.failed == 0 and r.passed > 0 else 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    h = sub.add_parser("health", help="wait until the server's health check says SERVING")
    h.add_argument("--timeout", type=float, default=60)
    h.add_argument("--pid", type=int, help="give up as soon as this process is gone")
    r = sub.add_parser("run", help="run the checks")
    r.add_argument("--handoff", help="write a token of A, a persona id and its name here")
    t = sub.add_parser("trace", help="check the spans of traced calls (OTLP receiver output)")
    t.add_argument("--spans", required=True, help="the receiver's JSON lines (Tests/Tracing/otlp_receiver.py)")
    for p in (h, r, t):
        p.add_argument("--host", default="127.0.0.1")
        p.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    return {"health": health, "run": run, "trace": trace}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
