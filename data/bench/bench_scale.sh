#!/usr/bin/env bash
# bench_scale.sh — `make bench-scale`: the real DeepSeek-V3 shapes (data/configs/deepseek_v3.json) cut to
# 2 layers (layer 0 dense, layer 1 MoE with 256 FP8 experts of 2048 × 7168), bf16 embedding and head:
#   1. `dsref init` writes the checkpoint (about 16 GB): time and peak RSS;
#   2. `dd iflag=direct` reads its largest file: the disk's sequential read speed;
#   3. `dsref forward` of T = 4 tokens (streamed experts): time, peak RSS, GB/s read.
# Then the checkpoint is deleted. Needs about 17 GB free under BENCH_SCALE_DIR (default build/bench_scale)
# and /usr/bin/time (Debian package `time`). Targets: init peak RSS <= 2 GB; forward peak RSS <= 6 GB.
set -euo pipefail
DSREF=${DSREF:-build/dsref}
DIR=${BENCH_SCALE_DIR:-build/bench_scale}
THREADS=${THREADS:-2}
if [ ! -x /usr/bin/time ]; then echo "bench-scale: SKIP — /usr/bin/time not installed"; exit 0; fi
rm -rf "$DIR" && mkdir -p "$DIR"
trap 'rm -rf "$DIR"' EXIT
python3 - "$DIR/config.json" <<'PY'
import json, sys
c = json.load(open("data/configs/deepseek_v3.json"))
c["num_hidden_layers"] = 2
c["num_nextn_predict_layers"] = 0
c["first_k_dense_replace"] = 1  # layer 1 is MoE (the real config has 3 dense layers)
json.dump(c, open(sys.argv[1], "w"), indent=1)
PY
peak() { awk -F: '/Maximum resident set size/ {printf "%.2f GB", $2 / 1e6}' "$1"; }
wall() { awk '/Elapsed \(wall clock\)/ {print $NF}' "$1"; }

/usr/bin/time -v "$DSREF" init --config "$DIR/config.json" --seed 1 --dtype bf16 --out "$DIR/ckpt" 2> "$DIR/init.time"
size=$(du -sb "$DIR/ckpt" | cut -f1)
echo "init:    $(awk "BEGIN {printf \"%.1f\", $size / 1e9}") GB written in $(wall "$DIR/init.time"), peak RSS $(peak "$DIR/init.time") (target <= 2 GB)"

big=$(ls -S "$DIR"/ckpt/*.safetensors | head -1)
dd_out=$(dd if="$big" of=/dev/null bs=16M iflag=direct 2>&1 | tail -1)
echo "disk:    dd iflag=direct sequential read: ${dd_out##*, }"

tokens=1,2,3,4
/usr/bin/time -v "$DSREF" forward --model "$DIR/ckpt" --tokens $tokens --out "$DIR/out.safetensors" \
    --threads "$THREADS" --progress 2> "$DIR/fwd.time" || { cat "$DIR/fwd.time"; exit 1; }
read_gb=$("$DSREF" info --model "$DIR/ckpt" --T 4 --json --threads "$THREADS" |
          python3 -c 'import json,sys; print(json.load(sys.stdin)["forward_estimate"]["bytes_read"] / 1e9)')
secs=$(awk '/Elapsed \(wall clock\)/ {n = split($NF, a, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + a[i]; print s}' "$DIR/fwd.time")
echo "forward: T = 4 on $THREADS threads in $(wall "$DIR/fwd.time"), peak RSS $(peak "$DIR/fwd.time") (target <= 6 GB)," \
     "at most $(printf %.1f "$read_gb") GB read: $(awk "BEGIN {printf \"%.2f\", $read_gb / $secs}") GB/s"
"$DSREF" info --model "$DIR/ckpt" --T 4 --threads "$THREADS" | grep "forward of T"
