#!/usr/bin/env bash
# The whole platform on this machine: PostgreSQL + Redis (scripts/local-services.sh) and the six
# services, each a background process on loopback. State under .local/ (git-ignored):
# logs in .local/logs/<service>.log, pid files in .local/run/<service>.pid.
#
#   scripts/platform.sh up [--no-build]   local services up, build (CONFIG=debug|release), start
#                                         what is not running, wait until every service answers a
#                                         gRPC health check, print the addresses
#   scripts/platform.sh down [--all]      SIGTERM the services (KILL after STOP_TIMEOUT s);
#                                         --all also stops PostgreSQL and Redis
#   scripts/platform.sh status            what runs, and the health of each service
#   scripts/platform.sh logs [-f] [SERVICE...]   the logs' tails (-f: follow)
#
# Env: CONFIG (debug), HEALTH_TIMEOUT (60), STOP_TIMEOUT (15), SKIP_BUILD=1 (= --no-build),
#      PLATFORM_BIN_DIR (run the binaries of this directory, e.g. a deployed copy with its
#      *.resources beside them, instead of .build/$CONFIG; implies --no-build);
#      everything the services read (JWT_SECRET, LOG_LEVEL, LOG_FORMAT, HOST, REDIS_URL, ...)
#      is passed through. Per service: <SERVICE>_ADDR (e.g. PERSONA_ADDR=127.0.0.1:60052) moves
#      it (its PORT is taken from there, and the others find it there), <SERVICE>_DATABASE_URL
#      (e.g. CODE_SANDBOX_DATABASE_URL) points it at another database. PGPORT, PGPASSWORD and
#      REDIS_PORT are the ones of local-services.sh. A global PORT or DATABASE_URL cannot apply
#      to six services and is ignored.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOCAL="$ROOT/.local"
LOG_DIR="$LOCAL/logs"
RUN_DIR="$LOCAL/run"
PY=/usr/bin/python3                      # Debian's python3 with python3-grpcio
HEALTH="$ROOT/scripts/health_check.py"
BUILD_LOCK=/tmp/swift-build.lock

CONFIG="${CONFIG:-debug}"
HEALTH_TIMEOUT="${HEALTH_TIMEOUT:-60}"
STOP_TIMEOUT="${STOP_TIMEOUT:-15}"

SERVICES=(agent persona code-sandbox text-to-sql knowledge workflow)
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
  local var; var="$(env_prefix "$1")_ADDR"
  printf '%s' "${!var:-127.0.0.1:${DEFAULT_PORT[$1]}}"
}
port_of() { local a; a="$(addr_of "$1")"; printf '%s' "${a##*:}"; }

