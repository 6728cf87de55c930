#!/usr/bin/env bash
# `make r1zero`: the mini R1-Zero of walkthrough/09_r1zero on data/train's tiny DeepSeek-V3-shaped model
# (byte vocabulary): a random init, a short SFT on worked <think> traces of 2-digit additions (70 % of
# them drop their carry: imperfect demonstrations), then GRPO with the rule-based rewards on prompts
# without traces. Prints held-out greedy accuracy before and after GRPO; writes the CSVs and SVGs.
# Usage: data/r1zero.sh [DSREF] [OUT]
set -euo pipefail
cd "$(dirname "$0")/.."
DSREF=${1:-build/dsref}
OUT=${2:-build/r1zero}
THREADS=${THREADS:-2}  # the results are bit-identical at any thread count
mkdir -p "$OUT"
rm -rf "$OUT/init" "$OUT/sft" "$OUT/grpo"  # a rerun starts afresh (init refuses a non-empty folder)
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }
step "$DSREF" init --config data/train/tiny_v3.config.json --seed 1 --out "$OUT/init"
step "$DSREF" rl-data --seed 1 --n 4000 --slip 0.7 --out "$OUT/sft.bin" --show
step "$DSREF" train --model "$OUT/init" --data "$OUT/sft.bin" --out "$OUT/sft" --steps 2500 --batch 8 --seq-len 64 \
    --lr 3e-3 --schedule cosine --warmup 20 --log "$OUT/sft.csv" --threads "$THREADS"
step "$DSREF" rl --model "$OUT/sft" --out "$OUT/grpo" --log "$OUT/grpo.csv" --seed 2 --sft-seed 1 --sft-n 4000 \
    --steps ${R1ZERO_STEPS:-300} --prompts 16 -G 8 --lr ${R1ZERO_LR:-2e-4} --beta 0.04 --eval-every 50 --threads "$THREADS"
printf '\nr1zero: curves in %s/grpo.svg (SFT loss: %s/sft.svg)\n' "$OUT" "$OUT"
