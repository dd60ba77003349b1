#!/usr/bin/env bash
# The runtime against grpc-go 1.33, same load, same box: unary echo, grpc.health.v1 on the
# persona executable, server streaming, 1 MiB messages.
#
#   scripts/benchmark.sh [options] [path/to/rpc-interop]   (or RPC_INTEROP=path; a release build)
#
#   --workload W     echo (default), health, stream, large, large-text, or all; repeat for several
#   --persona PATH   the persona executable for `health` (default: next to rpc-interop)
#   --go-only        benchmark only the Go servers (checks the harness without Swift)
#   --duration S     seconds per h2load run (default 10)
#   --rounds N       runs per server and config (default 2)
#
# Workloads (h2load POSTs one length-prefixed request with content-type application/grpc and
# te: trailers, for a fixed duration):
#   echo    platform.echo.v1.EchoService/Echo {text: "hello"}: rpc-interop echo-server (async
#           handler, a chain of three pass-through interceptors, synchronous as the platform's
#           tracing, metrics and error mapping are; ECHO_INTERCEPTORS=async|none for the other
#           shapes) against go-echo-server; -c 1 -m 1, -c 4 -m 16, -c 16 -m 64.
#   health  grpc.health.v1.Health/Check {}: the persona executable (PlatformServer, its whole
#           interceptor chain, its database on the local PostgreSQL) against grpc-go's health
#           server (google.golang.org/grpc/health in go-echo-server); the same three configs.
#   stream  grpc.testing.TestService/StreamingOutputCall, 1,000 responses of 100 bytes per call:
#           rpc-interop server against go-interop-server; -c 1 -m 1, -c 4 -m 4.
#   large   grpc.testing.TestService/UnaryCall with a 1 MiB payload each way (`bytes` fields):
#           rpc-interop server against go-interop-server; -c 1 -m 1, -c 4 -m 4.
#   large-text  Echo with a 1 MiB text (a `string` field each way): rpc-interop echo-server
#           against go-echo-server; -c 1 -m 1, -c 4 -m 4. SwiftProtobuf validates a string's UTF-8
#           scalar by scalar before building it, over a third of our server's CPU here: the
#           figure measures that library as much as the runtime.
#
# Each server is pinned to CPU 0 and h2load to CPU 1 (taskset), so the load generator never
# competes with the server. For every config the runs are interleaved (go, swift, go, swift) so
# drift on the machine hits both alike. Server CPU is utime+stime from /proc/PID/stat (all
# threads) before/after each run; the figure of merit is requests per server CPU-second.
#
# h2load cannot see grpc-status, so each server first passes a correctness check (the Go interop
# client's `echo` case, or one checked call), and every run's received DATA bytes per request
# must be a correct reply's.
set -uo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/bench-lib.sh
source "$REPO/scripts/bench-lib.sh"
BUILD=${INTEROP_BUILD_DIR:-$REPO/.build-interop}
LOGS=$BUILD/logs/bench
SERVER_CPU=0 LOAD_CPU=1
duration=10 rounds=2 go_only=0 RPC_INTEROP=${RPC_INTEROP:-} PERSONA=${PERSONA:-}
WORKLOADS=()

while [ $# -gt 0 ]; do
  case $1 in
    --workload)
      case $2 in
        all) WORKLOADS+=(echo health stream large large-text) ;;
        echo|health|stream|large|large-text) WORKLOADS+=("$2") ;;
        *) echo "benchmark.sh: unknown workload $2" >&2; exit 2 ;;
      esac
      shift ;;
    --persona) PERSONA=$2; shift ;;
    --go-only) go_only=1 ;;
    --duration) duration=$2; shift ;;
    --rounds) rounds=$2; shift ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "benchmark.sh: unknown option $1" >&2; exit 2 ;;
    *) RPC_INTEROP=$1 ;;
  esac
  shift
