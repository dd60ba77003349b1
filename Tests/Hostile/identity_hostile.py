#!/usr/bin/python3
"""The identity hostile suite: attacks on credentials, against the real agent and persona servers.

    JWT_PRIVATE_KEY=private.jwk /usr/bin/python3 identity_hostile.py \
        --agent-port A --persona-port P --agent-db DBA --persona-db DBP \
        --jwks jwks.json --admin-email E --admin-password PW [--key-cache-seconds 2]

The agent issues tokens and keys; persona (started with the same public keys and AGENT_ADDR
pointing at the agent) is the "other service" that must refuse what the agent revoked. Every
case checks three things:
  - the call is refused with the right gRPC status;
  - it changes nothing: a fingerprint of the tables it could touch (users, roles, api_keys,
    refresh_tokens in agent_db; personas in persona_db) is the same before and after (each of
    the 50 wrong passwords on its own);
  - it is in the audit log of the service that refused it: each call carries its own
    `traceparent`, and a row of auth_audit_log with that trace id must appear within 5 s.
The revoked credentials (a token after logout, of a deactivated user, a revoked or an expired key)
belong to developers and are tried on writes (CreatePersona in persona, CreateApiKey in agent),
each having written once before the revocation: "changes nothing" is then a write not made. A
revocation may take a few seconds to reach a service, so these are polled, and the first refused
call is the one checked (the calls accepted before it wrote, within the allowed delay).

Cases: no token, malformed headers, two authorization headers; a forged signature, a tampered
payload, `alg: none` in every spelling, HS256/HS512 keyed with the public key in every form,
other algorithms, an unknown kid; expired, not-yet-valid and future-issued tokens; a token
after logout and of a deactivated user (refused by persona and by agent within 5 s); a revoked
and an expired API key (refused by persona within the key cache time, by agent at once); a key
asking for more than its owner holds; refresh-token reuse (the family is revoked); a viewer
writing; a non-admin changing roles, listing users, defining roles; the last admin demoted or
deactivated; 50 wrong passwords; a 1 MB password; SQL-looking emails; emails differing in case
(one account); Unicode look-alikes.

One "PASS identity <case>" or "FAIL identity <case>: why" line per case; exit 1 if any failed.
psql ($PSQL, PG* from the environment) reads the tables and the audit logs.
"""
import argparse
import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
import uuid

import grpc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "Tests", "Interop", "persona"))
from persona_client import channel_for, persona_pb2, signing_key, _b64url  # noqa: E402
from platform_protos import load  # noqa: E402

TIMEOUT = 60
PASSWORD = "correct horse battery staple"


agent_pb2, = load("platform/agent/v1/agent.proto")


# --- tokens ---------------------------------------------------------------------------------------

def jws(header, claims, sign):
    signing_input = ".".join(_b64url(json.dumps(p, separators=(",", ":")).encode()) for p in (header, claims))
    return signing_input + "." + _b64url(sign(signing_input.encode("ascii")))


def ed25519_signer(d):
    key = Ed25519PrivateKey.from_private_bytes(base64.urlsafe_b64decode(d + "=" * (-len(d) % 4)))
    return key.sign


def claims_for(sub, roles=("admin",), now=None, **extra):
    now = int(time.time()) if now is None else now
    claims = {"sub": sub, "iss": os.environ.get("JWT_ISSUER", "platform"), "aud": os.environ.get("JWT_AUDIENCE", "platform"),
              "iat": now, "exp": now + 600, "roles": list(roles), "permissions": []}
    claims.update(extra)
    return claims


def decode_part(token, index):
    part = token.split(".")[index]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


# --- the run --------------------------------------------------------------------------------------

class Failure(Exception):
    pass


