#!/usr/bin/env bash
# Supervision by scripts/platform.sh, end to end: a service killed with kill -9 or exiting with a
# code is restarted (new pid, restart count and last exit in `status`, a line in its log), quick
# exits back off (1 s, 2 s, ...), a missing binary is retried on the backoff (no busy loop),
# `up` leaves a supervised platform alone, and `down` (also in the middle of a backoff, also with a
# service that ignores SIGTERM) leaves nothing running that comes back later.
#
#   scripts/test-supervision.sh [PERSONA_BINARY]
#
# persona is the real executable when there is one (the argument, else .build/debug/persona; it
# needs PostgreSQL, which `platform.sh up` starts through local-services.sh); the other five, and
# persona with TEST_SUPERVISION_FAKE=1 or without a build, are a fake: Debian's python3-grpcio
# answering grpc.health.v1.Health/Check, told through control files to exit or to ignore SIGTERM.
# Everything runs on free ports (<SERVICE>_ADDR) with its own state directory
# (PLATFORM_STATE_DIR), so a platform already running on the default ports is not touched.
# That state directory starts empty, so the first `up` makes the token key pair: the test checks
# it is there (keys/jwt-private.jwk mode 0600 in keys/ 0700, keys/jwks.json holding its public
# half under the same kid), that only the agent service gets JWT_PRIVATE_KEY (the environment of
# every service process; no other holds the key's path or the key itself) while all six get
# JWT_PUBLIC_KEYS, and that a later `up` (next to a running platform, and after `down`) uses the
# same keys.
# The last line is "N passed, M failed"; the exit status is non-zero when a check failed.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PLATFORM="$ROOT/scripts/platform.sh"
HEALTH="$ROOT/scripts/health_check.py"
PY=/usr/bin/python3
SERVICES=(agent persona code-sandbox text-to-sql knowledge workflow)

WORK="$(mktemp -d "${TMPDIR:-/tmp}/test-supervision.XXXXXX")"
BIN="$WORK/bin" CTL="$WORK/ctl"
RUN="$WORK/state/run" LOGS="$WORK/state/logs"
mkdir -p "$BIN" "$CTL"

export PLATFORM_STATE_DIR="$WORK/state" PLATFORM_BIN_DIR="$BIN" FAKE_SERVICE_CTL="$CTL"
export STOP_TIMEOUT=3 HEALTH_TIMEOUT=120
# Fake services embed nothing: no MiniLM server (it would also take the default port 50070).
export PLATFORM_EMBEDDINGS=offline
export RESTART_BACKOFF_MIN=1 RESTART_BACKOFF_MAX=30 RESTART_RESET_AFTER=4   # reset: 60 by default
unset PORT DATABASE_URL
# The local default key pair is what is tested, not keys of the caller's.
unset JWT_PUBLIC_KEYS JWT_PRIVATE_KEY SQL_ENCRYPTION_KEY AGENT_ENCRYPTION_KEY WORKFLOW_ENCRYPTION_KEY

passed=0 failed=0
ok() { passed=$((passed + 1)); printf 'ok   - %s\n' "$*"; }
not_ok() { failed=$((failed + 1)); printf 'FAIL - %s\n' "$*"; }
check() { local what="$1"; shift; if "$@"; then ok "$what"; else not_ok "$what"; fi; }
to_file() { local out="$1"; shift; "$@" >"$out" 2>&1; }   # check "..." to_file OUT COMMAND...
summary() { printf '%d passed, %d failed\n' "$passed" "$failed"; }

# ------------------------------------------------------------------ helpers

env_prefix() { local s="${1//-/_}"; printf '%s' "${s^^}"; }
addr() { local v; v="$(env_prefix "$1")_ADDR"; printf '%s' "${!v}"; }
pid_of() { cat "$RUN/$1.pid" 2>/dev/null; }
sup_of() { cat "$RUN/$1.supervisor.pid" 2>/dev/null; }

