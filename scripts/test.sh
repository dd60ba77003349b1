#!/usr/bin/env bash
# The project's test command: builds everything, runs the Swift test suites (unit, integration
# over real loopback sockets, TLS, hostile input), the interop matrix against independent gRPC
# implementations (Python grpcio, grpc-go, a C client on libnghttp2), and checks that the
# generated code is up to date.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n=== %s\n' "$*"; }

step "build"
swift build --build-tests

step "swift test"
swift test --skip-build

step "hostile input (malformed HTTP/2 and gRPC, floods, fuzzing, slow readers)"
/usr/bin/python3 Tests/Hostile/hostile_test.py --server-bin "$(swift build --show-bin-path)/rpc-interop"

step "interop matrix"
scripts/interop.sh "$(swift build --show-bin-path)/rpc-interop"

step "generated code is up to date"
scripts/check-generated.sh
