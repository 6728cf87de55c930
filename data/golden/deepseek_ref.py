#!/usr/bin/env python3
"""deepseek_ref.py — an independent float64 forward pass of DeepSeek-V2 / V2-Lite / V3.

This is the golden-data twin of dsref's MLA model (`ref/model/mla.cpp`, `ref/model/model.cpp`). It is written from the
papers' math as restated below (DeepSeek-V2 report §2.1 and App. C, DeepSeek-V3 report §2.1.1 and §2.2, the
YaRN paper §3.2), not from transformers, the official code or dsref's C++, and it imports neither
`transformers` nor `safetensors`. It computes MLA the *naive* way (decompressed per-head K
and V), which is the direct reading of the V2/V3 papers; dsref's absorbed path must agree with it.

Dimension letters: T tokens, d hidden, H heads, d_q q_lora_rank (0 = none), d_c kv_lora_rank,
d_n qk_nope_head_dim, d_r qk_rope_head_dim, d_v v_head_dim, d_k = d_n + d_r, I intermediate, V vocab, L layers.

The forward (positions 0..T-1, one causal prefill), everything in float64:

    h = E[tokens]                                            # [T, d], no sqrt(d) scaling
    for layer i in 0..L-1:
        x = rmsnorm(h, input_layernorm_i)                    # eps = rms_norm_eps, inside the sqrt
        a = mla(x)                                           # dumped as attn.{i}
        h = h + a
        x = rmsnorm(h, post_attention_layernorm_i)
        h = h + (moe(x) if layer i is MoE else dense_mlp(x))  # dumped as hidden.{i}
    logits = rmsnorm(h, model.norm) lm_head^T                 # untied

Layer i is DeepSeekMoE when n_routed_experts > 0, i >= first_k_dense_replace and i % moe_layer_freq == 0.
The MoE layer is `moe_layer` of ../moe/moe_ref.py (float64 numpy, one token at a time), imported
as is; its routing (topk_idx, topk_weight, and the margin: the smallest score gap that decided a token's
experts) is dumped per MoE layer.

Multi-token prediction (V3 report §2.2, eqs 21-23; --mtp), with L = num_hidden_layers and h_i the final
hidden state AFTER model.norm (vLLM's choice, pinned in ref/model/mtp.h):
    x_i = eh_proj [enorm(Emb(t_{i+1})) ; hnorm(h_i)]          i = 0..T-2, embedding first
    h'  = decoder layer L (MLA + MoE when the model has experts) on x, positions 0..T-2, causal
    mtp_logits = rmsnorm(h', shared_head.norm) shared_head.head^T        row i predicts t_{i+2}
Emb, shared_head.norm and shared_head.head are layer L's own tensors when present, else
model.embed_tokens, model.norm and lm_head ("fallback", also written as mtp_logits.fallback when the
own ones exist).

Checkpoints: one model.safetensors, or model.safetensors.index.json + shards. FP8 tensors (F8_E4M3) are
decoded with this file's own E4M3FN table (sign, 4 exponent bits with bias 7, 3 mantissa bits; e = 0 is
subnormal m/8 2^-6; S.1111.111 is NaN; no infinities) and multiplied by `<name>_scale_inv`
[ceil(R/br), ceil(C/bc)] block by block (weight_block_size br x bc, default 128 x 128; edge blocks are
partial): W[r, c] = decode(q[r, c]) * scale_inv[r // br, c // bc], exact in float64.

MLA (V2 report §2.1.2-2.1.3, eqs 9-19; V3 report §2.1.1, eqs 1-11) for one layer:

    q      = q_b(rmsnorm(q_a(x), q_a_layernorm, 1e-6))  if q_lora_rank else  q_proj(x)     # [T, H, d_k]
    q_nope, q_pe = q[..., :d_n], q[..., d_n:]            # head-major rows, nope first in each head
    kv_a   = kv_a_proj_with_mqa(x)                       # [T, d_c + d_r]
    c      = rmsnorm(kv_a[:, :d_c], kv_a_layernorm, 1e-6)  # latent        (dumped as kv_latent.{i})
    k_pe   = rope(kv_a[:, d_c:])                         # [T, d_r], one key shared by all heads
    q_pe   = rope(q_pe)                                  # (dumped as q_nope.{i}, q_pe.{i}, k_pe.{i})
    kv     = kv_b_proj(c) -> [T, H, d_n + d_v];  k_nope, v = kv[..., :d_n], kv[..., d_n:]
    k      = [k_nope | k_pe broadcast over heads]        # [T, H, d_k]
    o[t,h] = sum_{s<=t} softmax_s(scale * q[t,h].k[s,h]) v[s,h]
    out    = o_proj(o.reshape(T, H*d_v))

The norms inside MLA use eps 1e-6, as the HF and official modules do (their RMSNorm default), whatever
`rms_norm_eps` says (pinned in ref/model/mla.h). The golden configs all use rms_norm_eps = 1e-6, so both readings agree.

RoPE (pinned in ref/core/rope.h): adjacent pairs of the checkpoint layout. Pair j = (x[2j], x[2j+1]) is the complex number
x[2j] + i x[2j+1], multiplied by exp(i p theta'_j); the output keeps the interleaved order. Here this is
done with torch complex128 arithmetic.

YaRN (YaRN paper §3.2), when rope_scaling.type (or rope_type) is "yarn", D = d_r, b = rope_theta:
    theta_j = b^(-2j/D),  cd(r) = D ln(L0 / (2 pi r)) / (2 ln b)
    low = max(floor(cd(beta_fast)), 0),  high = min(ceil(cd(beta_slow)), D - 1)   (high == low -> high + 0.001)
    ramp_j = clamp((j - low) / (high - low), 0, 1);  theta'_j = theta_j / s * ramp_j + theta_j * (1 - ramp_j)
Softmax scale (V3 report §4.3, V2 report §3.1.4): d_k^-0.5 * mscale^2, mscale = 0.1 * mscale_all_dim * ln(s) + 1 (1 if s <= 1);
plain d_k^-0.5 when rope_scaling is absent or null. cos/sin are never scaled (the official convention).

CLI:
    deepseek_ref.py expect --model DIR --tokens 1,2,3 --out FILE.safetensors [--mtp] [--no-mla-dumps]
writes tokens I32 [T], logits [T, V], and per layer i hidden.{i} [T, d], attn.{i} [T, d], q_nope.{i}
[T, H, d_n], q_pe.{i} [T, H, d_r], kv_latent.{i} [T, d_c], k_pe.{i} [T, d_r] (attn and these four not
with --no-mla-dumps), and per MoE layer i topk_idx.{i} I32 [T, K], topk_weight.{i} [T, K], margin.{i}
[T]; with --mtp also mtp_logits [T-1, V], hidden.{L}, attn.{L}, topk_idx.{L}, topk_weight.{L},
margin.{L} (T-1 rows) and mtp_logits.fallback: the float64 results stored as F32 (F64 with --f64).
"""
import argparse
import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "moe"))
from safetensors_io import read_safetensors, write_safetensors  # noqa: E402
from ref_common import RefError, check_tokens, get, parse_tokens, read_config_json, rms_norm, silu  # noqa: E402
import moe_ref  # noqa: E402

