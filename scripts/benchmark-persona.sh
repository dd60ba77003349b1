#!/usr/bin/env bash
# Persona service benchmark: GetPersona (a read) and RenderPersona (schema check, Mustache render
# and a usage_count UPDATE) under h2load, against the local PostgreSQL.
#
#   scripts/benchmark-persona.sh [options] [path/to/persona]   (default .build/release/persona)
#
#   --duration S     seconds per measured run (default 10)
#   --config "ARGS"  h2load connection flags; repeat for several (default "-c 1 -m 1", "-c 8 -m 8")
#
# Starts PostgreSQL and Redis when they are not running (scripts/local-services.sh), then its own
# persona server on a free port pinned to CPU 0 with h2load on CPU 1; PostgreSQL is not pinned.
# Each RPC gets a 2-second warm-up, then one run per config. Reported per run: requests/s,
# latency percentiles from h2load's per-request log, CPU seconds of persona and of PostgreSQL,
# and requests per persona CPU-second.
#
# h2load cannot see grpc-status, so every run's DATA bytes per request must equal a correct
# reply's, and after each RenderPersona run the persona's usage_count must have grown by at least
# the renders h2load saw answered (an acknowledged render is never lost) and at most the ones it
# started.
set -uo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/bench-lib.sh
source "$REPO/scripts/bench-lib.sh"
SERVER_CPU=0 LOAD_CPU=1
duration=10 CONFIGS=() PERSONA=
while [ $# -gt 0 ]; do
  case $1 in
    --duration) duration=$2; shift ;;
    --config) CONFIGS+=("$2"); shift ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "benchmark-persona.sh: unknown option $1" >&2; exit 2 ;;
    *) PERSONA=$1 ;;
  esac
  shift
