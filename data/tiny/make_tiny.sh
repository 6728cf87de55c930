#!/usr/bin/env bash
# Rebuilds the demo model data/tiny/llama and its golden output.
#   - the weights come from `dsref init` (dsref's own writer; bf16, seed 2024, under 1 MB);
#   - golden.safetensors comes from the independent float64 PyTorch forward in data/golden/llama_ref.py
#     (needs /usr/bin/python3 with torch), with the `tokens` entry left out so that `dsref diff`
#     compares exactly the tensors `dsref forward --dump` writes.
# Usage (from the repository root, after `make`): data/tiny/make_tiny.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
TOKENS=$(cat data/tiny/demo_tokens.txt)
rm -rf data/tiny/llama
build/dsref init --config data/tiny/llama.config.json --seed 2024 --out data/tiny/llama --dtype bf16
/usr/bin/python3 data/golden/llama_ref.py expect --model data/tiny/llama --tokens "$TOKENS" --out /tmp/dsref_tiny_golden.safetensors
/usr/bin/python3 - <<'PY'
import sys
sys.path.insert(0, "data/golden")
import safetensors_io as st
tensors, meta = st.read_safetensors("/tmp/dsref_tiny_golden.safetensors")
tensors.pop("tokens")
st.write_safetensors("data/tiny/llama/golden.safetensors", tensors, meta)
PY
echo "wrote data/tiny/llama (weights + golden.safetensors)"
