#!/usr/bin/env bash
# gRPC interop matrix: independent (non-Swift) peers against the Swift runtime, and each other.
#
#   scripts/interop.sh [options] [path/to/rpc-interop]      (or RPC_INTEROP=path scripts/interop.sh)
#
#   (default)         Swift matrix: Python client -> Swift server (h2c and TLS), Go client -> Swift
#                     server (h2c and TLS), C client -> Swift server (h2c), Swift client -> Python
#                     server (h2c and TLS), Swift client -> Go server (h2c and TLS).
#   --peers-only      no Swift binary needed: Python client -> Go server, Go client -> Python
#                     server (both h2c and TLS), C client -> Go server and -> Python server.
#   --no-compression  leave out client_compressed_unary and server_compressed_unary.
#
#   INTEROP_CASES="a b"  run only these cases.   INTEROP_BUILD_DIR  build dir (.build-interop).
#
# One line per (client, server, transport, case), then exactly "N passed, M failed". Exits 1 on
# any failure. Every case is a fresh client process with a timeout; every server runs on a free
# loopback port and is killed on exit. Logs: $INTEROP_BUILD_DIR/logs/.
set -uo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${INTEROP_BUILD_DIR:-$REPO/.build-interop}
PY=/usr/bin/python3                      # Debian's python3 with python3-grpcio, not pyenv's
PYDIR=$REPO/Tests/Interop/python
export INTEROP_PY_GEN=$BUILD/python      # where the Python peers generate their message code
CASE_TIMEOUT=${CASE_TIMEOUT:-60}
TLS_NAME=foo.test.google.fr              # the name the test certificate is issued to

peers_only=0 compression=1 RPC_INTEROP=${RPC_INTEROP:-}
for arg in "$@"; do
  case $arg in
    --peers-only) peers_only=1 ;;
    --no-compression) compression=0 ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "interop.sh: unknown option $arg" >&2; exit 2 ;;
    *) RPC_INTEROP=$arg ;;
  esac
done
if [ "$peers_only" = 0 ]; then
  if [ -z "$RPC_INTEROP" ] || [ ! -x "$RPC_INTEROP" ]; then
    echo "interop.sh: give the Swift rpc-interop binary (argument or RPC_INTEROP), or --peers-only" >&2
    exit 2
  fi
  RPC_INTEROP=$(cd "$(dirname "$RPC_INTEROP")" && pwd)/$(basename "$RPC_INTEROP")
fi

# --- the test cases each peer implements ----------------------------------------------------------
CORE=(empty_unary large_unary client_streaming server_streaming ping_pong empty_stream
      custom_metadata status_code_and_message special_status_message unimplemented_method
      unimplemented_service cancel_after_begin cancel_after_first_response
      timeout_on_sleeping_server)
# `echo` = our EchoService check (all 4 methods in Python/Go, unary Echo in C).
# `reflection_v1alpha`, `reflection_v1` = grpc-go's reflection client over each version.
client_cases() {
  case $1 in
    python) echo "${CORE[*]} client_compressed_unary server_compressed_unary echo" ;;
    go) echo "${CORE[*]} client_compressed_unary server_compressed_unary echo reflection_v1alpha \
reflection_v1" ;;
    c) echo "empty_unary large_unary custom_metadata status_code_and_message \
special_status_message unimplemented_method unimplemented_service echo" ;;
    swift) echo "${CORE[*]} client_compressed_unary server_compressed_unary echo" ;;
  esac
}
# What each server can serve. grpc-go 1.33 cannot choose response compression per call, and
# grpcio cannot tell a handler whether a request was compressed, so each lacks one feature.
server_cases() {
  case $1 in
    go) echo "${CORE[*]} client_compressed_unary echo" ;;
    python) echo "${CORE[*]} server_compressed_unary echo" ;;
    swift) echo "${CORE[*]} client_compressed_unary server_compressed_unary echo reflection_v1alpha \
reflection_v1" ;;
  esac
}
# Cases to run for a client/server pair: the client's list, filtered by the server's and options.
pair_cases() {
  local c
  for c in $(client_cases "$1"); do
    [[ " $(server_cases "$2") " == *" $c "* ]] || continue
    [ "$compression" = 0 ] && [[ $c == *_compressed_* ]] && continue
    # grpc-go 1.33 sends grpc-accept-encoding only when it compresses its own request, so a
    # server that follows the compression spec must answer its server_compressed_unary probe
    # uncompressed (grpc-go's own server cannot compress per call at all).
    [ "$1" = go ] && [ "$2" = swift ] && [ "$c" = server_compressed_unary ] && continue
    [ -n "${INTEROP_CASES:-}" ] && [[ " $INTEROP_CASES " != *" $c "* ]] && continue
    echo "$c"
  done
}