done
[ ${#WORKLOADS[@]} -gt 0 ] || WORKLOADS=(echo)
SERVERS=(go swift)
if [ "$go_only" = 1 ]; then
  SERVERS=(go)
elif [ -z "$RPC_INTEROP" ] || [ ! -x "$RPC_INTEROP" ]; then
  echo "benchmark.sh: give the Swift rpc-interop binary (argument or RPC_INTEROP), or --go-only" >&2
  exit 2
fi
PERSONA=${PERSONA:-$(dirname "${RPC_INTEROP:-.}")/persona}
if [[ " ${WORKLOADS[*]} " == *" health "* ]] && [ "$go_only" = 0 ] && [ ! -x "$PERSONA" ]; then
  echo "benchmark.sh: the health workload needs the persona executable (--persona; swift build -c release --product persona)" >&2
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

# The requests, as length-prefixed gRPC messages.
/usr/bin/python3 - "$TMP" <<'PY'
import struct, sys
def varint(n):
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)
def field(number, payload):  # a length-delimited field
    return bytes([number << 3 | 2]) + varint(len(payload)) + payload
def message(payload):
    return b"\0" + struct.pack(">I", len(payload)) + payload
tmp = sys.argv[1]
requests = {
    "echo": field(1, b"hello"),                                    # EchoRequest{text}
    "health": b"",                                                 # HealthCheckRequest{}
    # StreamingOutputCallRequest{response_parameters: 1,000 × {size: 100}}
    "stream": b"".join(field(2, bytes([0x08]) + varint(100)) for _ in range(1000)),
    # SimpleRequest{response_size: 1 MiB, payload: {body: 1 MiB}}
    "large": bytes([0x10]) + varint(1 << 20) + field(3, field(2, b"\1" * (1 << 20))),
    "large-text": field(1, b"x" * (1 << 20)),                      # EchoRequest{1 MiB text}
}
for name, payload in requests.items():
    open(f"{tmp}/{name}.bin", "wb").write(message(payload))
# The reply's DATA bytes: echo and large send the request back; health is {status: SERVING};
# stream is 1,000 × StreamingOutputCallResponse{payload: {body: 100 bytes}}; large is
# SimpleResponse{payload: {body: 1 MiB of zeros}}.
replies = {
    "echo": len(message(field(1, b"hello"))),
    "health": len(message(bytes([0x08, 0x01]))),
    "stream": 1000 * len(message(field(1, field(2, b"\0" * 100)))),
    "large": len(message(field(1, field(2, b"\0" * (1 << 20))))),
    "large-text": len(message(field(1, b"x" * (1 << 20)))),
}
for name, size in replies.items():
    open(f"{tmp}/{name}.size", "w").write(str(size))
PY

workload_path() {
  case $1 in
    echo|large-text) echo /platform.echo.v1.EchoService/Echo ;;
    health) echo /grpc.health.v1.Health/Check ;;
    stream) echo /grpc.testing.TestService/StreamingOutputCall ;;
    large) echo /grpc.testing.TestService/UnaryCall ;;
  esac
}
workload_configs() {
  case $1 in
    echo|health) CONFIGS=("-c 1 -m 1" "-c 4 -m 16" "-c 16 -m 64") ;;
    stream|large|large-text) CONFIGS=("-c 1 -m 1" "-c 4 -m 4") ;;
  esac
}

