#!/usr/bin/env bash
# train.sh — reproduce the shipped demo model data/demo_v3/model: a random V3-shaped init
# (init.config.json: MLA with query compression and YaRN, one dense layer then two DeepSeekMoE layers of
# 8 routed experts, K = 2, one shared expert, sigmoid / noaux_tc routing, an MTP module; 0.92 M + 0.46 M
# (MTP) parameters, vocab 512)
# trained by `dsref train` with the V3 recipe (AdamW, aux-loss-free bias update γ, sequence-wise balance
# loss α, MTP loss λ = 0.3) on train.txt through tokenizer.json, eval loss on the held-out eval.txt.
# Run from anywhere: data/demo_v3/train.sh [path/to/dsref]  (about 35 seconds on 2 cores).
# Writes model/ (config.json, model.safetensors, tokenizer.json) and train_log.{csv,eval.csv,svg} here.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
DSREF=$(realpath "${1:-$HERE/../../build/dsref}")
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
"$DSREF" init --config "$HERE/init.config.json" --seed 3 --out "$WORK/init"
"$DSREF" train --model "$WORK/init" --tokenizer "$HERE/tokenizer.json" \
    --data "$HERE/train.txt" --eval-data "$HERE/eval.txt" --eval-every 50 \
    --steps 600 --batch 8 --seq-len 128 --lr 3e-3 --warmup 50 --schedule cosine --min-lr-frac 0.1 \
    --weight-decay 0.1 --clip 1.0 --bias-gamma 1e-3 --aux-alpha 1e-4 --mtp-lambda 0.3 \
    --out "$WORK/out" --log "$HERE/train_log.csv"
mkdir -p "$HERE/model"
cp "$WORK/out/config.json" "$WORK/out/model.safetensors" "$WORK/out/tokenizer.json" "$HERE/model/"
echo "train.sh: model in $HERE/model"