alive() { # $1 exists and is not a zombie
  [[ $1 =~ ^[0-9]+$ ]] && kill -0 "$1" 2>/dev/null || return 1
  local stat; stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  stat="${stat##*) }"; [[ ${stat:0:1} != Z ]]
}
serving() { "$PY" "$HEALTH" --timeout 1 -q "$(addr "$1")" 2>/dev/null; }
listening() { (exec 3<>"/dev/tcp/127.0.0.1/${1##*:}") 2>/dev/null; }

# wait_until SECONDS COMMAND...: COMMAND succeeds within SECONDS.
wait_until() {
  local deadline=$((SECONDS + $1)); shift
  until "$@"; do ((SECONDS >= deadline)) && return 1; sleep 0.2; done
}

# service $1 runs under a pid other than $2 and answers its health check
restarted() { local p; p="$(pid_of "$1")"; [[ -n $p && $p != "$2" ]] && alive "$p" && serving "$1"; }

# The row of service $1 in `platform.sh status`.
status_row() { "$PLATFORM" status 2>/dev/null | awk -v s="$1" '$1 == s'; }
row_matches() { local row; row="$(status_row "$1")"; [[ $row =~ $2 ]] || { echo "    status: $row"; return 1; }; }

# The processes of this test's platform still alive: services (their command line names a
# binary in $BIN) and supervisors (platform.sh __supervise with this test's state directory).
leftovers() {
  local d pid cmd
  for d in /proc/[0-9]*; do
    pid="${d#/proc/}"
    cmd="$(tr '\0' ' ' <"$d/cmdline" 2>/dev/null)" || continue
    if [[ $cmd == *"$BIN/"* ]] || { [[ $cmd == *__supervise* ]] \
        && tr '\0' '\n' <"$d/environ" 2>/dev/null | grep -qxF "PLATFORM_STATE_DIR=$WORK/state"; }; then
      alive "$pid" && printf '%s ' "$pid"
    fi
  done
  return 0
}
nothing_left() {
  local l; l="$(leftovers)"
  [[ -z $l ]] || { echo "    still running: $l"; ps -o pid,stat,args -p "${l// /,}" 2>/dev/null | sed 's/^/    /'; return 1; }
}
no_pid_files() {
  local f; f="$(ls "$RUN"/*.pid 2>/dev/null)"
  [[ -z $f ]] || { echo "    left: $f"; return 1; }
}
nothing_listens() {
  local s; for s in "${SERVICES[@]}"; do listening "$(addr "$s")" && { echo "    $s still listens"; return 1; }; done
  return 0
}

cleanup() {
  "$PLATFORM" down >/dev/null 2>&1
  local p; for p in $(leftovers); do kill -KILL "$p" 2>/dev/null; done
  if ((failed)) || [[ ${TEST_SUPERVISION_KEEP:-0} == 1 ]]; then echo "(logs kept in $LOGS)"; else rm -rf "$WORK"; fi
  summary
}
trap cleanup EXIT

