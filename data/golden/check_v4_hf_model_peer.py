#!/usr/bin/env python3
"""check_v4_hf_model_peer.py — transformers' DeepseekV4ForCausalLM (transformers 5, modeling_deepseek_v4.py) as
a second peer for the whole-model golden: builds it from data/golden/deepseek_v4_model/config.json (rewritten in
transformers' spelling: layer_types, compress_rates, mlp_layer_types, rope_parameters), loads the official
tensors under transformers' names (the mapping below; routed experts fused into gate_up_proj [E, 2I, d] =
[w1; w3] and down_proj [E, d, I]), runs it in float64 without a cache and with its own cache (prefill of P
tokens, then one token per call), and compares the logits with data/golden/deepseek_v4/model.safetensors (the
float64 implementation of the official code). Exits 1 on a mismatch. With --save it also writes
data/golden/deepseek_v4_hf/: the same model as transformers' save_pretrained stores it (float32), which
tests/test_v4_model.cpp reads to check dsref's loader of that layout.
Run from the repository root:  python3 data/golden/check_v4_hf_model_peer.py [--save]
"""
import json
import os
import sys

import torch
from transformers import DeepseekV4Config, DeepseekV4ForCausalLM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import read_safetensors  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
c = json.load(open(os.path.join(HERE, "deepseek_v4_model", "config.json")))
W, _ = read_safetensors(os.path.join(HERE, "deepseek_v4_model", "model.safetensors"))
G, _ = read_safetensors(os.path.join(HERE, "deepseek_v4", "model.safetensors"))
L = c["num_hidden_layers"]
kind = {0: "sliding_attention", 4: "compressed_sparse_attention",
        c["compress_rates"]["heavily_compressed_attention"]: "heavily_compressed_attention"}
prf = c["qk_rope_head_dim"] / c["head_dim"]
ys = c["rope_scaling"]
hf = {k: c[k] for k in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "head_dim", "q_lora_rank",
                        "o_groups", "o_lora_rank", "sliding_window", "n_routed_experts", "n_shared_experts",
                        "num_experts_per_tok", "moe_intermediate_size", "index_n_heads", "index_head_dim", "index_topk",
                        "hc_mult", "hc_sinkhorn_iters", "hc_eps", "rms_norm_eps", "routed_scaling_factor", "swiglu_limit",
                        "compress_rates", "max_position_embeddings", "scoring_func")}
hf.update(layer_types=[kind[m] for m in c["compress_ratios"][:L]],
          mlp_layer_types=["hash_moe" if i < c["num_hash_layers"] else "moe" for i in range(L)],
          partial_rotary_factor=prf,
          rope_parameters={"main": {"rope_type": "default", "rope_theta": c["rope_theta"], "partial_rotary_factor": prf},
                           "compress": {"rope_type": "yarn", "rope_theta": c["compress_rope_theta"], "factor": ys["factor"],
                                        "original_max_position_embeddings": ys["original_max_position_embeddings"],
                                        "beta_fast": ys["beta_fast"], "beta_slow": ys["beta_slow"], "attention_factor": 1.0,
                                        "partial_rotary_factor": prf}})
cfg = DeepseekV4Config(**hf)
cfg._experts_implementation = "eager"  # the plain per-expert loop (grouped_mm has no float64)
cfg._attn_implementation = "eager"  # the attention with the sink logit (the sdpa path drops s_aux: the sinks)
model = DeepseekV4ForCausalLM(cfg).double().eval()

ATTN = {"attn_sink": "sinks", "wq_a.weight": "q_a_proj.weight", "q_norm.weight": "q_a_norm.weight",
        "wq_b.weight": "q_b_proj.weight", "wkv.weight": "kv_proj.weight", "kv_norm.weight": "kv_norm.weight",
        "wo_a.weight": "o_a_proj.weight", "wo_b.weight": "o_b_proj.weight",
        "compressor.ape": "compressor.position_bias", "compressor.wkv.weight": "compressor.kv_proj.weight",
        "compressor.wgate.weight": "compressor.gate_proj.weight", "compressor.norm.weight": "compressor.kv_norm.weight",
        "indexer.compressor.ape": "compressor.indexer.position_bias",
        "indexer.compressor.wkv.weight": "compressor.indexer.kv_proj.weight",
        "indexer.compressor.wgate.weight": "compressor.indexer.gate_proj.weight",
        "indexer.compressor.norm.weight": "compressor.indexer.kv_norm.weight",
        "indexer.wq_b.weight": "compressor.indexer.q_b_proj.weight",
        "indexer.weights_proj.weight": "compressor.indexer.scorer.weights_proj.weight"}


