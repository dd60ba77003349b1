#!/usr/bin/env bash
# Builds the Go interop peers OFFLINE in GOPATH mode against Debian's grpc-go 1.33 sources.
#
#   Tests/Interop/go/build.sh OUTDIR
#
# Produces OUTDIR/go-interop-server, OUTDIR/go-interop-client and OUTDIR/go-echo-server.
# The message and stub code is generated from Protos/ at build time with Debian's protoc-gen-go
# 1.3.5 (`plugins=grpc`); it lands in OUTDIR/gopath/src/<go_package> and is never committed.
set -euo pipefail

out=${1:?usage: build.sh OUTDIR}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)

gopath="$out/gopath"
src="$gopath/src/platform/interop"   # the import root named by the protos' go_package options
rm -rf "$src"
mkdir -p "$src"

# go_package = "platform/interop/grpc_testing" / "platform/interop/echo" puts the generated files
# at $gopath/src/platform/interop/{grpc_testing,echo}/.
protoc -I"$repo/Protos" --go_out=plugins=grpc:"$gopath/src" \
  "$repo/Protos/grpc/testing/test.proto"
protoc -I"$repo/Protos" --go_out=plugins=grpc:"$gopath/src" \
  "$repo/Protos/platform/echo/v1/echo.proto"

# GOPATH mode needs the mains inside GOPATH too; copy (symlinks confuse `go build` path logic).
cp -r "$here/cmd" "$here/echoimpl" "$src/"

export GO111MODULE=off
export GOPATH="$gopath:/usr/share/gocode"     # Debian's golang-*-dev sources live in the second
export GOFLAGS=
export GOCACHE="${GOCACHE:-$out/gocache}"     # keep the build cache with the build, not in $HOME
export CGO_ENABLED=0

for cmd in go-interop-server go-interop-client go-echo-server; do
  go build -o "$out/$cmd" "platform/interop/cmd/$cmd"
done
echo "built: $out/go-interop-server $out/go-interop-client $out/go-echo-server"
