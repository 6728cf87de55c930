"""v4_model_ref.py — an independent float64 PyTorch implementation of the whole DeepSeek-V4 model, written
from the official DeepSeek-V4 inference/model.py (Compressor, Indexer, Attention, Gate, Expert, MoE, Block,
ParallelHead, MTPBlock, Transformer) and inference/kernel.py (sparse_attn, hc_split_sinkhorn). It keeps the
official code's cache layout — the window ring buffer, the compressor's kv_state / score_state and its
start_pos == 0 (prefill) and start_pos > 0 (one-token decode) branches — so that dsref's decode is checked
against the official state handling, not against a copy of its own. It shares no code with ref/.

Left out, as in dsref's float32 path: the FP8 / FP4 activation simulation (act_quant, fp4_act_quant) and the
Hadamard rotation of the indexer (orthonormal: it cancels in q.k once nothing is quantized). Batch size 1.
Weights: a dict of float64 tensors under the official checkpoint names (no `model.` prefix).
"""
import math

import torch
import torch.nn.functional as F

import v4_ref

D = torch.float64


class Args:
    def __init__(self, **kw):
        self.__dict__.update(kw)


def rms(x, w, eps):
    y = x * torch.rsqrt(x.square().mean(-1, keepdim=True) + eps)
    return y * w if w is not None else y


def rope(x, fc, inverse=False):
    """apply_rotary_emb on x [s, ..., 2k] (interleaved pairs), fc [s, k] complex"""
    xc = torch.view_as_complex(x.contiguous().unflatten(-1, (-1, 2)))
    f = fc.conj() if inverse else fc
    while f.dim() < xc.dim():
        f = f.unsqueeze(1)
    return torch.view_as_real(xc * f).flatten(-2)


