#!/usr/bin/env bash
# Fails if the committed generated sources differ from what scripts/generate-protos.sh produces
# now: changed, deleted or new (untracked) files all count.
#
# Usage: scripts/check-generated.sh   (from any directory)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

generated=(Shared/Protos Shared/RPCServices/Generated Tests/Interop/Generated)

scripts/generate-protos.sh

status=0
if ! git diff --exit-code --stat -- "${generated[@]}"; then
  echo "error: generated sources are out of date; run scripts/generate-protos.sh and commit." >&2
  status=1
fi
untracked="$(git ls-files --others --exclude-standard -- "${generated[@]}")"
if [[ -n "$untracked" ]]; then
  echo "error: generated sources not committed:" >&2
  echo "$untracked" >&2
  status=1
fi
exit "$status"
