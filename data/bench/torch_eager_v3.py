#!/usr/bin/env python3
"""torch_eager_v3.py — the PyTorch-eager baseline for `make bench`'s DeepSeekMoE prefill (the target in
README.md, "Performance": dsref's full forward should be at least 1.5x faster than PyTorch eager running the same model on the
same cores).

The model is the config of ref/bench/bench_moe.cpp: DeepSeek-V3-shaped, d 512, 4 layers (1 dense + 3 MoE),
MLA (q_lora 192, kv_lora 128, d_nope 32, d_rope 16, d_v 32, 8 heads), 32 routed experts of width 128 + 1
shared, top-4 of 4 groups (topk_group 2, noaux_tc), vocab 1024; prefill T = 256, float32, weights in
memory (compare with bench_moe's "kept (generation)" rows). The code is written the way HF's eager
modeling code is: naive MLA, a loop over experts with index_select / index_add. Random weights: only the
shapes matter for speed. Not part of any test.

    apt-get install libopenblas0-pthread      # Debian's torch calls libblas.so.3; the default reference
                                              # BLAS runs at ~3 GFLOP/s and would not be a fair baseline
    /usr/bin/python3 data/bench/torch_eager_v3.py
    apt-get remove libopenblas0-pthread       # data/make_golden.sh's byte-identical output needs the
                                              # reference BLAS back
"""
import math
import time

import torch

D, L, H, V, T = 512, 4, 8, 1024, 256
DQ, DC, DN, DR, DV = 192, 128, 32, 16, 32
E, K, G, KG, I_MOE, I_DENSE, SCALE = 32, 4, 4, 2, 128, 1024, 2.5


def linear(n_out, n_in):
    return torch.randn(n_out, n_in) / math.sqrt(n_in)


def rmsnorm(x, w, eps=1e-6):
    return w * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)


def swiglu(x, w):
    return torch.nn.functional.linear(torch.nn.functional.silu(x @ w["gate"].T) * (x @ w["up"].T), w["down"])


def mlp_weights(width):
    return {"gate": linear(width, D), "up": linear(width, D), "down": linear(D, width)}


def rope(x, cos, sin):  # x [..., T, d_r], adjacent pairs
    a, b = x[..., 0::2], x[..., 1::2]
    return torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-1).flatten(-2)


def mla(x, w, cos, sin, mask):
    q = (rmsnorm(x @ w["q_a"].T, w["q_a_norm"]) @ w["q_b"].T).view(T, H, DN + DR).transpose(0, 1)
    q_nope, q_pe = q[..., :DN], rope(q[..., DN:], cos, sin)
    kv_a = x @ w["kv_a"].T
    c, k_pe = rmsnorm(kv_a[:, :DC], w["kv_a_norm"]), rope(kv_a[:, DC:], cos, sin)
    kv = (c @ w["kv_b"].T).view(T, H, DN + DV).transpose(0, 1)
    k = torch.cat((kv[..., :DN], k_pe.expand(H, T, DR)), dim=-1)
    scores = torch.cat((q_nope, q_pe), dim=-1) @ k.transpose(1, 2) / math.sqrt(DN + DR) + mask
    o = torch.softmax(scores, dim=-1) @ kv[..., DN:]
    return o.transpose(0, 1).reshape(T, H * DV) @ w["o"].T


def moe(x, w):
    s = torch.sigmoid(x @ w["router"].T)                                   # [T, E]
    u = s + w["bias"]
    group = u.view(T, G, E // G).topk(2, dim=-1).values.sum(-1)           # [T, G]
    keep = torch.zeros_like(group).scatter_(1, group.topk(KG, dim=-1).indices, 1.0)
    u = u.masked_fill(keep.repeat_interleave(E // G, dim=1) == 0, float("-inf"))
    idx = u.topk(K, dim=-1).indices                                        # [T, K]
    weight = s.gather(1, idx)
    weight = weight / weight.sum(-1, keepdim=True) * SCALE
    y = torch.zeros_like(x)
    for e in range(E):                                                     # HF-style expert loop
        rows, slot = torch.where(idx == e)
        if rows.numel():
            y.index_add_(0, rows, swiglu(x[rows], w["experts"][e]) * weight[rows, slot, None])
    return y + swiglu(x, w["shared"])


def main():
    torch.manual_seed(0)
    emb, head, final_norm = torch.randn(V, D), linear(V, D), torch.ones(D)
    layers = []
    for i in range(L):
        layer = {"in_norm": torch.ones(D), "post_norm": torch.ones(D), "q_a": linear(DQ, D), "q_a_norm": torch.ones(DQ),
                 "q_b": linear(H * (DN + DR), DQ), "kv_a": linear(DC + DR, D), "kv_a_norm": torch.ones(DC),
                 "kv_b": linear(H * (DN + DV), DC), "o": linear(D, H * DV)}
        if i == 0:
            layer["dense"] = mlp_weights(I_DENSE)
        else:
            layer.update(router=linear(E, D), bias=0.1 * torch.randn(E), shared=mlp_weights(I_MOE),
                         experts=[mlp_weights(I_MOE) for _ in range(E)])
        layers.append(layer)
    inv_freq = 1.0 / (10000 ** (torch.arange(0, DR, 2, dtype=torch.float32) / DR))
    angles = torch.outer(torch.arange(T, dtype=torch.float32), inv_freq)
    cos, sin = angles.cos(), angles.sin()
    mask = torch.full((T, T), float("-inf")).triu(1)
    tokens = torch.tensor([(i * 131) % V for i in range(T)])

    def forward():
        h = emb[tokens]
        for layer in layers:
            h = h + mla(rmsnorm(h, layer["in_norm"]), layer, cos, sin, mask)
            x = rmsnorm(h, layer["post_norm"])
            h = h + (swiglu(x, layer["dense"]) if "dense" in layer else moe(x, layer))
        return rmsnorm(h[-1:], final_norm) @ head.T

    print(f"PyTorch {torch.__version__} eager, float32, DeepSeek-V3-shaped prefill (bench_moe's config), T = {T}")
    with torch.no_grad():
        for threads in (1, 2):
            torch.set_num_threads(threads)
            forward()
            best = min(timed(forward) for _ in range(3))
            print(f"  {threads} thread(s): {T / best:8.1f} tokens/s  ({best * 1e3:.1f} ms)")


def timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
