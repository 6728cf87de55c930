#!/usr/bin/env python3
"""make_deepseek_v4_csa_cases.py — golden cases for dsref's DeepSeek-V4 attention with compressed KV from the
float64 implementation data/golden/v4_model_ref.py (written from the official DeepSeek-V4 inference/model.py
Attention / Compressor / Indexer, with the official cache and decode branches).

  data/golden/deepseek_v4/csa.safetensors  per case: the weights (official names under "w."), x [T, d], the
      prefill output, window_attn, compressed_kv, index_topk and index_scores, and the outputs of an official
      prefill of the first P tokens followed by one-token decode steps (start_pos = P .. T-1):
      csa_t23 (CSA, m = 4, index_topk 3 < the visible entries, window 5), hca_t21 (m = 6 compressor
      without overlap), win_t9 (window only).

Run from the repository root with a Python that has torch:  python3 data/golden/make_deepseek_v4_csa_cases.py
"""
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import v4_model_ref as R  # noqa: E402
from safetensors_io import write_safetensors  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "deepseek_v4")
D = torch.float64


def f32(t):
    return t.to(torch.float32).to(D)


def attn_weights(a, ratio, g):
    d, H, dh, ql, G, Rk = a.dim, a.n_heads, a.head_dim, a.q_lora, a.o_groups, a.o_lora_rank
    rn = lambda *s, sc=1.0: f32(torch.randn(*s, generator=g, dtype=D) * sc)  # noqa: E731
    W = {
        "wq_a.weight": rn(ql, d, sc=d ** -0.5), "q_norm.weight": 1 + rn(ql, sc=0.1),
        "wq_b.weight": rn(H * dh, ql, sc=ql ** -0.5), "wkv.weight": rn(dh, d, sc=d ** -0.5),
        "kv_norm.weight": 1 + rn(dh, sc=0.1), "wo_a.weight": rn(G * Rk, H * dh // G, sc=(H * dh // G) ** -0.5),
        "wo_b.weight": rn(d, G * Rk, sc=(G * Rk) ** -0.5), "attn_sink": rn(H),
    }

    def comp(p, hd):
        c = 2 if ratio == 4 else 1
        W.update({p + "wkv.weight": rn(c * hd, d, sc=d ** -0.5), p + "wgate.weight": rn(c * hd, d, sc=d ** -0.5),
                  p + "ape": rn(ratio, c * hd, sc=0.5), p + "norm.weight": 1 + rn(hd, sc=0.1)})
    if ratio:
        comp("compressor.", dh)
    if ratio == 4:
        comp("indexer.compressor.", a.index_head_dim)
        W["indexer.wq_b.weight"] = rn(a.index_n_heads * a.index_head_dim, ql, sc=ql ** -0.5)
        W["indexer.weights_proj.weight"] = rn(a.index_n_heads, d, sc=d ** -0.5)
    return W


def case(t, tag, T, P, ratio, g):
    a = R.Args(dim=16, n_heads=4, head_dim=16, rd=8, q_lora=12, o_groups=2, o_lora_rank=6, window=5,
               compress_ratios=[ratio], max_len=64, eps=1e-6, rope_theta=10000.0, compress_rope_theta=160000.0,
               rope_factor=16.0, original_seq_len=64, beta_fast=32, beta_slow=1, index_n_heads=3,
               index_head_dim=8, index_topk=3)
    W = attn_weights(a, ratio, g)
    x = f32(torch.randn(T, a.dim, generator=g, dtype=D))
    dumps = {}
    out = R.Attention(a, W, 0, "")(x, 0, dumps)
    dec = R.Attention(a, W, 0, "")
    steps = [dec(x[:P], 0)] + [dec(x[s:s + 1], s) for s in range(P, T)]
    for k, v in W.items():
        t[f"{tag}.w.{k}"] = ("F32", v.numpy())
    t[f"{tag}.x"] = ("F32", x.numpy())
    t[f"{tag}.out"] = ("F64", out.numpy())
    t[f"{tag}.decode_out"] = ("F64", torch.cat(steps, 0).numpy())
    t[f"{tag}.window_attn"] = ("F64", dumps["window_attn"].numpy())
    if ratio:
        t[f"{tag}.compressed_kv"] = ("F64", dumps["compressed_kv"].numpy())
    if ratio == 4:
        t[f"{tag}.index_topk"] = ("I32", dumps["index_topk"].to(torch.int32).numpy())
        sc = dumps["index_scores"]
        srt = sc.sort(-1, descending=True)[0]
        k = a.index_topk
        # the smallest gap between the k-th and (k+1)-th visible score: the selection is unambiguous
        vis = torch.isfinite(srt[:, k]) if srt.shape[1] > k else torch.zeros(T, dtype=torch.bool)
        gap = (srt[vis, k - 1] - srt[vis, k]).min().item() if vis.any() else float("inf")
        assert gap > 1e-5, f"{tag}: index top-k margin {gap} too small"
        t[f"{tag}.index_scores"] = ("F64", sc.numpy())
    t[f"{tag}.dims"] = ("I64", np.array([T, P, a.dim, a.n_heads, a.head_dim, a.rd, a.q_lora, a.o_groups,
                                         a.o_lora_rank, a.window, ratio, a.index_n_heads, a.index_head_dim,
                                         a.index_topk], np.int64))


def main():
    g = torch.Generator().manual_seed(14)
    t = {}
    case(t, "csa_t23", 23, 6, 4, g)   # P = 6: a partial group and an overlap state carried into decode
    case(t, "hca_t21", 21, 7, 6, g)   # m = 6, no overlap; T, P not multiples of m or of the window
    case(t, "win_t9", 9, 2, 0, g)
    write_safetensors(os.path.join(OUT, "csa.safetensors"), t, {"generator": "data/golden/make_deepseek_v4_csa_cases.py"})
    print("wrote data/golden/deepseek_v4/csa.safetensors")


if __name__ == "__main__":
    main()
