#!/usr/bin/env bash
# Agent fan-out benchmark: a sync execution whose plugins call knowledge and text-to-SQL (and the
# code sandbox), under h2load, against the direct calls it makes.
#
#   scripts/benchmark-agent.sh [--duration S] [--concurrency C]     (release binaries)
#
# Brings the platform up from .build/release (CONFIG=release, offline embeddings, a state
# directory of its own under /tmp; the usual ports 50051-50056 must be free) and runs
# scripts/agent_bench.py setup: a user, a persona, a knowledge base with one document, a SQLite
# database, and two agents, `rag` (knowledge_rag + text_to_sql, the offline model) and `code`
# (the same + code_executor running print(1)). Then C concurrent streams (default 10) for S
# seconds (default 10) each: StartExecution (sync) of each agent, and knowledge Search,
# text-to-SQL AskQuestion and the sandbox's ExecuteCode (`run`) as the agents' plugins make
# them. Reports req/s and latency percentiles from h2load's per-request log; the fan-out's
# overhead (rag's p50 against the sum of the direct calls' p50, code's against the same plus
# run's); and the CPU each call cost every process (milliseconds of user + system time per
# answered call: the services, PostgreSQL and Redis), which is what bounds the calls per second
# on a machine whose CPUs they all share. The same at 1 stream (no queueing) follows.
# Every execution h2load saw answered must be COMPLETED.
# Needs root for the code sandbox's slot uids and cgroups. Build first:
#   swift build -c release      (every product: swift build takes one --product, the last named)
set -uo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
. "$REPO/scripts/bench-lib.sh"
PY=/usr/bin/python3
duration=10 concurrency=10
while [ $# -gt 0 ]; do
  case $1 in
    --duration) duration=$2; shift ;;
    --concurrency) concurrency=$2; shift ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "benchmark-agent.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
for binary in agent persona knowledge text-to-sql code-sandbox sandbox-exec workflow; do
  [ -x "$REPO/.build/release/$binary" ] || { echo "benchmark-agent.sh: no $binary in .build/release (see --help)" >&2; exit 2; }
done

