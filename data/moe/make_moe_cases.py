#!/usr/bin/env python3
"""make_moe_cases.py — writes data/moe/<case>.safetensors: one random MoE layer per case plus the
float64 expected outputs of moe_ref.py (independent of dsref's C++).

Run:  /usr/bin/python3 data/moe/make_moe_cases.py        (numpy only; byte-identical on re-run)

Each file is directly the input of `dsref op moe`, plus expected tensors the op ignores:
    x                                  F32 [T, d]
    gate.weight                        F32 [E, d]
    gate.e_score_correction_bias       F32 [E]            (noaux_tc cases)
    experts.{j}.{gate,up}_proj.weight  F32 [I, d]         experts.{j}.down_proj.weight  F32 [d, I]
    shared_experts.*                   F32 [n_s*I, d] / [d, n_s*I]   (when n_shared_experts > 0)
    expected.{y, topk_weight, scores, margin}   F64       expected.{topk_idx, expert_load}  I32
    wrong.<rule>.y (F64), wrong.<rule>.topk_idx (I32): the same layer under a deliberately wrong rule
and the op attributes in __metadata__ (n_routed_experts, num_experts_per_tok, n_group, topk_group,
scoring_func, topk_method, norm_topk_prob, routed_scaling_factor).

Every token is re-drawn until its routing margin (moe_ref.gate_token) is at least MIN_MARGIN, so a
float32 engine must reproduce topk_idx exactly. Each case asserts that each of its wrong rules
changes y (and, for the negative-bias case, that 0.0 masking picks different experts than -inf).
"""
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "golden"))
from safetensors_io import write_safetensors  # noqa: E402  (read-only reuse of the golden writer)
import moe_ref  # noqa: E402

MIN_MARGIN = 1e-3
T = 12

# d hidden, I moe_intermediate_size; bias: None or (low, high) of a uniform draw.
CASES = [
    # V3-shaped: sigmoid + noaux_tc, 4 groups of 4, keep 2, top-4, normalize then x2.5, one shared.
    dict(name="v3", seed=4001, d=32, I=8, E=16, K=4, G=4, Kg=2, n_shared=1, scoring="sigmoid",
         method="noaux_tc", norm=True, scale=2.5, bias=(-0.1, 0.1),
         wrong=["bias_in_weights", "no_renorm", "group_max"]),
    # Negative correction bias: some kept experts have s + b < 0, so 0.0 masking lets masked groups in.
    dict(name="v3_negbias", seed=4002, d=32, I=8, E=16, K=4, G=4, Kg=2, n_shared=1, scoring="sigmoid",
         method="noaux_tc", norm=True, scale=2.5, bias=(-0.9, -0.3),
         wrong=["zero_mask", "bias_in_weights", "no_renorm", "group_max"]),
    # K = 1: V3 still renormalizes, so every weight is exactly routed_scaling_factor.
    dict(name="v3_k1", seed=4003, d=24, I=8, E=8, K=1, G=2, Kg=1, n_shared=1, scoring="sigmoid",
         method="noaux_tc", norm=True, scale=2.5, bias=(-0.2, 0.2), wrong=["no_renorm"]),
    # V2-shaped: softmax + group_limited_greedy (group = max), no normalization, x16, two shared.
    dict(name="v2", seed=4004, d=32, I=8, E=16, K=3, G=4, Kg=2, n_shared=2, scoring="softmax",
         method="group_limited_greedy", norm=False, scale=16.0, bias=None, wrong=["softmax_after_mask"]),
    # V2-Lite-shaped: softmax + greedy over all experts, x1, two shared.
    dict(name="v2_lite", seed=4005, d=32, I=8, E=8, K=2, G=1, Kg=1, n_shared=2, scoring="softmax",
         method="greedy", norm=False, scale=1.0, bias=None, wrong=[]),
    # The V2 remote-code rule with norm_topk_prob: normalize and do NOT scale.
    dict(name="v2_norm", seed=4006, d=24, I=8, E=8, K=3, G=1, Kg=1, n_shared=0, scoring="softmax",
         method="greedy", norm=True, scale=16.0, bias=None, wrong=["v3_rule"]),
]


def cfg_of(c):
    return dict(n_routed_experts=c["E"], num_experts_per_tok=c["K"], n_group=c["G"], topk_group=c["Kg"],
                scoring_func=c["scoring"], topk_method=c["method"], norm_topk_prob=c["norm"],
                routed_scaling_factor=c["scale"], n_shared_experts=c["n_shared"])