# The token keys `up` makes under the state directory.
KEYS="$WORK/state/keys"
keys_made() {
  [[ -s $KEYS/jwt-private.jwk && -s $KEYS/jwks.json ]] || { ls -la "$KEYS" 2>&1 | sed 's/^/    /'; return 1; }
}
private_key_owner_only() {
  local f d; f="$(stat -c %a "$KEYS/jwt-private.jwk")" d="$(stat -c %a "$KEYS")"
  [[ $f == 600 && $d == 700 ]] || { echo "    jwt-private.jwk mode $f, keys/ mode $d"; return 1; }
}
# The public key set holds the private key's public half under its kid; prints "kid d".
key_pair() {
  "$PY" - "$KEYS/jwt-private.jwk" "$KEYS/jwks.json" <<'PY'
import base64, json, sys
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives import serialization
private = json.load(open(sys.argv[1]))
public = {k["kid"]: k for k in json.load(open(sys.argv[2]))["keys"]}
d = base64.urlsafe_b64decode(private["d"] + "=" * (-len(private["d"]) % 4))
x = Ed25519PrivateKey.from_private_bytes(d).public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
mine = public.get(private["kid"])
if not mine or base64.urlsafe_b64decode(mine["x"] + "=" * (-len(mine["x"]) % 4)) != x or "d" in mine:
    sys.exit(f"jwks.json has no public half of kid {private['kid']!r} (kids: {sorted(public)})")
print(private["kid"], private["d"])
PY
}
keys_fingerprint() { cat "$KEYS/jwt-private.jwk" "$KEYS/jwks.json" 2>/dev/null | sha256sum | cut -c1-16; }
# Every service process gets JWT_PUBLIC_KEYS (the state directory's jwks.json); only agent gets
# JWT_PRIVATE_KEY, and no other has the private key's path or its secret anywhere in its
# environment or command line.
private_key_only_in_agent() {
  local secret s p e bad=0
  secret="$(key_pair | cut -d' ' -f2)"
  [[ -n $secret ]] || { echo "    cannot read the private key"; return 1; }
  for s in "${SERVICES[@]}"; do
    p="$(pid_of "$s")"
    e="$(tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null)"
    [[ -n $e ]] || { echo "    $s (pid $p): no environment to read"; bad=1; continue; }
    grep -qxF "JWT_PUBLIC_KEYS=$KEYS/jwks.json" <<<"$e" || { echo "    $s: not JWT_PUBLIC_KEYS=$KEYS/jwks.json"; bad=1; }
    if [[ $s == agent ]]; then
      grep -qxF "JWT_PRIVATE_KEY=$KEYS/jwt-private.jwk" <<<"$e" || { echo "    agent: not JWT_PRIVATE_KEY=$KEYS/jwt-private.jwk"; bad=1; }
    else
      e+=$'\n'"$(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null)"
      if grep -q '^JWT_PRIVATE_KEY=' <<<"$e" || grep -qF -e "jwt-private" -e "$secret" <<<"$e"; then
        echo "    $s (pid $p) has the private key (or its path) in its environment or command line"; bad=1
      fi
    fi
  done
  return "$bad"
}

# ------------------------------------------------------------------ setup

