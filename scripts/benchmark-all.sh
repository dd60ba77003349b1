#!/usr/bin/env bash
# Every benchmark of the platform in one run, for BENCHMARKS.md: the runtime against grpc-go,
# persona, the Redis client, durable jobs, the code sandbox, knowledge (recall and latency at
# scale), text-to-SQL, the agent's fan-out, the workflow engine, and platform-load's self-test.
#
#   scripts/benchmark-all.sh [--quick] [--full]
#
# Builds the release products first (one `swift build -c release`), then runs each benchmark
# script in turn with the settings below (--quick: shorter runs, for checking the harness;
# --full: knowledge at 100,000 chunks and its recall with the local MiniLM server too, each of
# which spends 12-20 minutes ingesting on 2 CPUs) and
# keeps each one's whole output in .local/bench/all-<time>/<name>.txt; the last lines of each
# are printed as it ends. Run it on a quiet machine: the figures are single runs on whatever
# CPUs there are, and a build or a test beside them shows up in every figure.
# Takes about 15 minutes on 2 CPUs (plus the release build); --full about 50.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

quick=0 full=0
for arg in "$@"; do
  case $arg in
    --quick) quick=1 ;;
    --full) full=1 ;;
    *) echo "usage: $0 [--quick] [--full]" >&2; exit 2 ;;
  esac
done
out="$ROOT/.local/bench/all-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"

echo "benchmark-all: outputs in ${out#"$ROOT"/}"
scripts/local-services.sh up >/dev/null
flock /tmp/swift-build.lock swift build -c release 2>&1 | tail -1
export TEST_DATABASE_URL="${TEST_DATABASE_URL:-postgres://platform:${PGPASSWORD:-platform}@127.0.0.1:${PGPORT:-5432}/postgres}"

# name, then the command (each run from the repository root).
run() {
  local name=$1; shift
  local started=$SECONDS
  printf '\n=== %s: %s\n' "$name" "$*"
  if "$@" >"$out/$name.txt" 2>&1; then
    tail -n 25 "$out/$name.txt"
    printf -- '--- %s: %d s\n' "$name" $((SECONDS - started))
  else
    tail -n 40 "$out/$name.txt"
    printf -- '--- %s: FAILED after %d s (whole output: %s)\n' "$name" $((SECONDS - started)) "$out/$name.txt"
  fi
}

if ((quick)); then d=2 rounds=1; else d=5 rounds=1; fi
run runtime        scripts/benchmark.sh --workload all --duration "$d" --rounds "$rounds" .build/release/rpc-interop
run persona        scripts/benchmark-persona.sh --duration "$d" .build/release/persona
run redis          scripts/benchmark-redis.py --requests $((quick ? 50000 : 500000))
run jobs           scripts/benchmark-jobs.py --jobs $((quick ? 2000 : 10000)) --seconds "$d"
run sandbox        scripts/benchmark-sandbox.sh --runs $((quick ? 20 : 200)) --seconds "$d" .build/release/code-sandbox
run text-to-sql    scripts/benchmark-text-to-sql.sh --iterations $((quick ? 5 : 20)) .build/release/text-to-sql-bench
run knowledge-recall scripts/benchmark-knowledge.sh recall .build/release/knowledge
# MiniLM on CPU embeds 14-18 chunks a second: the corpus's 18,843 chunks take about 20 minutes.
if ((full)); then run knowledge-recall-minilm scripts/benchmark-knowledge.sh recall --provider minilm .build/release/knowledge; fi
run knowledge-scale  scripts/benchmark-knowledge.sh scale --chunks $((full ? 100000 : quick ? 5000 : 20000)) --seconds "$d" .build/release/knowledge
run agent          scripts/benchmark-agent.sh --duration "$((d * 2))"
run workflow       scripts/benchmark-workflow.sh --duration "$((d * 2))"
run platform-load  .build/release/platform-load self-test
echo
echo "benchmark-all: done; outputs in ${out#"$ROOT"/}"