# --- processes, cleanup ----------------------------------------------------------------------------
TMP=$(mktemp -d)
LOGS=$BUILD/logs
SERVER_PIDS=()
cleanup() {
  local pid
  for pid in "${SERVER_PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${SERVER_PIDS[@]}"; do wait "$pid" 2>/dev/null; done
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
rm -rf "$LOGS"
mkdir -p "$LOGS"

# --- build the peers -------------------------------------------------------------------------------
build() {   # build NAME CMD...: quiet unless it fails
  if ! "${@:2}" >"$LOGS/build-$1.log" 2>&1; then
    echo "interop.sh: building the $1 peer failed:" >&2
    cat "$LOGS/build-$1.log" >&2
    exit 2
  fi
}
build go "$REPO/Tests/Interop/go/build.sh" "$BUILD/go"
build c "$REPO/Tests/Interop/c/build.sh" "$BUILD/c"
build python "$PY" -c "import sys; sys.path.insert(0, '$PYDIR'); import _protos"

# --- TLS material: a throwaway CA and a server certificate it signs -------------------------------
make_certs() {
  local d=$TMP/tls
  mkdir -p "$d"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=interop test CA" \
    -keyout "$d/ca.key" -out "$d/ca.pem" &&
  openssl req -newkey rsa:2048 -nodes -subj "/CN=$TLS_NAME" \
    -keyout "$d/server.key" -out "$d/server.csr" &&
  openssl x509 -req -days 2 -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" \
    -CAcreateserial -out "$d/server.pem" -extfile <(printf '%s\n' \
      "subjectAltName=DNS:$TLS_NAME,DNS:localhost,IP:127.0.0.1" \
      "basicConstraints=CA:FALSE" "keyUsage=digitalSignature,keyEncipherment" \
      "extendedKeyUsage=serverAuth")
}
make_certs >"$LOGS/openssl.log" 2>&1 || { cat "$LOGS/openssl.log" >&2; exit 2; }
CA=$TMP/tls/ca.pem CERT=$TMP/tls/server.pem KEY=$TMP/tls/server.key

# --- servers -----------------------------------------------------------------------------------------
free_port() {
  "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

server_cmd() {   # server_cmd IMPL PORT TLS -> CMD array
  local tls=$3
  case $1 in
    go) CMD=("$BUILD/go/go-interop-server" --port "$2")
        [ "$tls" = tls ] && CMD+=(--use_tls --tls_cert_file "$CERT" --tls_key_file "$KEY") ;;
    python) CMD=("$PY" "$PYDIR/interop_server.py" --port "$2")
        [ "$tls" = tls ] && CMD+=(--use_tls --tls_cert_file "$CERT" --tls_key_file "$KEY") ;;
    swift) CMD=("$RPC_INTEROP" server --port "$2")
        [ "$tls" = tls ] && CMD+=(--tls-cert "$CERT" --tls-key "$KEY") ;;
  esac
  return 0
}

declare -A PORT PID
# start_server IMPL TLS: starts it once, waits until it accepts connections. Sets PORT[IMPL-TLS]
# (0 when it did not come up).
start_server() {
  local key=$1-$2 port i
  [ -n "${PORT[$key]:-}" ] && return
  port=$(free_port)
  server_cmd "$1" "$port" "$2"
  "${CMD[@]}" >"$LOGS/server-$key.log" 2>&1 &
  PID[$key]=$!
  SERVER_PIDS+=($!)
  for i in $(seq 100); do
    if ! kill -0 "${PID[$key]}" 2>/dev/null; then break; fi
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then PORT[$key]=$port; return; fi
    sleep 0.1
  done
  PORT[$key]=0
}

# --- clients -----------------------------------------------------------------------------------------
client_cmd() {   # client_cmd IMPL PORT TLS CASE -> CMD array
  local port=$2 tls=$3 case=$4
  case $1 in
    python) CMD=("$PY" "$PYDIR/interop_client.py" --server_host 127.0.0.1 --server_port "$port"
                 --test_case "$case")
        [ "$tls" = tls ] && CMD+=(--use_tls --ca_file "$CA" --server_host_override "$TLS_NAME") ;;
    go) CMD=("$BUILD/go/go-interop-client" --server_host 127.0.0.1 --server_port "$port"
             --test_case "$case")
        [ "$tls" = tls ] && CMD+=(--use_tls --ca_file "$CA" --server_host_override "$TLS_NAME") ;;
    c) CMD=("$BUILD/c/c-interop-client" --host 127.0.0.1 --port "$port" --test_case "$case") ;;
    swift) CMD=("$RPC_INTEROP" client --host 127.0.0.1 --port "$port" --test-case "$case")
        [ "$tls" = tls ] && CMD+=(--tls --ca "$CA" --server-host-override "$TLS_NAME") ;;
  esac
  return 0
}

PASSED=0 FAILED=0 N=0
# run_pair CLIENT SERVER TLS: every case both sides support, one client process each.
run_pair() {
  local client=$1 server=$2 tls=$3 label case out rc
  label=$(printf '%-6s client -> %-6s server [%s]' "$client" "$server" "$tls")
  start_server "$server" "$tls"
  for case in $(pair_cases "$client" "$server"); do
    N=$((N + 1))
    out=$LOGS/client-$N-$client-$server-$tls-$case.log
    if [ "${PORT[$server-$tls]}" = 0 ]; then
      echo "$server server ($tls) did not start; see $LOGS/server-$server-$tls.log" >"$out"
      rc=1
    else
      client_cmd "$client" "${PORT[$server-$tls]}" "$tls" "$case"
      timeout "$CASE_TIMEOUT" "${CMD[@]}" >"$out" 2>&1
      rc=$?
      [ "$rc" = 124 ] && echo "(timed out after ${CASE_TIMEOUT}s)" >>"$out"
    fi
    if [ "$rc" = 0 ]; then
      PASSED=$((PASSED + 1))
      printf 'PASS  %s  %s\n' "$label" "$case"
    else
      FAILED=$((FAILED + 1))
      printf 'FAIL  %s  %s\n' "$label" "$case"
      tail -n 12 "$out" | sed 's/^/        | /'
    fi
  done
}

if [ "$peers_only" = 1 ]; then
  run_pair python go h2c
  run_pair python go tls
  run_pair go python h2c
  run_pair go python tls
  run_pair c go h2c
  run_pair c python h2c
else
  run_pair python swift h2c
  run_pair python swift tls
  run_pair go swift h2c
  run_pair go swift tls
  run_pair c swift h2c
  run_pair swift python h2c
  run_pair swift python tls
  run_pair swift go h2c
  run_pair swift go tls
fi

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