read -r -a PORTS < <("$PY" - <<'PY'
import socket
socks = [socket.socket() for _ in range(6)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
)
for i in "${!SERVICES[@]}"; do export "$(env_prefix "${SERVICES[$i]}")_ADDR=127.0.0.1:${PORTS[$i]}"; done

cat >"$WORK/fake-service" <<'PY'
#!/usr/bin/python3
"""Stand-in service: SERVING on grpc.health.v1.Health/Check at $HOST:$PORT, nothing else.
In $FAKE_SERVICE_CTL, <name>.exit (an exit code) makes it exit with that code, <name>.ignore-term
makes it ignore SIGTERM (otherwise SIGTERM stops it with status 0)."""
import os, signal, sys, time
from concurrent import futures
import grpc

name, ctl = os.path.basename(sys.argv[0]), os.environ["FAKE_SERVICE_CTL"]
stopping = False

def on_term(signum, frame):
    global stopping
    if not os.path.exists(os.path.join(ctl, name + ".ignore-term")):
        stopping = True

signal.signal(signal.SIGTERM, on_term)
health = grpc.method_handlers_generic_handler(
    "grpc.health.v1.Health", {"Check": grpc.unary_unary_rpc_method_handler(lambda req, ctx: b"\x08\x01")})
server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
server.add_generic_rpc_handlers((health,))
if server.add_insecure_port(f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ['PORT']}") == 0:
    sys.exit(f"{name}: cannot bind port {os.environ['PORT']}")
server.start()
print(f"{name}: fake service on port {os.environ['PORT']} (pid {os.getpid()})", flush=True)
exit_file = os.path.join(ctl, name + ".exit")
while not stopping:
    if os.path.exists(exit_file):
        with open(exit_file) as f:
            code = int(f.read().strip() or "1")
        os.remove(exit_file)
        print(f"{name}: exiting with status {code} as told", flush=True)
        os._exit(code)
    time.sleep(0.1)
server.stop(0)
PY
chmod +x "$WORK/fake-service"

persona_bin="${1:-$ROOT/.build/debug/persona}"
for s in "${SERVICES[@]}"; do cp "$WORK/fake-service" "$BIN/$s"; done
if [[ ${TEST_SUPERVISION_FAKE:-0} != 1 && -x $persona_bin ]]; then
  rm -f "$BIN/persona"
  ln -s "$(realpath "$persona_bin")" "$BIN/persona"
  for r in "$(dirname "$(realpath "$persona_bin")")"/*.resources; do [[ -e $r ]] && ln -s "$r" "$BIN/"; done
  echo "# persona: the real executable $(realpath "$persona_bin"); the other five: the fake"
elif [[ -n ${1:-} ]]; then
  echo "$1: not an executable" >&2; exit 2
else
  echo "# all six services: the fake (no $persona_bin)"
fi
echo "# state in $WORK; ports ${PORTS[*]}"

# ------------------------------------------------------------------ up

if "$PLATFORM" up >"$WORK/up.out" 2>&1; then
  ok "up starts the six services under supervisors"
else
  not_ok "up starts the six services under supervisors"; tail -n 30 "$WORK/up.out" | sed 's/^/    /'
  exit 1
fi
check "status: persona running, 0 restarts, no last exit, SERVING" \
  row_matches persona '^persona +[^ ]+ +[0-9]+ +0 +- +SERVING'
check "status exits 0 while everything is SERVING" to_file /dev/null "$PLATFORM" status

# ------------------------------------------------------------------ the token key pair of the first up

check "the first up made a token key pair under the state directory (keys/jwt-private.jwk, keys/jwks.json)" keys_made
check "the first up said so ('token keys made under')" grep -q "token keys made under $KEYS" "$WORK/up.out"
check "the private key is readable by its owner only (mode 600, keys/ 700)" private_key_owner_only
kid="$(key_pair | cut -d' ' -f1)"
check "jwks.json holds the private key's public half under its kid (${kid:-none})" test -n "$kid"
check "only agent gets JWT_PRIVATE_KEY; all six get JWT_PUBLIC_KEYS (each service's environment)" private_key_only_in_agent
keys_first="$(keys_fingerprint)"

# ------------------------------------------------------------------ kill -9

old="$(pid_of persona)"
kill -KILL "$old"
t0=$SECONDS
if wait_until 20 restarted persona "$old"; then
  ok "after kill -9, persona runs again with a new pid ($old -> $(pid_of persona), $((SECONDS - t0))s)"
else
  not_ok "after kill -9, persona runs again with a new pid within 20s"; tail -n 15 "$LOGS/persona.log" | sed 's/^/    /'
fi
check "status: persona 1 restart, last exit SIGKILL, SERVING" \
  row_matches persona '^persona +[^ ]+ +[0-9]+ +1 +SIGKILL +SERVING'
check "persona's log names the exit: 'persona (pid $old) exited: SIGKILL'" \
  grep -q "persona (pid $old) exited: SIGKILL.*restart 1 in 1s" "$LOGS/persona.log"

# ------------------------------------------------------------------ up is idempotent

declare -A before=()
for s in "${SERVICES[@]}"; do before[$s]="$(pid_of "$s")/$(sup_of "$s")"; done
"$PLATFORM" up >"$WORK/up2.out" 2>&1; rc=$?
same=1
for s in "${SERVICES[@]}"; do [[ ${before[$s]} == "$(pid_of "$s")/$(sup_of "$s")" ]] || same=0; done
check "a second up succeeds and leaves every service and supervisor alone" \
  test "$rc" = 0 -a "$same" = 1 -a "$(grep -c 'already supervised' "$WORK/up2.out")" = 6
check "a second up keeps the token keys (kid $kid, same files) and makes none" \
  bash -c '[[ $1 == "$2" ]] && ! grep -q "token keys made" "$3"' _ "$(keys_fingerprint)" "$keys_first" "$WORK/up2.out"

# ------------------------------------------------------------------ exit codes and backoff

old="$(pid_of agent)"
echo 3 >"$CTL/agent.exit"
check "agent exiting with status 3 is restarted" wait_until 20 restarted agent "$old"
check "status: agent 1 restart, last exit 'exit 3'" \
  row_matches agent '^agent +[^ ]+ +[0-9]+ +1 +exit 3 +SERVING'
old="$(pid_of agent)"
echo 3 >"$CTL/agent.exit"
wait_until 10 bash -c '! kill -0 "$1" 2>/dev/null' _ "$old"
t0=$EPOCHREALTIME
wait_until 20 restarted agent "$old"
gap=$(( (${EPOCHREALTIME/./} - ${t0/./}) / 1000 ))
check "a second quick exit backs off 2s (log says so; back after ${gap} ms)" \
  bash -c '[[ $1 -ge 1800 ]] && grep -q "agent (pid $2) exited: exit 3 after .*; restart 2 in 2s" "$3"' \
  _ "$gap" "$old" "$LOGS/agent.log"
sleep 5   # a run longer than RESTART_RESET_AFTER
old="$(pid_of agent)"
echo 3 >"$CTL/agent.exit"
wait_until 20 restarted agent "$old"
check "after a run of RESTART_RESET_AFTER (4s) the backoff is back to 1s" \
  grep -q "agent (pid $old) exited: exit 3 after .*; restart 3 in 1s" "$LOGS/agent.log"

# ------------------------------------------------------------------ missing binary

mv "$BIN/knowledge" "$WORK/knowledge.away"
kill -KILL "$(pid_of knowledge)"
sleep 6
tries="$(grep -c 'knowledge missing or not executable' "$LOGS/knowledge.log")"
check "a missing binary is retried on the backoff, not in a loop ($tries tries in 6s)" \
  test "$tries" -ge 1 -a "$tries" -le 3
check "status: knowledge restarting, binary missing" \
  row_matches knowledge '^knowledge +[^ ]+ +- +[0-9]+ +SIGKILL +restarting.*missing'
mv "$WORK/knowledge.away" "$BIN/knowledge"
check "once the binary is back, knowledge runs again" wait_until 20 restarted knowledge ""

# ------------------------------------------------------------------ down during a backoff

old="$(pid_of persona)"
kill -KILL "$old"
wait_until 5 bash -c '! [[ -f $1 ]]' _ "$RUN/persona.pid"   # the supervisor saw the exit
check "down (persona between two runs) succeeds" to_file "$WORK/down1.out" "$PLATFORM" down
check "after down nothing of the platform runs" nothing_left
check "after down no pid files are left" no_pid_files
sleep 5   # past persona's backoff (2s) and the others' first one
check "5s later still nothing runs (no restart after down)" nothing_left
check "5s later nothing listens on the six ports" nothing_listens
"$PLATFORM" status >/dev/null 2>&1; rc=$?
check "status after down exits 3 and shows persona stopped" \
  bash -c '[[ $1 == 3 ]] && [[ $2 =~ stopped ]]' _ "$rc" "$(status_row persona)"

# ------------------------------------------------------------------ down with a service ignoring SIGTERM

if "$PLATFORM" up >"$WORK/up3.out" 2>&1; then ok "up again after down"; else
  not_ok "up again after down"; tail -n 30 "$WORK/up3.out" | sed 's/^/    /'; exit 1; fi
check "status: restarts start from 0 again" \
  row_matches persona '^persona +[^ ]+ +[0-9]+ +0 +'
check "up after down keeps the token keys (kid $kid, same files) and makes none" \
  bash -c '[[ $1 == "$2" ]] && ! grep -q "token keys made" "$3"' _ "$(keys_fingerprint)" "$keys_first" "$WORK/up3.out"
check "after up again, still only agent gets JWT_PRIVATE_KEY" private_key_only_in_agent
touch "$CTL/workflow.ignore-term"
t0=$SECONDS
check "down succeeds with workflow ignoring SIGTERM" to_file "$WORK/down2.out" "$PLATFORM" down
check "down waited STOP_TIMEOUT, then workflow was killed ($((SECONDS - t0))s)" \
  grep -q "workflow (pid [0-9]*) still running 3s after SIGTERM: SIGKILL" "$LOGS/workflow.log"
check "after down nothing of the platform runs" nothing_left
sleep 4
check "4s later still nothing runs" nothing_left
check "4s later nothing listens on the six ports" nothing_listens

((failed == 0))    # the EXIT trap stops what is left and prints the summary