class Compressor:
    def __init__(self, a, W, prefix, ratio, hd, fc, max_len):
        self.W, self.p, self.ratio, self.hd, self.fc, self.a = W, prefix, ratio, hd, fc, a
        self.overlap = ratio == 4
        c = 1 + self.overlap
        self.kv_state = torch.zeros(c * ratio, c * hd, dtype=D)
        self.score_state = torch.full((c * ratio, c * hd), float("-inf"), dtype=D)
        self.cache = torch.zeros(max_len // ratio, hd, dtype=D)

    def w(self, k):
        return self.W[self.p + k]

    def overlap_transform(self, t, value):
        s = t.shape[0]
        r, d = self.ratio, self.hd
        n = t.new_full((s, 2 * r, d), value)
        n[:, r:] = t[:, :, d:]
        n[1:, :r] = t[:-1, :, :d]
        return n

    def __call__(self, x, start_pos):
        seqlen = x.shape[0]
        ratio, overlap, d, rd = self.ratio, self.overlap, self.hd, self.a.rd
        kv = x @ self.w("wkv.weight").T
        score = x @ self.w("wgate.weight").T
        ape = self.w("ape")
        if start_pos == 0:
            should = seqlen >= ratio
            rem = seqlen % ratio
            cutoff = seqlen - rem
            off = ratio if overlap else 0
            if overlap and cutoff >= ratio:
                self.kv_state[:ratio] = kv[cutoff - ratio:cutoff]
                self.score_state[:ratio] = score[cutoff - ratio:cutoff] + ape
            if rem > 0:
                self.kv_state[off:off + rem] = kv[cutoff:]
                self.score_state[off:off + rem] = score[cutoff:] + ape[:rem]
                kv, score = kv[:cutoff], score[:cutoff]
            kv = kv.unflatten(0, (-1, ratio))
            score = score.unflatten(0, (-1, ratio)) + ape
            if overlap:
                kv = self.overlap_transform(kv, 0.0)
                score = self.overlap_transform(score, float("-inf"))
            kv = (kv * score.softmax(dim=1)).sum(dim=1)
        else:
            should = (start_pos + 1) % ratio == 0
            score = score + ape[start_pos % ratio]
            if overlap:
                self.kv_state[ratio + start_pos % ratio] = kv[0]
                self.score_state[ratio + start_pos % ratio] = score[0]
                if should:
                    ks = torch.cat([self.kv_state[:ratio, :d], self.kv_state[ratio:, d:]], 0)
                    ss = torch.cat([self.score_state[:ratio, :d], self.score_state[ratio:, d:]], 0)
                    kv = (ks * ss.softmax(dim=0)).sum(dim=0, keepdim=True)
                    self.kv_state[:ratio] = self.kv_state[ratio:].clone()
                    self.score_state[:ratio] = self.score_state[ratio:].clone()
            else:
                self.kv_state[start_pos % ratio] = kv[0]
                self.score_state[start_pos % ratio] = score[0]
                if should:
                    kv = (self.kv_state * self.score_state.softmax(dim=0)).sum(dim=0, keepdim=True)
        if not should:
            return None
        kv = rms(kv, self.w("norm.weight"), self.a.eps)
        fc = self.fc[:cutoff:ratio] if start_pos == 0 else self.fc[start_pos + 1 - ratio].unsqueeze(0)
        kv = torch.cat([kv[:, :-rd], rope(kv[:, -rd:], fc)], -1)
        if start_pos == 0:
            self.cache[:seqlen // ratio] = kv
        else:
            self.cache[start_pos // ratio] = kv[0]
        return kv


class Indexer:
    def __init__(self, a, W, prefix, fc, max_len):
        self.a, self.W, self.p, self.fc = a, W, prefix, fc
        self.comp = Compressor(a, W, prefix + "compressor.", 4, a.index_head_dim, fc, max_len)
        self.last_scores = None

    def __call__(self, x, qr, start_pos, offset):
        a, ratio = self.a, 4
        seqlen = x.shape[0]
        end = start_pos + seqlen
        fc = self.fc[start_pos:end]
        q = (qr @ self.W[self.p + "wq_b.weight"].T).unflatten(-1, (a.index_n_heads, a.index_head_dim))
        q = torch.cat([q[..., :-a.rd], rope(q[..., -a.rd:], fc)], -1)
        self.comp(x, start_pos)
        w = (x @ self.W[self.p + "weights_proj.weight"].T) * (a.index_head_dim ** -0.5 * a.index_n_heads ** -0.5)
        sc = torch.einsum("shd,td->sht", q, self.comp.cache[:end // ratio])
        sc = (sc.relu() * w.unsqueeze(-1)).sum(dim=1)
        if start_pos == 0:
            mask = torch.arange(seqlen // ratio).repeat(seqlen, 1) >= torch.arange(1, seqlen + 1).unsqueeze(1) // ratio
            sc = sc + torch.where(mask, float("-inf"), 0.0)
        self.last_scores = sc
        k = min(a.index_topk, end // ratio)
        # ties: the lower entry first (a stable sort by descending score), as dsref pins it
        idx = torch.sort(sc, dim=-1, descending=True, stable=True)[1][:, :k]
        if start_pos == 0:
            mask = idx >= torch.arange(1, seqlen + 1).unsqueeze(1) // ratio
            self.last_topk = torch.where(mask, -1, idx)
            idx = torch.where(mask, -1, idx + offset)
        else:
            self.last_topk = idx
            idx = idx + offset
        return idx


def freqs_for(a, ratio):
    if ratio:
        return v4_ref.freqs(a.rd, a.max_len, a.compress_rope_theta, (a.rope_factor, a.original_seq_len, a.beta_fast, a.beta_slow))
    return v4_ref.freqs(a.rd, a.max_len, a.rope_theta)


class Attention:
    def __init__(self, a, W, i, prefix=None):
        self.a, self.W = a, W
        self.p = prefix if prefix is not None else f"layers.{i}.attn."
        self.ratio = a.compress_ratios[i]
        self.fc = freqs_for(a, self.ratio)
        win = a.window
        self.kv_cache = torch.zeros(win + (a.max_len // self.ratio if self.ratio else 0), a.head_dim, dtype=D)
        self.comp = Compressor(a, W, self.p + "compressor.", self.ratio, a.head_dim, self.fc, a.max_len) if self.ratio else None
        self.indexer = Indexer(a, W, self.p + "indexer.", self.fc, a.max_len) if self.ratio == 4 else None

    def w(self, k):
        return self.W[self.p + k]

    def window_idx(self, seqlen, start_pos):
        win = self.a.window
        if start_pos >= win - 1:
            sp = start_pos % win
            return torch.cat([torch.arange(sp + 1, win), torch.arange(0, sp + 1)]).unsqueeze(0)
        if start_pos > 0:
            return F.pad(torch.arange(start_pos + 1), (0, win - start_pos - 1), value=-1).unsqueeze(0)
        base = torch.arange(seqlen).unsqueeze(1)
        m = (base - win + 1).clamp(0) + torch.arange(min(seqlen, win))
        return torch.where(m > base, -1, m)

    def __call__(self, x, start_pos, dumps=None):
        a = self.a
        seqlen = x.shape[0]
        fc = self.fc[start_pos:start_pos + seqlen]
        win, ratio, rd, H, dh = a.window, self.ratio, a.rd, a.n_heads, a.head_dim
        qr = rms(x @ self.w("wq_a.weight").T, self.w("q_norm.weight"), a.eps)
        q = (qr @ self.w("wq_b.weight").T).unflatten(-1, (H, dh))
        q = rms(q, None, a.eps)
        q = torch.cat([q[..., :-rd], rope(q[..., -rd:], fc)], -1)
        kv = rms(x @ self.w("wkv.weight").T, self.w("kv_norm.weight"), a.eps)
        kv = torch.cat([kv[:, :-rd], rope(kv[:, -rd:], fc)], -1)
        idx = self.window_idx(seqlen, start_pos)
        if ratio:
            off = seqlen if start_pos == 0 else win
            if self.indexer is not None:
                cidx = self.indexer(x, qr, start_pos, off)
            elif start_pos > 0:
                cidx = (torch.arange(0, (start_pos + 1) // ratio) + off).unsqueeze(0)
            else:
                m = torch.arange(seqlen // ratio).repeat(seqlen, 1)
                cidx = torch.where(m >= torch.arange(1, seqlen + 1).unsqueeze(1) // ratio, -1, m + off)
            idx = torch.cat([idx, cidx], -1)
        if start_pos == 0:
            if seqlen <= win:
                self.kv_cache[:seqlen] = kv
            else:
                c = seqlen % win
                self.kv_cache[c:win], self.kv_cache[:c] = kv[-win:].split([win - c, c], 0)
            keys = kv
            if ratio:
                ck = self.comp(x, 0)
                if ck is not None:
                    keys = torch.cat([kv, ck], 0)
        else:
            self.kv_cache[start_pos % win] = kv[0]
            if ratio:
                self.comp(x, start_pos)
                self.kv_cache[win:] = self.comp.cache
            keys = self.kv_cache
        o = sparse_attn(q, keys, self.w("attn_sink"), idx, dh ** -0.5)
        if dumps is not None:
            dumps["window_attn"] = o.clone()
            if ratio:
                dumps["compressed_kv"] = self.comp.cache[:(start_pos + seqlen) // ratio].clone()
            if self.indexer is not None:
                dumps["index_topk"] = self.indexer.last_topk
                dumps["index_scores"] = self.indexer.last_scores
        o = torch.cat([o[..., :-rd], rope(o[..., -rd:], fc, inverse=True)], -1)
        G, R = a.o_groups, a.o_lora_rank
        og = o.reshape(seqlen, G, -1)
        oa = torch.einsum("sgd,grd->sgr", og, self.w("wo_a.weight").view(G, R, -1))
        return oa.flatten(1) @ self.w("wo_b.weight").T


def sparse_attn(q, kv, sink, idx, scale):
    valid = idx != -1
    ksel = kv[idx.clamp_min(0)]                                     # [s, k, d]
    s = torch.einsum("shd,skd->shk", q, ksel) * scale
    s = s.masked_fill(~valid.unsqueeze(1), float("-inf"))
    mx = s.max(-1).values
    e = torch.exp(s - mx.unsqueeze(-1))
    den = e.sum(-1) + torch.exp(sink.view(1, -1) - mx)
    return torch.einsum("shk,skd->shd", e / den.unsqueeze(-1), ksel)


def moe(a, W, p, x, ids, hash_layer, dumps=None):
    s = x @ W[p + "gate.weight"].T
    s = F.softplus(s).sqrt()
    if hash_layer:
        idx = W[p + "gate.tid2eid"].long()[ids]
    else:
        idx = (s + W[p + "gate.bias"]).topk(a.topk, dim=-1)[1]
    wt = s.gather(1, idx)
    wt = wt / wt.sum(-1, keepdim=True) * a.route_scale
    if dumps is not None:
        dumps["topk_idx"], dumps["topk_weight"] = idx, wt
    y = torch.zeros_like(x)
    for e in range(a.n_experts):
        rows, k = torch.where(idx == e)
        if rows.numel():
            q = f"{p}experts.{e}."
            y[rows] += wt[rows, k, None] * v4_ref.expert(x[rows], W[q + "w1.weight"], W[q + "w2.weight"],
                                                         W[q + "w3.weight"], a.swiglu_limit)
    q = p + "shared_experts."
    return y + v4_ref.expert(x, W[q + "w1.weight"], W[q + "w2.weight"], W[q + "w3.weight"], a.swiglu_limit)


class Block:
    def __init__(self, a, W, i, prefix=None):
        self.a, self.W, self.i = a, W, i
        self.p = prefix if prefix is not None else f"layers.{i}."
        self.attn = Attention(a, W, i, self.p + "attn.")
        self.hash = i < a.n_hash_layers

    def hc_pre(self, x, k):
        a, p = self.a, self.p
        y, pre, post, comb = v4_ref.hc_pre(x, self.W[p + f"hc_{k}_fn"], self.W[p + f"hc_{k}_scale"],
                                           self.W[p + f"hc_{k}_base"], a.hc_mult, a.hc_iters, a.hc_eps, a.eps)
        return y, pre, post, comb

    def __call__(self, h, start_pos, ids, dumps=None):
        a, p, W = self.a, self.p, self.W
        d = {} if dumps is not None else None
        y, pre, post, comb = self.hc_pre(h, "attn")
        o = self.attn(rms(y, W[p + "attn_norm.weight"], a.eps), start_pos, d)
        if d is not None:
            d.update(hc_pre=pre, hc_post=post, hc_comb=comb, attn=o)
        h = v4_ref.hc_post(o, h, post, comb)
        y, pre, post, comb = self.hc_pre(h, "ffn")
        f = moe(a, W, p + "ffn.", rms(y, W[p + "ffn_norm.weight"], a.eps), ids, self.hash, d)
        h = v4_ref.hc_post(f, h, post, comb)
        if d is not None:
            d["hidden"] = h
            for k, v in d.items():
                dumps[f"{k}.{self.i}"] = v
        return h


def head(a, W, h, p=""):
    y = v4_ref.hc_head(h, W[p + "hc_head_fn"], W[p + "hc_head_scale"], W[p + "hc_head_base"], a.hc_eps, a.eps)
    return rms(y, W[p + "norm.weight"], a.eps) @ W["head.weight"].T


class Model:
    def __init__(self, a, W):
        self.a, self.W = a, W
        self.layers = [Block(a, W, i) for i in range(a.n_layers)]

    def __call__(self, ids, start_pos=0, dumps=None):
        a = self.a
        h = self.W["embed.weight"][ids].unsqueeze(1).repeat(1, a.hc_mult, 1)
        for layer in self.layers:
            h = layer(h, start_pos, ids, dumps)
        self.last_hidden = h
        return head(a, self.W, h)


class Mtp:
    """MTPBlock: x = e_proj(enorm(embed(ids))) + h_proj(hnorm(h)) per stream, a Block, then the head with the
    MTP block's own hc_head_* and norm (official MTPBlock.forward; embed and head are the main model's)."""

    def __init__(self, a, W, k=0):
        self.a, self.W, self.p = a, W, f"mtp.{k}."
        self.block = Block(a, W, a.n_layers + k, self.p)

    def __call__(self, h, ids, start_pos=0):
        a, W, p = self.a, self.W, self.p
        e = rms(W["embed.weight"][ids], W[p + "enorm.weight"], a.eps)
        x = (e @ W[p + "e_proj.weight"].T).unsqueeze(1) + rms(h, W[p + "hnorm.weight"], a.eps) @ W[p + "h_proj.weight"].T
        x = self.block(x, start_pos, ids)
        return head(a, W, x, p)