# safetensors_io keeps FP8 codes as raw single bytes (uint8); they are decoded below.

LATENT_NORM_EPS = 1e-6  # q_a_layernorm / kv_a_layernorm eps in HF and the official code


# ----------------------------------------------------------------------------------------------
# Loading

def load_config(model_dir):
    """Read config.json and return the values the math uses, checked."""
    path, raw, need = read_config_json(model_dir)

    model_type = raw.get("model_type")
    if model_type not in ("deepseek_v2", "deepseek_v3"):
        raise RefError(f"{path}: model_type is {model_type!r}, deepseek_ref.py does deepseek_v2 / deepseek_v3")
    if raw.get("hidden_act", "silu") != "silu":
        raise RefError(f"{path}: hidden_act {raw['hidden_act']!r} is not 'silu'")
    if raw.get("attention_bias", False):
        raise RefError(f"{path}: attention_bias = true is not supported (DeepSeek has no biases)")
    if raw.get("tie_word_embeddings", False):
        raise RefError(f"{path}: tie_word_embeddings = true (DeepSeek V2/V3 heads are untied)")

    cfg = {
        "d": int(need("hidden_size")),
        "I": int(need("intermediate_size")),
        "L": int(need("num_hidden_layers")),
        "H": int(need("num_attention_heads")),
        "V": int(need("vocab_size")),
        "eps": float(raw.get("rms_norm_eps", 1e-6)),
        "theta": float(raw.get("rope_theta", 10000.0)),
        "d_q": int(raw["q_lora_rank"]) if raw.get("q_lora_rank") is not None else 0,
        "d_c": int(need("kv_lora_rank")),
        "d_n": int(need("qk_nope_head_dim")),
        "d_r": int(need("qk_rope_head_dim")),
        "d_v": int(need("v_head_dim")),
        # DeepSeekMoE layer selection: layer i is MoE when experts exist,
        # i >= first_k_dense_replace and i % moe_layer_freq == 0
        "n_routed_experts": int(raw.get("n_routed_experts") or 0),
        "first_k_dense_replace": int(raw.get("first_k_dense_replace") or 0),
        "moe_layer_freq": int(raw.get("moe_layer_freq") or 1),
        "num_nextn_predict_layers": int(raw.get("num_nextn_predict_layers") or 0),
        "raw": raw,  # moe_ref.py reads the gate fields under their HF names
    }
    q = raw.get("quantization_config")
    cfg["fp8_block"] = tuple(q.get("weight_block_size", [128, 128])) if q else None
    if cfg["d_r"] % 2 != 0:
        raise RefError(f"{path}: qk_rope_head_dim {cfg['d_r']} must be even")
    rs = raw.get("rope_scaling")
    if rs is None:
        cfg["yarn"] = None
    else:
        kind = rs.get("type", rs.get("rope_type"))
        if kind != "yarn":
            raise RefError(f"{path}: rope_scaling type {kind!r}: only yarn (or null) is supported")
        factor = float(rs["factor"])
        if not factor > 0:
            raise RefError(f"{path}: rope_scaling.factor must be > 0")
        cfg["yarn"] = {
            "factor": factor,
            "L0": int(rs["original_max_position_embeddings"]),
            "beta_fast": float(rs.get("beta_fast", 32.0)),
            "beta_slow": float(rs.get("beta_slow", 1.0)),
            "mscale": float(rs.get("mscale", 1.0)),
            "mscale_all_dim": float(rs.get("mscale_all_dim", 0.0)),
        }
    return cfg


