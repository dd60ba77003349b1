#!/usr/bin/env bash
# Builds the C interop client (libprotobuf-c + libnghttp2) from Debian packages.
#
#   Tests/Interop/c/build.sh OUTDIR
#
# Produces OUTDIR/libgrpc_c_client.a (the reusable client) and OUTDIR/c-interop-client.
# The message code is generated from Protos/ at build time with protoc-c into OUTDIR/gen.
set -euo pipefail

out=${1:?usage: build.sh OUTDIR}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)
gen="$out/gen"
rm -rf "$gen"
mkdir -p "$gen"

protoc-c -I"$repo/Protos" --c_out="$gen" grpc/testing/test.proto platform/echo/v1/echo.proto

CC=${CC:-cc}
CFLAGS=${CFLAGS:-"-O2 -g -Wall -Wextra -std=c11"}

"$CC" $CFLAGS -c "$here/grpc_c_client.c" -o "$out/grpc_c_client.o"
ar rcs "$out/libgrpc_c_client.a" "$out/grpc_c_client.o"

# protoc-c's generated code is not -Wextra clean (unused parameters): build it quietly.
"$CC" $CFLAGS -w -I"$gen" -c "$gen/grpc/testing/test.pb-c.c" -o "$out/test.pb-c.o"
"$CC" $CFLAGS -w -I"$gen" -c "$gen/platform/echo/v1/echo.pb-c.c" -o "$out/echo.pb-c.o"
"$CC" $CFLAGS -I"$here" -I"$gen" "$here/interop_c_client.c" \
  "$out/test.pb-c.o" "$out/echo.pb-c.o" "$out/libgrpc_c_client.a" \
  -lprotobuf-c -lnghttp2 -o "$out/c-interop-client"
echo "built: $out/c-interop-client $out/libgrpc_c_client.a"
