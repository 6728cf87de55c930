#!/usr/bin/env python3
"""make_deepseek_moe_cases.py — random full DeepSeek-V2 / V2-Lite / V3 checkpoints WITH DeepSeekMoE layers
(and, for V3, FP8 storage and a multi-token-prediction layer) and their expected outputs.

Writes data/golden/deepseek_moe/<case>/{config.json, checkpoint files, expected.safetensors}. The
checkpoints are written here, by Python, independently of `dsref init`; the expected outputs come from
the independent float64 forward in deepseek_ref.py (whose MoE layer is ../moe/moe_ref.py), run on the
checkpoint as read back from disk (so BF16 cases expect the BF16-rounded model, and the FP8 case the
dequantized one).

    /usr/bin/python3 data/golden/make_deepseek_moe_cases.py

Cases (see deepseek_moe/README.md for the table):
  v3_moe       sigmoid / noaux_tc with groups; FP8 F8_E4M3 storage + weight_scale_inv 128x128 blocks,
               dims above 128 (q_b_proj 160 rows, kv_b_proj 192 rows, dense MLP 160 wide) so partial edge
               blocks exist; 3 shards with every scale in another shard than its weight; an MTP layer
               (num_nextn_predict_layers 1, with its own embed_tokens / shared_head, different from the
               main ones) and the expected mtp_logits.
  v3_negbias   a negative correction bias for which -inf and 0.0 group masking choose differently
               (asserted here), every layer MoE (first_k_dense_replace 0).
  v2_moe       softmax / group_limited_greedy, routed_scaling_factor 16, two shared experts.
  v2_lite_moe  softmax / greedy, no q_lora (q_proj), moe_layer_freq 2 (layers 0, 1 dense, 2 MoE).

Routing margins: every token's routing is decided by score gaps (moe_ref's `margin`: the group cut gap
and the gaps between consecutive selected scores and to the best unselected one). A float32
implementation can only disagree with this float64 one where a gap is within its rounding error
(~1e-7 here), and one flipped expert changes the logits far beyond 1e-4. So token sequences are redrawn
until every margin of every MoE layer (MTP included) is >= MIN_MARGIN; the margins are stored
(margin.{i}) so the C++ test can also skip tokens with margin <= 1e-4 when it compares topk_idx.

FP8 encoding: nearest E4M3FN value, ties to the even code, written here from a table of the 127
non-negative finite values (no ml_dtypes, torch 1.13 has no float8). Per 128x128 block (partial at the
edges): s = float32(max(amax, 1e-4)) / 448 over the block's real elements, q = e4m3(float32(w / s)).
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import write_safetensors  # noqa: E402
import deepseek_ref  # noqa: E402

T = 32             # tokens per case; by causality rows [0, t) are also the answer for tokens[:t]
MIN_MARGIN = 1e-5  # smallest routing gap allowed in the golden sequences (float32 noise is ~1e-7)
BLOCK = 128        # weight_block_size of the FP8 case


# ----------------------------------------------------------------------------------------------
# E4M3FN encoding by table

def _e4m3_table():
    """Values of the non-negative finite codes 0..126, increasing with the code."""
    return deepseek_ref.e4m3_decode(np.arange(127))


E4M3_POS = _e4m3_table()


def e4m3_encode(x):
    """float32 array -> uint8 codes: nearest E4M3FN value, ties to the even code, saturating at 448."""
    x = np.asarray(x, dtype=np.float64)
    a = np.abs(x)
    hi = np.clip(np.searchsorted(E4M3_POS, a, side="left"), 0, 126)   # first value >= a
    lo = np.clip(hi - 1, 0, 126)
    d_lo, d_hi = a - E4M3_POS[lo], E4M3_POS[hi] - a
    code = np.where(d_lo < d_hi, lo, hi)
    code = np.where((d_lo == d_hi) & (lo % 2 == 0), lo, code)          # ties to the even code
    code = np.where(a >= E4M3_POS[126], 126, code)                     # saturate (never reached: |w/s| <= 448)
    return (code | np.where(x < 0, 0x80, 0)).astype(np.uint8)


def fp8_quantize(w, block=BLOCK):
    """w [R, C] float32 -> (codes [R, C] uint8, scale_inv [ceil(R/b), ceil(C/b)] float32)."""
    R, C = w.shape
    nb_r, nb_c = -(-R // block), -(-C // block)
    q = np.zeros((R, C), dtype=np.uint8)
    s = np.zeros((nb_r, nb_c), dtype=np.float32)
    for i in range(nb_r):
        for j in range(nb_c):
            blk = w[i * block:(i + 1) * block, j * block:(j + 1) * block]   # partial at the edges
            amax = np.float32(max(float(np.max(np.abs(blk))), np.float32(1e-4)))
            s[i, j] = np.float32(amax / np.float32(448.0))
            q[i * block:(i + 1) * block, j * block:(j + 1) * block] = e4m3_encode(
                (blk.astype(np.float32) / s[i, j]).astype(np.float32))
    # the round trip is within half an E4M3 step (2^-4 relative, or half the subnormal step) of w
    back = deepseek_ref.fp8_dequant("w", q, s, (block, block))
    step = np.repeat(np.repeat(s.astype(np.float64), block, 0), block, 1)[:R, :C]
    assert np.all(np.abs(back - w) <= np.maximum(np.abs(w) / 16, step * 2.0 ** -10) + 1e-12), "fp8 round trip"
    return q, s


# ----------------------------------------------------------------------------------------------
# The cases

def yarn(L0, mscale):
    return {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": L0, "beta_fast": 32, "beta_slow": 1,
            "mscale": mscale, "mscale_all_dim": mscale}


V3_GATE = {"scoring_func": "sigmoid", "topk_method": "noaux_tc", "norm_topk_prob": True, "routed_scaling_factor": 2.5}

CASES = [
    dict(name="v3_moe", seed=301, model_type="deepseek_v3", arch="DeepseekV3ForCausalLM",
         d=64, H=4, d_q=48, d_c=32, d_n=32, d_r=8, d_v=16, L=2, I=160, V=80, theta=10000.0,
         rope_scaling=yarn(16, 1.0), storage="FP8", shards=3, mtp=True, bias=("normal", 0.0, 0.1),
         moe=dict(V3_GATE, n_routed_experts=16, n_shared_experts=1, num_experts_per_tok=3, moe_intermediate_size=16,
                  n_group=4, topk_group=2, first_k_dense_replace=1, moe_layer_freq=1),
         wrong=("bias_in_weights", "no_renorm", "group_max")),
    dict(name="v3_negbias", seed=302, model_type="deepseek_v3", arch="DeepseekV3ForCausalLM",
         d=32, H=2, d_q=24, d_c=16, d_n=8, d_r=4, d_v=8, L=2, I=48, V=64, theta=500.0,
         rope_scaling=yarn(16, 1.0), storage="BF16", shards=1, mtp=False, bias=("normal", -0.6, 0.1),
         moe=dict(V3_GATE, n_routed_experts=16, n_shared_experts=1, num_experts_per_tok=4, moe_intermediate_size=16,
                  n_group=4, topk_group=2, first_k_dense_replace=0, moe_layer_freq=1),
         wrong=("mask_value",)),
    dict(name="v2_moe", seed=303, model_type="deepseek_v2", arch="DeepseekV2ForCausalLM",
         d=48, H=2, d_q=32, d_c=24, d_n=16, d_r=8, d_v=16, L=2, I=64, V=72, theta=100.0,
         rope_scaling=yarn(16, 0.707), storage="BF16", shards=1, mtp=False, bias=None,
         moe=dict(scoring_func="softmax", topk_method="group_limited_greedy", norm_topk_prob=False,
                  routed_scaling_factor=16.0, n_routed_experts=16, n_shared_experts=2, num_experts_per_tok=3,
                  moe_intermediate_size=16, n_group=4, topk_group=2, first_k_dense_replace=1, moe_layer_freq=1),
         wrong=("softmax_after_mask",)),
    dict(name="v2_lite_moe", seed=304, model_type="deepseek_v2", arch="DeepseekV2ForCausalLM",
         d=48, H=2, d_q=None, d_c=24, d_n=16, d_r=8, d_v=16, L=3, I=48, V=72, theta=50.0,
         rope_scaling=yarn(16, 0.707), storage="BF16", shards=1, mtp=False, bias=None,
         moe=dict(scoring_func="softmax", topk_method="greedy", norm_topk_prob=False, routed_scaling_factor=1.0,
                  n_routed_experts=16, n_shared_experts=2, num_experts_per_tok=4, moe_intermediate_size=16,
                  n_group=1, topk_group=1, first_k_dense_replace=1, moe_layer_freq=2),
         wrong=()),
]


def make_config(c):
    cfg = {
        "architectures": [c["arch"]],
        "model_type": c["model_type"],
        "hidden_size": c["d"],
        "intermediate_size": c["I"],
        "num_hidden_layers": c["L"],
        "num_attention_heads": c["H"],
        "num_key_value_heads": c["H"],
        "q_lora_rank": c["d_q"],
        "kv_lora_rank": c["d_c"],
        "qk_nope_head_dim": c["d_n"],
        "qk_rope_head_dim": c["d_r"],
        "v_head_dim": c["d_v"],
        "head_dim": c["d_r"],
        "vocab_size": c["V"],
        "max_position_embeddings": 256,
        "rms_norm_eps": 1e-06,
        "rope_theta": c["theta"],
        "rope_scaling": c["rope_scaling"],
        "hidden_act": "silu",
        "attention_bias": False,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        "bos_token_id": 0,
        "eos_token_id": 1,
        "num_nextn_predict_layers": 1 if c["mtp"] else 0,
    }
    cfg.update(c["moe"])
    if c["storage"] == "FP8":
        cfg["quantization_config"] = {"quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "dynamic",
                                      "weight_block_size": [BLOCK, BLOCK]}
    return cfg


def is_moe(c, i):
    m = c["moe"]
    return i >= m["first_k_dense_replace"] and i % m["moe_layer_freq"] == 0


def make_weights(c, rng):
    """{HF name: (float32 array, fp8?)}. Projections N(0, 1/in), embeddings N(0, 1), norms 1 + 0.1 N(0, 1),
    router gate N(0, 1/d), correction bias as the case says."""
    d, H, d_q, d_c, d_n, d_r, d_v, I, V, L = (c[k] for k in ("d", "H", "d_q", "d_c", "d_n", "d_r", "d_v", "I", "V", "L"))
    m = c["moe"]
    E, mI, n_s = m["n_routed_experts"], m["moe_intermediate_size"], m["n_shared_experts"]
    w = {}

    def proj(name, out_f, in_f, fp8=True):
        w[name] = (rng.standard_normal((out_f, in_f)) / np.sqrt(in_f), fp8)

    def norm(name, n):
        w[name] = (1.0 + 0.1 * rng.standard_normal(n), False)

    def mlp(p, width):
        proj(p + "gate_proj.weight", width, d)
        proj(p + "up_proj.weight", width, d)
        proj(p + "down_proj.weight", d, width)

    def layer(i, moe):
        p = f"model.layers.{i}."
        a = p + "self_attn."
        norm(p + "input_layernorm.weight", d)
        if d_q:
            proj(a + "q_a_proj.weight", d_q, d)
            norm(a + "q_a_layernorm.weight", d_q)
            proj(a + "q_b_proj.weight", H * (d_n + d_r), d_q)
        else:
            proj(a + "q_proj.weight", H * (d_n + d_r), d)
        proj(a + "kv_a_proj_with_mqa.weight", d_c + d_r, d)
        norm(a + "kv_a_layernorm.weight", d_c)
        proj(a + "kv_b_proj.weight", H * (d_n + d_v), d_c)
        proj(a + "o_proj.weight", d, H * d_v)
        norm(p + "post_attention_layernorm.weight", d)
        if not moe:
            mlp(p + "mlp.", I)
            return
        proj(p + "mlp.gate.weight", E, d, fp8=False)  # the router stays BF16 in FP8 checkpoints
        if c["bias"] is not None:
            _, mean, std = c["bias"]
            w[p + "mlp.gate.e_score_correction_bias"] = (mean + std * rng.standard_normal(E), False)
        for j in range(E):
            mlp(p + f"mlp.experts.{j}.", mI)
        if n_s > 0:
            mlp(p + "mlp.shared_experts.", n_s * mI)

    w["model.embed_tokens.weight"] = (rng.standard_normal((V, d)), False)
    for i in range(L):
        layer(i, is_moe(c, i))
    norm("model.norm.weight", d)
    proj("lm_head.weight", V, d, fp8=False)
    if c["mtp"]:  # layer L: its own embedding / head, deliberately NOT copies of the main ones
        p = f"model.layers.{L}."
        w[p + "embed_tokens.weight"] = (rng.standard_normal((V, d)), False)
        norm(p + "enorm.weight", d)
        norm(p + "hnorm.weight", d)
        proj(p + "eh_proj.weight", d, 2 * d, fp8=False)
        layer(L, True)
        norm(p + "shared_head.norm.weight", d)
        proj(p + "shared_head.head.weight", V, d, fp8=False)
    return {n: (a.astype(np.float32), fp8) for n, (a, fp8) in w.items()}


def storage(c, weights):
    """{name: (dtype, array)}: FP8 codes + F32 scale_inv for fp8 projections in the FP8 case, F32 for the
    correction bias, BF16 for the rest."""
    out = {}
    for name, (a, fp8) in weights.items():
        if name.endswith("e_score_correction_bias"):
            out[name] = ("F32", a)
        elif fp8 and c["storage"] == "FP8":
            q, s = fp8_quantize(a)
            out[name] = ("F8_E4M3", q)
            out[name + "_scale_inv"] = ("F32", s)
        else:
            out[name] = ("BF16", a)
    return out


def write_checkpoint(case_dir, tensors, n_shards):
    """One model.safetensors, or n shards + index where every `_scale_inv` sits in the shard after its
    weight's (so never with it)."""
    if n_shards == 1:
        write_safetensors(os.path.join(case_dir, "model.safetensors"), tensors, metadata={"format": "pt"})
        return
    files = [f"model-{k + 1:05d}-of-{n_shards:05d}.safetensors" for k in range(n_shards)]
    shard_of = {}
    plain = [n for n in sorted(tensors) if not n.endswith("_scale_inv")]
    for k, name in enumerate(plain):
        shard_of[name] = k % n_shards
    for name in tensors:
        if name.endswith("_scale_inv"):
            shard_of[name] = (shard_of[name[:-len("_scale_inv")]] + 1) % n_shards
            assert shard_of[name] != shard_of[name[:-len("_scale_inv")]]
    total = 0
    for k, f in enumerate(files):
        part = {n: t for n, t in tensors.items() if shard_of[n] == k}
        assert part, "every shard holds tensors"
        write_safetensors(os.path.join(case_dir, f), part, metadata={"format": "pt"})
        total += sum(np.asarray(a).nbytes if dt != "BF16" else np.asarray(a).size * 2 for dt, a in part.values())
    index = {"metadata": {"total_size": total}, "weight_map": {n: files[shard_of[n]] for n in sorted(tensors)}}
    with open(os.path.join(case_dir, "model.safetensors.index.json"), "w") as fh:
        fh.write(json.dumps(index, indent=2) + "\n")