def is_moe_layer(cfg, i):
    return (cfg["n_routed_experts"] > 0 and i >= cfg["first_k_dense_replace"]
            and i % cfg["moe_layer_freq"] == 0)


def e4m3_decode(codes):
    """uint8 E4M3FN codes -> float64 values (exact): S.EEEE.MMM, bias 7, e = 0 subnormal, S.1111.111 NaN."""
    c = np.asarray(codes, dtype=np.int64)
    sign = np.where(c & 0x80, -1.0, 1.0)
    e = (c >> 3) & 0xF
    m = (c & 0x7).astype(np.float64)
    val = np.where(e == 0, m / 8.0 * 2.0 ** -6, (1.0 + m / 8.0) * np.exp2(e.astype(np.float64) - 7.0))
    val = np.where((e == 15) & (m == 7), np.nan, val)
    return sign * val


def fp8_dequant(name, codes, scale, block):
    """W = decode(q) * scale_inv[r // br, c // bc] in float64; edge blocks are partial."""
    R, C = codes.shape
    br, bc = block
    grid = (-(-R // br), -(-C // bc))
    if tuple(scale.shape) != grid:
        raise RefError(f"tensor {name}_scale_inv: shape {list(scale.shape)}, expected {list(grid)}")
    w = e4m3_decode(codes)
    if np.isnan(w).any():
        raise RefError(f"tensor {name}: holds the E4M3 NaN code")
    s = np.repeat(np.repeat(np.asarray(scale, dtype=np.float64), br, axis=0), bc, axis=1)[:R, :C]
    return w * s


def load_weights(model_dir, fp8_block=(128, 128)):
    """All tensors of the checkpoint (one file or index + shards), as float64 torch tensors {name: tensor};
    F8_E4M3 weights are dequantized with their `_scale_inv` (which may live in any shard)."""
    index = os.path.join(model_dir, "model.safetensors.index.json")
    single = os.path.join(model_dir, "model.safetensors")
    if os.path.isfile(index):
        with open(index) as f:
            weight_map = json.load(f)["weight_map"]
        files = sorted(set(weight_map.values()))
    elif os.path.isfile(single):
        weight_map, files = None, ["model.safetensors"]
    else:
        raise RefError(f"{model_dir}: has neither model.safetensors nor model.safetensors.index.json")
    raw = {}
    for fname in files:
        tensors, _ = read_safetensors(os.path.join(model_dir, fname))
        for name, (dtype, a) in tensors.items():
            if weight_map is not None and weight_map.get(name) != fname:
                raise RefError(f"{fname}: tensor {name} is not indexed to this file")
            if name in raw:
                raise RefError(f"tensor {name} appears in two files")
            raw[name] = (dtype, a)
    out = {}
    for name, (dtype, a) in raw.items():
        if dtype == "F8_E4M3":
            if name + "_scale_inv" not in raw:
                raise RefError(f"FP8 tensor {name} has no {name}_scale_inv")
            w = fp8_dequant(name, a, raw[name + "_scale_inv"][1], fp8_block or (128, 128))
        else:
            # float32 (incl. bf16 decoded exactly to float32) -> float64 is exact
            w = np.asarray(a, dtype=np.float64)
        out[name] = torch.from_numpy(w)
    return out


# ----------------------------------------------------------------------------------------------
# RoPE with YaRN, and the softmax scale

def yarn_mscale(factor, m):
    """get_mscale(s, m) = 1 if s <= 1 else 0.1 m ln(s) + 1 (YaRN paper §3.4's sqrt(1/t))."""
    return 1.0 if factor <= 1.0 else 0.1 * m * math.log(factor) + 1.0


def softmax_scale(cfg):
    scale = (cfg["d_n"] + cfg["d_r"]) ** -0.5
    if cfg["yarn"] is not None:
        scale *= yarn_mscale(cfg["yarn"]["factor"], cfg["yarn"]["mscale_all_dim"]) ** 2
    return scale


def rope_inv_freq(cfg):
    """theta'_j for j = 0..d_r/2 - 1 (float64), YaRN-blended when rope_scaling is yarn (YaRN paper §3.2)."""
    D, base = cfg["d_r"], cfg["theta"]
    j = np.arange(D // 2, dtype=np.float64)
    theta = base ** (-2.0 * j / D)
    y = cfg["yarn"]
    if y is None:
        return torch.from_numpy(theta)

    def correction_dim(rotations):
        return D * math.log(y["L0"] / (2.0 * math.pi * rotations)) / (2.0 * math.log(base))

    low = max(math.floor(correction_dim(y["beta_fast"])), 0)
    high = min(math.ceil(correction_dim(y["beta_slow"])), D - 1)
    if high == low:
        high += 0.001
    ramp = np.clip((j - low) / (high - low), 0.0, 1.0)
    return torch.from_numpy(theta / y["factor"] * ramp + theta * (1.0 - ramp))


def rope_adjacent_pairs(x, inv_freq):
    """x [T, ..., d_r] at positions 0..T-1 -> rotated copy; pair j = (x[2j], x[2j+1]) as a complex number."""
    T, d_r = x.shape[0], x.shape[-1]
    angle = torch.arange(T, dtype=torch.float64)[:, None] * inv_freq[None, :]     # [T, d_r/2]
    rot = torch.polar(torch.ones_like(angle), angle)                               # e^{i angle}
    rot = rot.reshape((T,) + (1,) * (x.dim() - 2) + (d_r // 2,))                   # broadcast over heads
    z = torch.view_as_complex(x.reshape(x.shape[:-1] + (d_r // 2, 2)).contiguous())
    return torch.view_as_real(z * rot).reshape(x.shape)


# ----------------------------------------------------------------------------------------------
# The blocks

def mla_attention(cfg, weights, i, x, inv_freq):
    """One layer's MLA on x [T, d] (naive: decompressed K, V). Returns (out [T, d], intermediates)."""
    d, H, d_q, d_c, d_n, d_r, d_v = (cfg[k] for k in ("d", "H", "d_q", "d_c", "d_n", "d_r", "d_v"))
    d_k = d_n + d_r
    T = x.shape[0]
    p = f"model.layers.{i}.self_attn."
    if d_q > 0:
        c_q = rms_norm(x @ get(weights, p + "q_a_proj.weight", (d_q, d)).T,
                       get(weights, p + "q_a_layernorm.weight", (d_q,)), LATENT_NORM_EPS)
        q = c_q @ get(weights, p + "q_b_proj.weight", (H * d_k, d_q)).T
    else:
        q = x @ get(weights, p + "q_proj.weight", (H * d_k, d)).T
    q = q.reshape(T, H, d_k)
    q_nope = q[:, :, :d_n]
    q_pe = rope_adjacent_pairs(q[:, :, d_n:], inv_freq)                       # [T, H, d_r]

    kv_a = x @ get(weights, p + "kv_a_proj_with_mqa.weight", (d_c + d_r, d)).T  # [T, d_c + d_r]
    latent = rms_norm(kv_a[:, :d_c], get(weights, p + "kv_a_layernorm.weight", (d_c,)), LATENT_NORM_EPS)
    k_pe = rope_adjacent_pairs(kv_a[:, d_c:], inv_freq)                       # [T, d_r]

    kv = (latent @ get(weights, p + "kv_b_proj.weight", (H * (d_n + d_v), d_c)).T).reshape(T, H, d_n + d_v)
    k = torch.cat([kv[:, :, :d_n], k_pe[:, None, :].expand(T, H, d_r)], dim=-1)  # [T, H, d_k]
    v = kv[:, :, d_n:]                                                           # [T, H, d_v]
    qf = torch.cat([q_nope, q_pe], dim=-1)                                       # [T, H, d_k]

    scale = softmax_scale(cfg)
    future = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)        # [t, s]: s > t
    o = torch.empty(T, H, d_v, dtype=x.dtype)
    for h in range(H):
        scores = (qf[:, h, :] @ k[:, h, :].T) * scale                           # [T, T]
        scores = scores.masked_fill(future, float("-inf"))
        scores = scores - scores.max(dim=-1, keepdim=True).values
        prob = torch.exp(scores)
        prob = prob / prob.sum(dim=-1, keepdim=True)
        o[:, h, :] = prob @ v[:, h, :]
    out = o.reshape(T, H * d_v) @ get(weights, p + "o_proj.weight", (d, H * d_v)).T
    return out, {"q_nope": q_nope, "q_pe": q_pe, "kv_latent": latent, "k_pe": k_pe}


def dense_mlp(cfg, weights, i, x):
    """SwiGLU (Shazeer 2020): down(silu(gate(x)) * up(x)); x [T, d] -> [T, d]."""
    d, I = cfg["d"], cfg["I"]
    p = f"model.layers.{i}.mlp."
    gate = x @ get(weights, p + "gate_proj.weight", (I, d)).T
    up = x @ get(weights, p + "up_proj.weight", (I, d)).T
    return (silu(gate) * up) @ get(weights, p + "down_proj.weight", (d, I)).T


def moe(cfg, weights, i, x, rules=None):
    """DeepSeekMoE (V2 report §2.2, V3 report §2.1.2) by ../moe/moe_ref.py: x [T, d] -> (y [T, d], routing dict). `rules` are
    moe_ref's deliberately wrong variants (sensitivity runs only)."""
    p = f"model.layers.{i}.mlp."
    raw = cfg["raw"]
    E, d, I = cfg["n_routed_experts"], cfg["d"], int(raw["moe_intermediate_size"])
    n_s = int(raw.get("n_shared_experts") or 0)
    layer = {"gate.weight": get(weights, p + "gate.weight", (E, d))}
    if raw.get("topk_method") == "noaux_tc":
        layer["gate.e_score_correction_bias"] = get(weights, p + "gate.e_score_correction_bias", (E,))
    for j in range(E):
        q = f"experts.{j}."
        layer[q + "gate_proj.weight"] = get(weights, p + q + "gate_proj.weight", (I, d))
        layer[q + "up_proj.weight"] = get(weights, p + q + "up_proj.weight", (I, d))
        layer[q + "down_proj.weight"] = get(weights, p + q + "down_proj.weight", (d, I))
    if n_s > 0:
        for k, shape in (("gate_proj", (n_s * I, d)), ("up_proj", (n_s * I, d)), ("down_proj", (d, n_s * I))):
            layer[f"shared_experts.{k}.weight"] = get(weights, p + f"shared_experts.{k}.weight", shape)
    r = moe_ref.moe_layer(x.numpy(), {k: v.numpy() for k, v in layer.items()}, raw, **(rules or {}))
    return torch.from_numpy(r["y"]), r


def feed_forward(cfg, weights, i, x, moe_layer, rules=None):
    """The layer's feed-forward block: (y, routing or None); dense SwiGLU or DeepSeekMoE."""
    return moe(cfg, weights, i, x, rules) if moe_layer else (dense_mlp(cfg, weights, i, x), None)


def decoder_layer(cfg, weights, i, h, inv_freq, moe_layer, rules=None):
    """h [T, d] -> (h after layer i, attn output, MLA intermediates, routing or None)."""
    d = cfg["d"]
    p = f"model.layers.{i}."
    x = rms_norm(h, get(weights, p + "input_layernorm.weight", (d,)), cfg["eps"])
    a, inter = mla_attention(cfg, weights, i, x, inv_freq)
    h = h + a
    x = rms_norm(h, get(weights, p + "post_attention_layernorm.weight", (d,)), cfg["eps"])
    y, routing = feed_forward(cfg, weights, i, x, moe_layer, rules)
    return h + y, a, inter, routing


# ----------------------------------------------------------------------------------------------
# The model

def forward(cfg, weights, tokens, rules=None):
    """tokens: list of ints in [0, V). Returns {"logits": [T, V], "final_hidden": [T, d] (after model.norm),
    per-layer lists of intermediates, "routing": {layer: moe_ref routing dict}}."""
    d, V, L = cfg["d"], cfg["V"], cfg["L"]
    check_tokens(tokens, V)
    inv_freq = rope_inv_freq(cfg)
    h = get(weights, "model.embed_tokens.weight", (V, d))[torch.tensor(tokens, dtype=torch.long)].clone()
    dumps = {k: [] for k in ("hidden", "attn", "q_nope", "q_pe", "kv_latent", "k_pe")}
    dumps["routing"] = {}
    for i in range(L):
        h, a, inter, routing = decoder_layer(cfg, weights, i, h, inv_freq, is_moe_layer(cfg, i), rules)
        dumps["attn"].append(a)
        dumps["hidden"].append(h)
        for k, val in inter.items():
            dumps[k].append(val)
        if routing is not None:
            dumps["routing"][i] = routing
    x = rms_norm(h, get(weights, "model.norm.weight", (d,)), cfg["eps"])
    dumps["final_hidden"] = x
    dumps["logits"] = x @ get(weights, "lm_head.weight", (V, d)).T
    return dumps


def mtp(cfg, weights, tokens, final_hidden, fallback=False, rules=None):
    """Multi-token prediction with the first MTP module (layer L). final_hidden [T, d] after model.norm.
    Returns {"mtp_logits": [T-1, V], "hidden", "attn": [T-1, d], "routing"}. With fallback=True the main
    embedding, model.norm and lm_head are used even where layer L has its own."""
    d, V, L = cfg["d"], cfg["V"], cfg["L"]
    T = len(tokens)
    if cfg["num_nextn_predict_layers"] < 1:
        raise RefError("--mtp: the config has num_nextn_predict_layers = 0")
    if T < 2:
        raise RefError("--mtp needs at least 2 tokens")
    p = f"model.layers.{L}."

    def own_or_main(own, main, shape):
        return get(weights, own if (own in weights and not fallback) else main, shape)

    emb = own_or_main(p + "embed_tokens.weight", "model.embed_tokens.weight", (V, d))
    e = emb[torch.tensor(tokens[1:], dtype=torch.long)]                                   # Emb(t_{i+1})
    e = rms_norm(e, get(weights, p + "enorm.weight", (d,)), cfg["eps"])
    hh = rms_norm(final_hidden[:T - 1], get(weights, p + "hnorm.weight", (d,)), cfg["eps"])  # h_i
    x = torch.cat([e, hh], dim=1) @ get(weights, p + "eh_proj.weight", (d, 2 * d)).T       # [T-1, d]
    h, a, _, routing = decoder_layer(cfg, weights, L, x, rope_inv_freq(cfg), cfg["n_routed_experts"] > 0, rules)
    y = rms_norm(h, own_or_main(p + "shared_head.norm.weight", "model.norm.weight", (d,)), cfg["eps"])
    logits = y @ own_or_main(p + "shared_head.head.weight", "lm_head.weight", (V, d)).T
    return {"mtp_logits": logits, "hidden": h, "attn": a, "routing": routing}


def routing_tensors(routing, i, dtype):
    """topk_idx.{i} I32 [T, K], topk_weight.{i} [T, K], margin.{i} [T] from a moe_ref routing dict."""
    return {f"topk_idx.{i}": ("I32", routing["topk_idx"].astype(np.int32)),
            f"topk_weight.{i}": (dtype, routing["topk_weight"]),
            f"margin.{i}": (dtype, np.minimum(routing["margin"], 1e30))}  # +inf (no gap) stored as 1e30


def expected_tensors(cfg, weights, tokens, dtype="F32", mla_dumps=True, with_mtp=False):
    """The expected-output file contents {name: (dtype, array)}. The float64 results are stored as F32 by
    default (rounding error ~6e-8 relative, far below any test tolerance; it halves the files)."""
    out = forward(cfg, weights, tokens)
    tensors = {
        "tokens": ("I32", np.asarray(tokens, dtype=np.int32)),
        "logits": (dtype, out["logits"].numpy()),
    }
    for i in range(cfg["L"]):
        for k in ("hidden",) + (("attn", "q_nope", "q_pe", "kv_latent", "k_pe") if mla_dumps else ()):
            tensors[f"{k}.{i}"] = (dtype, out[k][i].contiguous().numpy())
    for i, r in out["routing"].items():
        tensors.update(routing_tensors(r, i, dtype))
    if with_mtp:
        L = cfg["L"]
        m = mtp(cfg, weights, tokens, out["final_hidden"])
        tensors["mtp_logits"] = (dtype, m["mtp_logits"].numpy())
        tensors[f"hidden.{L}"] = (dtype, m["hidden"].numpy())
        if mla_dumps:
            tensors[f"attn.{L}"] = (dtype, m["attn"].numpy())
        if m["routing"] is not None:
            tensors.update(routing_tensors(m["routing"], L, dtype))
        p = f"model.layers.{L}."
        if any(p + n in weights for n in ("embed_tokens.weight", "shared_head.norm.weight", "shared_head.head.weight")):
            tensors["mtp_logits.fallback"] = (dtype, mtp(cfg, weights, tokens, out["final_hidden"], True)["mtp_logits"].numpy())
    return tensors


def write_expected(model_dir, tokens, out_path, dtype="F32", mla_dumps=True, with_mtp=False):
    """Run the float64 forward on `model_dir` and write `out_path`."""
    torch.set_num_threads(1)  # same summation order on every run -> byte-identical output
    cfg = load_config(model_dir)
    weights = load_weights(model_dir, cfg["fp8_block"])
    write_safetensors(out_path, expected_tensors(cfg, weights, tokens, dtype, mla_dumps, with_mtp),
                      metadata={"producer": "data/golden/deepseek_ref.py (float64)"})


def main(argv=None):
    parser = argparse.ArgumentParser(description="Independent float64 DeepSeek-V2/V3 forward (golden data).")
    sub = parser.add_subparsers(dest="command", required=True)
    e = sub.add_parser("expect", help="write expected logits and intermediates for one token sequence")
    e.add_argument("--model", required=True, help="directory with config.json and model.safetensors")
    e.add_argument("--tokens", required=True, help="comma-separated token ids, e.g. 1,2,3")
    e.add_argument("--out", required=True, help="output .safetensors file")
    e.add_argument("--f64", action="store_true", help="store the results as F64 (default F32)")
    e.add_argument("--mtp", action="store_true", help="also the multi-token-prediction outputs (layer L)")
    e.add_argument("--no-mla-dumps", action="store_true", help="leave out attn, q_nope, q_pe, kv_latent, k_pe")
    args = parser.parse_args(argv)
    tokens = parse_tokens(parser, args.tokens)
    try:
        write_expected(args.model, tokens, args.out, "F64" if args.f64 else "F32", not args.no_mla_dumps, args.mtp)
    except (RefError, ValueError, OSError, KeyError) as err:
        print(f"deepseek_ref.py: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