def hf_name(n):
    top = {"embed.weight": "model.embed_tokens.weight", "head.weight": "lm_head.weight", "norm.weight": "model.norm.weight",
           "hc_head_fn": "model.hc_head.hc_fn", "hc_head_base": "model.hc_head.hc_base",
           "hc_head_scale": "model.hc_head.hc_scale"}
    if n in top:
        return top[n]
    if not n.startswith("layers."):
        return None  # the MTP block: transformers' model has none
    _, i, rest = n.split(".", 2)
    p = f"model.layers.{i}."
    for k in ("attn", "ffn"):
        for s in ("fn", "base", "scale"):
            if rest == f"hc_{k}_{s}":
                return p + f"{k}_hc.{s}"
    if rest == "attn_norm.weight":
        return p + "input_layernorm.weight"
    if rest == "ffn_norm.weight":
        return p + "post_attention_layernorm.weight"
    if rest.startswith("attn."):
        return p + "self_attn." + ATTN[rest[5:]]
    f = rest[4:]
    if f == "gate.weight":
        return p + "mlp.gate.weight"
    if f == "gate.bias":
        return p + "mlp.gate.e_score_correction_bias"
    if f == "gate.tid2eid":
        return p + "mlp.gate.tid2eid"
    if f.startswith("shared_experts."):
        w = {"w1": "gate_proj", "w3": "up_proj", "w2": "down_proj"}[f.split(".")[1]]
        return p + f"mlp.shared_experts.{w}.weight"
    return "expert"  # fused below


sd = model.state_dict()
done = set()
with torch.no_grad():
    for n, (dt, v) in W.items():
        h = hf_name(n)
        if h is None or h == "expert":
            continue
        t = torch.tensor(v)
        sd[h].copy_(t.to(sd[h].dtype))
        done.add(h)
    for i in range(L):
        p = f"layers.{i}.ffn.experts."
        E = c["n_routed_experts"]
        gu = torch.stack([torch.cat([torch.tensor(W[f"{p}{e}.w1.weight"][1]), torch.tensor(W[f"{p}{e}.w3.weight"][1])], 0)
                          for e in range(E)])
        dn = torch.stack([torch.tensor(W[f"{p}{e}.w2.weight"][1]) for e in range(E)])
        sd[f"model.layers.{i}.mlp.experts.gate_up_proj"].copy_(gu.double())
        sd[f"model.layers.{i}.mlp.experts.down_proj"].copy_(dn.double())
        done.update({f"model.layers.{i}.mlp.experts.gate_up_proj", f"model.layers.{i}.mlp.experts.down_proj"})
missing = [k for k in sd if k not in done and "inv_freq" not in k]
assert not missing, f"transformers tensors left unset: {missing}"
model.load_state_dict(sd)

ids = torch.tensor(G["tokens"][1]).unsqueeze(0)
ref = torch.tensor(G["logits"][1])
T, P = (int(x) for x in G["dims"][1])
with torch.no_grad():
    full = model(ids, use_cache=False).logits[0]
    out = model(ids[:, :P], use_cache=True)
    steps, pkv = [out.logits[0]], out.past_key_values
    for s in range(P, T):
        o = model(ids[:, s:s + 1], past_key_values=pkv, use_cache=True)
        steps.append(o.logits[0])
        pkv = o.past_key_values
    dec = torch.cat(steps, 0)
d_full = (full - ref).abs().max().item()
d_dec = (dec - ref).abs().max().item()
agree = (full.argmax(-1) == ref.argmax(-1)).float().mean().item()
print(f"transformers prefill vs official float64: max |dlogit| {d_full:.3g}, argmax agreement {agree:.3f}")
print(f"transformers cached decode vs official float64: max |dlogit| {d_dec:.3g}")
# Both are float64 (transformers casts a few steps to float32: the mHC mixes, the compressor softmax): 1e-4 is
# the target; a different formula or layout moves logits by 1e-2 and more.
ok = max(d_full, d_dec) < 1e-4
if ok and "--save" in sys.argv[1:]:
    model.float().save_pretrained(os.path.join(HERE, "deepseek_v4_hf"))
    print("wrote data/golden/deepseek_v4_hf/")
sys.exit(0 if ok else 1)
