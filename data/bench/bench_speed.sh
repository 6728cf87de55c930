#!/usr/bin/env bash
# bench_speed.sh — `make bench-speed`: dsref against transformers' own model, measured back to back in one run.
#
#   prefill  `dsref forward --repeat R --last-only` against data/bench/transformers_prefill.py
#            (DeepseekV3ForCausalLM from the SAME checkpoint, float32, weights in memory), at 1 and 2 threads,
#            on the two V3-shaped models below; the ratio, the FLOP rate against one core's FMA peak, and the
#            largest difference of the last row's logits (both ran the same model);
#   decode   `dsref generate` (and `generate --hold-bf16`) on a dense d 2048 llama-shaped bf16 model: ms per
#            token against the DRAM roofline = bytes of the weights as held, read once per token / STREAM copy
#            bandwidth (ref/bench/bench_roofline.cpp).
#
# Models (random weights from `dsref init --dtype bf16`; only the shapes matter for speed):
#   A  d 512, 4 layers (1 dense + 3 MoE), 32 experts of 128 + 1 shared, top-4 of 4 groups, MLA (q_lora 192,
#      kv_lora 128, 8 heads of 32 + 16, d_v 32), vocab 1024 — ref/bench/bench_moe.cpp's model; T = 256
#   B  d 1024, 4 layers (1 dense of 2816 + 3 MoE), 64 experts of 256 + 1 shared, top-6 of 8 groups (topk_group 4),
#      MLA (q_lora 384, kv_lora 256, 16 heads of 64 + 32, d_v 64), vocab 8192; T = 512
#   D  llama d 2048, 4 layers, 16 heads, intermediate 5632, vocab 8192 (decode)
#
# Environment: FMA_PEAK (GFLOP/s of one core, to use instead of the peak measured now: a loaded machine
# measures less), DSREF (default build/dsref), BENCH_DIR (default build/bench_speed, deleted after),
# REPEAT (default 5: prefills per process), PROCS (default 3: processes per side and row), THREADS
# (default "1 2"), BENCH_PYTHON (a python with torch + transformers; default build/bench-venv/bin/python,
# created with `python3 -m venv` + pip when missing unless BENCH_NO_INSTALL=1; the baseline prints SKIP
# when it cannot be had), BENCH_README=1 also writes the table into README.md
# between the "bench-speed" markers. The table is always written to build/bench_speed.md.
# Timings on a shared machine are noisy: each row shows the load average (uptime) next to it, and the
# ratios of one run are what to compare. Back to back, four transformers processes on model B at 1 thread
# took 656 to 841 ms (2026-12-07), hence PROCS: each row's median over processes.
set -euo pipefail
DSREF=${DSREF:-build/dsref}
ROOF=${ROOF:-build/bench/bench_roofline}
DIR=${BENCH_DIR:-build/bench_speed}
REPEAT=${REPEAT:-5}
PROCS=${PROCS:-3}
THREADS=${THREADS:-1 2}
PY=${BENCH_PYTHON:-build/bench-venv/bin/python}
HERE=$(cd "$(dirname "$0")" && pwd)
rm -rf "$DIR" && mkdir -p "$DIR"
trap 'rm -rf "$DIR"' EXIT
load() { awk '{print $1}' /proc/loadavg; }

# ---- the baseline's python ---------------------------------------------------------------------------
have_py() { [ -x "$PY" ] && "$PY" -c 'import torch, transformers, numpy, safetensors' 2>/dev/null; }
if ! have_py && [ "${BENCH_NO_INSTALL:-0}" != 1 ] && [ -z "${BENCH_PYTHON:-}" ]; then
    echo "bench-speed: installing torch + transformers into build/bench-venv (pip) ..." >&2
    { python3 -m venv build/bench-venv && build/bench-venv/bin/pip install -q torch transformers numpy safetensors; } >&2 ||
        echo "bench-speed: the install failed" >&2
