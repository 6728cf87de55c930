#!/usr/bin/env python3
"""llama_ref.py — an independent float64 forward pass of the HF Llama layout (DeepSeek LLM 7B/67B) and of
its two R1-Distill relatives: Qwen2 (DeepSeek-R1-Distill-Qwen: q/k/v biases) and Llama with Llama 3 RoPE
scaling (DeepSeek-R1-Distill-Llama).

This is the golden-data twin of dsref's dense forward (`ref/`). It is written from the math as restated
below (DeepSeek LLM §2.2: pre-norm RMSNorm, SwiGLU, RoPE, GQA; RoFormer §3.4.2) and the HF
LlamaForCausalLM conventions stated below, not from transformers or from dsref's C++; it does not import `transformers` or `safetensors`.

Dimension letters: T tokens, d hidden, H query heads, H_kv key/value heads, d_h head_dim,
I intermediate (MLP) size, V vocab, L layers.

The forward (positions 0..T-1, one causal prefill), everything in float64:

    h = E[tokens]                                   # [T, d], no sqrt(d) scaling
    for layer i in 0..L-1:
        x = rmsnorm(h, input_layernorm_i)           # y = w * x / sqrt(mean(x^2) + eps), eps inside the sqrt
        q = x Wq^T -> [T, H, d_h];  k = x Wk^T, v = x Wv^T -> [T, H_kv, d_h]   (no biases)
        q, k = rope_half_split(q), rope_half_split(k)
        o[t, h] = sum_{s<=t} softmax_s(q[t,h] . k[s,g] * d_h^-0.5) v[s,g],  g = floor(h * H_kv / H)
        attn_i = o Wo^T                              # [T, d]   (dumped as attn.{i})
        h = h + attn_i
        x = rmsnorm(h, post_attention_layernorm_i)
        h = h + W_down (silu(W_gate x) * (W_up x))   # silu(z) = z / (1 + e^-z)
        (h is dumped as hidden.{i})
    logits = rmsnorm(h, model.norm) W_head^T         # W_head = lm_head.weight, or embed_tokens.weight
                                                     # when tie_word_embeddings and lm_head is absent

RoPE, HF Llama "rotate_half" (half-split) convention: with n = d_h/2, pair j in 0..n-1 is
(x[j], x[j+n]); inv_freq_j = theta^(-2j/d_h) (Llama 3 scaling below); angle = p * inv_freq_j; then
    out[j]   = x[j]   cos(angle) - x[j+n] sin(angle)
    out[j+n] = x[j+n] cos(angle) + x[j]   sin(angle)
d_h = config["head_dim"] if present, else hidden_size // num_attention_heads.

Llama 3 RoPE scaling (rope_type "llama3": factor s, low_freq_factor l, high_freq_factor h,
original_max_position_embeddings L0), per frequency with wavelength w = 2 pi / inv_freq:
    w < L0 / h:  unchanged;   w > L0 / l:  inv_freq / s;
    otherwise:   (1 - a) inv_freq / s + a inv_freq,  a = (L0 / w - l) / (h - l)
RoPE settings are read from transformers 5's `rope_parameters` or transformers 4's `rope_theta` +
`rope_scaling` (type or rope_type).

Weights are read from config.json + model.safetensors, or model.safetensors.index.json + shards, and
every weight (F32, BF16, F16, F64) is converted exactly to float64 before use.

CLI:
    llama_ref.py expect --model DIR --tokens 1,2,3 --out FILE.safetensors
writes tokens I32 [T], logits F64 [T, V], hidden.{i} F64 [T, d], attn.{i} F64 [T, d].
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
from ref_common import RefError, check_tokens, get, parse_tokens, read_config_json, rms_norm, silu  # noqa: E402


# ----------------------------------------------------------------------------------------------
# Loading

def load_config(model_dir):
    """Read config.json and return the values the math uses, checked."""
    path, raw, need = read_config_json(model_dir)

    model_type = raw.get("model_type")
    if model_type not in ("llama", "qwen2"):
        raise RefError(f"{path}: model_type is {model_type!r}, llama_ref.py does 'llama' and 'qwen2'")
    rope = raw.get("rope_parameters") or raw.get("rope_scaling") or {}
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    if rope_type not in ("default", "llama3"):
        raise RefError(f"{path}: rope_type {rope_type!r}: llama_ref.py does plain RoPE and llama3")
    if model_type == "qwen2" and (raw.get("use_sliding_window") or any(
            t != "full_attention" for t in raw.get("layer_types") or [])):
        raise RefError(f"{path}: sliding-window attention is not implemented here")
    if raw.get("hidden_act", "silu") != "silu":
        raise RefError(f"{path}: hidden_act {raw['hidden_act']!r} is not 'silu'")
    for key in ("attention_bias", "mlp_bias"):
        if raw.get(key, False):
            raise RefError(f"{path}: {key} = true is not supported (DeepSeek LLM has no biases)")
    if raw.get("pretraining_tp", 1) != 1:
        raise RefError(f"{path}: pretraining_tp must be 1")

    cfg = {
        "d": int(need("hidden_size")),
        "I": int(need("intermediate_size")),
        "L": int(need("num_hidden_layers")),
        "H": int(need("num_attention_heads")),
        "V": int(need("vocab_size")),
        "eps": float(need("rms_norm_eps")),
        "theta": float(rope.get("rope_theta", raw.get("rope_theta", 10000.0))),  # HF default 10000
        "tied": bool(raw.get("tie_word_embeddings", False)),
        "qkv_bias": model_type == "qwen2",
        "llama3": None,
    }
    if rope_type == "llama3":
        cfg["llama3"] = {k: float(rope[k]) for k in
                         ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings")}
    cfg["H_kv"] = int(raw["num_key_value_heads"]) if raw.get("num_key_value_heads") is not None else cfg["H"]
    if raw.get("head_dim") is not None:
        cfg["d_h"] = int(raw["head_dim"])
    else:
        if cfg["d"] % cfg["H"] != 0:
            raise RefError(f"{path}: hidden_size {cfg['d']} not divisible by num_attention_heads {cfg['H']}")
        cfg["d_h"] = cfg["d"] // cfg["H"]
    if cfg["d_h"] % 2 != 0:
        raise RefError(f"{path}: head_dim {cfg['d_h']} must be even for RoPE")
    if cfg["H"] % cfg["H_kv"] != 0:
        raise RefError(f"{path}: num_attention_heads {cfg['H']} not divisible by num_key_value_heads {cfg['H_kv']}")
    return cfg


def load_weights(model_dir):
    """All tensors of the checkpoint, as float64 torch tensors {name: tensor}."""
    single = os.path.join(model_dir, "model.safetensors")
    index = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.isfile(single):
        files = [single]
    elif os.path.isfile(index):
        with open(index) as f:
            weight_map = json.load(f).get("weight_map")
        if not isinstance(weight_map, dict):
            raise RefError(f"{index}: missing 'weight_map'")
        files = [os.path.join(model_dir, name) for name in sorted(set(weight_map.values()))]
    else:
        raise RefError(f"{model_dir}: has neither model.safetensors nor model.safetensors.index.json")
    weights = {}
    for path in files:
        tensors, _ = read_safetensors(path)
        for name, (_, array) in tensors.items():
            if name in weights:
                raise RefError(f"{path}: tensor {name} appears in more than one shard")
            # float32 (incl. bf16 decoded exactly to float32) -> float64 is exact
            weights[name] = torch.from_numpy(np.asarray(array, dtype=np.float64))
    if os.path.isfile(index) and not os.path.isfile(single):
        for name, file in weight_map.items():
            if name not in weights:
                raise RefError(f"{index}: weight_map names {name} in {file}, which does not hold it")
    return weights


# ----------------------------------------------------------------------------------------------
# The modules

def rope_inv_freq(d_h, theta, llama3):
    """[d_h/2] inverse frequencies in float64, with Llama 3 scaling when `llama3` holds its parameters."""
    j = torch.arange(d_h // 2, dtype=torch.float64)
    inv_freq = theta ** (-2.0 * j / d_h)
    if llama3 is None:
        return inv_freq
    s, lo, hi, L0 = (llama3[k] for k in ("factor", "low_freq_factor", "high_freq_factor",
                                          "original_max_position_embeddings"))
    out = inv_freq.clone()
    for i in range(len(inv_freq)):
        w = 2 * math.pi / float(inv_freq[i])
        if w < L0 / hi:
            continue
        if w > L0 / lo:
            out[i] = inv_freq[i] / s
        else:
            a = (L0 / w - lo) / (hi - lo)
            out[i] = (1 - a) * inv_freq[i] / s + a * inv_freq[i]
    return out


def rope_half_split(x, inv_freq):
    """x [T, n_heads, d_h] at positions 0..T-1 -> rotated copy; pairs (j, j + d_h/2)."""
    T, _, d_h = x.shape
    n = d_h // 2
    positions = torch.arange(T, dtype=torch.float64)           # [T]
    angle = positions[:, None] * inv_freq[None, :]             # [T, n]
    cos = torch.cos(angle).to(x.dtype)[:, None, :]             # [T, 1, n]
    sin = torch.sin(angle).to(x.dtype)[:, None, :]
    first, second = x[..., :n], x[..., n:]                     # x[j], x[j+n]
    return torch.cat([first * cos - second * sin,
                      second * cos + first * sin], dim=-1)


def causal_gqa_attention(q, k, v):
    """q [T, H, d_h], k/v [T, H_kv, d_h] -> o [T, H, d_h]; query head h reads KV head h*H_kv//H."""
    T, H, d_h = q.shape
    H_kv = k.shape[1]
    scale = d_h ** -0.5
    future = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)  # [t, s] true where s > t
    o = torch.empty_like(q)
    for h in range(H):
        g = (h * H_kv) // H
        scores = (q[:, h, :] @ k[:, g, :].T) * scale           # [T, T]
        scores = scores.masked_fill(future, float("-inf"))
        scores = scores - scores.max(dim=-1, keepdim=True).values
        p = torch.exp(scores)
        p = p / p.sum(dim=-1, keepdim=True)
        o[:, h, :] = p @ v[:, g, :]
    return o


