#!/usr/bin/env python3
"""make_deepseek_cases.py — random dense-MLP DeepSeek-V2 / V2-Lite / V3 checkpoints and their expected outputs.

Writes data/golden/deepseek/<case>/{config.json, model.safetensors, expected.safetensors}, where
expected.safetensors comes from the independent float64 forward in deepseek_ref.py, run on the checkpoint
as read back from disk (so BF16 cases expect the BF16-rounded model).

    /usr/bin/python3 data/golden/make_deepseek_cases.py

Every layer is dense (first_k_dense_replace = num_hidden_layers). YaRN uses short original lengths
(original_max_position_embeddings 48-64, factor 4) so that with T = 96 the positions run past L0 and
several rope pairs lie inside the YaRN ramp or fully interpolated.
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import write_safetensors  # noqa: E402
import deepseek_ref  # noqa: E402

T = 96  # by causality, rows [0, t) of the expected output are also the answer for tokens[:t]


def yarn(L0, mscale):
    return {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": L0, "beta_fast": 32, "beta_slow": 1,
            "mscale": mscale, "mscale_all_dim": mscale}


# model_type, dims (d, H, d_q (None = no q_lora), d_c, d_n, d_r, d_v, L, I, V), rope, storage, MoE fields
CASES = [
    # V3-shaped: q_lora, YaRN with mscale_all_dim 1.0 (V3's), experts declared but every layer dense
    dict(name="v3", seed=201, model_type="deepseek_v3", arch="DeepseekV3ForCausalLM", d=64, H=4, d_q=48, d_c=32,
         d_n=16, d_r=8, d_v=16, L=2, I=64, V=100, theta=10000.0, rope_scaling=yarn(64, 1.0), dtype="F32",
         moe={"n_routed_experts": 8, "n_shared_experts": 1, "num_experts_per_tok": 2, "moe_intermediate_size": 32,
              "first_k_dense_replace": 2, "moe_layer_freq": 1, "n_group": 2, "topk_group": 1,
              "topk_method": "noaux_tc", "scoring_func": "sigmoid", "norm_topk_prob": True,
              "routed_scaling_factor": 2.5}),
    # V2-shaped: q_lora, YaRN with mscale 0.707 (V2's), BF16 storage; d_r 16 with theta 100 puts three
    # rope pairs inside the ramp, and d_v = 24 != d_n = 16 so K and V rows of kv_b_proj cannot be confused
    dict(name="v2", seed=202, model_type="deepseek_v2", arch="DeepseekV2ForCausalLM", d=64, H=4, d_q=48, d_c=32,
         d_n=16, d_r=16, d_v=24, L=2, I=64, V=97, theta=100.0, rope_scaling=yarn(48, 0.707), dtype="BF16",
         moe={"first_k_dense_replace": 2}),
    # V2-Lite-shaped: no query compression (q_proj), YaRN mscale 0.707, BF16; theta 50 puts two of the
    # four rope pairs inside the ramp
    dict(name="v2_lite", seed=203, model_type="deepseek_v2", arch="DeepseekV2ForCausalLM", d=64, H=4, d_q=None,
         d_c=32, d_n=16, d_r=8, d_v=16, L=2, I=64, V=100, theta=50.0, rope_scaling=yarn(56, 0.707),
         dtype="BF16", moe={"n_routed_experts": None, "first_k_dense_replace": 2}),
    # plain RoPE (rope_scaling null): softmax scale d_k^-0.5, unblended frequencies; theta 500 so the
    # low-frequency pairs still turn over 96 positions
    dict(name="plain", seed=204, model_type="deepseek_v3", arch="DeepseekV3ForCausalLM", d=32, H=2, d_q=24, d_c=16,
         d_n=8, d_r=4, d_v=8, L=1, I=48, V=64, theta=500.0, rope_scaling=None, dtype="F32",
         moe={"n_routed_experts": 0, "first_k_dense_replace": 1}),
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
        "head_dim": c["d_r"],  # HF V3 configs name the rope dim head_dim (DeepseekV3Config); unused by the math
        "vocab_size": c["V"],
        "max_position_embeddings": 4 * 64,
        "rms_norm_eps": 1e-06,
        "rope_theta": c["theta"],
        "rope_scaling": c["rope_scaling"],
        "hidden_act": "silu",
        "attention_bias": False,
        "attention_dropout": 0.0,
        "tie_word_embeddings": False,
        "torch_dtype": {"F32": "float32", "BF16": "bfloat16"}[c["dtype"]],
        "bos_token_id": 0,
        "eos_token_id": 1,
        "num_nextn_predict_layers": 0,
    }
    cfg.update(c["moe"])
    return cfg


def make_weights(c, rng):
    """{HF name: float32 array}: projections [out, in] ~ N(0, 1/in), embedding ~ N(0, 1),
    lm_head ~ N(0, 1/d), RMSNorm weights 1 + 0.1 N(0, 1) (not ones, so a dropped weight is caught)."""
    d, H, d_q, d_c, d_n, d_r, d_v, I, V = (c[k] for k in ("d", "H", "d_q", "d_c", "d_n", "d_r", "d_v", "I", "V"))

    def proj(out_f, in_f):
        return rng.standard_normal((out_f, in_f)) / np.sqrt(in_f)

    def norm(n):
        return 1.0 + 0.1 * rng.standard_normal(n)

    w = {"model.embed_tokens.weight": rng.standard_normal((V, d))}
    for i in range(c["L"]):
        p = f"model.layers.{i}."
        a = p + "self_attn."
        w[p + "input_layernorm.weight"] = norm(d)
        if d_q:
            w[a + "q_a_proj.weight"] = proj(d_q, d)
            w[a + "q_a_layernorm.weight"] = norm(d_q)
            w[a + "q_b_proj.weight"] = proj(H * (d_n + d_r), d_q)
        else:
            w[a + "q_proj.weight"] = proj(H * (d_n + d_r), d)
        w[a + "kv_a_proj_with_mqa.weight"] = proj(d_c + d_r, d)
        w[a + "kv_a_layernorm.weight"] = norm(d_c)
        w[a + "kv_b_proj.weight"] = proj(H * (d_n + d_v), d_c)
        w[a + "o_proj.weight"] = proj(d, H * d_v)
        w[p + "post_attention_layernorm.weight"] = norm(d)
        w[p + "mlp.gate_proj.weight"] = proj(I, d)
        w[p + "mlp.up_proj.weight"] = proj(I, d)
        w[p + "mlp.down_proj.weight"] = proj(d, I)
    w["model.norm.weight"] = norm(d)
    w["lm_head.weight"] = proj(V, d)
    return {name: a.astype(np.float32) for name, a in w.items()}


def make_tokens(c, rng):
    """T random ids in [0, V), with the edge ids 0 and V-1 forced in."""
    tokens = rng.integers(0, c["V"], size=T)
    tokens[3] = 0
    tokens[T - 2] = c["V"] - 1
    return [int(t) for t in tokens]


def make_case(root, c):
    case_dir = os.path.join(root, c["name"])
    os.makedirs(case_dir, exist_ok=True)
    rng = np.random.default_rng(c["seed"])
    weights = make_weights(c, rng)
    tokens = make_tokens(c, rng)
    with open(os.path.join(case_dir, "config.json"), "w") as f:
        f.write(json.dumps(make_config(c), indent=2) + "\n")
    write_safetensors(os.path.join(case_dir, "model.safetensors"),
                      {n: (c["dtype"], a) for n, a in weights.items()}, metadata={"format": "pt"})
    deepseek_ref.write_expected(case_dir, tokens, os.path.join(case_dir, "expected.safetensors"))
    size = sum(os.path.getsize(os.path.join(case_dir, f)) for f in os.listdir(case_dir))
    cfg = deepseek_ref.load_config(case_dir)
    plain = cfg["theta"] ** (-2.0 * np.arange(c["d_r"] // 2) / c["d_r"])
    divisor = " ".join(f"{x:.3g}" for x in plain / deepseek_ref.rope_inv_freq(cfg).numpy())
    print(f"{c['name']:8s} {c['model_type']} d={c['d']} H={c['H']} d_q={c['d_q']} d_c={c['d_c']} d_n={c['d_n']} "
          f"d_r={c['d_r']} d_v={c['d_v']} L={c['L']} I={c['I']} V={c['V']} {c['dtype']} "
          f"rope_scaling={'yarn' if c['rope_scaling'] else None}  {size / 1024:.1f} KiB\n"
          f"         theta_j / theta'_j = {divisor}   softmax scale {deepseek_ref.softmax_scale(cfg):.7f}")


def main():
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "deepseek")
    os.makedirs(root, exist_ok=True)
    for c in CASES:
        make_case(root, c)


if __name__ == "__main__":
    main()