fi
BASELINE=1
if ! have_py; then echo "bench-speed: SKIP the transformers baseline (no python with torch + transformers at $PY)"; BASELINE=0; fi

# ---- the models ----------------------------------------------------------------------------------------
python3 - "$DIR" <<'PY'
import json, sys
d = sys.argv[1]
yarn = {"type": "yarn", "factor": 40, "original_max_position_embeddings": 4096, "beta_fast": 32, "beta_slow": 1,
        "mscale": 1.0, "mscale_all_dim": 1.0}
def v3(**k):
    c = {"architectures": ["DeepseekV3ForCausalLM"], "model_type": "deepseek_v3", "num_hidden_layers": 4,
         "rms_norm_eps": 1e-6, "rope_theta": 10000, "rope_scaling": yarn, "n_shared_experts": 1,
         "first_k_dense_replace": 1, "moe_layer_freq": 1, "routed_scaling_factor": 2.5, "scoring_func": "sigmoid",
         "topk_method": "noaux_tc", "norm_topk_prob": True, "num_nextn_predict_layers": 0, "eos_token_id": 1}
    c.update(k)
    return c
A = v3(hidden_size=512, intermediate_size=1024, num_attention_heads=8, vocab_size=1024, q_lora_rank=192,
       kv_lora_rank=128, qk_nope_head_dim=32, qk_rope_head_dim=16, v_head_dim=32, n_routed_experts=32,
       num_experts_per_tok=4, moe_intermediate_size=128, n_group=4, topk_group=2)
B = v3(hidden_size=1024, intermediate_size=2816, num_attention_heads=16, vocab_size=8192, q_lora_rank=384,
       kv_lora_rank=256, qk_nope_head_dim=64, qk_rope_head_dim=32, v_head_dim=64, n_routed_experts=64,
       num_experts_per_tok=6, moe_intermediate_size=256, n_group=8, topk_group=4)
D = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 2048, "intermediate_size": 5632,
     "num_hidden_layers": 4, "num_attention_heads": 16, "num_key_value_heads": 16, "vocab_size": 8192,
     "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "rope_scaling": None, "eos_token_id": 1}
for n, c in (("A", A), ("B", B), ("D", D)):
    json.dump(c, open(f"{d}/{n}.json", "w"), indent=1)
PY
for m in A B D; do
    "$DSREF" init --config "$DIR/$m.json" --seed 1 --dtype bf16 --out "$DIR/$m" > "$DIR/init.log" 2>&1 || { cat "$DIR/init.log"; exit 1; }
done

# FLOPs of one prefill of T tokens (multiply-adds × 2 of the model's products, in the naive MLA formulation —
# the same count whichever path computes it; causal attention over (T + 1) / 2 keys on average; the head on
# the last row only, as both sides compute it).
flops() {
    python3 - "$1" "$2" <<'PY'
import json, sys
c, T = json.load(open(sys.argv[1])), int(sys.argv[2])
d, H, L, V = c["hidden_size"], c["num_attention_heads"], c["num_hidden_layers"], c["vocab_size"]
S = (T + 1) / 2
per_tok = 0.0
for i in range(L):
    if "kv_lora_rank" in c:
        dq, dc, dn, dr, dv = c["q_lora_rank"], c["kv_lora_rank"], c["qk_nope_head_dim"], c["qk_rope_head_dim"], c["v_head_dim"]
        per_tok += d * dq + dq * H * (dn + dr) + d * (dc + dr) + dc * H * (dn + dv) + H * dv * d
        per_tok += S * H * (dn + dr + dv)
    else:
        per_tok += 4 * d * d + S * 2 * d
    if "n_routed_experts" in c and i >= c["first_k_dense_replace"]:
        I = c["moe_intermediate_size"]
        per_tok += d * c["n_routed_experts"] + 3 * d * I * (c["num_experts_per_tok"] + c["n_shared_experts"])
    else:
        per_tok += 3 * d * c["intermediate_size"]
print(2 * (per_tok * T + d * V))
PY
}
tokens() { python3 -c "import sys; T, V = int(sys.argv[1]), int(sys.argv[2]); print(','.join(str((t * 7919 + 13) % V) for t in range(T)))" "$1" "$2"; }
vocab() { python3 -c "import json, sys; print(json.load(open(sys.argv[1]))['vocab_size'])" "$1"; }

