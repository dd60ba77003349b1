#!/usr/bin/python3
"""Ed25519 keys for the platform's access tokens (EdDSA JWTs), as JWKs (RFC 8037).

    scripts/jwt_keys.py generate --kid KID --private PRIVATE.jwk --public JWKS.json [--keep-old]

writes a new private key (only the agent service reads it: JWT_PRIVATE_KEY) and the public key
set every service verifies with (JWT_PUBLIC_KEYS). With --keep-old the keys already in JWKS.json
stay in the set: tokens signed with the old key keep verifying until they expire (a rotation).
Files are written with mode 0600 (the private key) and 0644.

    scripts/jwt_keys.py mint --private PRIVATE.jwk --sub USER_UUID [--roles developer] [--ttl 3600]

prints a signed access token (iss/aud from $JWT_ISSUER/$JWT_AUDIENCE, default "platform").
Needs Debian's python3-cryptography.
"""
import argparse
import base64
import json
import os
import sys
import time

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def private_jwk(kid):
    key = Ed25519PrivateKey.generate()
    d = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    x = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": kid, "x": b64url(x), "d": b64url(d)}


def public_jwk(jwk):
    return {name: value for name, value in jwk.items() if name != "d"}


def mint(jwk, sub, roles=("developer",), permissions=(), ttl=3600, now=None, extra=None, header=None):
    """An EdDSA access token as the agent service signs it."""
    key = Ed25519PrivateKey.from_private_bytes(unb64url(jwk["d"]))
    now = int(time.time()) if now is None else now
    claims = {
        "sub": sub,
        "iss": os.environ.get("JWT_ISSUER", "platform"),
        "aud": os.environ.get("JWT_AUDIENCE", "platform"),
        "iat": now,
        "exp": now + ttl,
        "roles": list(roles),
        "permissions": list(permissions),
    }
    claims.update(extra or {})
    head = header or {"alg": "EdDSA", "typ": "JWT", "kid": jwk["kid"]}
    signing_input = ".".join(b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (head, claims))
    return signing_input + "." + b64url(key.sign(signing_input.encode("ascii")))


def write(path, text, mode):
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate")
    g.add_argument("--kid", required=True)
    g.add_argument("--private", required=True)
    g.add_argument("--public", required=True)
    g.add_argument("--keep-old", action="store_true")
    m = sub.add_parser("mint")
    m.add_argument("--private", required=True)
    m.add_argument("--sub", required=True)
    m.add_argument("--roles", default="developer")
    m.add_argument("--ttl", type=int, default=3600)
    args = parser.parse_args()
    if args.command == "generate":
        jwk = private_jwk(args.kid)
        keys = []
        if args.keep_old and os.path.exists(args.public):
            with open(args.public) as f:
                keys = [k for k in json.load(f)["keys"] if k.get("kid") != args.kid][-1:]
        keys.append(public_jwk(jwk))
        write(args.private, json.dumps(jwk) + "\n", 0o600)
        write(args.public, json.dumps({"keys": keys}) + "\n", 0o644)
        return 0
    with open(args.private) as f:
        jwk = json.load(f)
    print(mint(jwk, args.sub, roles=[r for r in args.roles.split(",") if r], ttl=args.ttl))
    return 0


if __name__ == "__main__":
    sys.exit(main())
