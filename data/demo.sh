#!/usr/bin/env bash
# `make demo`: dsref as an oracle on the shipped tiny DeepSeek-LLM-shaped model (data/tiny/llama, made
# by `dsref init`; its golden output comes from an independent float64 PyTorch forward).
set -euo pipefail
cd "$(dirname "$0")/.."
DSREF=${1:-build/dsref}
MODEL=data/tiny/llama
TOKENS=$(cat data/tiny/demo_tokens.txt)
# a fresh folder per run (init writes only into a new or empty one), removed at the end
OUT=$(mktemp -d "${TMPDIR:-/tmp}/dsref_demo.XXXXXX")
trap 'rm -rf "$OUT"' EXIT
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }
step "$DSREF" info --model "$MODEL"
step "$DSREF" forward --model "$MODEL" --tokens "$TOKENS" --out "$OUT/forward.safetensors" --dump
step "$DSREF" generate --model "$MODEL" --tokens "$TOKENS" --max-new 16
# a prompt given as text, tokenized with the committed small byte-level BPE (data/tokenizer/small_deepseek.json)
step "$DSREF" tokenize --tokenizer data/tokenizer/small_deepseek.json --text "The quick brown fox"
step "$DSREF" generate --model "$MODEL" --tokenizer data/tokenizer/small_deepseek.json --text "The quick brown fox" --max-new 8
step "$DSREF" diff "$OUT/forward.safetensors" "$MODEL/golden.safetensors" --atol 1e-4
# DeepSeek-V3.2 (DSA): a random tiny V3.2 model from data/tiny/v32.config.json and its indexer's choices
step "$DSREF" init --config data/tiny/v32.config.json --seed 32 --out "$OUT/v32"
step "$DSREF" forward --model "$OUT/v32" --tokens "$TOKENS" --out "$OUT/v32.safetensors" \
    --dump-only index_topk.1,index_margin.1
# the shipped trained tiny DeepSeek-V3 (data/demo_v3: MLA + DeepSeekMoE + MTP, 0.92 M + 0.46 M parameters, trained by
# data/demo_v3/train.sh with `dsref train` on the prose of this repository's own documentation)
step "$DSREF" generate --model data/demo_v3/model --text "The router" --max-new 48 \
    --temperature 0.7 --top-p 0.9 --seed 1
printf '\ndemo ok: dsref matches the independent float64 reference on every logit and intermediate.\n'