# ---- the machine ---------------------------------------------------------------------------------------
roof=$("$ROOF")
rv() { echo "$roof" | awk -v k="$1" '$1 == "roofline:" && $2 == k {print $3}'; }
PEAK=${FMA_PEAK:-$(rv fma_peak_gflops)}  # FMA_PEAK=GFLOP/s: one core's peak measured on an idle machine
cpu=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)
OUTMD=build/bench_speed.md
{
    echo "\`make bench-speed\` on $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores of ${cpu:-an unknown CPU};"
    echo "one core's FMA peak $PEAK GFLOP/s (${FMA_PEAK:+given by FMA_PEAK, }measured $(rv fma_peak_gflops)); STREAM copy $(rv stream_copy_gbs_1) GB/s on 1 thread, $(rv stream_copy_gbs_2) on 2."
    echo "Each side ran $PROCS processes of $REPEAT prefills, alternating; tokens/s is the median of the process medians (their range in brackets), the ratio is of those medians."
    echo "Load is the 1-minute load average when the row was measured (above the thread count: the numbers are shared)."
    echo
    echo "| model | T | threads | dsref tok/s | transformers tok/s | ratio | dsref GFLOP/s (% of peak × threads) | max \\|Δlogit\\| | load |"
    echo "|---|---|---|---|---|---|---|---|---|"
} > "$OUTMD.tmp"

desc_A="A: d 512, 4 layers, 32 experts top-4"
desc_B="B: d 1024, 4 layers, 64 experts top-6, vocab 8192"
for m in A B; do
    T=256; [ $m = B ] && T=512
    V=$(vocab "$DIR/$m.json")
    toks=$(tokens $T "$V")
    F=$(flops "$DIR/$m.json" $T)
    for th in $THREADS; do
        l0=$(load)
        # PROCS processes of each side, alternating: one process's median moves by up to a quarter between
        # processes (transformers' more than dsref's), so the row takes the median of the process medians
        d_list=""; h_list=""; diff="—"
        for p in $(seq "$PROCS"); do
            d_ms=$("$DSREF" forward --model "$DIR/$m" --tokens "$toks" --last-only --out "$DIR/$m.out.safetensors" \
                   --repeat "$REPEAT" --threads "$th" 2>&1 | awk '/prefill median/ {print $3}')
            d_list="$d_list${d_list:+,}$d_ms"
            if [ $BASELINE = 1 ]; then
                line=$("$PY" "$HERE/transformers_prefill.py" --model "$DIR/$m" --T $T --threads "$th" --repeat "$REPEAT" \
                       --compare "$DIR/$m.out.safetensors" 2>/dev/null | grep 'transformers prefill median')
                h_list="$h_list${h_list:+,}$(echo "$line" | awk '{print $4}')"
                [ "$p" = 1 ] && diff=$(echo "$line" | sed -n 's/.*max_abs_diff=\([^ ]*\).*/\1/p')
            fi
        done
        l1=$(load)
        python3 - "$desc_A" "$desc_B" "$m" "$T" "$th" "$d_list" "$h_list" "$F" "$PEAK" "$diff" "$l0" "$l1" >> "$OUTMD.tmp" <<'PY'
import statistics, sys
dA, dB, m, T, th, d_list, h_list, F, peak, diff, l0, l1 = sys.argv[1:]
T, th, F, peak = int(T), int(th), float(F), float(peak)
def rates(lst):  # tokens/s: the median of the process medians, and their range
    ms = [float(v) for v in lst.split(",") if v]
    return statistics.median(ms), f"{T / (statistics.median(ms) / 1e3):.0f}" + (
        f" ({T / (max(ms) / 1e3):.0f}–{T / (min(ms) / 1e3):.0f})" if len(ms) > 1 else "")
