#!/usr/bin/env python3
"""deepseek_ref.py — an independent float64 forward pass of DeepSeek-V2 / V2-Lite / V3 (dense-MLP layers).

This is the golden-data twin of dsref's MLA model (`ref/mla.cpp`, `ref/model.cpp`). It is written from the
math in shared spec sections 2, 3 and 4, not from transformers, the official code or dsref's C++, and it
imports neither `transformers` nor `safetensors`. It computes MLA the *naive* way (decompressed per-head K
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
        h = h + dense_mlp(x)  (or moe(x): not written yet, see `feed_forward`)   # dumped as hidden.{i}
    logits = rmsnorm(h, model.norm) lm_head^T                 # untied

MLA (spec 4.1, 4.2) for one layer:

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
`rms_norm_eps` says (spec 2.2). The golden configs all use rms_norm_eps = 1e-6, so both readings agree.

RoPE (spec 3.2): adjacent pairs of the checkpoint layout. Pair j = (x[2j], x[2j+1]) is the complex number
x[2j] + i x[2j+1], multiplied by exp(i p theta'_j); the output keeps the interleaved order. Here this is
done with torch complex128 arithmetic.

YaRN (spec 3.3), when rope_scaling.type (or rope_type) is "yarn", D = d_r, b = rope_theta:
    theta_j = b^(-2j/D),  cd(r) = D ln(L0 / (2 pi r)) / (2 ln b)
    low = max(floor(cd(beta_fast)), 0),  high = min(ceil(cd(beta_slow)), D - 1)   (high == low -> high + 0.001)
    ramp_j = clamp((j - low) / (high - low), 0, 1);  theta'_j = theta_j / s * ramp_j + theta_j * (1 - ramp_j)
Softmax scale (spec 3.4): d_k^-0.5 * mscale^2, mscale = 0.1 * mscale_all_dim * ln(s) + 1 (1 if s <= 1);
plain d_k^-0.5 when rope_scaling is absent or null. cos/sin are never scaled (the official convention).

CLI:
    deepseek_ref.py expect --model DIR --tokens 1,2,3 --out FILE.safetensors
writes tokens I32 [T], logits [T, V], and per layer i hidden.{i}, attn.{i} [T, d], q_nope.{i} [T, H, d_n],
q_pe.{i} [T, H, d_r], kv_latent.{i} [T, d_c], k_pe.{i} [T, d_r]: the float64 results stored as F32
(F64 with --f64).
"""
import argparse
import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import read_safetensors, write_safetensors  # noqa: E402

LATENT_NORM_EPS = 1e-6  # q_a_layernorm / kv_a_layernorm eps in HF and the official code


class RefError(Exception):
    """Bad input (config, checkpoint, tokens); the message names the field or tensor."""


# ----------------------------------------------------------------------------------------------
# Loading

def load_config(model_dir):
    """Read config.json and return the values the math uses, checked."""
    path = os.path.join(model_dir, "config.json")
    if not os.path.isfile(path):
        raise RefError(f"{path}: not found")
    with open(path) as f:
        raw = json.load(f)

    def need(key):
        if key not in raw or raw[key] is None:
            raise RefError(f"{path}: missing required field '{key}'")
        return raw[key]

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
        # DeepSeekMoE layer selection (spec 2.1): layer i is MoE when experts exist,
        # i >= first_k_dense_replace and i % moe_layer_freq == 0
        "n_routed_experts": int(raw.get("n_routed_experts") or 0),
        "first_k_dense_replace": int(raw.get("first_k_dense_replace") or 0),
        "moe_layer_freq": int(raw.get("moe_layer_freq") or 1),
    }
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


def load_weights(model_dir):
    """All tensors of model.safetensors, as float64 torch tensors {name: tensor}."""
    path = os.path.join(model_dir, "model.safetensors")
    if not os.path.isfile(path):
        raise RefError(f"{model_dir}: has no model.safetensors (deepseek_ref.py reads one file)")
    tensors, _ = read_safetensors(path)
    # float32 (incl. bf16 decoded exactly to float32) -> float64 is exact
    return {name: torch.from_numpy(np.asarray(a, dtype=np.float64)) for name, (_, a) in tensors.items()}


def get(weights, name, shape):
    """weights[name] after checking its shape; the message names the tensor."""
    if name not in weights:
        raise RefError(f"checkpoint has no tensor {name}")
    w = weights[name]
    if tuple(w.shape) != tuple(shape):
        raise RefError(f"tensor {name}: shape {list(w.shape)}, expected {list(shape)}")
    return w


# ----------------------------------------------------------------------------------------------
# RoPE with YaRN, and the softmax scale

def yarn_mscale(factor, m):
    """get_mscale(s, m) = 1 if s <= 1 else 0.1 m ln(s) + 1 (spec 3.4)."""
    return 1.0 if factor <= 1.0 else 0.1 * m * math.log(factor) + 1.0


def softmax_scale(cfg):
    scale = (cfg["d_n"] + cfg["d_r"]) ** -0.5
    if cfg["yarn"] is not None:
        scale *= yarn_mscale(cfg["yarn"]["factor"], cfg["yarn"]["mscale_all_dim"]) ** 2
    return scale


def rope_inv_freq(cfg):
    """theta'_j for j = 0..d_r/2 - 1 (float64), YaRN-blended when rope_scaling is yarn (spec 3.3)."""
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

