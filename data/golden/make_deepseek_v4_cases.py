#!/usr/bin/env python3
"""make_deepseek_v4_cases.py — golden cases for dsref's DeepSeek-V4 blocks from the float64 implementation
data/golden/v4_ref.py (written from the official DeepSeek-V4 inference/model.py and kernel.py).

  data/golden/deepseek_v4/mhc.safetensors   hc_pre / hc_post / hc_head of random streams (n = 4, and n = 3
                                             with 7 Sinkhorn iterations), inputs and outputs
  data/golden/deepseek_v4/attn.safetensors  the attention block: window only (T below / above the window),
                                             window + all complete compressed entries (HCA semantics, m = 3),
                                             and the overlapping m = 4 compressor's entries
  data/golden/deepseek_v4/gate.safetensors  sqrtsoftplus routing with the selection-only bias, hash routing
                                             through tid2eid, and the clamped SwiGLU expert

Run from the repository root with a Python that has torch:  python3 data/golden/make_deepseek_v4_cases.py
(seeded; float64 on CPU, so the bytes are the same on every run with the same BLAS).
"""
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import v4_ref  # noqa: E402
from safetensors_io import write_safetensors  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "deepseek_v4")
D = torch.float64


def f32(t):
    """Round to float32 (the inputs dsref reads) and keep computing in float64."""
    return t.to(torch.float32).to(D)


def mhc_case(tensors, tag, T, n, d, iters, g):
    M = (2 + n) * n
    x = f32(torch.randn(T, n, d, generator=g, dtype=D))
    fn = f32(torch.randn(M, n * d, generator=g, dtype=D) * (1.0 / (n * d) ** 0.5))
    scale = f32(torch.rand(3, generator=g, dtype=D) + 0.5)
    base = f32(torch.randn(M, generator=g, dtype=D) * 0.5)
    f = f32(torch.randn(T, d, generator=g, dtype=D))
    hfn = f32(torch.randn(n, n * d, generator=g, dtype=D) * (1.0 / (n * d) ** 0.5))
    hscale = f32(torch.rand(1, generator=g, dtype=D) + 0.5)
    hbase = f32(torch.randn(n, generator=g, dtype=D) * 0.5)
    hc_eps, norm_eps = 1e-6, 1e-6
    y, pre, post, comb = v4_ref.hc_pre(x, fn, scale, base, n, iters, hc_eps, norm_eps)
    out = v4_ref.hc_post(f, x, post, comb)
    head = v4_ref.hc_head(x, hfn, hscale, hbase, hc_eps, norm_eps)
    for k, v in dict(x=x, fn=fn, scale=scale, base=base, f=f, head_fn=hfn, head_scale=hscale, head_base=hbase).items():
        tensors[f"{tag}.in.{k}"] = ("F32", v.numpy())
    for k, v in dict(y=y, pre=pre, post=post, comb=comb, post_out=out, head=head).items():
        tensors[f"{tag}.out.{k}"] = ("F64", v.numpy())
    tensors[f"{tag}.dims"] = ("I64", np.array([T, n, d, iters], np.int64))


def gate_case(tensors, g):
    T, d, E, K, V, I = 9, 16, 12, 3, 20, 8
    x = f32(torch.randn(T, d, generator=g, dtype=D))
    w = f32(torch.randn(E, d, generator=g, dtype=D) * 0.5)
    bias = f32(torch.randn(E, generator=g, dtype=D) * 0.3)
    ids = torch.randint(0, V, (T,), generator=g)
    tid2eid = torch.stack([torch.randperm(E, generator=g)[:K] for _ in range(V)]).to(torch.int64)
    wt, idx, s = v4_ref.gate(x, w, bias, K, 1.5)
    hwt, hidx, _ = v4_ref.gate(x, w, None, K, 1.5, tid2eid=tid2eid, token_ids=ids)
    w1 = f32(torch.randn(I, d, generator=g, dtype=D))
    w2 = f32(torch.randn(d, I, generator=g, dtype=D) * 0.3)
    w3 = f32(torch.randn(I, d, generator=g, dtype=D))
    ex = v4_ref.expert(x * 2.0, w1, w2, w3, 10.0)  # x·2 so that some pre-activations pass the clamp at 10
    ex_nolimit = v4_ref.expert(x * 2.0, w1, w2, w3, 0.0)
    tensors.update({
        "in.x": ("F32", x.numpy()), "in.w_gate": ("F32", w.numpy()), "in.bias": ("F32", bias.numpy()),
        "in.token_ids": ("I64", ids.numpy()), "in.tid2eid": ("I32", tid2eid.numpy()),
        "in.w1": ("F32", w1.numpy()), "in.w2": ("F32", w2.numpy()), "in.w3": ("F32", w3.numpy()),
        "out.scores": ("F64", s.numpy()), "out.topk_idx": ("I64", idx.numpy()), "out.topk_weight": ("F64", wt.numpy()),
        "out.hash_idx": ("I64", hidx.numpy()), "out.hash_weight": ("F64", hwt.numpy()),
        "out.expert": ("F64", ex.numpy()), "out.expert_nolimit": ("F64", ex_nolimit.numpy()),
        "dims": ("I64", np.array([T, d, E, K, V, I], np.int64)),
    })
    assert (ex != ex_nolimit).any(), "the clamp must matter in this case"


