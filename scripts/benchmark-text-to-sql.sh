#!/usr/bin/env bash
# Text-to-SQL benchmark: the guard's latency, ExecuteQuery against postgres-nio directly, and
# AskQuestion with the offline generator.
#
#   scripts/benchmark-text-to-sql.sh [--iterations N] [path/to/text-to-sql-bench]
#                                          (default .build/release/text-to-sql-bench)
#
# Starts PostgreSQL and Redis when they are not running (scripts/local-services.sh), then runs
# the benchmark executable (Tests/TextToSQLBenchmark): it loads the SQL-guard corpus schema into
# a scratch database owned by a scratch role, starts the text-to-sql service in its process on a
# loopback port against another scratch database, registers and syncs the target over gRPC, and
# runs every benign corpus statement N times (default 20) both through ExecuteQuery and directly
# with postgres-nio on one connection, paired; then 8 questions N times through AskQuestion.
# Prints a table of p50, p99 and max; the scratch databases and role are dropped at the end.
# Build first: swift build -c release --product text-to-sql-bench
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
iterations=20 BIN=
while [ $# -gt 0 ]; do
  case $1 in
    --iterations) iterations=$2; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "benchmark-text-to-sql.sh: unknown option $1" >&2; exit 2 ;;
    *) BIN=$1 ;;
  esac
  shift
done
BIN=${BIN:-$REPO/.build/release/text-to-sql-bench}
[ -x "$BIN" ] || { echo "benchmark-text-to-sql.sh: no benchmark at $BIN (swift build -c release --product text-to-sql-bench)" >&2; exit 2; }
"$REPO/scripts/local-services.sh" up >/dev/null
cd "$REPO"
exec "$BIN" --iterations "$iterations" \
  --admin-url "postgres://platform:${PGPASSWORD:-platform}@127.0.0.1:${PGPORT:-5432}/postgres" \
  --redis-url "redis://127.0.0.1:${REDIS_PORT:-6379}" --corpus "$REPO/Tests/Data/sql-guard"