d_ms, d_txt = rates(d_list)
gf = F / (d_ms / 1e3) / 1e9
h_ms, h_txt = rates(h_list) if h_list.strip(",") else (None, "SKIP")
r = f"**{h_ms / d_ms:.2f}×**" if h_ms else "—"
print(f"| {dA if m == 'A' else dB} | {T} | {th} | {d_txt} | {h_txt} | {r} | {gf:.1f} ({100 * gf / (peak * th):.0f} %) | {diff} | {l0}–{l1} |")
PY
        tail -1 "$OUTMD.tmp" >&2
    done
done

# ---- decode against the DRAM roofline ------------------------------------------------------------------
# Bytes of weights read per decode token: every matrix of every layer and the head, once, as dsref holds them:
# float32 by default (generation converts the checkpoint at load), or the checkpoint's own bf16 words with
# --hold-bf16 (ref/model/held_weight.h).
wbytes=$(python3 - "$DIR/D.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
d, I, L, V = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"], c["vocab_size"]
print(L * (4 * d * d + 3 * d * I) + d * V)
PY
)
{
    echo
    echo "Decode (\`dsref generate\`, 8-token prompt, 32 new tokens) of model D: llama d 2048, 4 layers, intermediate 5632, vocab 8192, bf16 checkpoint;"
    echo "$(awk "BEGIN {printf \"%.0f\", $wbytes / 1e6}")M weights read per token. Roofline = bytes of the weights as held / STREAM copy bandwidth of the same thread count."
    echo
    echo "| threads | weights held as | dsref ms/token | roofline ms/token | % of the roofline | load |"
    echo "|---|---|---|---|---|---|"
} >> "$OUTMD.tmp"
for th in $THREADS; do
    bw=$(rv stream_copy_gbs_$th); [ -z "$bw" ] && bw=$(rv stream_copy_gbs_1)
    for held in float32 bf16; do
        flag=""; bytes=4
        [ $held = bf16 ] && flag=--hold-bf16 && bytes=2
        l0=$(load)
        ms=$("$DSREF" generate --model "$DIR/D" --tokens 5,6,7,8,9,10,11,12 --max-new 32 --threads "$th" $flag 2>&1 >/dev/null |
             sed -n 's/.*decode \([0-9.]*\) ms per token.*/\1/p')
        l1=$(load)
        awk -v th="$th" -v held="$held" -v flag="$flag" -v ms="$ms" -v n="$wbytes" -v b="$bytes" -v bw="$bw" -v l0="$l0" -v l1="$l1" 'BEGIN {
            roof = b * n / (bw * 1e9) * 1e3;
            printf "| %d | %s%s | %.2f | %.2f | %.0f %% | %s–%s |\n", th, held, flag ? " (`" flag "`)" : " (default)", ms, roof, 100 * roof / ms, l0, l1 }' >> "$OUTMD.tmp"
        tail -1 "$OUTMD.tmp" >&2
    done
done
mv "$OUTMD.tmp" "$OUTMD"
echo
cat "$OUTMD"

if [ "${BENCH_README:-0}" = 1 ]; then
    python3 - "$OUTMD" README.md <<'PY'
import sys
table, readme = open(sys.argv[1]).read(), sys.argv[2]
s = open(readme).read()
b, e = "<!-- bench-speed: begin (written by make bench-speed BENCH_README=1) -->", "<!-- bench-speed: end -->"
if b not in s or e not in s:
    sys.exit("bench-speed: README.md has no bench-speed markers")
s = s[:s.index(b) + len(b)] + "\n" + table + s[s.index(e):]
open(readme, "w").write(s)
print("bench-speed: README.md updated")
PY
fi