declare -A PORT PID
start_server() {   # start_server WORKLOAD go|swift
  local port i cmd env=()
  port=$(free_port)
  case $1-$2 in
    stream-go|large-go) cmd=("$BUILD/go/go-interop-server" --port "$port") ;;
    *-go) cmd=("$BUILD/go/go-echo-server" --port "$port") ;;
    stream-swift|large-swift) cmd=("$RPC_INTEROP" server --port "$port") ;;
    health-swift)
      "$REPO/scripts/local-services.sh" up >/dev/null || exit 1
      env=(PORT="$port" LOG_LEVEL=warning)
      cmd=("$PERSONA") ;;
    *-swift) cmd=("$RPC_INTEROP" echo-server --port "$port" --interceptors "${ECHO_INTERCEPTORS:-synchronous}") ;;
  esac
  # A simple command (not a compound one, which would fork a subshell) and taskset execs the
  # server: $! is the server's own PID, whose /proc stat we read.
  env "${env[@]}" taskset -c "$SERVER_CPU" "${cmd[@]}" >"$LOGS/server-$1-$2.log" 2>&1 &
  PID[$2]=$!
  PIDS+=($!)
  for i in $(seq 300); do
    kill -0 "${PID[$2]}" 2>/dev/null || break
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then PORT[$2]=$port; return 0; fi
    sleep 0.1
  done
  echo "benchmark.sh: the $2 $1 server did not start; see $LOGS/server-$1-$2.log" >&2
  exit 1
}

stop_server() {   # stop_server go|swift
  kill "${PID[$1]}" 2>/dev/null
  wait "${PID[$1]}" 2>/dev/null
}

h2load_run() {   # h2load_run WORKLOAD PORT LOG H2LOAD-ARGS...
  local workload=$1 port=$2 log=$3
  shift 3
  taskset -c "$LOAD_CPU" h2load "$@" -d "$TMP/$workload.bin" \
    -H 'content-type: application/grpc' -H 'te: trailers' \
    "http://127.0.0.1:$port$(workload_path "$workload")" >"$log" 2>&1
}

# One call checked for its gRPC status (h2load cannot see it): the Go interop client's `echo`
# case for the echo servers; for the others one h2load request whose reply must be complete.
check_server() {   # check_server WORKLOAD go|swift
  local log=$LOGS/check-$1-$2.log
  case $1 in
    echo|large-text)
      "$BUILD/go/go-interop-client" --server_port "${PORT[$2]}" --test_case echo >"$log" 2>&1 ;;
    health)
      /usr/bin/python3 "$REPO/scripts/health_check.py" --wait 60 "127.0.0.1:${PORT[$2]}" >"$log" 2>&1 ;;
    stream|large)
      h2load_run "$1" "${PORT[$2]}" "$log" -n 1 -c 1 &&
        grep -q "(\($(<"$TMP/$1.size")\)) data" "$log" ;;
  esac || { echo "benchmark.sh: the $2 $1 server fails its check:" >&2; cat "$log" >&2; exit 1; }
}

