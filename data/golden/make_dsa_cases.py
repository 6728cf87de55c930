#!/usr/bin/env python3
"""make_dsa_cases.py — golden data for the DSA lightning indexer (op `dsa_indexer`, ref/model/dsa_indexer.h).

Writes data/golden/dsa/inputs.safetensors, the op's inputs (x, qr, the indexer.* weights, float32; it runs
as `dsref op dsa_indexer --in data/golden/dsa/inputs.safetensors ...`), and data/golden/dsa/expected.safetensors:
  - expected float64 outputs from an independent implementation written here from DeepSeek-V3.2-Exp
    inference/model.py (Indexer.forward, precompute_freqs_cis, apply_rotary_emb with interleaved=False
    as in its fixed version: pairs (j, j + d_r/2)), without the rotation and the FP8 steps:
      exact.index_q [T, n_I, d_I], exact.index_k [T, d_I], exact.index_weights [T, n_I],
      exact.index_scores [T, T] (-inf above the diagonal)
  - the same in the FP8 deployment path (rotate_activation = orthonormal Walsh-Hadamard, act_quant to
    E4M3 in 1x128 groups, scale max(amax, 1e-4)/448, fp8_index on the dequantized values):
      fp8.index_scores [T, T], fp8.index_k [T, d_I]
  - a second peer: transformers' DeepseekV32Indexer in float32 (models/deepseek_v32, which skips the
    rotation and the FP8 steps as `exact` does): hf.index_topk I32 [T, k] (torch.topk, sorted);
  - data/golden/dsa/model/: a whole random V3.2 model saved by transformers (save_pretrained) with its
    float32 forward (logits, each layer's index_topk) in model/expected.safetensors.
The attributes are fixed (the test repeats them): T = 40, d = 48, q_lora_rank = 24, index_n_heads = 16,
index_head_dim = 32, qk_rope_head_dim = 16, index_topk = 8 (T >= 4k), rope_theta = 10000 and YaRN
factor 4 with original_max_position_embeddings 16 (positions past L0, pairs inside the ramp).
16 heads: with few heads ReLU makes exact-zero score ties common and implementations pick differently.

    python3 data/golden/make_dsa_cases.py     (needs torch; transformers 5 for the second peer)
"""
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import write_safetensors  # noqa: E402

T, D, DQ, NI, DI, DR, K = 40, 48, 24, 16, 32, 16, 8
THETA, FACTOR, L0, BETA_FAST, BETA_SLOW = 10000.0, 4.0, 16, 32, 1