done
[ ${#CONFIGS[@]} -gt 0 ] || CONFIGS=("-c 1 -m 1" "-c 8 -m 8")
PERSONA=${PERSONA:-$REPO/.build/release/persona}
[ -x "$PERSONA" ] || { echo "benchmark-persona.sh: no persona binary at $PERSONA (swift build -c release --product persona)" >&2; exit 2; }
[ "$(nproc)" -ge 2 ] || { echo "benchmark-persona.sh: needs 2 CPUs (server on 0, h2load on 1)" >&2; exit 2; }
PY=/usr/bin/python3

"$REPO/scripts/local-services.sh" up >/dev/null || exit 1
TMP=$(mktemp -d)
# A token key of the run's own: the server trusts its public half, the client signs with it.
"$PY" "$REPO/scripts/jwt_keys.py" generate --kid bench --private "$TMP/jwt-private.jwk" --public "$TMP/jwks.json" || exit 2
export JWT_PRIVATE_KEY=$TMP/jwt-private.jwk
LOGS=$REPO/.local/logs/bench-persona
rm -rf "$LOGS" && mkdir -p "$LOGS"
SERVER_PID=
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PORT=$(free_port)
# taskset execs the server: $! is the server's own PID, whose /proc stat we read.
PORT=$PORT LOG_LEVEL=warning JWT_PUBLIC_KEYS=$TMP/jwks.json taskset -c "$SERVER_CPU" "$PERSONA" >"$LOGS/server.log" 2>&1 &
SERVER_PID=$!
"$PY" "$REPO/Tests/Interop/persona/persona_client.py" health --port "$PORT" --pid "$SERVER_PID" --timeout 60 \
  || { cat "$LOGS/server.log" >&2; exit 1; }
"$PY" "$REPO/scripts/persona_bench.py" setup --port "$PORT" --out "$TMP" || exit 1
TOKEN=$(<"$TMP/token")

h2load_run() {   # h2load_run RPC LOG H2LOAD-ARGS...
  local rpc=$1 log=$2
  shift 2
  taskset -c "$LOAD_CPU" h2load "$@" -d "$TMP/${rpc,,}.bin" \
    -H 'content-type: application/grpc' -H 'te: trailers' -H "authorization: Bearer $TOKEN" \
    "http://127.0.0.1:$PORT/platform.persona.v1.PersonaService/${rpc}Persona" >"$log" 2>&1
}

usage_count() { "$PY" "$REPO/scripts/persona_bench.py" usage --port "$PORT" --dir "$TMP"; }

echo "# Persona benchmark ($(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, $(h2load --version | head -1))"
echo
echo "persona on CPU $SERVER_CPU, h2load on CPU $LOAD_CPU, PostgreSQL unpinned; ${duration}s per run after a 2s warm-up."
echo
# Get and Render are answered from the persona cache in Redis (the local services' redis-server).
REDIS_PID=$(local_redis_pid)
redis_cpu() { if [ -n "$REDIS_PID" ] && [ -e "/proc/$REDIS_PID" ]; then cpu_seconds "$REDIS_PID"; else echo 0; fi; }
echo "| RPC | config | req/s | p50 ms | p90 ms | p99 ms | max ms | persona CPU-s | postgres CPU-s | redis CPU-s | req per persona CPU-s |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
failed=0
for rpc in Get Render; do
  h2load_run "$rpc" "$LOGS/warmup-$rpc.log" -c 4 -m 4 -D 2
  for config in "${CONFIGS[@]}"; do
    name=$rpc-${config// /}
    log=$LOGS/$name.log
    [ "$rpc" = Render ] && uses_before=$(usage_count)
    before=$(cpu_seconds "$SERVER_PID")
    redis_before=$(redis_cpu)
    postgres_cpu_snapshot >"$TMP/pg-before"
    # shellcheck disable=SC2086  # config is deliberately split into h2load flags
    h2load_run "$rpc" "$log" $config -D "$duration" --log-file="$LOGS/$name.requests"
    postgres_cpu_snapshot >"$TMP/pg-after"
    after=$(cpu_seconds "$SERVER_PID")
    redis=$(awk -v a="$redis_before" -v b="$(redis_cpu)" 'BEGIN { printf "%.2f", b - a }')
    rps=$(awk '/^finished in/ { print $4 + 0 }' "$log")
    ok=$(awk '/^requests:/ { print $8 + 0 }' "$log")
    data=$(sed -n 's/^traffic:.*(\([0-9]*\)) data$/\1/p' "$log")
    cpu=$(awk -v a="$before" -v b="$after" 'BEGIN { printf "%.2f", b - a }')
    pg=$(postgres_cpu_delta "$TMP/pg-before" "$TMP/pg-after")
    eff=$(awk -v n="$ok" -v c="$cpu" 'BEGIN { if (c > 0) printf "%.0f", n / c; else print 0 }')
    note=
    want=$(<"$TMP/${rpc,,}.size")
    if [ "${ok:-0}" = 0 ]; then
      note=" (no successful requests: see $log)"; failed=1
    elif [ "$data" != $((ok * want)) ]; then
      note=" (DATA is $data bytes for $ok replies of $want: some were errors, see $log)"; failed=1
    elif [ "$rpc" = Render ]; then
      # h2load stops at the deadline with requests in flight ("started", not "done"): the
      # server may have counted those too, but never fewer than the answered ones.
      started=$(awk '/^requests:/ { print $4 + 0 }' "$log")
      grown=$(($(usage_count) - uses_before))
      if [ "$grown" -lt "$ok" ] || [ "$grown" -gt "$started" ]; then
        note=" (usage_count grew by $grown: $ok renders were answered, $started started)"; failed=1
      fi
    fi
    echo "| $rpc | $config | ${rps:-?} | $(h2load_percentiles "$LOGS/$name.requests" " | ") | $cpu | $pg | $redis | $eff$note |"
  done
done
echo
echo "(raw h2load output and per-request logs: $LOGS)"
exit "$failed"