def swiglu_mlp(x, w_gate, w_up, w_down):
    """x [T, d], w_gate/w_up [I, d], w_down [d, I] -> [T, d]."""
    return (silu(x @ w_gate.T) * (x @ w_up.T)) @ w_down.T


# ----------------------------------------------------------------------------------------------
# The model

def forward(cfg, weights, tokens):
    """tokens: list of ints in [0, V). Returns {"logits": [T, V], "hidden": [L x [T, d]], "attn": [...]}.

    Computes in the dtype of the weights (float64 from load_weights)."""
    d, H, H_kv, d_h, I, V, L = cfg["d"], cfg["H"], cfg["H_kv"], cfg["d_h"], cfg["I"], cfg["V"], cfg["L"]
    T = len(tokens)
    check_tokens(tokens, V)

    inv_freq = rope_inv_freq(d_h, cfg["theta"], cfg["llama3"])
    embed = get(weights, "model.embed_tokens.weight", (V, d))
    h = embed[torch.tensor(tokens, dtype=torch.long)].clone()  # [T, d]
    hidden, attn = [], []
    for i in range(L):
        p = f"model.layers.{i}."
        x = rms_norm(h, get(weights, p + "input_layernorm.weight", (d,)), cfg["eps"])
        q = x @ get(weights, p + "self_attn.q_proj.weight", (H * d_h, d)).T
        k = x @ get(weights, p + "self_attn.k_proj.weight", (H_kv * d_h, d)).T
        v = x @ get(weights, p + "self_attn.v_proj.weight", (H_kv * d_h, d)).T
        if cfg["qkv_bias"]:
            q = q + get(weights, p + "self_attn.q_proj.bias", (H * d_h,))
            k = k + get(weights, p + "self_attn.k_proj.bias", (H_kv * d_h,))
            v = v + get(weights, p + "self_attn.v_proj.bias", (H_kv * d_h,))
        q, k, v = q.reshape(T, H, d_h), k.reshape(T, H_kv, d_h), v.reshape(T, H_kv, d_h)
        q = rope_half_split(q, inv_freq)
        k = rope_half_split(k, inv_freq)
        o = causal_gqa_attention(q, k, v).reshape(T, H * d_h)
        a = o @ get(weights, p + "self_attn.o_proj.weight", (d, H * d_h)).T  # [T, d]
        h = h + a
        x = rms_norm(h, get(weights, p + "post_attention_layernorm.weight", (d,)), cfg["eps"])
        h = h + swiglu_mlp(x,
                           get(weights, p + "mlp.gate_proj.weight", (I, d)),
                           get(weights, p + "mlp.up_proj.weight", (I, d)),
                           get(weights, p + "mlp.down_proj.weight", (d, I)))
        attn.append(a)
        hidden.append(h)
    x = rms_norm(h, get(weights, "model.norm.weight", (d,)), cfg["eps"])
    if "lm_head.weight" in weights or not cfg["tied"]:
        head = get(weights, "lm_head.weight", (V, d))
    else:
        head = embed
    logits = x @ head.T  # [T, V]
    return {"logits": logits, "hidden": hidden, "attn": attn}