# Where to probe service $1: the host it binds (HOST, default 127.0.0.1; a wildcard → loopback).
probe_addr_of() {
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
addr_file() { printf '%s/%s.addr' "$RUN_DIR" "$1"; }

# Where a running service $1 was started (recorded at start, so status/down need not be given
# the same env again), else where it would be.
current_probe_addr() {
  local f; f="$(addr_file "$1")"
  if [[ -s $f ]]; then cat "$f"; else probe_addr_of "$1"; fi
}
log_file() { printf '%s/%s.log' "$LOG_DIR" "$1"; }

# The pid of service $1 when it runs, else nothing; a stale pid file is removed. Running: the pid
# is alive and its command line names the service's binary (as argv[0], or as the argument of
# env/setsid for the instant before they exec it).
running_pid() {
  local f pid arg
  f="$(pid_file "$1")"
  [[ -f $f ]] || return 1
  pid="$(<"$f")"
  if [[ $pid =~ ^[0-9]+$ ]] && [[ -r /proc/$pid/cmdline ]]; then
    while IFS= read -r -d '' arg; do
      if [[ "${arg##*/}" == "$1" ]]; then printf '%s' "$pid"; return 0; fi
    done <"/proc/$pid/cmdline" 2>/dev/null || true
  fi
  rm -f "$f" "$(addr_file "$1")"
  return 1
}

# Process $1 exists and is not a zombie (an exited child not yet reaped).
alive() {
  kill -0 "$1" 2>/dev/null || return 1
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  stat="${stat##*) }"
  [[ ${stat:0:1} != Z ]]
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

print_table() {
  local s pid
  printf '\n%-14s %-22s %-8s %s\n' SERVICE ADDRESS PID HEALTH
  for s in "${SERVICES[@]}"; do
    if pid="$(running_pid "$s")"; then
      printf '%-14s %-22s %-8s %s\n' "$s" "$(current_probe_addr "$s")" "$pid" "$(health_text "$s")"
    else
      printf '%-14s %-22s %-8s %s\n' "$s" "$(probe_addr_of "$s")" - stopped
    fi
  done
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

check_env() {
  [[ -n ${PORT:-} ]] && warn "PORT=$PORT is ignored (six services); set <SERVICE>_ADDR, e.g. PERSONA_ADDR=127.0.0.1:$PORT"
  [[ -n ${DATABASE_URL:-} ]] && warn "DATABASE_URL is ignored (six databases); set <SERVICE>_DATABASE_URL, e.g. PERSONA_DATABASE_URL"
  local s p
  for s in "${SERVICES[@]}"; do
    p="$(port_of "$s")"
    [[ $p =~ ^[0-9]+$ ]] || die "$(env_prefix "$s")_ADDR=$(addr_of "$s") has no port"
  done
  case "$CONFIG" in debug|release) ;; *) die "CONFIG must be debug or release, not $CONFIG" ;; esac
}

# ---------------------------------------------------------------- up

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

# Starts service $1 in its own session, detached from this terminal; sets START_OFFSET to the
# log's size at the start (to show only this run's lines later).
START_OFFSET=0
start_service() {
  local s="$1" bin f
  bin="$(bin_dir)/$s"
  f="$(log_file "$s")"
  printf '\n=== %s platform.sh: starting %s on %s\n' "$(date -u +%FT%TZ)" "$bin" \
    "$(addr_of "$s")" >>"$f"
  START_OFFSET="$(stat -c %s "$f")"
  local -a addrs=() t
  for t in "${SERVICES[@]}"; do addrs+=("$(env_prefix "$t")_ADDR=$(addr_of "$t")"); done
  # env -u: a user's global PORT/DATABASE_URL must not reach six services at once.
  env -u PORT -u DATABASE_URL \
    PORT="$(port_of "$s")" \
    DATABASE_URL="$(database_url_of "$s")" \
    REDIS_URL="${REDIS_URL:-redis://127.0.0.1:${REDIS_PORT:-6379}}" \
    "${addrs[@]}" \
    setsid "$bin" </dev/null >>"$f" 2>&1 &
  echo $! >"$(pid_file "$s")"
  probe_addr_of "$s" >"$(addr_file "$s")"
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
  require_python_grpc
  mkdir -p "$LOG_DIR" "$RUN_DIR"

  local s pid
  local -a todo=()
  for s in "${SERVICES[@]}"; do
    if pid="$(running_pid "$s")"; then
      log "$s already running (pid $pid)"
    else
      todo+=("$s")
    fi
  done
  if ((${#todo[@]} == 0)); then
    log "platform already running"
    "$ROOT/scripts/local-services.sh" status | sed 's/^/[platform] /'
    print_table
    return 0
  fi

  "$ROOT/scripts/local-services.sh" up
  for s in "${todo[@]}"; do
    port_busy "$(probe_addr_of "$s")" \
      && die "$(probe_addr_of "$s") (for $s) is taken by another process; stop it or set $(env_prefix "$s")_ADDR"
  done
  if [[ -n ${PLATFORM_BIN_DIR:-} ]]; then
    log "using the binaries in $PLATFORM_BIN_DIR (PLATFORM_BIN_DIR; no build)"
  elif [[ $skip_build == 1 ]]; then
    log "skipping the build (--no-build)"
  else
    build
  fi
  for s in "${todo[@]}"; do
    [[ -x "$(bin_dir)/$s" ]] || die "$(bin_dir)/$s missing (build it, or drop --no-build)"
  done

  declare -A offset=() pids=()
  for s in "${todo[@]}"; do
    start_service "$s"
    offset[$s]="$START_OFFSET"
    pids[$s]="$(<"$(pid_file "$s")")"
    log "started $s (pid ${pids[$s]}) on $(addr_of "$s"), log $(log_file "$s")"
  done

  log "waiting up to ${HEALTH_TIMEOUT}s for the health checks"
  local deadline=$((SECONDS + HEALTH_TIMEOUT)) failed="" pending
  local -a waiting=("${todo[@]}")
  while ((${#waiting[@]} > 0)); do
    pending=()
    for s in "${waiting[@]}"; do
      if ! alive "${pids[$s]}"; then
        failed="$s"; printf '[platform] %s exited during start-up\n' "$s" >&2; break 2
      fi
      if healthy "$s" 1; then log "$s SERVING"; else pending+=("$s"); fi
    done
    waiting=("${pending[@]}")
    ((${#waiting[@]} == 0)) && break
    if ((SECONDS >= deadline)); then
      failed="${waiting[0]}"
      printf '[platform] no SERVING health answer within %ss from: %s\n' "$HEALTH_TIMEOUT" "${waiting[*]}" >&2
      break
    fi
    sleep 0.5
  done

  if [[ -n $failed ]]; then
    {
      printf '\n--- %s (last lines of this start)\n' "$(log_file "$failed")"
      log_tail_since "$failed" "${offset[$failed]}"
      printf -- '---\n'
      echo "[platform] the other services keep running: scripts/platform.sh status | down"
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
  local s pid
  declare -A pids=()
  for s in "${SERVICES[@]}"; do
    if pid="$(running_pid "$s")"; then
      log "stopping $s (pid $pid)"
      kill -TERM "$pid" 2>/dev/null || true
      pids[$s]="$pid"
    fi
  done
  if ((${#pids[@]} == 0)); then
    log "no service running"
  else
    local deadline=$((SECONDS + STOP_TIMEOUT)) alive
    while :; do
      alive=()
      for s in "${!pids[@]}"; do kill -0 "${pids[$s]}" 2>/dev/null && alive+=("$s"); done
      ((${#alive[@]} == 0)) && break
      if ((SECONDS >= deadline)); then
        for s in "${alive[@]}"; do
          warn "$s (pid ${pids[$s]}) still running after ${STOP_TIMEOUT}s: SIGKILL"
          kill -KILL "${pids[$s]}" 2>/dev/null || true
        done
        sleep 0.2
        break
      fi
      sleep 0.2
    done
    for s in "${!pids[@]}"; do rm -f "$(pid_file "$s")" "$(addr_file "$s")"; done
    log "services stopped"
  fi
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
      *) [[ -n ${DB[$arg]:-} ]] || die "unknown service $arg (${SERVICES[*]})"; pick+=("$arg") ;;
    esac
  done
  ((${#pick[@]})) || pick=("${SERVICES[@]}")
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
  *)
    echo "usage: $0 up [--no-build] | down [--all] | status | logs [-f] [SERVICE...]" >&2
    exit 2
    ;;
esac