# Latency as printed by h2load (us/ms/s) -> milliseconds.
to_ms() {
  awk '{ v = $1 + 0; if ($1 ~ /us$/) v /= 1000; else if ($1 ~ /ms$/) v += 0; else if ($1 ~ /s$/) v *= 1000; printf "%.3f", v }' <<<"$1"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
avg() { awk -v s="$1" -v n="$rounds" 'BEGIN { printf "%.0f", s / n }'; }
avg_ms() { awk -v s="$1" -v n="$rounds" 'BEGIN { printf "%.3f", s / n }'; }

echo "# gRPC runtime benchmark ($(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, $(h2load --version | head -1))"
echo
echo "Server on CPU $SERVER_CPU, h2load on CPU $LOAD_CPU; ${duration}s per run, $rounds round(s), interleaved."

failed=0
declare -A SUM_RPS SUM_EFF SUM_LAT
SUMMARY=()
for workload in "${WORKLOADS[@]}"; do
  workload_configs "$workload"
  want=$(<"$TMP/$workload.size")
  for s in "${SERVERS[@]}"; do
    start_server "$workload" "$s"
    check_server "$workload" "$s"
    # Warm-up (not measured): lazy allocations, page faults, pools.
    h2load_run "$workload" "${PORT[$s]}" "$LOGS/warmup-$workload-$s.log" -c 4 -m 4 -D 3
  done
  echo
  echo "## $workload ($(workload_path "$workload"))"
  echo
  echo "| server | config | run | req/s | mean latency (ms) | server CPU (s) | req per server CPU-s |"
  echo "|---|---|---|---:|---:|---:|---:|"
  for config in "${CONFIGS[@]}"; do
    for round in $(seq "$rounds"); do
      for s in "${SERVERS[@]}"; do
        log=$LOGS/run-$workload-$s-${config// /}-$round.log
        before=$(cpu_seconds "${PID[$s]}")
        # shellcheck disable=SC2086  # config is deliberately split into h2load flags
        h2load_run "$workload" "${PORT[$s]}" "$log" $config -D "$duration"
        after=$(cpu_seconds "${PID[$s]}")
        rps=$(awk '/^finished in/ { print $4 + 0 }' "$log")
        ok=$(awk '/^requests:/ { print $8 + 0 }' "$log")
        data=$(sed -n 's/^traffic:.*(\([0-9]*\)) data$/\1/p' "$log")
        lat=$(to_ms "$(awk '/^time for request:/ { print $6 }' "$log")")
        cpu=$(awk -v a="$before" -v b="$after" 'BEGIN { printf "%.2f", b - a }')
        eff=$(awk -v n="$ok" -v c="$cpu" 'BEGIN { if (c > 0) printf "%.1f", n / c; else print 0 }')
        note=
        # h2load stops at the deadline with replies in flight: allow a partial reply per stream.
        if [ "${ok:-0}" = 0 ]; then
          note=" (no successful requests: see $log)"; failed=1
        elif [ "$(awk -v d="${data:-0}" -v n="$ok" -v w="$want" 'BEGIN { print (d < n * w || d > (n + 64) * w) }')" = 1 ]; then
          note=" (DATA is ${data:-0} bytes for $ok replies of $want bytes: see $log)"; failed=1
        fi
        echo "| $s | $config | $round | ${rps:-?} | $lat | $cpu | $eff$note |"
        key="$workload $s $config"
        SUM_RPS[$key]=$(awk -v a="${SUM_RPS[$key]:-0}" -v b="${rps:-0}" 'BEGIN { print a + b }')
        SUM_EFF[$key]=$(awk -v a="${SUM_EFF[$key]:-0}" -v b="$eff" 'BEGIN { print a + b }')
        SUM_LAT[$key]=$(awk -v a="${SUM_LAT[$key]:-0}" -v b="$lat" 'BEGIN { print a + b }')
      done
    done
  done
  for s in "${SERVERS[@]}"; do stop_server "$s"; done
  for config in "${CONFIGS[@]}"; do SUMMARY+=("$workload|$config"); done
done

echo
echo "## Summary (mean of the rounds)"
echo
if [ "$go_only" = 1 ]; then
  echo "| workload | config | go req/s | go mean ms | go req per CPU-s |"
  echo "|---|---|---:|---:|---:|"
  for entry in "${SUMMARY[@]}"; do
    workload=${entry%%|*} config=${entry#*|}
    echo "| $workload | $config | $(avg "${SUM_RPS[$workload go $config]}") | $(avg_ms "${SUM_LAT[$workload go $config]}") | $(avg "${SUM_EFF[$workload go $config]}") |"
  done
else
  echo "| workload | config | go req/s | swift req/s | go mean ms | swift mean ms | go req per CPU-s | swift req per CPU-s | swift/go (req/s) | swift/go (per CPU-s) |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
  for entry in "${SUMMARY[@]}"; do
    workload=${entry%%|*} config=${entry#*|}
    g=${SUM_RPS[$workload go $config]} w=${SUM_RPS[$workload swift $config]}
    ge=${SUM_EFF[$workload go $config]} we=${SUM_EFF[$workload swift $config]}
    echo "| $workload | $config | $(avg "$g") | $(avg "$w") | $(avg_ms "${SUM_LAT[$workload go $config]}") | $(avg_ms "${SUM_LAT[$workload swift $config]}") | $(avg "$ge") | $(avg "$we") | $(ratio "$w" "$g") | $(ratio "$we" "$ge") |"
  done
fi
echo
echo "(raw h2load output: $LOGS)"
exit "$failed"
