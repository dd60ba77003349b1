#!/usr/bin/env bash
# One trace id through every hop of an agent execution, checked at a real OTLP receiver:
#
#   scripts/agent-trace.sh path/to/agent     (e.g. "$(swift build --show-bin-path)/agent"; the
#                                            other services' binaries must be next to it)
#
# Starts Tests/Tracing/otlp_receiver.py, then the platform with `scripts/platform.sh up` from
# that binary directory (PLATFORM_BIN_DIR, a state directory of its own under /tmp, offline
# embeddings, every service exporting its spans to the receiver every 200 ms; the usual ports
# 50051-50056 must be free), makes a user, a persona, a knowledge base, a SQLite database and an
# agent with knowledge_rag, text_to_sql and code_executor (scripts/agent_bench.py setup), and
# runs Tests/Hostile/agent_trace.py: one sync StartExecution with a `traceparent` of its own,
# whose trace id must reach persona, knowledge, text-to-SQL and the sandbox (spans with it from
# all five services), the agent's server span the child of the caller's span, and each hop's
# server span (RenderPersona, Search, AskQuestion, ExecuteCode) the child of the agent's client
# span of that call, none of them in a trace of its own. One PASS/FAIL line per check, then
# "agent trace: N passed, M failed" (on a failure, the spans found per service before it and
# the services' last log lines after it); exits 1 on any failure, 2 when it cannot run (a port
# taken, no receiver, the platform or the setup failed). Needs root (the sandbox's slot uids and
# cgroups) and PostgreSQL and Redis (scripts/local-services.sh up). About 10 s with debug
# binaries. The platform is brought down, the receiver stopped and the state directory removed
# on exit.
#
# Env: OTLP_PYTHON (a python with opentelemetry-proto; default .local/venv/bin/python). Your
# OTEL_* variables, <SERVICE>_ADDR and HOST are not passed on (the test sets its own).
set -uo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
PY=/usr/bin/python3
OTLP_PY=${OTLP_PYTHON:-$REPO/.local/venv/bin/python}
die() { echo "agent-trace.sh: $*" >&2; exit 2; }

[ $# = 1 ] || die "usage: scripts/agent-trace.sh path/to/agent"
BIN_DIR=$(cd "$(dirname "$1")" 2>/dev/null && pwd) || die "no directory $(dirname "$1")"
for binary in agent persona knowledge text-to-sql code-sandbox sandbox-exec workflow; do
  [ -x "$BIN_DIR/$binary" ] || die "no executable $binary in $BIN_DIR"
done
[ "$(id -u)" = 0 ] || die "needs root (the sandbox's slot uids and cgroups)"
"$OTLP_PY" -c 'import opentelemetry.proto.collector.trace.v1.trace_service_pb2' 2>/dev/null ||
  die "no opentelemetry-proto at $OTLP_PY (run scripts/install-deps.sh)"
for port in 50051 50052 50053 50054 50055 50056; do
  "$PY" -c "import socket, sys; s = socket.socket(); s.settimeout(0.3); sys.exit(s.connect_ex(('127.0.0.1', $port)) != 0)" &&
    die "port $port is in use (the platform is up? scripts/platform.sh down)"
done

STATE=$(mktemp -d /tmp/agent-trace.XXXXXX)
RECEIVER_PID=""
cleanup() {
  PLATFORM_STATE_DIR=$STATE "$REPO/scripts/platform.sh" down >/dev/null 2>&1
  [ -n "$RECEIVER_PID" ] && kill "$RECEIVER_PID" 2>/dev/null
  rm -rf "$STATE"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$OTLP_PY" "$REPO/Tests/Tracing/otlp_receiver.py" --out "$STATE/spans.jsonl" --port-file "$STATE/otlp-port" \
  2>"$STATE/otlp-receiver.log" &
RECEIVER_PID=$!
for _ in $(seq 100); do [ -s "$STATE/otlp-port" ] && break; sleep 0.1; done
[ -s "$STATE/otlp-port" ] || { cat "$STATE/otlp-receiver.log" >&2; die "the OTLP receiver did not start"; }

# Only this receiver, every span, over OTLP/HTTP: none of your OTEL_* (a traces endpoint, a
# sampler, OTEL_SDK_DISABLED, a protocol) and no <SERVICE>_ADDR (the ports above are the ones).
for var in $(compgen -e); do
  case $var in OTEL_*|AGENT_ADDR|PERSONA_ADDR|CODE_SANDBOX_ADDR|TEXT_TO_SQL_ADDR|KNOWLEDGE_ADDR|WORKFLOW_ADDR|HOST) unset "$var" ;; esac
done
export PLATFORM_STATE_DIR=$STATE PLATFORM_BIN_DIR=$BIN_DIR PLATFORM_EMBEDDINGS=offline LOG_LEVEL=warning
export OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$(cat "$STATE/otlp-port") OTEL_BSP_SCHEDULE_DELAY=200
"$REPO/scripts/platform.sh" up >"$STATE/up.log" 2>&1 || { tail -30 "$STATE/up.log" >&2; die "the platform did not come up"; }

export JWT_PRIVATE_KEY=$STATE/keys/jwt-private.jwk
"$PY" "$REPO/scripts/agent_bench.py" setup --agent 127.0.0.1:50051 --persona 127.0.0.1:50052 --sandbox 127.0.0.1:50053 \
  --sql 127.0.0.1:50054 --knowledge 127.0.0.1:50055 --sqlite-dir "$STATE/sqlite" --out "$STATE/bench" ||
  die "the agent, its plugins and their data could not be set up"
"$PY" "$REPO/Tests/Hostile/agent_trace.py" --agent 127.0.0.1:50051 --bench-dir "$STATE/bench" --spans "$STATE/spans.jsonl"
rc=$?
if [ "$rc" != 0 ]; then
  for log in "$STATE"/logs/*.log "$STATE/otlp-receiver.log"; do
    [ -s "$log" ] && { echo "--- $(basename "$log") (last 15 lines)"; tail -15 "$log"; }
  done
fi
exit $((rc == 0 ? 0 : 1))
