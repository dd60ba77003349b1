#!/usr/bin/env bash
# Builds the C persona client (libprotobuf-c + libnghttp2) from Debian packages.
#
#   Tests/Interop/c/build-persona.sh OUTDIR
#
# Produces OUTDIR/persona-c-client. The message code is generated at build time with protoc-c
# into OUTDIR/gen: platform/persona/v1/persona.proto and the four well-known types it imports
# (google/protobuf/{empty,field_mask,struct,timestamp}.proto, shipped by libprotobuf-dev under
# /usr/include; libprotobuf-c itself carries no code for them). Nothing generated is committed.
set -euo pipefail

out=${1:?usage: build-persona.sh OUTDIR}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
# Where google/protobuf/*.proto live (override for a non-Debian layout).
wkt=${PROTOBUF_INCLUDE:-/usr/include}
[ -f "$wkt/google/protobuf/struct.proto" ] || {
  echo "build-persona.sh: no $wkt/google/protobuf/struct.proto (install libprotobuf-dev)" >&2
  exit 2
}
mkdir -p "$out"
out=$(cd "$out" && pwd)
gen="$out/gen"
obj="$out/obj"
rm -rf "$gen" "$obj"
mkdir -p "$gen" "$obj"

# protoc-c 1.4 (Debian bookworm) refuses proto3 `optional` fields (Persona.rating). Such a field
# is, by definition, a one-field oneof named `_<field>` (what protoc synthesizes for it), with the
# same wire encoding and presence, so a copy of the contract spells it that way for protoc-c.
src="$out/proto-src"
rm -rf "$src"
mkdir -p "$src/platform/persona/v1"
sed -E 's/^([[:space:]]*)optional[[:space:]]+([A-Za-z0-9_.]+)[[:space:]]+([A-Za-z0-9_]+)[[:space:]]*=[[:space:]]*([0-9]+)[[:space:]]*;/\1oneof _\3 { \2 \3 = \4; }/' \
  "$repo/Protos/platform/persona/v1/persona.proto" >"$src/platform/persona/v1/persona.proto"
if grep -Eq '^[[:space:]]*optional[[:space:]]' "$src/platform/persona/v1/persona.proto"; then
  echo "build-persona.sh: an \`optional\` field the rewrite above does not handle:" >&2
  grep -En '^[[:space:]]*optional[[:space:]]' "$src/platform/persona/v1/persona.proto" >&2
  exit 2
fi

wkt_protos=(google/protobuf/empty.proto google/protobuf/field_mask.proto
            google/protobuf/struct.proto google/protobuf/timestamp.proto)
protoc-c -I"$src" -I"$wkt" --c_out="$gen" \
  platform/persona/v1/persona.proto "${wkt_protos[@]}"

CC=${CC:-cc}
CFLAGS=${CFLAGS:-"-O2 -g -Wall -Wextra -std=c11"}

objects=()
# protoc-c's generated code is not -Wextra clean (unused parameters): build it quietly.
for proto in platform/persona/v1/persona.proto "${wkt_protos[@]}"; do
  base=${proto%.proto}
  o="$obj/$(echo "$base" | tr / _).pb-c.o"
  "$CC" $CFLAGS -w -I"$gen" -c "$gen/$base.pb-c.c" -o "$o"
  objects+=("$o")
done
"$CC" $CFLAGS -c "$here/grpc_c_client.c" -o "$obj/grpc_c_client.o"
"$CC" $CFLAGS -I"$here" -I"$gen" "$here/persona_c_client.c" \
  "${objects[@]}" "$obj/grpc_c_client.o" \
  -lprotobuf-c -lnghttp2 -o "$out/persona-c-client"
echo "built: $out/persona-c-client"
