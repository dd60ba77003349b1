#!/usr/bin/env bash
# Unary echo benchmark: the Swift runtime's echo server against grpc-go 1.33, same load, same box.
#
#   scripts/benchmark.sh [options] [path/to/rpc-interop]   (or RPC_INTEROP=path; a release build)
#
#   --go-only        benchmark only the Go echo server (checks the harness without Swift)
#   --duration S     seconds per h2load run (default 10)
#   --rounds N       runs per server and config (default 2)
#
# Each server is pinned to CPU 0 and h2load to CPU 1 (taskset), so the load generator never
# competes with the server. For every config the runs are interleaved (go, swift, go, swift) so
# drift on the machine hits both alike. The load is h2load POSTing one length-prefixed EchoRequest
# {text: "hello"} to /platform.echo.v1.EchoService/Echo with content-type application/grpc and
# te: trailers, for a fixed duration. Server CPU is utime+stime from /proc/PID/stat (all threads)
# before/after each run; the figure of merit is requests per server CPU-second.
#
# h2load cannot see grpc-status, so each server first passes the Go interop client's `echo` case,
# and every run's received DATA bytes per request are checked (a correct reply is 12 bytes).
set -uo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/bench-lib.sh
source "$REPO/scripts/bench-lib.sh"
BUILD=${INTEROP_BUILD_DIR:-$REPO/.build-interop}
LOGS=$BUILD/logs/bench
SERVER_CPU=0 LOAD_CPU=1
duration=10 rounds=2 go_only=0 RPC_INTEROP=${RPC_INTEROP:-}
CONFIGS=("-c 1 -m 1" "-c 4 -m 16" "-c 16 -m 64")
PATH_ECHO=/platform.echo.v1.EchoService/Echo

while [ $# -gt 0 ]; do
  case $1 in
    --go-only) go_only=1 ;;
    --duration) duration=$2; shift ;;
    --rounds) rounds=$2; shift ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "benchmark.sh: unknown option $1" >&2; exit 2 ;;
    *) RPC_INTEROP=$1 ;;
  esac
  shift
done
SERVERS=(go swift)
if [ "$go_only" = 1 ]; then
  SERVERS=(go)
elif [ -z "$RPC_INTEROP" ] || [ ! -x "$RPC_INTEROP" ]; then
  echo "benchmark.sh: give the Swift rpc-interop binary (argument or RPC_INTEROP), or --go-only" >&2
  exit 2
fi
[ "$(nproc)" -ge 2 ] || { echo "benchmark.sh: needs 2 CPUs (server on 0, h2load on 1)" >&2; exit 2; }

TMP=$(mktemp -d)
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
rm -rf "$LOGS"
mkdir -p "$LOGS"

if ! "$REPO/Tests/Interop/go/build.sh" "$BUILD/go" >"$LOGS/build-go.log" 2>&1; then
  cat "$LOGS/build-go.log" >&2
  exit 2
fi

# One gRPC message: 5-byte prefix (uncompressed, length 7) + EchoRequest{text: "hello"}
# (field 1, wire type 2 = 0x0a, length 5).
REQ=$TMP/echo-request.bin
printf '\x00\x00\x00\x00\x07\x0a\x05hello' >"$REQ"

declare -A PORT PID
start_server() {   # start_server go|swift
  local port i
  port=$(free_port)
  local cmd=("$BUILD/go/go-echo-server" --port "$port")
  [ "$1" = swift ] && cmd=("$RPC_INTEROP" echo-server --port "$port")
  # A simple command (not a compound one, which would fork a subshell) and taskset execs the
  # server: $! is the server's own PID, whose /proc stat we read.
  taskset -c "$SERVER_CPU" "${cmd[@]}" >"$LOGS/server-$1.log" 2>&1 &
  PID[$1]=$!
  PIDS+=($!)
  for i in $(seq 100); do
    kill -0 "${PID[$1]}" 2>/dev/null || break
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then PORT[$1]=$port; return 0; fi
    sleep 0.1
  done
  echo "benchmark.sh: the $1 echo server did not start; see $LOGS/server-$1.log" >&2
  exit 1
}

h2load_run() {   # h2load_run PORT LOG H2LOAD-ARGS...
  local port=$1 log=$2
  shift 2
  taskset -c "$LOAD_CPU" h2load "$@" -d "$REQ" \
    -H 'content-type: application/grpc' -H 'te: trailers' \
    "http://127.0.0.1:$port$PATH_ECHO" >"$log" 2>&1
}

