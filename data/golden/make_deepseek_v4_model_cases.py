#!/usr/bin/env python3
"""make_deepseek_v4_model_cases.py — a tiny random DeepSeek-V4 checkpoint in the official layout and its golden
outputs from the float64 implementation data/golden/v4_model_ref.py (written from the official DeepSeek-V4
inference/model.py, with its cache and decode branches).

  data/golden/deepseek_v4_model/config.json        hub spelling (compress_ratios, num_hash_layers, rope_scaling)
  data/golden/deepseek_v4_model/model.safetensors  every tensor, F32, official names (gate.tid2eid I32)
  data/golden/deepseek_v4/model.safetensors        tokens [T]; logits [T, V] of a prefill; decode_logits [T, V]
      from the official branches: a prefill of the first P tokens, then one token per step; mtp_logits [T-1, V];
      per layer i: hidden.{i}, attn.{i}, hc_pre.{i}, topk_idx.{i}, topk_weight.{i}, compressed_kv.{i},
      index_topk.{i} (CSA layers)

The model mixes every layer type (CSA m = 4, HCA with m = 8 via compress_rates, window-only) and both MoE
kinds (2 hash layers, then learned routing); T = 37 is above the window (6) and not a multiple of 4 or 8;
index_topk 3 is below the visible entries. swiglu_limit 1.5 makes the clamp matter. The generator checks
that every routing and index top-k decision has a margin > 1e-5, so float32 cannot flip one.

Run from the repository root with a Python that has torch:  python3 data/golden/make_deepseek_v4_model_cases.py
"""
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import v4_model_ref as R  # noqa: E402
from safetensors_io import write_safetensors  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CKPT = os.path.join(HERE, "deepseek_v4_model")
D = torch.float64

CONFIG = {
    "architectures": ["DeepseekV4ForCausalLM"], "model_type": "deepseek_v4",
    "vocab_size": 64, "hidden_size": 32, "num_hidden_layers": 5, "num_attention_heads": 4, "head_dim": 16,
    "qk_rope_head_dim": 8, "q_lora_rank": 16, "o_groups": 2, "o_lora_rank": 8, "sliding_window": 6,
    "n_routed_experts": 6, "n_shared_experts": 1, "num_experts_per_tok": 2, "moe_intermediate_size": 16,
    "scoring_func": "sqrtsoftplus", "topk_method": "noaux_tc", "norm_topk_prob": True,
    "routed_scaling_factor": 1.5, "swiglu_limit": 1.5, "index_n_heads": 8, "index_head_dim": 8, "index_topk": 3,
    "hc_mult": 4, "hc_sinkhorn_iters": 20, "hc_eps": 1e-6, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
    "compress_rope_theta": 160000.0,
    "rope_scaling": {"type": "yarn", "factor": 16, "original_max_position_embeddings": 64, "beta_fast": 32,
                     "beta_slow": 1},
    "compress_rates": {"compressed_sparse_attention": 4, "heavily_compressed_attention": 8},
    "compress_ratios": [4, 8, 0, 4, 8, 4], "num_hash_layers": 2, "num_nextn_predict_layers": 1,
    "max_position_embeddings": 256, "tie_word_embeddings": False, "bos_token_id": 0, "eos_token_id": 1,
}
T, P = 37, 5