STATE=$(mktemp -d /tmp/bench-agent.XXXXXX)
export PLATFORM_STATE_DIR=$STATE CONFIG=release SKIP_BUILD=1 PLATFORM_EMBEDDINGS=offline LOG_LEVEL=warning
cleanup() {
  "$REPO/scripts/platform.sh" down >/dev/null 2>&1
  rm -rf "$STATE"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
"$REPO/scripts/platform.sh" up >"$STATE/up.log" 2>&1 || { cat "$STATE/up.log" >&2; exit 1; }

export JWT_PRIVATE_KEY=$STATE/keys/jwt-private.jwk
OUT=$STATE/bench
"$PY" "$REPO/scripts/agent_bench.py" setup --agent 127.0.0.1:50051 --persona 127.0.0.1:50052 --sandbox 127.0.0.1:50053 \
  --sql 127.0.0.1:50054 --knowledge 127.0.0.1:50055 --sqlite-dir "$STATE/sqlite" --out "$OUT" || exit 1
TOKEN=$(<"$OUT/token")

SERVICES=(agent persona knowledge text-to-sql code-sandbox)
REDIS_PID=$(local_redis_pid)
# "NAME SECONDS" for each service and Redis in $1, and every PostgreSQL process in $1.pg.
cpu_snapshot() {
  local service pid
  for service in "${SERVICES[@]}"; do
    pid=$(cat "$STATE/run/$service.pid" 2>/dev/null) && [ -e "/proc/$pid" ] && echo "$service $(cpu_seconds "$pid")"
  done >"$1"
  [ -n "$REDIS_PID" ] && [ -e "/proc/$REDIS_PID" ] && echo "redis $(cpu_seconds "$REDIS_PID")" >>"$1"
  postgres_cpu_snapshot >"$1.pg"
}
# CPU milliseconds per answered call of each process that used any, between two snapshots
# (PostgreSQL's backends counted one by one: one that exits meanwhile must not count negative).
cpu_per_call() {   # cpu_per_call BEFORE AFTER CALLS
  { cat "$2"; echo "postgres $(postgres_cpu_delta "$1.pg" "$2.pg")"; } |
    awk -v n="$3" 'NR == FNR { before[$1] = $2; next }
      { d = $2 - before[$1]; if (d > 0.004 && n > 0) { printf "%s%s %.2f", sep, $1, d * 1000 / n; sep = ", " } }' "$1" -
}

run() {   # run NAME PORT PATH [CONCURRENCY]
  local name=$1 port=$2 path=$3 c=${4:-$concurrency}
  h2load -c "$c" -m 1 -t 1 -D 2 -d "$OUT/$name.bin" -H 'content-type: application/grpc' -H 'te: trailers' \
    -H "authorization: Bearer $TOKEN" "http://127.0.0.1:$port$path" >"$OUT/$name-warmup.log" 2>&1
  cpu_snapshot "$OUT/$name-c$c.cpu-before"
  h2load -c "$c" -m 1 -t 1 -D "$duration" --log-file="$OUT/$name-c$c.requests" -d "$OUT/$name.bin" \
    -H 'content-type: application/grpc' -H 'te: trailers' -H "authorization: Bearer $TOKEN" \
    "http://127.0.0.1:$port$path" >"$OUT/$name-c$c.log" 2>&1
  cpu_snapshot "$OUT/$name-c$c.cpu-after"
  local rps ok
  rps=$(awk '/^finished in/ { print $4 + 0 }' "$OUT/$name-c$c.log")
  ok=$(awk '/^requests:/ { print $8 + 0 }' "$OUT/$name-c$c.log")
  read -r p50 p90 p99 max <<<"$(h2load_percentiles "$OUT/$name-c$c.requests")"
  echo "| $name | $c | ${rps:-?} | $ok | $p50 | $p90 | $p99 | $max | $(cpu_per_call "$OUT/$name-c$c.cpu-before" "$OUT/$name-c$c.cpu-after" "$ok") |"
  eval "P50_${name}_c$c=$p50"
}

echo "# Agent fan-out ($(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, release, $concurrency concurrent streams, ${duration}s each)"
echo
echo "| call | streams | req/s | answered | p50 ms | p90 ms | p99 ms | max ms | CPU ms per call |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---|"
for c in "$concurrency" 1; do
  run search 50055 /platform.knowledge.v1.KnowledgeService/Search "$c"
  run ask 50054 /platform.texttosql.v1.QueryService/AskQuestion "$c"
  run rag 50051 /platform.agent.v1.ExecutionService/StartExecution "$c"
  run code 50051 /platform.agent.v1.ExecutionService/StartExecution "$c"
  run run 50053 /platform.codesandbox.v1.CodeSandboxService/ExecuteCode "$c"
done
echo
for c in "$concurrency" 1; do
  eval "r=\$P50_rag_c$c s=\$P50_search_c$c a=\$P50_ask_c$c"
  awk -v c="$c" -v r="$r" -v s="$s" -v a="$a" \
    'BEGIN { printf "Fan-out overhead at p50, %d stream(s): rag %.2f ms against search %.2f + ask %.2f = %.2f ms: %+.2f ms\n", c, r, s, a, s + a, r - s - a }'
  eval "k=\$P50_code_c$c x=\$P50_run_c$c"
  awk -v c="$c" -v k="$k" -v x="$x" -v s="$s" -v a="$a" \
    'BEGIN { printf "code_executor at p50, %d stream(s): code %.2f ms against search %.2f + ask %.2f + the sandbox'"'"'s own run %.2f = %.2f ms: %+.2f ms\n", c, k, s, a, x, s + a + x, k - s - a - x }'
done
echo "Executions by status: $("$PY" "$REPO/scripts/agent_bench.py" count --agent 127.0.0.1:50051 --dir "$OUT")"
