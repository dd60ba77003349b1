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