class Suite:
    def __init__(self, args):
        self.args = args
        self.key = signing_key()
        if self.key is None:
            raise SystemExit("identity_hostile.py: JWT_PRIVATE_KEY is not set")
        with open(args.jwks, encoding="utf-8") as f:
            self.jwks_text = f.read()
        self.public = json.loads(self.jwks_text)["keys"][0]
        self.agent = channel_for("127.0.0.1", args.agent_port)
        self.persona = channel_for("127.0.0.1", args.persona_port)
        self.passed = self.failed = 0
        self.psql = os.environ.get("PSQL") or "psql"

    # calls

    def call(self, channel, service, method, request, response_type, metadata=(), trace=None):
        stub = channel.unary_unary(f"/{service}/{method}", request_serializer=lambda m: m.SerializeToString(),
                                   response_deserializer=response_type.FromString)
        metadata = list(metadata) + ([("traceparent", f"00-{trace}-{os.urandom(8).hex()}-01")] if trace else [])
        return stub(request, metadata=metadata, timeout=TIMEOUT)

    def auth(self, method, request, response_type, metadata=(), trace=None):
        return self.call(self.agent, "platform.agent.v1.AuthService", method, request, response_type, metadata, trace)

    def users(self, method, request, response_type, metadata=(), trace=None):
        return self.call(self.agent, "platform.agent.v1.UserService", method, request, response_type, metadata, trace)

    def create_persona(self, metadata=(), trace=None):
        request = persona_pb2.CreatePersonaRequest(persona=persona_pb2.Persona(name="Hostile " + uuid.uuid4().hex[:8],
                                                                             template="Hello {{name}}"))
        return self.call(self.persona, "platform.persona.v1.PersonaService", "CreatePersona", request, persona_pb2.Persona,
                         metadata, trace)

    def create_key_with(self, metadata, trace=None):
        """CreateApiKey as whoever `metadata` names: the agent-side write."""
        return self.auth("CreateApiKey", agent_pb2.CreateApiKeyRequest(name="hostile write"), agent_pb2.CreateApiKeyResponse,
                         metadata, trace)

    def list_personas(self, metadata=(), trace=None):
        return self.call(self.persona, "platform.persona.v1.PersonaService", "ListPersonas", persona_pb2.ListPersonasRequest(),
                         persona_pb2.ListPersonasResponse, metadata, trace)

    def register(self, email, password=PASSWORD, trace=None):
        return self.auth("Register", agent_pb2.RegisterRequest(email=email, password=password, name="Hostile"), agent_pb2.User,
                         trace=trace)

    def login(self, email, password=PASSWORD, trace=None):
        return self.auth("Login", agent_pb2.LoginRequest(email=email, password=password), agent_pb2.LoginResponse, trace=trace)

    def new_user(self, tag, roles=None):
        """A registered, signed-in user: (user id, access token, login response)."""
        email = f"{tag}-{uuid.uuid4().hex[:10]}@example.com"
        user = self.register(email)
        if roles:
            self.users("UpdateUserRoles", agent_pb2.UpdateUserRolesRequest(user_id=user.id, role_names=roles), agent_pb2.User,
                       self.admin_md)
        login = self.login(email)
        return user.id, login.tokens.access_token, login, email

    # the database

    def sql(self, db, query):
        out = subprocess.run([self.psql, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", db, "-c", query],
                             capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            raise Failure(f"psql: {out.stderr.strip()}")
        return out.stdout.strip()

    def fingerprint(self):
        """{(db, table): "rows:md5 of the rows"}, one query per database. When a key or an account
        was last used is not a change a refusal could make."""
        tables = {self.args.agent_db: ["users", "roles", "api_keys", "refresh_tokens"], self.args.persona_db: ["personas"]}
        prints = {}
        for db, names in tables.items():
            query = " UNION ALL ".join(
                f"(SELECT '{t} ' || count(*) || ':' || coalesce(md5(string_agg(r, ',' ORDER BY r)), '') "
                f"FROM (SELECT (to_jsonb(t) - 'last_used_at' - 'last_login_at')::text AS r FROM {t} t) rows)"
                for t in names)
            for line in self.sql(db, query).splitlines():
                table, value = line.split(" ", 1)
                prints[(db, table)] = value
        return prints

    def audited(self, db, trace, action=None):
        """The audit rows (action, decision, status) of the calls in trace `trace` with `action`
        (one or a tuple; None: any), waiting up to 5 s for them (refusals are written off the call
        path)."""
        deadline = time.monotonic() + 5
        while True:
            rows = self.sql(db, f"SELECT action || ' ' || decision || ' ' || coalesce(detail->>'status', '') "
                                f"FROM auth_audit_log WHERE trace_id = '{trace}' ORDER BY id")
            actions = action if isinstance(action, tuple) else (action,)
            lines = [r for r in rows.splitlines() if r and (action is None or r.split(" ", 1)[0] in actions)]
            if lines or time.monotonic() > deadline:
                return lines
            time.sleep(0.1)

    # checks

    def report(self, name, body):
        try:
            body()
        except Failure as e:
            self.failed += 1
            print(f"FAIL identity {name}: {e}", flush=True)
        except grpc.RpcError as e:
            self.failed += 1
            print(f"FAIL identity {name}: unexpected {e.code().name}: {e.details()!r}", flush=True)
        else:
            self.passed += 1
            print(f"PASS identity {name}", flush=True)

    def refused(self, what, code, fn, db, action="refused", unchanged=True):
        """Runs fn(trace) expecting `code` (or one of a tuple); checks nothing changed and the
        refusal is audited in `db`. Returns the RpcError."""
        codes = code if isinstance(code, tuple) else (code,)
        before = self.fingerprint() if unchanged else None
        trace = os.urandom(16).hex()
        try:
            fn(trace)
        except grpc.RpcError as e:
            if e.code() not in codes:
                raise Failure(f"{what}: want {'/'.join(c.name for c in codes)}, got {e.code().name}: {e.details()!r}")
            error = e
        else:
            raise Failure(f"{what}: want {'/'.join(c.name for c in codes)}, but the call succeeded")
        if unchanged:
            self.same(what, before, self.fingerprint())
        if not self.audited(db, trace, action):
            raise Failure(f"{what}: refused ({error.code().name}) but no {action!r} row with its trace id in {db}.auth_audit_log")
        return error

    def same(self, what, before, after):
        """Fails `what` when fingerprints `before` and `after` differ."""
        changed = [f"{db}.{t}" for (db, t) in before if before[(db, t)] != after[(db, t)]]
        if changed:
            raise Failure(f"{what}: refused, but changed {', '.join(changed)}")

    def refused_within(self, what, seconds, fn, db):
        """Polls fn(trace) until it is refused UNAUTHENTICATED (at most `seconds`); the refused
        call changes nothing (fingerprints just before and just after it) and is audited in `db`.
        fn should write (CreatePersona, CreateApiKey), so that "changes nothing" means something;
        the calls accepted before the revocation arrived (it may take up to `seconds`) did write,
        and are counted in the line printed."""
        started = time.monotonic()
        deadline = started + seconds
        accepted = 0
        while True:
            trace = os.urandom(16).hex()
            before = self.fingerprint()
            try:
                fn(trace)
            except grpc.RpcError as e:
                if e.code() != grpc.StatusCode.UNAUTHENTICATED:
                    raise Failure(f"{what}: want UNAUTHENTICATED, got {e.code().name}: {e.details()!r}")
                self.same(what, before, self.fingerprint())
                if not self.audited(db, trace, "refused"):
                    raise Failure(f"{what}: refused but not audited in {db}")
                print(f"  {what}: refused after {time.monotonic() - started:.1f} s ({accepted} calls accepted before)",
                      flush=True)
                return
            accepted += 1
            if time.monotonic() > deadline:
                raise Failure(f"{what}: still accepted after {seconds} s")
            time.sleep(0.2)

    # ------------------------------------------------------------------------------------------

    def run(self):
        login = self.login(self.args.admin_email, self.args.admin_password)
        self.admin_id = login.user.id
        self.admin_md = [("authorization", "Bearer " + login.tokens.access_token)]
        self.viewer_id, viewer_token, _, _ = self.new_user("viewer")
        self.viewer_md = [("authorization", "Bearer " + viewer_token)]
        self.dev_id, dev_token, _, _ = self.new_user("developer", roles=["developer"])
        self.dev_token = dev_token
        self.dev_md = [("authorization", "Bearer " + dev_token)]
        self.create_persona(self.dev_md)  # the developer's token works in persona

        self.report("headers", self.headers)
        self.report("forged tokens", self.forged)
        self.report("alg none", self.alg_none)
        self.report("HS256 keyed with the public key", self.key_confusion)
        self.report("unknown kid", self.unknown_kid)
        self.report("token times", self.token_times)
        self.report("token after logout", self.after_logout)
        self.report("token of a deactivated user", self.deactivated)
        self.report("revoked API key", self.revoked_key)
        self.report("expired API key", self.expired_key)
        self.report("key with more than its owner holds", self.key_escalation)
        self.report("refresh token reuse", self.refresh_reuse)
        self.report("viewer writing", self.viewer_write)
        self.report("non-admin administration", self.non_admin)
        self.report("last admin", self.last_admin)
        self.report("50 wrong passwords", self.brute_force)
        self.report("1 MB password", self.huge_password)
        self.report("SQL-looking emails", self.sql_emails)
        self.report("emails differing in case", self.email_case)
        self.report("Unicode look-alikes", self.lookalikes)
        print(f"identity hostile: {self.passed} passed, {self.failed} failed", flush=True)
        return 1 if self.failed else 0

    def headers(self):
        db = self.args.persona_db
        UNAUTH = grpc.StatusCode.UNAUTHENTICATED
        self.refused("no token", UNAUTH, lambda t: self.create_persona([], t), db)
        # (A value ending in whitespace never reaches the server's code: HTTP/2 forbids it, and the
        # stream is reset as malformed, RFC 9113 §8.2.1.)
        for value in ["Bearer", "Bearer not-a-jwt", "Bearer a.b.c.d", "Basic dXNlcjpwYXNz", "Token " + self.dev_token,
                      "Bearer " + "A" * 8000, "Bearer " + self.dev_token + "x", self.dev_token]:
            self.refused(f"authorization {value[:24]!r}", UNAUTH, lambda t: self.create_persona([("authorization", value)], t), db)
        self.refused("two authorization headers, both valid", UNAUTH,
                     lambda t: self.create_persona(self.dev_md + self.dev_md, t), db)
        self.refused("a bearer token and an API key", UNAUTH,
                     lambda t: self.create_persona(self.dev_md + [("x-api-key", "pk_" + "a" * 40)], t), db)

    def forged(self):
        db = self.args.persona_db
        other = Ed25519PrivateKey.generate()
        header = {"alg": "EdDSA", "typ": "JWT", "kid": self.key["kid"]}
        token = jws(header, claims_for(self.dev_id), other.sign)
        self.refused("signed by another key under the trusted kid", grpc.StatusCode.UNAUTHENTICATED,
                     lambda t: self.create_persona([("authorization", "Bearer " + token)], t), db)
        # The developer's real token with its claims changed to admin: the signature no longer fits.
        head, _, signature = self.dev_token.split(".")
        claims = decode_part(self.dev_token, 1)
        claims["roles"] = ["admin"]
        tampered = head + "." + _b64url(json.dumps(claims, separators=(",", ":")).encode()) + "." + signature
        self.refused("a real token with roles changed to admin", grpc.StatusCode.UNAUTHENTICATED,
                     lambda t: self.users("ListUsers", agent_pb2.ListUsersRequest(), agent_pb2.ListUsersResponse,
                                          [("authorization", "Bearer " + tampered)], t), self.args.agent_db)

    def alg_none(self):
        for alg in ["none", "None", "NONE", "nOnE", "", "none "]:
            token = jws({"alg": alg, "typ": "JWT", "kid": self.key["kid"]}, claims_for(self.dev_id), lambda _: b"")
            for unsigned in (token, token[:-1] if token.endswith(".") else token):
                self.refused(f"alg {alg!r}", grpc.StatusCode.UNAUTHENTICATED,
                             lambda t: self.create_persona([("authorization", "Bearer " + unsigned)], t), self.args.persona_db)

    def key_confusion(self):
        x = self.public["x"]
        secrets = [base64.urlsafe_b64decode(x + "=" * (-len(x) % 4)), x.encode(), self.jwks_text.encode(),
                   json.dumps(self.public).encode(), json.dumps(self.public, separators=(",", ":")).encode()]
        for alg, digest in [("HS256", hashlib.sha256), ("HS384", hashlib.sha384), ("HS512", hashlib.sha512)]:
            for i, secret in enumerate(secrets):
                token = jws({"alg": alg, "typ": "JWT", "kid": self.key["kid"]}, claims_for(self.dev_id),
                            lambda data: hmac.new(secret, data, digest).digest())
                self.refused(f"{alg} keyed with public key form {i}", grpc.StatusCode.UNAUTHENTICATED,
                             lambda t: self.create_persona([("authorization", "Bearer " + token)], t), self.args.persona_db)
        for alg in ["RS256", "ES256", "PS256", "EdDSA25519", "ed25519"]:
            token = jws({"alg": alg, "kid": self.key["kid"]}, claims_for(self.dev_id), ed25519_signer(self.key["d"]))
            self.refused(f"alg {alg}", grpc.StatusCode.UNAUTHENTICATED,
                         lambda t: self.create_persona([("authorization", "Bearer " + token)], t), self.args.persona_db)

    def unknown_kid(self):
        sign = ed25519_signer(self.key["d"])
        for kid in ["unknown-" + uuid.uuid4().hex[:6], "", "../" + self.key["kid"], self.key["kid"] + " "]:
            token = jws({"alg": "EdDSA", "typ": "JWT", "kid": kid}, claims_for(self.dev_id), sign)
            self.refused(f"kid {kid!r}", grpc.StatusCode.UNAUTHENTICATED,
                         lambda t: self.create_persona([("authorization", "Bearer " + token)], t), self.args.persona_db)
        token = jws({"alg": "EdDSA", "typ": "JWT"}, claims_for(self.dev_id), sign)
        self.refused("no kid", grpc.StatusCode.UNAUTHENTICATED,
                     lambda t: self.create_persona([("authorization", "Bearer " + token)], t), self.args.persona_db)

    def token_times(self):
        sign = ed25519_signer(self.key["d"])
        header = {"alg": "EdDSA", "typ": "JWT", "kid": self.key["kid"]}
        now = int(time.time())
        cases = {
            "expired an hour ago": claims_for(self.dev_id, roles=("developer",), now=now - 4200),
            "not before an hour from now": claims_for(self.dev_id, roles=("developer",), nbf=now + 3600),
            "issued an hour from now": claims_for(self.dev_id, roles=("developer",), iat=now + 3600, exp=now + 4200),
            "no expiry": {k: v for k, v in claims_for(self.dev_id, roles=("developer",)).items() if k != "exp"},
            "exp as a string": claims_for(self.dev_id, roles=("developer",), exp=str(now + 600)),
        }
        for what, claims in cases.items():
            token = jws(header, claims, sign)
            self.refused(what, grpc.StatusCode.UNAUTHENTICATED,
                         lambda t: self.create_persona([("authorization", "Bearer " + token)], t), self.args.persona_db)

    def after_logout(self):
        _, token, login, _ = self.new_user("logout", roles=["developer"])
        md = [("authorization", "Bearer " + token)]
        self.create_persona(md)  # a developer's token writes in persona, and in agent
        self.create_key_with(md)
        self.auth("Logout", agent_pb2.LogoutRequest(refresh_token=login.tokens.refresh_token), agent_pb2.LogoutResponse, md)
        self.refused_within("persona writing after logout", 5, lambda t: self.create_persona(md, t), self.args.persona_db)
        self.refused_within("agent writing after logout", 5, lambda t: self.create_key_with(md, t), self.args.agent_db)
        self.refused("persona reading after logout", grpc.StatusCode.UNAUTHENTICATED, lambda t: self.list_personas(md, t),
                     self.args.persona_db)
        self.refused("refresh after logout", grpc.StatusCode.UNAUTHENTICATED,
                     lambda t: self.auth("RefreshToken", agent_pb2.RefreshTokenRequest(refresh_token=login.tokens.refresh_token),
                                         agent_pb2.RefreshTokenResponse, trace=t), self.args.agent_db, action="refresh_revoked")

    def deactivated(self):
        user_id, token, _, email = self.new_user("deactivated", roles=["developer"])
        md = [("authorization", "Bearer " + token)]
        self.create_persona(md)  # a developer's token writes in persona, and in agent
        self.create_key_with(md)
        self.users("DeactivateUser", agent_pb2.DeactivateUserRequest(user_id=user_id), agent_pb2.User, self.admin_md)
        self.refused_within("persona writing with a deactivated user's token", 5, lambda t: self.create_persona(md, t),
                            self.args.persona_db)
        self.refused_within("agent writing with a deactivated user's token", 5, lambda t: self.create_key_with(md, t),
                            self.args.agent_db)
        self.refused("agent reading with a deactivated user's token", grpc.StatusCode.UNAUTHENTICATED,
                     lambda t: self.auth("GetCurrentUser", agent_pb2.GetCurrentUserRequest(), agent_pb2.User, md, t),
                     self.args.agent_db)
        self.refused("login of a deactivated user", grpc.StatusCode.UNAUTHENTICATED, lambda t: self.login(email, trace=t),
                     self.args.agent_db, action="login_failed")

    def make_key(self, **fields):
        return self.auth("CreateApiKey", agent_pb2.CreateApiKeyRequest(name="hostile", **fields), agent_pb2.CreateApiKeyResponse,
                         self.dev_md)

    def revoked_key(self):
        key = self.make_key()  # a developer's key, with the developer's persona:write
        for md in ([("x-api-key", key.secret)], [("authorization", "ApiKey " + key.secret)]):
            self.create_persona(md)
        self.auth("RevokeApiKey", agent_pb2.RevokeApiKeyRequest(id=key.api_key.id), agent_pb2.ApiKey, self.dev_md)
        self.refused_within("persona writing with a revoked key", self.args.key_cache_seconds + 3,
                            lambda t: self.create_persona([("x-api-key", key.secret)], t), self.args.persona_db)
        self.refused("persona writing with a revoked key as ApiKey", grpc.StatusCode.UNAUTHENTICATED,
                     lambda t: self.create_persona([("authorization", "ApiKey " + key.secret)], t), self.args.persona_db)
        self.refused("agent with a revoked key", grpc.StatusCode.UNAUTHENTICATED,
                     lambda t: self.auth("ListApiKeys", agent_pb2.ListApiKeysRequest(), agent_pb2.ListApiKeysResponse,
                                         [("x-api-key", key.secret)], t), self.args.agent_db)
        self.refused("agent writing with a revoked key", grpc.StatusCode.UNAUTHENTICATED,
                     lambda t: self.create_key_with([("x-api-key", key.secret)], t), self.args.agent_db)

    def expired_key(self):
        from google.protobuf import timestamp_pb2
        expiry = timestamp_pb2.Timestamp(seconds=int(time.time()) + 3)
        key = self.make_key(expire_time=expiry)  # a developer's key, with the developer's persona:write
        self.create_persona([("x-api-key", key.secret)])
        time.sleep(max(0.0, expiry.seconds + 0.5 - time.time()))
        self.refused_within("persona writing with an expired key", self.args.key_cache_seconds + 3,
                            lambda t: self.create_persona([("x-api-key", key.secret)], t), self.args.persona_db)
        self.refused("agent with an expired key", grpc.StatusCode.UNAUTHENTICATED,
                     lambda t: self.auth("ListApiKeys", agent_pb2.ListApiKeysRequest(), agent_pb2.ListApiKeysResponse,
                                         [("x-api-key", key.secret)], t), self.args.agent_db)
        self.refused("a key in the past", grpc.StatusCode.INVALID_ARGUMENT,
                     lambda t: self.auth("CreateApiKey", agent_pb2.CreateApiKeyRequest(
                         name="past", expire_time=timestamp_pb2.Timestamp(seconds=int(time.time()) - 60)),
                         agent_pb2.CreateApiKeyResponse, self.dev_md, t), self.args.agent_db)

    def key_escalation(self):
        for permissions in (["persona:write"], ["*"], ["agent:admin"], ["persona:read", "sql:write"]):
            self.refused(f"a viewer's key with {permissions}", grpc.StatusCode.PERMISSION_DENIED,
                         lambda t: self.auth("CreateApiKey", agent_pb2.CreateApiKeyRequest(name="escalate", permissions=permissions),
                                             agent_pb2.CreateApiKeyResponse, self.viewer_md, t), self.args.agent_db)
        # A key cannot mint keys, even one with fewer permissions.
        key = self.make_key(permissions=["persona:read"])
        self.refused("a key creating a key", grpc.StatusCode.PERMISSION_DENIED,
                     lambda t: self.auth("CreateApiKey", agent_pb2.CreateApiKeyRequest(name="child"), agent_pb2.CreateApiKeyResponse,
                                         [("x-api-key", key.secret)], t), self.args.agent_db)
        self.refused("a persona:read key writing", grpc.StatusCode.PERMISSION_DENIED,
                     lambda t: self.create_persona([("x-api-key", key.secret)], t), self.args.persona_db)

    def refresh_reuse(self):
        _, _, login, _ = self.new_user("refresh")
        first = login.tokens.refresh_token
        second = self.auth("RefreshToken", agent_pb2.RefreshTokenRequest(refresh_token=first),
                           agent_pb2.RefreshTokenResponse).tokens.refresh_token
        self.refused("a used refresh token again", grpc.StatusCode.UNAUTHENTICATED,
                     lambda t: self.auth("RefreshToken", agent_pb2.RefreshTokenRequest(refresh_token=first),
                                         agent_pb2.RefreshTokenResponse, trace=t), self.args.agent_db, action="refresh_reuse",
                     unchanged=False)
        self.refused("the family's newest token after the reuse", grpc.StatusCode.UNAUTHENTICATED,
                     lambda t: self.auth("RefreshToken", agent_pb2.RefreshTokenRequest(refresh_token=second),
                                         agent_pb2.RefreshTokenResponse, trace=t), self.args.agent_db, action="refresh_revoked")
        self.refused("a made-up refresh token", grpc.StatusCode.UNAUTHENTICATED,
                     lambda t: self.auth("RefreshToken", agent_pb2.RefreshTokenRequest(refresh_token="rt_" + "A" * 43),
                                         agent_pb2.RefreshTokenResponse, trace=t), self.args.agent_db, action="refresh_failed")

    def viewer_write(self):
        self.refused("a viewer creating a persona", grpc.StatusCode.PERMISSION_DENIED,
                     lambda t: self.create_persona(self.viewer_md, t), self.args.persona_db)
        self.list_personas(self.viewer_md)  # reading is allowed

    def non_admin(self):
        db = self.args.agent_db
        for who, md in (("viewer", self.viewer_md), ("developer", self.dev_md)):
            self.refused(f"a {who} making themself admin", grpc.StatusCode.PERMISSION_DENIED,
                         lambda t: self.users("UpdateUserRoles", agent_pb2.UpdateUserRolesRequest(
                             user_id=self.viewer_id if who == "viewer" else self.dev_id, roles=[agent_pb2.ROLE_ADMIN]),
                             agent_pb2.User, md, t), db)
            self.refused(f"a {who} listing users", grpc.StatusCode.PERMISSION_DENIED,
                         lambda t: self.users("ListUsers", agent_pb2.ListUsersRequest(), agent_pb2.ListUsersResponse, md, t), db)
            self.refused(f"a {who} defining a role", grpc.StatusCode.PERMISSION_DENIED,
                         lambda t: self.users("CreateRole", agent_pb2.CreateRoleRequest(role=agent_pb2.RoleDefinition(
                             name="escalated", permissions=["*"])), agent_pb2.RoleDefinition, md, t), db)
            self.refused(f"a {who} reading the admin", grpc.StatusCode.PERMISSION_DENIED,
                         lambda t: self.users("GetUser", agent_pb2.GetUserRequest(id=self.admin_id), agent_pb2.User, md, t), db)
            self.refused(f"a {who} deactivating the admin", grpc.StatusCode.PERMISSION_DENIED,
                         lambda t: self.users("DeactivateUser", agent_pb2.DeactivateUserRequest(user_id=self.admin_id),
                                              agent_pb2.User, md, t), db)
            self.refused(f"a {who} reading the audit log", grpc.StatusCode.PERMISSION_DENIED,
                         lambda t: self.users("ListAuditEvents", agent_pb2.ListAuditEventsRequest(),
                                              agent_pb2.ListAuditEventsResponse, md, t), db)

    def last_admin(self):
        db = self.args.agent_db
        admins = self.users("ListUsers", agent_pb2.ListUsersRequest(role=agent_pb2.ROLE_ADMIN), agent_pb2.ListUsersResponse,
                            self.admin_md)
        if [u.id for u in admins.users] != [self.admin_id]:
            raise Failure(f"expected the bootstrap admin to be the only admin, found {len(admins.users)}")
        self.refused("the last admin demoted", grpc.StatusCode.FAILED_PRECONDITION,
                     lambda t: self.users("UpdateUserRoles", agent_pb2.UpdateUserRolesRequest(
                         user_id=self.admin_id, roles=[agent_pb2.ROLE_DEVELOPER]), agent_pb2.User, self.admin_md, t), db)
        self.refused("the last admin deactivated", grpc.StatusCode.FAILED_PRECONDITION,
                     lambda t: self.users("DeactivateUser", agent_pb2.DeactivateUserRequest(user_id=self.admin_id), agent_pb2.User,
                                          self.admin_md, t), db)
        self.refused("the last admin deactivated through is_active", grpc.StatusCode.FAILED_PRECONDITION,
                     lambda t: self.users("UpdateUserRoles", agent_pb2.UpdateUserRolesRequest(
                         user_id=self.admin_id, roles=[agent_pb2.ROLE_ADMIN], is_active=False), agent_pb2.User, self.admin_md, t), db)
        self.refused("a built-in role redefined", grpc.StatusCode.FAILED_PRECONDITION,
                     lambda t: self.users("UpdateRole", agent_pb2.UpdateRoleRequest(role=agent_pb2.RoleDefinition(
                         name="viewer", permissions=["*"])), agent_pb2.RoleDefinition, self.admin_md, t), db)

    def brute_force(self):
        _, _, _, email = self.new_user("brute")
        codes, traces = [], []
        pushback = False
        started = time.monotonic()
        fingerprint = self.fingerprint()
        for i in range(50):
            trace = os.urandom(16).hex()
            traces.append(trace)
            try:
                self.login(email, f"wrong password {i}", trace=trace)
                raise Failure(f"wrong password {i} was accepted")
            except grpc.RpcError as e:
                codes.append(e.code())
                if e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                    pushback |= any(k == "grpc-retry-pushback-ms" for k, _ in (e.trailing_metadata() or ()))
                elif e.code() != grpc.StatusCode.UNAUTHENTICATED:
                    raise Failure(f"attempt {i}: {e.code().name}: {e.details()!r}")
            # Each attempt changes nothing: compared with the state just before it.
            before, fingerprint = fingerprint, self.fingerprint()
            self.same(f"wrong password {i} ({codes[-1].name})", before, fingerprint)
        limited = codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED)
        if limited < 30:
            raise Failure(f"only {limited} of 50 wrong passwords were rate limited")
        if not pushback:
            raise Failure("RESOURCE_EXHAUSTED without grpc-retry-pushback-ms")
        # Locked: the right password is refused too, for now.
        self.refused("the right password while locked", grpc.StatusCode.RESOURCE_EXHAUSTED, lambda t: self.login(email, trace=t),
                     self.args.agent_db, action="login_limited")
        time.sleep(1)
        rows = self.sql(self.args.agent_db, "SELECT action FROM auth_audit_log WHERE trace_id IN ("
                        + ",".join(f"'{t}'" for t in traces) + ")").splitlines()
        if len(rows) != 50 or rows.count("login_failed") != 50 - limited:
            raise Failure(f"50 wrong passwords left {len(rows)} audit rows ({rows.count('login_failed')} login_failed, "
                          f"{rows.count('login_limited')} login_limited); want 50, {50 - limited} login_failed")
        print(f"  50 wrong passwords: {50 - limited} answered UNAUTHENTICATED, {limited} RESOURCE_EXHAUSTED, "
              f"each changing nothing, in {time.monotonic() - started:.1f} s", flush=True)

    def huge_password(self):
        _, _, _, email = self.new_user("huge")
        huge = "p" * (1 << 20)
        started = time.monotonic()
        self.refused("Register with a 1 MB password", grpc.StatusCode.INVALID_ARGUMENT,
                     lambda t: self.register(f"huge-{uuid.uuid4().hex[:8]}@example.com", huge, trace=t), self.args.agent_db)
        register_s = time.monotonic() - started
        started = time.monotonic()
        self.refused("Login with a 1 MB password", grpc.StatusCode.UNAUTHENTICATED, lambda t: self.login(email, huge, trace=t),
                     self.args.agent_db, action="login_failed")
        login_s = time.monotonic() - started
        if register_s > 1.0:
            raise Failure(f"Register with a 1 MB password took {register_s:.2f} s: it was hashed")
        if login_s > 6.0:
            raise Failure(f"Login with a 1 MB password took {login_s:.2f} s")

    def sql_emails(self):
        db = self.args.agent_db
        for email in ["x' OR '1'='1", "' OR 1=1 --@example.com", "a@b.com'; DROP TABLE users;--", "\"; DELETE FROM users; --@x.io",
                      "admin@example.com\x00' OR 1=1", "_@example.com\n", "a@example.com\r\nBcc: b@example.com"]:
            self.refused(f"Register {email!r}", grpc.StatusCode.INVALID_ARGUMENT, lambda t: self.register(email, trace=t), db)
            self.refused(f"Login {email!r}", grpc.StatusCode.UNAUTHENTICATED, lambda t: self.login(email, trace=t), db,
                         action="login_failed")
        if int(self.sql(db, "SELECT count(*) FROM users")) < 3:
            raise Failure("the users table lost rows")

    def email_case(self):
        tag = uuid.uuid4().hex[:8]
        first = self.register(f"Case-{tag}@Example.COM")
        if first.email != f"case-{tag}@example.com":
            raise Failure(f"stored as {first.email!r}")
        for variant in (f"case-{tag}@example.com", f"CASE-{tag}@EXAMPLE.COM", f"  case-{tag}@example.com "):
            self.refused(f"Register {variant!r} again", grpc.StatusCode.ALREADY_EXISTS, lambda t: self.register(variant, trace=t),
                         self.args.agent_db)
        if self.login(f"cASE-{tag}@eXAMPLE.com").user.id != first.id:
            raise Failure("a differently cased login reached another account")
        count = self.sql(self.args.agent_db, f"SELECT count(*) FROM users WHERE lower(email) = 'case-{tag}@example.com'")
        if count != "1":
            raise Failure(f"{count} accounts for one address")

    def lookalikes(self):
        db = self.args.agent_db
        tag = uuid.uuid4().hex[:8]
        self.register(f"admin-{tag}@example.com")
        for email in [f"\u0430dmin-{tag}@example.com",      # Cyrillic a
                      f"\uff41dmin-{tag}@example.com",      # fullwidth a
                      f"ad\u200bmin-{tag}@example.com",     # zero-width space
                      f"admi\u0301n-{tag}@example.com",     # combining accent
                      f"admin-{tag}@ex\u0430mple.com",      # Cyrillic a in the domain
                      f"admin-{tag}@example.com\u202e",     # right-to-left override
                      f"\u212admin-{tag}@example.com"]:     # Kelvin sign, lowercases to k
            self.refused(f"Register {email!r}", grpc.StatusCode.INVALID_ARGUMENT, lambda t: self.register(email, trace=t), db)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--agent-port", type=int, required=True)
    parser.add_argument("--persona-port", type=int, required=True)
    parser.add_argument("--agent-db", required=True)
    parser.add_argument("--persona-db", required=True)
    parser.add_argument("--jwks", required=True)
    parser.add_argument("--admin-email", required=True)
    parser.add_argument("--admin-password", required=True)
    parser.add_argument("--key-cache-seconds", type=int, default=30)
    return Suite(parser.parse_args()).run()


if __name__ == "__main__":
    sys.exit(main())
