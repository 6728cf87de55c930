"""v4_ref.py — an independent float64 PyTorch implementation of DeepSeek-V4's new blocks, written from the
official DeepSeek-V4 inference/model.py (Block.hc_pre / hc_post, ParallelHead.hc_head, Gate.forward,
Expert.forward, Attention.forward without compression) and inference/kernel.py (hc_split_sinkhorn,
sparse_attn). It shares no code with ref/. The official code runs these in float32 / bf16 with FP8 / FP4
activation simulation; here every step is float64 and no quantization is simulated (dsref's float32 path
does not simulate it either).
"""
import math

import torch
import torch.nn.functional as F

D = torch.float64


# ---- mHC (kernel.py hc_split_sinkhorn; model.py Block.hc_pre / hc_post, ParallelHead.hc_head) -----------
def hc_split_sinkhorn(mixes, scale, base, n, iters, eps):
    pre = torch.sigmoid(mixes[..., :n] * scale[0] + base[:n]) + eps
    post = 2 * torch.sigmoid(mixes[..., n:2 * n] * scale[1] + base[n:2 * n])
    comb = mixes[..., 2 * n:].unflatten(-1, (n, n)) * scale[2] + base[2 * n:].view(n, n)
    comb = comb.softmax(-1) + eps
    comb = comb / (comb.sum(-2, keepdim=True) + eps)
    for _ in range(iters - 1):
        comb = comb / (comb.sum(-1, keepdim=True) + eps)
        comb = comb / (comb.sum(-2, keepdim=True) + eps)
    return pre, post, comb


def hc_mixes(x, fn, norm_eps):
    """x [T, n, d] -> mixes [T, M]"""
    xf = x.flatten(1)
    r = torch.rsqrt(xf.square().mean(-1, keepdim=True) + norm_eps)
    return (xf @ fn.T) * r


def hc_pre(x, fn, scale, base, n, iters, hc_eps, norm_eps):
    pre, post, comb = hc_split_sinkhorn(hc_mixes(x, fn, norm_eps), scale, base, n, iters, hc_eps)
    y = (pre.unsqueeze(-1) * x).sum(1)
    return y, pre, post, comb


def hc_post(f, residual, post, comb):
    """f [T, d], residual [T, n, d] -> [T, n, d];  out_k = post_k f + sum_j comb[j, k] residual_j"""
    return post.unsqueeze(-1) * f.unsqueeze(1) + (comb.unsqueeze(-1) * residual.unsqueeze(2)).sum(1)


def hc_head(x, fn, scale, base, hc_eps, norm_eps):
    pre = torch.sigmoid(hc_mixes(x, fn, norm_eps) * scale[0] + base) + hc_eps
    return (pre.unsqueeze(-1) * x).sum(1)


# ---- MoE gate (model.py Gate.forward) and the clamped SwiGLU expert (Expert.forward) --------------------
def gate(x, w, bias, topk, route_scale, score_func="sqrtsoftplus", tid2eid=None, token_ids=None):
    z = x @ w.T
    if score_func == "softmax":
        s = z.softmax(-1)
    elif score_func == "sigmoid":
        s = z.sigmoid()
    else:
        s = F.softplus(z).sqrt()
    u = s + bias if bias is not None else s
    if tid2eid is not None:
        idx = tid2eid[token_ids]
    else:
        idx = u.topk(topk, dim=-1)[1]
    wt = s.gather(1, idx)
    if score_func != "softmax":
        wt = wt / wt.sum(-1, keepdim=True)
    return wt * route_scale, idx, s


def expert(x, w1, w2, w3, limit):
    g = x @ w1.T
    u = x @ w3.T
    if limit > 0:
        u = u.clamp(-limit, limit)
        g = g.clamp(max=limit)
    return (F.silu(g) * u) @ w2.T