def expected_tensors(cfg, weights, tokens):
    """The expected-output file contents {name: (dtype, array)}."""
    out = forward(cfg, weights, tokens)
    tensors = {
        "tokens": ("I32", np.asarray(tokens, dtype=np.int32)),
        "logits": ("F64", out["logits"].numpy()),
    }
    for i in range(cfg["L"]):
        tensors[f"hidden.{i}"] = ("F64", out["hidden"][i].numpy())
        tensors[f"attn.{i}"] = ("F64", out["attn"][i].numpy())
    return tensors


def write_expected(model_dir, tokens, out_path):
    """Run the float64 forward on `model_dir` and write `out_path`."""
    torch.set_num_threads(1)  # same summation order on every run -> byte-identical output
    cfg = load_config(model_dir)
    weights = load_weights(model_dir)
    write_safetensors(out_path, expected_tensors(cfg, weights, tokens),
                      metadata={"producer": "data/golden/llama_ref.py (float64)"})


def main(argv=None):
    parser = argparse.ArgumentParser(description="Independent float64 HF-Llama forward (golden data).")
    sub = parser.add_subparsers(dest="command", required=True)
    e = sub.add_parser("expect", help="write expected logits/hidden/attn for one token sequence")
    e.add_argument("--model", required=True, help="directory with config.json and safetensors")
    e.add_argument("--tokens", required=True, help="comma-separated token ids, e.g. 1,2,3")
    e.add_argument("--out", required=True, help="output .safetensors file")
    args = parser.parse_args(argv)
    tokens = parse_tokens(parser, args.tokens)
    try:
        write_expected(args.model, tokens, args.out)
    except (RefError, ValueError, OSError) as err:
        print(f"llama_ref.py: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
