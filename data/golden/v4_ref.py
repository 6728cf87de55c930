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


# ---- attention (model.py Attention.forward / Compressor.forward at start_pos = 0; kernel.py sparse_attn) --
def rms(x, w, eps):
    y = x * torch.rsqrt(x.square().mean(-1, keepdim=True) + eps)
    return y * w if w is not None else y


def freqs(d_r, T, theta, yarn=None):
    """precompute_freqs_cis in float64: yarn = (factor, original_seq_len, beta_fast, beta_slow) or None"""
    f = 1.0 / (theta ** (torch.arange(0, d_r, 2, dtype=D) / d_r))
    if yarn is not None:
        factor, L0, bf, bs = yarn

        def cd(r):
            return d_r * math.log(L0 / (r * 2 * math.pi)) / (2 * math.log(theta))
        low, high = max(math.floor(cd(bf)), 0), min(math.ceil(cd(bs)), d_r - 1)
        if low == high:
            high += 0.001
        ramp = ((torch.arange(d_r // 2, dtype=D) - low) / (high - low)).clamp(0, 1)
        smooth = 1 - ramp
        f = f / factor * (1 - smooth) + f * smooth
    ang = torch.outer(torch.arange(T, dtype=D), f)
    return torch.polar(torch.ones_like(ang), ang)


def rope_tail(x, fc, d_r, inverse=False):
    """apply_rotary_emb on x[..., -d_r:] (interleaved pairs); x [T, ..., dh], fc [T, d_r/2]"""
    x = x.clone()
    tail = torch.view_as_complex(x[..., -d_r:].contiguous().unflatten(-1, (-1, 2)))
    f = fc.conj() if inverse else fc
    while f.dim() < tail.dim():
        f = f.unsqueeze(1)
    x[..., -d_r:] = torch.view_as_real(tail * f).flatten(-2)
    return x


def compress(x, p, ratio, dh, d_r, eps, fc):
    T = x.shape[0]
    overlap = ratio == 4
    kv = x @ p["c_wkv"].T
    sc = x @ p["c_wgate"].T
    cutoff = T - T % ratio
    kv = kv[:cutoff].unflatten(0, (-1, ratio))
    sc = sc[:cutoff].unflatten(0, (-1, ratio)) + p["c_ape"]
    if overlap:
        def ov(t, value):
            s = t.shape[0]
            n = t.new_full((s, 2 * ratio, dh), value)
            n[:, ratio:] = t[:, :, dh:]
            n[1:, :ratio] = t[:-1, :, :dh]
            return n
        kv, sc = ov(kv, 0.0), ov(sc, float("-inf"))
    c = (kv * sc.softmax(dim=1)).sum(1)
    c = rms(c, p["c_norm"], eps)
    return rope_tail(c, fc[:cutoff:ratio], d_r)


def attention(x, p, dims, fc):
    """dims: H, dh, dr, G, R, window, ratio, eps.  Returns out [T, d], o before inverse rope, compressed kv."""
    H, dh, dr, G, R, win, ratio, eps = (dims[k] for k in ("H", "dh", "dr", "G", "R", "window", "ratio", "eps"))
    T = x.shape[0]
    c = rms(x @ p["wq_a"].T, p["q_norm"], eps)
    q = (c @ p["wq_b"].T).unflatten(-1, (H, dh))
    q = rope_tail(rms(q, None, eps), fc, dr)
    kv = rope_tail(rms(x @ p["wkv"].T, p["kv_norm"], eps), fc, dr)
    base = torch.arange(T).unsqueeze(1)
    idx = (base - win + 1).clamp(0) + torch.arange(min(T, win))
    idx = torch.where(idx > base, -1, idx)
    ckv = None
    if ratio:
        ckv = compress(x, p, ratio, dh, dr, eps, fc)
        cidx = torch.arange(T // ratio).repeat(T, 1)
        cidx = torch.where(cidx >= torch.arange(1, T + 1).unsqueeze(1) // ratio, -1, cidx + T)
        idx = torch.cat([idx, cidx], -1)
        kv = torch.cat([kv, ckv], 0)
    valid = idx != -1
    ksel = kv[idx.clamp_min(0)]                                   # [T, n, dh]
    s = torch.einsum("thd,tnd->thn", q, ksel) * dh ** -0.5
    s = s.masked_fill(~valid.unsqueeze(1), float("-inf"))
    mx = s.max(-1).values
    e = torch.exp(s - mx.unsqueeze(-1))
    den = e.sum(-1) + torch.exp(p["sink"].view(1, H) - mx)
    o = torch.einsum("thn,tnd->thd", e / den.unsqueeze(-1), ksel)
    o_pre = o
    o = rope_tail(o, fc, dr, inverse=True)
    og = o.reshape(T, G, -1)
    wo_a = p["wo_a"].view(G, R, -1)
    oa = torch.einsum("tgd,grd->tgr", og, wo_a)
    return oa.flatten(1) @ p["wo_b"].T, o_pre, ckv