def rms_norm(x, w, eps):
    """x [T, n], w [n] -> [T, n];  w * x / sqrt(mean(x^2) + eps)."""
    return w * (x / torch.sqrt((x * x).mean(dim=-1, keepdim=True) + eps))


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


def silu(z):
    return z / (1.0 + torch.exp(-z))


def dense_mlp(cfg, weights, i, x):
    """SwiGLU (spec 2.3): down(silu(gate(x)) * up(x)); x [T, d] -> [T, d]."""
    d, I = cfg["d"], cfg["I"]
    p = f"model.layers.{i}.mlp."
    gate = x @ get(weights, p + "gate_proj.weight", (I, d)).T
    up = x @ get(weights, p + "up_proj.weight", (I, d)).T
    return (silu(gate) * up) @ get(weights, p + "down_proj.weight", (d, I)).T


def moe(cfg, weights, i, x):
    """DeepSeekMoE (spec 5) — the hook for MoE layers; not written yet.

    To add it: routed experts `model.layers.{i}.mlp.experts.{j}.*`, the router `mlp.gate.weight`
    (+ `e_score_correction_bias` for noaux_tc), and one shared MLP `mlp.shared_experts.*`, returning [T, d]."""
    raise RefError(f"layer {i} is a MoE layer; deepseek_ref.py does not implement DeepSeekMoE yet")


def feed_forward(cfg, weights, i, x):
    """The layer's feed-forward block: dense SwiGLU for dense layers, DeepSeekMoE otherwise (spec 2.1)."""
    return moe(cfg, weights, i, x) if is_moe_layer(cfg, i) else dense_mlp(cfg, weights, i, x)


# ----------------------------------------------------------------------------------------------
# The model

def forward(cfg, weights, tokens):
    """tokens: list of ints in [0, V). Returns {"logits": [T, V], per-layer lists of intermediates}."""
    d, V, L = cfg["d"], cfg["V"], cfg["L"]
    T = len(tokens)
    if T == 0:
        raise RefError("tokens: empty")
    for t, tok in enumerate(tokens):
        if not (0 <= tok < V):
            raise RefError(f"tokens[{t}] = {tok} is outside [0, vocab_size={V})")
    inv_freq = rope_inv_freq(cfg)
    h = get(weights, "model.embed_tokens.weight", (V, d))[torch.tensor(tokens, dtype=torch.long)].clone()
    dumps = {k: [] for k in ("hidden", "attn", "q_nope", "q_pe", "kv_latent", "k_pe")}
    for i in range(L):
        p = f"model.layers.{i}."
        x = rms_norm(h, get(weights, p + "input_layernorm.weight", (d,)), cfg["eps"])
        a, inter = mla_attention(cfg, weights, i, x, inv_freq)
        h = h + a
        x = rms_norm(h, get(weights, p + "post_attention_layernorm.weight", (d,)), cfg["eps"])
        h = h + feed_forward(cfg, weights, i, x)
        dumps["attn"].append(a)
        dumps["hidden"].append(h)
        for k, val in inter.items():
            dumps[k].append(val)
    x = rms_norm(h, get(weights, "model.norm.weight", (d,)), cfg["eps"])
    dumps["logits"] = x @ get(weights, "lm_head.weight", (V, d)).T
    return dumps


def expected_tensors(cfg, weights, tokens, dtype="F32"):
    """The expected-output file contents {name: (dtype, array)}. The float64 results are stored as F32 by
    default (rounding error ~6e-8 relative, far below any test tolerance; it halves the files)."""
    out = forward(cfg, weights, tokens)
    tensors = {
        "tokens": ("I32", np.asarray(tokens, dtype=np.int32)),
        "logits": (dtype, out["logits"].numpy()),
    }
    for i in range(cfg["L"]):
        for k in ("hidden", "attn", "q_nope", "q_pe", "kv_latent", "k_pe"):
            tensors[f"{k}.{i}"] = (dtype, out[k][i].contiguous().numpy())
    return tensors


def write_expected(model_dir, tokens, out_path, dtype="F32"):
    """Run the float64 forward on `model_dir` and write `out_path`."""
    torch.set_num_threads(1)  # same summation order on every run -> byte-identical output
    cfg = load_config(model_dir)
    weights = load_weights(model_dir)
    write_safetensors(out_path, expected_tensors(cfg, weights, tokens, dtype),
                      metadata={"producer": "data/golden/deepseek_ref.py (float64)"})


def main(argv=None):
    parser = argparse.ArgumentParser(description="Independent float64 DeepSeek-V2/V3 forward (golden data).")
    sub = parser.add_subparsers(dest="command", required=True)
    e = sub.add_parser("expect", help="write expected logits and intermediates for one token sequence")
    e.add_argument("--model", required=True, help="directory with config.json and model.safetensors")
    e.add_argument("--tokens", required=True, help="comma-separated token ids, e.g. 1,2,3")
    e.add_argument("--out", required=True, help="output .safetensors file")
    e.add_argument("--f64", action="store_true", help="store the results as F64 (default F32)")
    args = parser.parse_args(argv)
    try:
        tokens = [int(s) for s in args.tokens.split(",") if s.strip() != ""]
    except ValueError:
        parser.error(f"--tokens: not a comma-separated list of integers: {args.tokens!r}")
    try:
        write_expected(args.model, tokens, args.out, "F64" if args.f64 else "F32")
    except (RefError, ValueError, OSError, KeyError) as err:
        print(f"deepseek_ref.py: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
