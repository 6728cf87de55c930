#!/usr/bin/env bash
# `make golden`: regenerates every committed golden file from the independent Python implementations.
# Needs /usr/bin/python3 with torch + numpy (Debian python3-torch) and python3 with numpy + ml_dtypes
# (pip). Never needed to build or test. Each script is seeded and writes byte-identical files — with
# Debian's reference BLAS as libblas.so.3: another BLAS (OpenBLAS) sums in another order and changes
# float64 results in the last bits (~1e-16), far below every tolerance, but the bytes differ.
set -euo pipefail
cd "$(dirname "$0")/.."
/usr/bin/python3 data/golden/make_llama_cases.py
/usr/bin/python3 data/golden/make_deepseek_cases.py
/usr/bin/python3 data/golden/make_deepseek_moe_cases.py
/usr/bin/python3 data/moe/make_moe_cases.py
/usr/bin/python3 data/grpo/make_grpo_golden.py
python3 data/fp8/make_fp8_golden.py
${PYTHON:-python3} data/golden/make_hf_cases.py  # needs transformers 5.24 (see data/golden/README.md)
${PYTHON:-python3} data/golden/make_dsa_cases.py  # torch; transformers 5 for the second peer
data/tiny/make_tiny.sh
# needs HF tokenizers (PyPI); the real DeepSeek files come from `make real-tokenizers`
make --no-print-directory real-tokenizers
${PYTHON:-python3} data/tokenizer/make_tokenizer_golden.py build/tokenizers/deepseek-v3/tokenizer.json build/tokenizers/deepseek-v4/tokenizer.json
python3 data/fp8/make_fp4_golden.py                  # needs ml_dtypes >= 0.5 (float4_e2m1fn)
${PYTHON:-python3} data/golden/make_deepseek_v4_cases.py  # needs torch
${PYTHON:-python3} data/train/make_autograd_golden.py  # needs torch + transformers 5 (data/train/README.md)
${PYTHON:-python3} data/golden/make_deepseek_v4_csa_cases.py  # needs torch
${PYTHON:-python3} data/golden/make_deepseek_v4_model_cases.py  # needs torch
${PYTHON:-python3} data/golden/check_v4_hf_model_peer.py --save  # needs transformers 5
git status --short data/