def all_margins(cfg, weights, tokens, with_mtp):
    """{layer: margins [T or T-1]} of every MoE layer (MTP included)."""
    out = deepseek_ref.forward(cfg, weights, tokens)
    m = {i: r["margin"] for i, r in out["routing"].items()}
    if with_mtp:
        r = deepseek_ref.mtp(cfg, weights, tokens, out["final_hidden"])["routing"]
        m[cfg["L"]] = r["margin"]
    return m, out


def pick_tokens(c, cfg, weights, rng):
    """T random ids (0 and V-1 forced in) whose routing margins are all >= MIN_MARGIN; redraws otherwise."""
    for attempt in range(200):
        tokens = rng.integers(0, c["V"], size=T)
        tokens[3] = 0
        tokens[T - 2] = c["V"] - 1
        tokens = [int(t) for t in tokens]
        margins, out = all_margins(cfg, weights, tokens, c["mtp"])
        low = min(float(np.min(v)) for v in margins.values())
        if low >= MIN_MARGIN:
            return tokens, margins, out, attempt
    raise SystemExit(f"{c['name']}: no token sequence with routing margins >= {MIN_MARGIN} in 200 draws")


WRONG_RULES = {  # moe_ref keyword for each deliberately wrong rule
    "bias_in_weights": {"bias_in_weights": True},
    "no_renorm": {"no_renorm": True},
    "group_max": {"group_max": True},
    "mask_value": {"mask_value": 0.0},
    "softmax_after_mask": {"softmax_after_mask": True},
    "v3_rule": {"v3_rule": True},
}