def freqs(dim):
    """precompute_freqs_cis's YaRN-blended frequencies (official), in float64."""
    f = 1.0 / (THETA ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))

    def corr_dim(rot):
        return dim * math.log(L0 / (rot * 2 * math.pi)) / (2 * math.log(THETA))

    low = max(math.floor(corr_dim(BETA_FAST)), 0)
    high = min(math.ceil(corr_dim(BETA_SLOW)), dim - 1)
    if low == high:
        high += 0.001
    ramp = torch.clamp((torch.arange(dim // 2, dtype=torch.float64) - low) / (high - low), 0, 1)
    smooth = 1 - ramp
    return f / FACTOR * (1 - smooth) + f * smooth


def rope_half(x, pos):
    """apply_rotary_emb(x, freqs_cis, interleaved=False): pairs (j, j + d/2). x: [T, ..., d]."""
    h = x.shape[-1] // 2
    ang = pos[:, None] * freqs(x.shape[-1])[None, :]  # [T, d/2]
    shape = (x.shape[0],) + (1,) * (x.dim() - 2) + (h,)
    c, s = torch.cos(ang).view(shape), torch.sin(ang).view(shape)
    a, b = x[..., :h], x[..., h:]
    return torch.cat([a * c - b * s, a * s + b * c], dim=-1)


def hadamard(n):
    H = torch.ones(1, 1, dtype=torch.float64)
    while H.shape[0] < n:
        H = torch.cat([torch.cat([H, H], 1), torch.cat([H, -H], 1)], 0)
    return H / math.sqrt(n)


def fp8_roundtrip(x):
    """act_quant (1x128 groups along the last dim, s = max(amax, 1e-4)/448 in float32) then dequant."""
    shp = x.shape
    x = x.reshape(-1, shp[-1]).to(torch.float32)
    out = torch.empty_like(x)
    for g0 in range(0, shp[-1], 128):
        blk = x[:, g0:g0 + 128]
        s = torch.clamp(blk.abs().amax(dim=-1, keepdim=True), min=1e-4) / 448.0
        q = (blk / s).to(torch.float8_e4m3fn).to(torch.float32)
        out[:, g0:g0 + 128] = q * s
    return out.reshape(shp).to(torch.float64)


def indexer(w, x, qr, fp8):
    pos = torch.arange(T, dtype=torch.float64)
    q = (qr @ w["wq_b"].T).view(T, NI, DI)
    q = torch.cat([rope_half(q[..., :DR], pos), q[..., DR:]], dim=-1)  # [rope | nope]
    k = torch.nn.functional.layer_norm(x @ w["wk"].T, (DI,), w["k_norm_w"], w["k_norm_b"], 1e-6)
    k = torch.cat([rope_half(k[:, :DR], pos), k[:, DR:]], dim=-1)
    if fp8:
        H = hadamard(DI)
        q, k = fp8_roundtrip(q @ H), fp8_roundtrip(k @ H)
    wts = (x @ w["weights_proj"].T) * NI ** -0.5  # [T, NI]
    dots = torch.einsum("thd,sd->ths", q, k)  # [T, NI, S]
    scores = torch.einsum("th,ths->ts", wts, torch.relu(dots)) * DI ** -0.5
    mask = torch.triu(torch.full((T, T), float("-inf"), dtype=torch.float64), 1)
    return q, k, wts, scores + mask


def hf_topk(w, x, qr):
    try:
        from transformers import DeepseekV32Config
        from transformers.models.deepseek_v32.modeling_deepseek_v32 import (DeepseekV32Indexer,
                                                                            DeepseekV32RotaryEmbedding)
    except ImportError:
        return None
    cfg = DeepseekV32Config(hidden_size=D, q_lora_rank=DQ, index_n_heads=NI, index_head_dim=DI, qk_rope_head_dim=DR,
                            qk_nope_head_dim=16, v_head_dim=16, kv_lora_rank=16, num_attention_heads=2,
                            num_key_value_heads=2, index_topk=K, num_hidden_layers=1, vocab_size=10,
                            max_position_embeddings=4 * L0,
                            rope_parameters={"rope_type": "yarn", "rope_theta": THETA, "factor": FACTOR,
                                             "original_max_position_embeddings": L0, "beta_fast": BETA_FAST,
                                             "beta_slow": BETA_SLOW, "mscale": 1.0, "mscale_all_dim": 1.0})
    ix = DeepseekV32Indexer(cfg, 0).float()
    with torch.no_grad():
        ix.wq_b.weight.copy_(w["wq_b"])
        ix.wk.weight.copy_(w["wk"])
        ix.k_norm.weight.copy_(w["k_norm_w"])
        ix.k_norm.bias.copy_(w["k_norm_b"])
        ix.weights_proj.weight.copy_(w["weights_proj"])
        rot = DeepseekV32RotaryEmbedding(cfg)
        pos = torch.arange(T)[None]
        xs = x.float()[None]
        cos, sin = rot(xs, pos)
        mask = torch.triu(torch.full((1, T, T), float("-inf")), 1)
        return ix(xs, qr.float()[None], (cos, sin), mask, pos)[0].to(torch.int32).numpy()


MODEL_TOKENS = [3, 17, 101, 33, 5, 90, 12, 99, 7, 111, 64, 2, 45, 8, 77, 120, 31, 6, 58, 14, 93, 27, 4, 66]


def model_case(d):
    """A whole random V3.2 model written by transformers' save_pretrained (data/golden/dsa/model/) and its
    float32 eager forward: expected.safetensors holds tokens, logits [T, V] and index_topk.{i} [T, k]
    (transformers' DeepseekV32Indexer output, torch.topk order)."""
    from transformers import AutoModelForCausalLM, DeepseekV32Config, DeepseekV32ForCausalLM
    cfg = DeepseekV32Config(vocab_size=128, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                            num_attention_heads=4, num_key_value_heads=4, q_lora_rank=32, kv_lora_rank=32,
                            qk_nope_head_dim=16, qk_rope_head_dim=16, v_head_dim=16, first_k_dense_replace=2,
                            n_routed_experts=4, num_experts_per_tok=2, moe_intermediate_size=32, n_group=1,
                            topk_group=1, routed_scaling_factor=1.0, index_n_heads=16, index_head_dim=32,
                            index_topk=8, max_position_embeddings=4 * L0, tie_word_embeddings=False,
                            rope_parameters={"rope_type": "yarn", "rope_theta": THETA, "factor": FACTOR,
                                             "original_max_position_embeddings": L0, "beta_fast": BETA_FAST,
                                             "beta_slow": BETA_SLOW, "mscale": 1.0, "mscale_all_dim": 1.0})
    torch.manual_seed(33)
    model = DeepseekV32ForCausalLM(cfg)
    g = torch.Generator().manual_seed(33)
    with torch.no_grad():  # activations O(1): projections N(0, 1/in), norms 1 + 0.1 N, biases 0.2 N
        for name, t in sorted(model.named_parameters()):
            z = torch.randn(t.shape, generator=g, dtype=torch.float64)
            if name.endswith("norm.bias"):
                v = 0.2 * z
            elif "norm" in name:
                v = 1.0 + 0.1 * z
            elif "embed_tokens" in name:
                v = z
            else:
                v = z / t.shape[-1] ** 0.5
            t.copy_(v.to(t.dtype))
    case = os.path.join(d, "model")
    model.save_pretrained(case)
    model = AutoModelForCausalLM.from_pretrained(case, dtype=torch.float32, attn_implementation="eager").eval()
    topk = {}
    for i, layer in enumerate(model.model.layers):
        layer.self_attn.indexer.register_forward_hook(
            lambda m, a, o, i=i: topk.__setitem__(f"index_topk.{i}", o[0].to(torch.int32).numpy()))
    with torch.no_grad():
        logits = model(torch.tensor([MODEL_TOKENS]), use_cache=False).logits[0]
    out = {"tokens": ("I32", np.array(MODEL_TOKENS, dtype=np.int32)), "logits": ("F32", logits.numpy())}
    out.update({n: ("I32", np.ascontiguousarray(v)) for n, v in topk.items()})
    write_safetensors(os.path.join(case, "expected.safetensors"), out, {"source": "data/golden/make_dsa_cases.py"})


def main():
    g = torch.Generator().manual_seed(32)

    def randn(*shape, scale=1.0):
        return (torch.randn(*shape, generator=g, dtype=torch.float64) * scale).to(torch.float32).to(torch.float64)

    w = {"wq_b": randn(NI * DI, DQ, scale=DQ ** -0.5), "wk": randn(DI, D, scale=D ** -0.5),
         "k_norm_w": 1 + randn(DI, scale=0.1), "k_norm_b": randn(DI, scale=0.2),
         "weights_proj": randn(NI, D, scale=D ** -0.5)}
    x, qr = randn(T, D), randn(T, DQ)
    f32 = lambda t: ("F32", t.to(torch.float32).numpy())  # noqa: E731
    f64 = lambda t: ("F64", t.numpy())  # noqa: E731
    out = {"x": f32(x), "qr": f32(qr), "indexer.wq_b.weight": f32(w["wq_b"]), "indexer.wk.weight": f32(w["wk"]),
           "indexer.k_norm.weight": f32(w["k_norm_w"]), "indexer.k_norm.bias": f32(w["k_norm_b"]),
           "indexer.weights_proj.weight": f32(w["weights_proj"])}
    q, k, wts, sc = indexer(w, x, qr, fp8=False)
    out.update({"exact.index_q": f64(q), "exact.index_k": f64(k), "exact.index_weights": f64(wts),
                "exact.index_scores": f64(sc)})
    _, k8, _, sc8 = indexer(w, x, qr, fp8=True)
    out.update({"fp8.index_scores": f64(sc8), "fp8.index_k": f64(k8)})
    hf = hf_topk(w, x, qr)
    if hf is not None:
        out["hf.index_topk"] = ("I32", np.ascontiguousarray(hf))
    d = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dsa")
    meta = {"source": "data/golden/make_dsa_cases.py"}
    write_safetensors(os.path.join(d, "inputs.safetensors"), {n: v for n, v in out.items() if "." not in n or n.startswith("indexer.")}, meta)
    write_safetensors(os.path.join(d, "expected.safetensors"), {n: v for n, v in out.items() if n.split(".")[0] in ("exact", "fp8", "hf")}, meta)
    if hf is not None:
        model_case(d)
    print("wrote", d, "(with the transformers peer)" if hf is not None else "(no transformers)")


if __name__ == "__main__":
    main()