def f32(a):
    """Round to float32 and back: the expected outputs use exactly the stored values."""
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def make_case(c):
    rng = np.random.default_rng(c["seed"])
    d, I, E = c["d"], c["I"], c["E"]
    cfg = cfg_of(c)
    W = {"gate.weight": f32(rng.normal(0, 1 / np.sqrt(d), (E, d)))}
    if c["bias"] is not None:
        W["gate.e_score_correction_bias"] = f32(rng.uniform(c["bias"][0], c["bias"][1], E))
    for j in range(E):
        W[f"experts.{j}.gate_proj.weight"] = f32(rng.normal(0, 1 / np.sqrt(d), (I, d)))
        W[f"experts.{j}.up_proj.weight"] = f32(rng.normal(0, 1 / np.sqrt(d), (I, d)))
        W[f"experts.{j}.down_proj.weight"] = f32(rng.normal(0, 1 / np.sqrt(I), (d, I)))
    if c["n_shared"] > 0:
        Is = c["n_shared"] * I
        W["shared_experts.gate_proj.weight"] = f32(rng.normal(0, 1 / np.sqrt(d), (Is, d)))
        W["shared_experts.up_proj.weight"] = f32(rng.normal(0, 1 / np.sqrt(d), (Is, d)))
        W["shared_experts.down_proj.weight"] = f32(rng.normal(0, 1 / np.sqrt(Is), (d, Is)))
    bias = W.get("gate.e_score_correction_bias")

    x = np.zeros((T, d))
    redrawn = 0
    for t in range(T):
        while True:
            row = f32(rng.normal(0, 1.5, d))
            _, _, _, m = moe_ref.gate_token(W["gate.weight"] @ row, bias, cfg)
            if m >= MIN_MARGIN:
                break
            redrawn += 1
        x[t] = row

    r = moe_ref.moe_layer(x, W, cfg)
    tensors = {"x": ("F32", x)}
    for k, v in W.items():
        tensors[k] = ("F32", v)
    tensors["expected.y"] = ("F64", r["y"])
    tensors["expected.topk_idx"] = ("I32", r["topk_idx"])
    tensors["expected.topk_weight"] = ("F64", r["topk_weight"])
    tensors["expected.scores"] = ("F64", r["scores"])
    tensors["expected.margin"] = ("F64", r["margin"])
    tensors["expected.expert_load"] = ("I32", r["expert_load"])

    rule_args = {"zero_mask": dict(mask_value=0.0), "bias_in_weights": dict(bias_in_weights=True),
                 "no_renorm": dict(no_renorm=True), "group_max": dict(group_max=True),
                 "softmax_after_mask": dict(softmax_after_mask=True), "v3_rule": dict(v3_rule=True)}
    notes = []
    for rule in c["wrong"]:
        rw = moe_ref.moe_layer(x, W, cfg, **rule_args[rule])
        dy = float(np.max(np.abs(rw["y"] - r["y"])))
        moved = int(np.sum(np.any(rw["topk_idx"] != r["topk_idx"], axis=1)))
        assert dy > 1e-2, f"{c['name']}: wrong rule {rule} moves y by only {dy}"
        if rule in ("zero_mask", "group_max"):
            assert moved >= 2, f"{c['name']}: wrong rule {rule} changes the experts of only {moved} tokens"
        tensors[f"wrong.{rule}.y"] = ("F64", rw["y"])
        tensors[f"wrong.{rule}.topk_idx"] = ("I32", rw["topk_idx"])
        notes.append(f"{rule}: max|dy|={dy:.3g}, tokens rerouted={moved}")

    meta = {k: (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in cfg.items() if k != "n_shared_experts"}
    path = os.path.join(HERE, c["name"] + ".safetensors")
    write_safetensors(path, tensors, metadata=meta)
    print(f"{c['name']:11s} T={T} d={d} E={E} K={c['K']} G={c['G']}/{c['Kg']}  min margin "
          f"{np.min(r['margin']):.3g} ({redrawn} rows redrawn)  {os.path.getsize(path)} bytes")
    for n in notes:
        print("   ", n)


if __name__ == "__main__":
    for case in CASES:
        make_case(case)