def sensitivity(c, cfg, weights, tokens, out):
    """max |Δlogits| under each wrong rule, and how many (token, layer) routings it changes."""
    lines = []
    for rule in c["wrong"]:
        o = deepseek_ref.forward(cfg, weights, tokens, rules=WRONG_RULES[rule])
        changed = sum(int(np.sum(np.any(o["routing"][i]["topk_idx"] != r["topk_idx"], axis=1)))
                      for i, r in out["routing"].items())
        dl = float((o["logits"] - out["logits"]).abs().max())
        lines.append((rule, dl, changed))
    return lines


def make_case(root, c):
    case_dir = os.path.join(root, c["name"])
    os.makedirs(case_dir, exist_ok=True)
    for f in os.listdir(case_dir):  # a rerun may change the shard layout: start clean
        os.remove(os.path.join(case_dir, f))
    rng = np.random.default_rng(c["seed"])
    weights = make_weights(c, rng)
    with open(os.path.join(case_dir, "config.json"), "w") as f:
        f.write(json.dumps(make_config(c), indent=2) + "\n")
    tensors = storage(c, weights)
    write_checkpoint(case_dir, tensors, c["shards"])

    cfg = deepseek_ref.load_config(case_dir)
    read_back = deepseek_ref.load_weights(case_dir, cfg["fp8_block"])
    tokens, margins, out, redraws = pick_tokens(c, cfg, read_back, rng)
    deepseek_ref.write_expected(case_dir, tokens, os.path.join(case_dir, "expected.safetensors"),
                                mla_dumps=False, with_mtp=c["mtp"])

    if c["storage"] == "FP8":  # partial edge blocks exist, in both directions
        shapes = [a.shape for dt, a in tensors.values() if dt == "F8_E4M3"]
        assert any(s[0] > BLOCK and s[0] % BLOCK for s in shapes), "a row edge block below a full one"
        assert any(s[1] > BLOCK and s[1] % BLOCK for s in shapes), "a column edge block beside a full one"
    if "mask_value" in c["wrong"] and c["name"] == "v3_negbias":
        o = deepseek_ref.forward(cfg, read_back, tokens, rules={"mask_value": 0.0})
        differ = sum(int(np.sum(np.any(o["routing"][i]["topk_idx"] != r["topk_idx"], axis=1)))
                     for i, r in out["routing"].items())
        assert differ > 0, "v3_negbias: -inf and 0.0 masking must choose differently"

    size = sum(os.path.getsize(os.path.join(case_dir, f)) for f in os.listdir(case_dir))
    low = {i: float(np.min(v)) for i, v in margins.items()}
    below = sum(int(np.sum(v <= 1e-4)) for v in margins.values())
    print(f"{c['name']:12s} {c['model_type']} d={c['d']} L={c['L']} {c['storage']} shards={c['shards']} "
          f"mtp={c['mtp']} {c['moe']['topk_method']} E={c['moe']['n_routed_experts']} "
          f"K={c['moe']['num_experts_per_tok']}  {size / 1024:.1f} KiB")
    print(f"             token redraws {redraws}; min routing margin per MoE layer "
          + ", ".join(f"{i}: {v:.2e}" for i, v in low.items()) + f"; (token, layer) pairs with margin <= 1e-4: {below}")
    for rule, dl, changed in sensitivity(c, cfg, read_back, tokens, out):
        print(f"             wrong rule {rule:18s} max |dlogits| {dl:8.4f}, routings changed {changed}")


def main():
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "deepseek_moe")
    os.makedirs(root, exist_ok=True)
    for c in CASES:
        make_case(root, c)


if __name__ == "__main__":
    main()
