#!/usr/bin/env bash
# Soak benchmark (not in CI): the release `rpc-interop server` under mixed traffic at half its
# measured peak for ten minutes, with a trickle of hostile connections; RSS, file descriptors and
# p50/p99 every 10 s. Fails if, after the first minute, RSS grows by more than 8 MB, the file
# descriptors grow at all, or p99 drifts by more than 50%. What each step does: scripts/soak.py.
#
#   scripts/soak.sh [--minutes M] [--window S] [--fraction F] [path/to/release/rpc-interop]
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
RPC_INTEROP=${RPC_INTEROP:-}
args=()
while [ $# -gt 0 ]; do
  case $1 in
    --minutes|--window|--peak-seconds|--fraction) args+=("$1" "$2"); shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "soak.sh: unknown option $1" >&2; exit 2 ;;
    *) RPC_INTEROP=$1 ;;
  esac
  shift
done
[ "$(nproc)" -ge 2 ] || { echo "soak.sh: needs 2 CPUs (server on 0, load on 1)" >&2; exit 2; }
"$REPO/scripts/install-deps.sh" >/dev/null
if [ -z "$RPC_INTEROP" ]; then
  (cd "$REPO" && flock /tmp/swift-build.lock swift build -c release --product rpc-interop >&2)
  RPC_INTEROP=$(cd "$REPO" && swift build -c release --show-bin-path)/rpc-interop
fi
exec /usr/bin/python3 "$REPO/scripts/soak.py" --rpc-interop "$RPC_INTEROP" "${args[@]}"