def attn_case(tensors, tag, T, ratio, g):
    d, H, dh, dr, ql, G, R, win = 16, 4, 16, 8, 12, 2, 6, 5
    c = 2 if ratio == 4 else 1
    p = {
        "wq_a": torch.randn(ql, d, generator=g, dtype=D) * d ** -0.5,
        "q_norm": 1 + 0.1 * torch.randn(ql, generator=g, dtype=D),
        "wq_b": torch.randn(H * dh, ql, generator=g, dtype=D) * ql ** -0.5,
        "wkv": torch.randn(dh, d, generator=g, dtype=D) * d ** -0.5,
        "kv_norm": 1 + 0.1 * torch.randn(dh, generator=g, dtype=D),
        "wo_a": torch.randn(G * R, H * dh // G, generator=g, dtype=D) * (H * dh // G) ** -0.5,
        "wo_b": torch.randn(d, G * R, generator=g, dtype=D) * (G * R) ** -0.5,
        "sink": torch.randn(H, generator=g, dtype=D),
    }
    if ratio:
        p.update({
            "c_wkv": torch.randn(c * dh, d, generator=g, dtype=D) * d ** -0.5,
            "c_wgate": torch.randn(c * dh, d, generator=g, dtype=D) * d ** -0.5,
            "c_ape": torch.randn(ratio, c * dh, generator=g, dtype=D) * 0.5,
            "c_norm": 1 + 0.1 * torch.randn(dh, generator=g, dtype=D),
        })
    p = {k: f32(v) for k, v in p.items()}
    x = f32(torch.randn(T, d, generator=g, dtype=D))
    # window-only layers: rope_theta 10000, no YaRN; compressed layers: compress_rope_theta + YaRN
    fc = v4_ref.freqs(dr, T, 10000.0) if ratio == 0 else v4_ref.freqs(dr, T, 160000.0, (16.0, 64, 32, 1))
    dims = dict(H=H, dh=dh, dr=dr, G=G, R=R, window=win, ratio=ratio, eps=1e-6)
    out, o_pre, ckv = v4_ref.attention(x, p, dims, fc)
    for k, v in p.items():
        tensors[f"{tag}.w.{k}"] = ("F32", v.numpy())
    tensors[f"{tag}.x"] = ("F32", x.numpy())
    tensors[f"{tag}.out"] = ("F64", out.numpy())
    tensors[f"{tag}.window_attn"] = ("F64", o_pre.numpy())
    if ckv is not None:
        tensors[f"{tag}.compressed_kv"] = ("F64", ckv.numpy())
    tensors[f"{tag}.dims"] = ("I64", np.array([T, d, H, dh, dr, ql, G, R, win, ratio], np.int64))


def main():
    os.makedirs(OUT, exist_ok=True)
    g = torch.Generator().manual_seed(4)
    t = {}
    mhc_case(t, "n4", 5, 4, 24, 20, g)
    mhc_case(t, "n3", 3, 3, 8, 7, g)
    write_safetensors(os.path.join(OUT, "mhc.safetensors"), t, {"generator": "data/golden/make_deepseek_v4_cases.py"})
    t = {}
    gate_case(t, g)
    write_safetensors(os.path.join(OUT, "gate.safetensors"), t, {"generator": "data/golden/make_deepseek_v4_cases.py"})
    t = {}
    attn_case(t, "win_t3", 3, 0, g)        # T below the window (5)
    attn_case(t, "win_t11", 11, 0, g)      # T above the window, not a multiple of it
    attn_case(t, "hca_t13", 13, 3, g)      # window + every complete compressed entry (HCA semantics; m = 3
                                           # keeps T small: 4 entries, T not a multiple of m)
    attn_case(t, "csa_t13", 13, 4, g)      # the overlapping compressor (m = 4); only compressed_kv is compared
    write_safetensors(os.path.join(OUT, "attn.safetensors"), t, {"generator": "data/golden/make_deepseek_v4_cases.py"})
    print("wrote data/golden/deepseek_v4/{mhc,gate,attn}.safetensors")


if __name__ == "__main__":
    main()
