#!/usr/bin/env python3
"""moe_ref.py — an independent float64 DeepSeekMoE layer (router + routed experts + shared expert).

Written from the math of the DeepSeek-V2 report (§2.2.1-2.2.2) and the DeepSeek-V3 report (§2.1.2),
with the per-version rules listed below, not from dsref's C++ and not from any model code. It is deliberately structured differently from ref/moe/moe.cpp: one token
at a time, experts called one row at a time, no dispatch/combine. Everything is numpy float64.

Importable (the full-model golden script can reuse `moe_layer`):

    gate(x, w_gate, bias, cfg, **rules)  -> dict(topk_idx, topk_weight, scores, margin)
    moe_layer(x, weights, cfg, **rules)  -> dict(y, topk_idx, topk_weight, scores, margin, expert_load)

`cfg` holds HF config.json field names: n_routed_experts, num_experts_per_tok, n_group, topk_group,
scoring_func, topk_method, norm_topk_prob, routed_scaling_factor, n_shared_experts.
`weights` holds one layer's tensors under their HF names without the "model.layers.{i}.mlp." prefix:
gate.weight [E, d], gate.e_score_correction_bias [E] (noaux_tc), experts.{j}.{gate,up,down}_proj.weight,
shared_experts.{gate,up,down}_proj.weight.

Rules (the oracle's choices; ref/moe/moe_gate.h explains why each is pinned):
  * scores: softmax over ALL experts (before masking) or sigmoid;
  * selection score u = s + bias for noaux_tc, u = s otherwise; the bias never enters a weight;
  * groups: greedy ignores them; group_limited_greedy ranks a group by max u; noaux_tc by the sum of
    its two largest u; the topk_group best groups are kept, the others masked with -inf;
  * top-K by masked u, descending, ties to the lower id (a stable argsort of -u);
  * weights: noaux_tc: normalize over the selected if norm_topk_prob (any K), then x scale;
             greedy / group_limited_greedy (V2 remote code): if K > 1 and norm_topk_prob normalize,
             else x scale (never both);
  * y = sum_k w_k Expert_{idx_k}(x) + Shared(x), the shared expert unweighted.

The keyword `rules` switch on deliberately WRONG variants, used to show that the golden data tells
them apart (sensitivity):
  mask_value=0.0            the 0.0 masking of dropped groups of older transformers and remote code
  bias_in_weights=True      weights gathered from s + bias
  no_renorm=True            never normalize
  group_max=True            rank noaux_tc groups by max instead of the top-2 sum
  softmax_after_mask=True   softmax over the kept groups' experts only
  v3_rule=True              apply the V3 normalize-then-scale rule to every method
"""
import math

import numpy as np


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def softmax(z):
    e = np.exp(z - np.max(z))
    return e / np.sum(e)


def silu(z):
    return z / (1.0 + np.exp(-z))


def swiglu(x, wg, wu, wd):
    """x [d] -> [d]; wg, wu [I, d], wd [d, I]."""
    return wd @ (silu(wg @ x) * (wu @ x))


def _order(values):
    """Indices sorted by value descending, ties to the lower index."""
    return np.argsort(-np.asarray(values, dtype=np.float64), kind="stable")


def gate_token(z, bias, cfg, mask_value=-math.inf, bias_in_weights=False, no_renorm=False, group_max=False,
               softmax_after_mask=False, v3_rule=False):
    """One token. z [E] router logits. Returns (idx [K], weights [K], scores [E], margin)."""
    E = int(cfg["n_routed_experts"])
    K = int(cfg["num_experts_per_tok"])
    G = int(cfg.get("n_group", 1) or 1)
    Kg = int(cfg.get("topk_group", 1) or 1)
    method = cfg["topk_method"]
    s = sigmoid(z) if cfg["scoring_func"] == "sigmoid" else softmax(z)
    u = s + bias if (method == "noaux_tc" and bias is not None) else s.copy()

    margin = math.inf
    kept = np.ones(E, dtype=bool)
    if method != "greedy" and G > 1:
        per = E // G
        gscore = np.empty(G)
        for g in range(G):
            ug = np.sort(u[g * per:(g + 1) * per])[::-1]
            if method == "noaux_tc" and not group_max:
                gscore[g] = ug[0] + ug[1]
            else:
                gscore[g] = ug[0]
        order = _order(gscore)
        if Kg < G:
            margin = min(margin, gscore[order[Kg - 1]] - gscore[order[Kg]])
        kept[:] = False
        for g in order[:Kg]:
            kept[g * per:(g + 1) * per] = True
    masked = np.where(kept, u, mask_value)
    if softmax_after_mask:  # wrong: softmax restricted to the kept experts
        s = np.where(kept, np.exp(z - np.max(z[kept])), 0.0)
        s = s / np.sum(s)
        masked = np.where(kept, s, mask_value)
    order = _order(masked)
    idx = order[:K]
    ranked = masked[order[:K + 1]]
    for k in range(min(K + 1, E) - 1):
        if ranked[k + 1] != -math.inf:
            margin = min(margin, ranked[k] - ranked[k + 1])

    w = (u if bias_in_weights else s)[idx].astype(np.float64)
    scale = float(cfg["routed_scaling_factor"])
    norm = bool(cfg["norm_topk_prob"]) and not no_renorm
    if method == "noaux_tc" or v3_rule:
        if norm:
            w = w / np.sum(w)
        w = w * scale
    else:
        if K > 1 and norm:
            w = w / np.sum(w)
        else:
            w = w * scale
    return idx, w, s, margin


def gate(x, w_gate, bias, cfg, **rules):
    """x [T, d], w_gate [E, d], bias [E] or None."""
    T = x.shape[0]
    K = int(cfg["num_experts_per_tok"])
    E = int(cfg["n_routed_experts"])
    out = dict(topk_idx=np.zeros((T, K), dtype=np.int64), topk_weight=np.zeros((T, K)),
               scores=np.zeros((T, E)), margin=np.zeros(T))
    for t in range(T):
        z = w_gate @ x[t]
        idx, w, s, m = gate_token(z, bias, cfg, **rules)
        out["topk_idx"][t] = idx
        out["topk_weight"][t] = w
        out["scores"][t] = s
        out["margin"][t] = m
    return out


def moe_layer(x, weights, cfg, **rules):
    """x [T, d] float64 -> dict with y [T, d] and the routing."""
    x = np.asarray(x, dtype=np.float64)
    W = {k: np.asarray(v, dtype=np.float64) for k, v in weights.items()}
    bias = W.get("gate.e_score_correction_bias") if cfg["topk_method"] == "noaux_tc" else None
    r = gate(x, W["gate.weight"], bias, cfg, **rules)
    T, d = x.shape
    E = int(cfg["n_routed_experts"])
    y = np.zeros((T, d))
    for t in range(T):
        for k in range(r["topk_idx"].shape[1]):
            j = int(r["topk_idx"][t, k])
            p = f"experts.{j}."
            y[t] += r["topk_weight"][t, k] * swiglu(x[t], W[p + "gate_proj.weight"], W[p + "up_proj.weight"],
                                                    W[p + "down_proj.weight"])
        if int(cfg.get("n_shared_experts", 0) or 0) > 0:
            y[t] += swiglu(x[t], W["shared_experts.gate_proj.weight"], W["shared_experts.up_proj.weight"],
                           W["shared_experts.down_proj.weight"])
    r["y"] = y
    r["expert_load"] = np.bincount(r["topk_idx"].reshape(-1), minlength=E)
    return r