def layout(c):
    """(name, shape, kind) of every tensor, official names (the same table as io/checkpoint_layout_v4.h,
    written again here from the official module tree)."""
    d, n, H, dh, ql, G, Rk = c["hidden_size"], c["hc_mult"], c["num_attention_heads"], c["head_dim"], \
        c["q_lora_rank"], c["o_groups"], c["o_lora_rank"]
    E, I, V, K = c["n_routed_experts"], c["moe_intermediate_size"], c["vocab_size"], c["num_experts_per_tok"]
    M, L = (2 + n) * n, c["num_hidden_layers"]
    out = [("embed.weight", (V, d), "emb"), ("head.weight", (V, d), "lin"), ("norm.weight", (d,), "norm"),
           ("hc_head_fn", (n, n * d), "lin"), ("hc_head_base", (n,), "small"), ("hc_head_scale", (1,), "norm")]
    for i in range(L + c["num_nextn_predict_layers"]):
        p = f"layers.{i}." if i < L else f"mtp.{i - L}."
        m = c["compress_ratios"][i]
        for k in ("attn", "ffn"):
            out += [(p + f"hc_{k}_fn", (M, n * d), "lin"), (p + f"hc_{k}_base", (M,), "small"),
                    (p + f"hc_{k}_scale", (3,), "norm")]
        out += [(p + "attn_norm.weight", (d,), "norm"), (p + "ffn_norm.weight", (d,), "norm")]
        a = p + "attn."
        out += [(a + "attn_sink", (H,), "small"), (a + "wq_a.weight", (ql, d), "lin"), (a + "q_norm.weight", (ql,), "norm"),
                (a + "wq_b.weight", (H * dh, ql), "lin"), (a + "wkv.weight", (dh, d), "lin"),
                (a + "kv_norm.weight", (dh,), "norm"), (a + "wo_a.weight", (G * Rk, H * dh // G), "lin"),
                (a + "wo_b.weight", (d, G * Rk), "lin")]

        def comp(q, r, hd):
            cw = (2 if r == 4 else 1) * hd
            return [(q + "ape", (r, cw), "small"), (q + "wkv.weight", (cw, d), "lin"),
                    (q + "wgate.weight", (cw, d), "lin"), (q + "norm.weight", (hd,), "norm")]
        if m:
            out += comp(a + "compressor.", m, dh)
        if m == 4:
            out += [(a + "indexer.wq_b.weight", (c["index_n_heads"] * c["index_head_dim"], ql), "lin"),
                    (a + "indexer.weights_proj.weight", (c["index_n_heads"], d), "lin")]
            out += comp(a + "indexer.compressor.", 4, c["index_head_dim"])
        f = p + "ffn."
        out += [(f + "gate.weight", (E, d), "lin")]
        out += [(f + "gate.tid2eid", (V, K), "table")] if i < c["num_hash_layers"] else [(f + "gate.bias", (E,), "bias")]
        for q in [f + "shared_experts."] + [f"{f}experts.{e}." for e in range(E)]:
            out += [(q + "w1.weight", (I, d), "lin"), (q + "w3.weight", (I, d), "lin"), (q + "w2.weight", (d, I), "lin")]
        if i >= L:
            out += [(p + "e_proj.weight", (d, d), "lin"), (p + "h_proj.weight", (d, d), "lin"),
                    (p + "enorm.weight", (d,), "norm"), (p + "hnorm.weight", (d,), "norm"), (p + "norm.weight", (d,), "norm"),
                    (p + "hc_head_fn", (n, n * d), "lin"), (p + "hc_head_base", (n,), "small"),
                    (p + "hc_head_scale", (1,), "norm")]
    return out


def draw(g, c):
    W = {}
    for name, shape, kind in layout(c):
        if kind == "table":
            W[name] = torch.stack([torch.randperm(c["n_routed_experts"], generator=g)[:shape[1]] for _ in range(shape[0])])
            continue
        z = torch.randn(*shape, generator=g, dtype=D)
        v = {"emb": z, "lin": z * shape[-1] ** -0.5, "norm": 1 + 0.1 * z, "small": 0.5 * z, "bias": 0.1 * z}[kind]
        if name.endswith("w1.weight") or name.endswith("w3.weight"):
            v = v * 3.0  # push some SwiGLU pre-activations past swiglu_limit
        W[name] = v.to(torch.float32).to(D)
    return W


def args(c):
    return R.Args(dim=c["hidden_size"], n_heads=c["num_attention_heads"], head_dim=c["head_dim"], rd=c["qk_rope_head_dim"],
                  q_lora=c["q_lora_rank"], o_groups=c["o_groups"], o_lora_rank=c["o_lora_rank"], window=c["sliding_window"],
                  compress_ratios=c["compress_ratios"], max_len=64, eps=c["rms_norm_eps"], rope_theta=c["rope_theta"],
                  compress_rope_theta=c["compress_rope_theta"], rope_factor=16.0, original_seq_len=64, beta_fast=32,
                  beta_slow=1, index_n_heads=c["index_n_heads"], index_head_dim=c["index_head_dim"],
                  index_topk=c["index_topk"], n_layers=c["num_hidden_layers"], n_hash_layers=c["num_hash_layers"],
                  hc_mult=c["hc_mult"], hc_iters=c["hc_sinkhorn_iters"], hc_eps=c["hc_eps"], topk=c["num_experts_per_tok"],
                  n_experts=c["n_routed_experts"], route_scale=c["routed_scaling_factor"], swiglu_limit=c["swiglu_limit"])


def margins(dumps, a):
    """the smallest gap of any top-k decision: routing (s + bias) and the CSA indexer"""
    worst = float("inf")
    for k, v in dumps.items():
        if k.startswith("index_scores."):
            srt = v.sort(-1, descending=True)[0]
            kk = a.index_topk
            if srt.shape[1] > kk:
                vis = torch.isfinite(srt[:, kk])
                if vis.any():
                    worst = min(worst, (srt[vis, kk - 1] - srt[vis, kk]).min().item())
        if k.startswith("route_u."):
            srt = v.sort(-1, descending=True)[0]
            worst = min(worst, (srt[:, a.topk - 1] - srt[:, a.topk]).min().item())
    return worst


def main():
    c = CONFIG
    a = args(c)
    g = torch.Generator().manual_seed(45)
    W = draw(g, c)
    ids = torch.randint(0, c["vocab_size"], (T,), generator=g)
    dumps = {}
    orig_moe = R.moe

    def moe_logged(a_, W_, p, x, ids_, hash_layer, d=None):
        if not hash_layer:
            s = torch.nn.functional.softplus(x @ W_[p + "gate.weight"].T).sqrt() + W_[p + "gate.bias"]
            dumps["route_u." + p] = s
        return orig_moe(a_, W_, p, x, ids_, hash_layer, d)
    R.moe = moe_logged
    model = R.Model(a, W)
    logits = model(ids, 0, dumps)
    hidden = model.last_hidden
    m = margins({k: v for k, v in dumps.items()}, a)
    assert m > 1e-5, f"a top-k margin of {m}: pick another seed"
    R.moe = orig_moe
    dec = R.Model(a, W)
    steps = [dec(ids[:P], 0)] + [dec(ids[s:s + 1], s) for s in range(P, T)]
    decode = torch.cat(steps, 0)
    assert (decode - logits).abs().max() < 1e-12
    mtp = R.Mtp(a, W)(hidden[:-1], ids[1:])

    os.makedirs(CKPT, exist_ok=True)
    with open(os.path.join(CKPT, "config.json"), "w") as f:
        json.dump(c, f, indent=1)
    write_safetensors(os.path.join(CKPT, "model.safetensors"),
                      {k: (("I32", v.to(torch.int32).numpy()) if k.endswith("tid2eid") else ("F32", v.to(torch.float32).numpy()))
                       for k, v in W.items()}, {"generator": "data/golden/make_deepseek_v4_model_cases.py"})
    out = {"tokens": ("I64", ids.numpy()), "logits": ("F64", logits.numpy()), "decode_logits": ("F64", decode.numpy()),
           "mtp_logits": ("F64", mtp.numpy()), "dims": ("I64", np.array([T, P], np.int64))}
    for k, v in dumps.items():
        base = k.split(".")[0]
        if base in ("hidden", "attn", "hc_pre", "topk_weight", "compressed_kv"):
            out[k] = ("F64", v.numpy())
        elif base in ("topk_idx", "index_topk"):
            out[k] = ("I32", v.to(torch.int32).numpy())
    write_safetensors(os.path.join(HERE, "deepseek_v4", "model.safetensors"), out,
                      {"generator": "data/golden/make_deepseek_v4_model_cases.py"})
    print(f"wrote {CKPT} and data/golden/deepseek_v4/model.safetensors (min top-k margin {m:.3g}, "
          f"logit std {logits.std():.3g})")


if __name__ == "__main__":
    main()
