# Helpers of the benchmark scripts (sourced, not run).

free_port() {
  /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# utime+stime of the whole process (all threads), in seconds. The comm field may hold spaces,
# so count fields after the closing parenthesis: utime and stime are fields 14 and 15.
cpu_seconds() {
  local stat rest
  stat=$(<"/proc/$1/stat")
  rest=${stat##*) }
  awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($12 + $13) / hz }' <<<"$rest"
}

# "PID SECONDS" for every PostgreSQL process (postmaster, backends, background workers).
postgres_cpu_snapshot() {
  local pid
  for pid in $(pgrep -x postgres); do
    [ -r "/proc/$pid/stat" ] && echo "$pid $(cpu_seconds "$pid" 2>/dev/null || echo 0)"
  done
}

# CPU seconds PostgreSQL used between two snapshots (a process new in the second counts whole).
postgres_cpu_delta() {   # postgres_cpu_delta BEFORE-FILE AFTER-FILE
  awk 'NR == FNR { before[$1] = $2; next } { sum += $2 - before[$1] } END { printf "%.2f", sum }' "$1" "$2"
}

# p50 p90 p99 max of h2load's per-request log (column 3: microseconds), in milliseconds, joined
# by SEPARATOR (a space unless given).
h2load_percentiles() {   # h2load_percentiles LOG [SEPARATOR]
  cut -f3 "$1" | sort -n | awk -v sep="${2:- }" '{ v[NR] = $1 }
    function at(p) { i = int(NR * p + 0.999999); if (i < 1) i = 1; return v[i] / 1000 }
    END { if (NR) printf "%.2f%s%.2f%s%.2f%s%.2f", at(0.50), sep, at(0.90), sep, at(0.99), sep, v[NR] / 1000
          else printf "-%s-%s-%s-", sep, sep, sep }'
}

# The pid of the local services' redis-server (scripts/local-services.sh), empty without one.
local_redis_pid() {
  cat "$REPO/.local/redis/redis.pid" 2>/dev/null || true
}
