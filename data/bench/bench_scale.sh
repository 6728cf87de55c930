#!/usr/bin/env bash
# bench_scale.sh — `make bench-scale`: the real DeepSeek-V3 shapes (data/configs/deepseek_v3.json) cut to
# 2 layers (layer 0 dense, layer 1 MoE with 256 FP8 experts of 2048 × 7168), bf16 embedding and head:
#   1. `dsref init` writes the checkpoint (about 16 GB): time and peak RSS;
#   2. `dd iflag=direct` reads its largest file: the disk's sequential read speed;
#   3. `dsref forward` of T = 4 tokens (streamed experts) from a cold page cache (the checkpoint's pages
#      are dropped first, as a 690 GB checkpoint would never be cached): time, peak RSS, peak anonymous
#      memory (RssAnon, sampled every 50 ms), GB/s read.
# Then the checkpoint is deleted (BENCH_SCALE_KEEP=1 keeps it, and a rerun reuses it). Needs about 17 GB
# free under BENCH_SCALE_DIR (default build/bench_scale) and /usr/bin/time (Debian package `time`).
# Targets: init peak RSS <= 2 GB; forward peak RSS <= 6 GB, anonymous <= 3 GB; reading >= 50 % of dd's speed.
set -euo pipefail
DSREF=${DSREF:-build/dsref}
DIR=${BENCH_SCALE_DIR:-build/bench_scale}
THREADS=${THREADS:-2}
if [ ! -x /usr/bin/time ]; then echo "bench-scale: SKIP — /usr/bin/time not installed"; exit 0; fi
if [ "${BENCH_SCALE_KEEP:-0}" = 1 ]; then
    mkdir -p "$DIR"
else
    rm -rf "$DIR" && mkdir -p "$DIR"
    trap 'rm -rf "$DIR"' EXIT
fi
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

size() { awk "BEGIN {printf \"%.1f\", $(du -sb "$DIR/ckpt" | cut -f1) / 1e9}"; }
if [ -f "$DIR/ckpt/config.json" ] && [ "${BENCH_SCALE_KEEP:-0}" = 1 ]; then
    echo "init:    reusing the $(size) GB checkpoint in $DIR/ckpt (BENCH_SCALE_KEEP=1; not timed)"
else
    rm -rf "$DIR/ckpt"
    /usr/bin/time -v "$DSREF" init --config "$DIR/config.json" --seed 1 --dtype bf16 --out "$DIR/ckpt" 2> "$DIR/init.time"
    echo "init:    $(size) GB written in $(wall "$DIR/init.time"), peak RSS $(peak "$DIR/init.time") (target <= 2 GB)"
fi

big=$(ls -S "$DIR"/ckpt/*.safetensors | head -1)
dd_out=$(dd if="$big" of=/dev/null bs=16M iflag=direct 2>&1 | tail -1)
echo "disk:    dd iflag=direct sequential read: ${dd_out##*, }"
dd_gbs=$(echo "${dd_out##*, }" | awk '{v = $1; if ($2 ~ /^MB/) v /= 1000; if ($2 ~ /^kB/) v /= 1e6; print v}')

tokens=1,2,3,4
drop_cache() {  # the checkpoint's pages out of the page cache (written back first): reads go to the disk
    sync
    python3 - "$DIR"/ckpt/*.safetensors <<'PY'
import os, sys
for p in sys.argv[1:]:
    fd = os.open(p, os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)
PY
}
# the timed run
drop_cache
/usr/bin/time -v "$DSREF" forward --model "$DIR/ckpt" --tokens $tokens --out "$DIR/out.safetensors" \
    --threads "$THREADS" --progress 2> "$DIR/fwd.time" || { cat "$DIR/fwd.time"; exit 1; }
# a second run for the anonymous memory only (reading /proc 20 times a second slows the run by a third)
drop_cache
"$DSREF" forward --model "$DIR/ckpt" --tokens $tokens --out "$DIR/out2.safetensors" --threads "$THREADS" 2> /dev/null &
fpid=$!
anon=0  # the largest RssAnon (kB), sampled every 50 ms with shell builtins
while kill -0 $fpid 2> /dev/null; do
    while read -r key val _; do
        if [ "$key" = "RssAnon:" ]; then [ "$val" -gt "$anon" ] && anon=$val; break; fi
    done < /proc/$fpid/status 2> /dev/null || true
    sleep 0.05
done
wait $fpid
tr '\r' '\n' < "$DIR/fwd.time" | grep "^dsref: layer" | tail -1
read_gb=$("$DSREF" info --model "$DIR/ckpt" --T 4 --json --threads "$THREADS" |
          python3 -c 'import json,sys; print(json.load(sys.stdin)["forward_estimate"]["bytes_read"] / 1e9)')
secs=$(awk '/Elapsed \(wall clock\)/ {n = split($NF, a, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + a[i]; print s}' "$DIR/fwd.time")
echo "forward: T = 4 on $THREADS threads in $(wall "$DIR/fwd.time") from a cold cache, peak RSS $(peak "$DIR/fwd.time")" \
     "(target <= 6 GB), anonymous $(awk "BEGIN {printf \"%.2f\", $anon / 1e6}") GB (target <= 3 GB)," \
     "at most $(printf %.1f "$read_gb") GB read: $(awk "BEGIN {printf \"%.2f\", $read_gb / $secs}") GB/s"
"$DSREF" info --model "$DIR/ckpt" --T 4 --threads "$THREADS" | grep "forward of T"
echo "reading: $(awk "BEGIN {printf \"%.0f\", 100 * $read_gb / $secs / $dd_gbs}") % of dd's sequential speed (target >= 50 %;" \
     "the whole wall time counted, conversion and products included)"
cmp -s "$DIR/out.safetensors" "$DIR/out2.safetensors" && echo "logits:  the two runs are bit-identical" ||
    { echo "logits:  the two runs differ"; exit 1; }