# Latency as printed by h2load (us/ms/s) -> milliseconds.
to_ms() {
  awk '{ v = $1 + 0; if ($1 ~ /us$/) v /= 1000; else if ($1 ~ /ms$/) v += 0; else if ($1 ~ /s$/) v *= 1000; printf "%.3f", v }' <<<"$1"
}

for s in "${SERVERS[@]}"; do
  start_server "$s"
  # Correctness first: the full EchoService check from the Go interop client.
  if ! "$BUILD/go/go-interop-client" --server_port "${PORT[$s]}" --test_case echo \
      >"$LOGS/check-$s.log" 2>&1; then
    echo "benchmark.sh: the $s echo server fails the echo check:" >&2
    cat "$LOGS/check-$s.log" >&2
    exit 1
  fi
  # Warm-up (not measured): JIT-free languages still have lazy allocations, page faults, pools.
  h2load_run "${PORT[$s]}" "$LOGS/warmup-$s.log" -c 4 -m 16 -n 50000
done

echo "# Unary echo benchmark ($(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, $(h2load --version | head -1))"
echo
echo "Server on CPU $SERVER_CPU, h2load on CPU $LOAD_CPU; ${duration}s per run, $rounds round(s), interleaved."
echo
echo "| server | config | run | req/s | mean latency (ms) | server CPU (s) | req per server CPU-s |"
echo "|---|---|---|---:|---:|---:|---:|"

declare -A SUM_RPS SUM_EFF
failed=0
for config in "${CONFIGS[@]}"; do
  for round in $(seq "$rounds"); do
    for s in "${SERVERS[@]}"; do
      log=$LOGS/run-$s-${config// /}-$round.log
      before=$(cpu_seconds "${PID[$s]}")
      # shellcheck disable=SC2086  # config is deliberately split into h2load flags
      h2load_run "${PORT[$s]}" "$log" $config -D "$duration"
      after=$(cpu_seconds "${PID[$s]}")
      rps=$(awk '/^finished in/ { print $4 + 0 }' "$log")
      ok=$(awk '/^requests:/ { print $8 + 0 }' "$log")
      data=$(sed -n 's/^traffic:.*(\([0-9]*\)) data$/\1/p' "$log")
      lat=$(to_ms "$(awk '/^time for request:/ { print $6 }' "$log")")
      cpu=$(awk -v a="$before" -v b="$after" 'BEGIN { printf "%.2f", b - a }')
      eff=$(awk -v n="$ok" -v c="$cpu" 'BEGIN { if (c > 0) printf "%.0f", n / c; else print 0 }')
      note=
      if [ "${ok:-0}" = 0 ]; then
        note=" (no successful requests: see $log)"; failed=1
      elif [ "$(awk -v d="$data" -v n="$ok" 'BEGIN { print (d / n < 11.5 || d / n > 12.5) }')" = 1 ]; then
        note=" (replies are not 12-byte echo messages: see $log)"; failed=1
      fi
      echo "| $s | $config | $round | ${rps:-?} | $lat | $cpu | $eff$note |"
      SUM_RPS[$s $config]=$(awk -v a="${SUM_RPS[$s $config]:-0}" -v b="${rps:-0}" 'BEGIN { print a + b }')
      SUM_EFF[$s $config]=$(awk -v a="${SUM_EFF[$s $config]:-0}" -v b="$eff" 'BEGIN { print a + b }')
    done
  done
done

avg() { awk -v s="$1" -v n="$rounds" 'BEGIN { printf "%.0f", s / n }'; }
echo
if [ "$go_only" = 1 ]; then
  echo "| config | go req/s | go req per CPU-s |"
  echo "|---|---:|---:|"
  for config in "${CONFIGS[@]}"; do
    echo "| $config | $(avg "${SUM_RPS[go $config]}") | $(avg "${SUM_EFF[go $config]}") |"
  done
else
  echo "| config | go req/s | swift req/s | go req per CPU-s | swift req per CPU-s | swift/go (req/s) | swift/go (per CPU-s) |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
  for config in "${CONFIGS[@]}"; do
    g=${SUM_RPS[go $config]} w=${SUM_RPS[swift $config]}
    ge=${SUM_EFF[go $config]} we=${SUM_EFF[swift $config]}
    ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
    echo "| $config | $(avg "$g") | $(avg "$w") | $(avg "$ge") | $(avg "$we") | $(ratio "$w" "$g") | $(ratio "$we" "$ge") |"
  done
fi
echo
echo "(raw h2load output: $LOGS)"
exit "$failed"
