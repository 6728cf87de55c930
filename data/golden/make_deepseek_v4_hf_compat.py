#!/usr/bin/env python3
"""make_deepseek_v4_hf_compat.py — the golden of `dsref forward --compat hf` on DeepSeek-V4, made by transformers
itself: DeepseekV4ForCausalLM (transformers 5, models/deepseek_v4/modeling_deepseek_v4.py) run in float64, eager
attention and the eager per-expert loop.

  data/golden/deepseek_v4_hf_compat/config.json, model.safetensors   a tiny random V4 model as transformers'
      save_pretrained writes it (float32). Its config spells rope_parameters nested ({main, compress}) and the
      compress entry is yarn WITHOUT attention_factor: transformers then derives 0.1*ln(factor) + 1 = 1.277 (factor
      16) and multiplies the compressed layers' cos/sin by it, which the official inference/model.py never does.
  data/golden/deepseek_v4_hf_compat/expected.safetensors
      tokens [T] I64, dims [T, P] I64;
      logits [T, V] F64         transformers' prefill (no cache);
      decode_logits [T, V] F64  transformers with its cache: a prefill of P tokens, then one token per call;
      logits_af1 [T, V] F64     the same model with attention_factor 1.0 written into the config (no scaling):
                                what the official code computes, up to transformers' other differences;
      logits_limit0 [T, V] F64  the same model with swiglu_limit 0: transformers still clamps (gate <= 0, up in
                                [0, 0]), so every expert outputs 0; the official Expert does not clamp at 0;
      golden_logits [T0, V] F64 transformers on data/golden/deepseek_v4_hf (the official golden model as
                                transformers saves it) at the tokens of data/golden/deepseek_v4/model.safetensors.

The model has one layer of each type (CSA m = 4, HCA m = 8, window-only), one hash-routed MoE layer and two learned
ones; T = 29 is above the window (6) and not a multiple of 4 or 8, index_topk 2 is below the visible entries, and
swiglu_limit 1.5 makes the clamp matter. Weights are drawn as in make_deepseek_v4_model_cases.py (unit-scale
activations, not transformers' 0.02 init). The seed is kept only if every routing and indexer top-k decision has a
margin > 1e-5 in both runs (scaled and not), so float32 cannot flip one.

Run from the repository root with a Python that has torch and transformers 5:
    python3 data/golden/make_deepseek_v4_hf_compat.py
"""
import copy
import json
import math
import os
import sys

import numpy as np
import torch
from transformers import DeepseekV4Config, DeepseekV4ForCausalLM
from transformers.models.deepseek_v4 import modeling_deepseek_v4 as M

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import read_safetensors, write_safetensors  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "deepseek_v4_hf_compat")
D = torch.float64
T, P = 29, 5
PRF = 0.5  # qk_rope_head_dim 8 of head_dim 16
FACTOR = 16

CONFIG = dict(
    vocab_size=64, hidden_size=32, num_hidden_layers=3, num_attention_heads=4, head_dim=16, q_lora_rank=16,
    o_groups=2, o_lora_rank=8, sliding_window=6, n_routed_experts=6, n_shared_experts=1, num_experts_per_tok=2,
    moe_intermediate_size=16, scoring_func="sqrtsoftplus", routed_scaling_factor=1.5, swiglu_limit=1.5,
    index_n_heads=8, index_head_dim=8, index_topk=2, hc_mult=4, hc_sinkhorn_iters=20, hc_eps=1e-6, rms_norm_eps=1e-6,
    rope_theta=10000.0, compress_rope_theta=160000.0, max_position_embeddings=256, num_nextn_predict_layers=0,
    compress_rates={"compressed_sparse_attention": 4, "heavily_compressed_attention": 8},
    layer_types=["compressed_sparse_attention", "heavily_compressed_attention", "sliding_attention"],
    mlp_layer_types=["hash_moe", "moe", "moe"], partial_rotary_factor=PRF, bos_token_id=0, eos_token_id=1,
    rope_parameters={
        "main": {"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": PRF},
        # no attention_factor: transformers' config injects 1.0 only when it builds the nested form itself
        "compress": {"rope_type": "yarn", "rope_theta": 160000.0, "factor": FACTOR, "original_max_position_embeddings": 64,
                     "beta_fast": 32, "beta_slow": 1, "partial_rotary_factor": PRF},
    },
)


def build(c):
    cfg = DeepseekV4Config(**copy.deepcopy(c))
    cfg._experts_implementation = "eager"  # the plain per-expert loop (grouped_mm has no float64)
    cfg._attn_implementation = "eager"     # the attention with the sink logit
    return cfg


def draw(model, g):
    """unit-scale random weights under transformers' names, rounded to float32"""
    c = model.config
    with torch.no_grad():
        for name, p in model.state_dict().items():
            if "inv_freq" in name:
                continue
            if name.endswith("tid2eid"):
                p.copy_(torch.stack([torch.randperm(c.n_routed_experts, generator=g)[:p.shape[1]] for _ in range(p.shape[0])]))
                continue
            z = torch.randn(*p.shape, generator=g, dtype=D)
            leaf = name.rsplit(".", 1)[-1]
            if name.endswith("embed_tokens.weight"):
                v = z
            elif "norm" in name or leaf in ("scale", "hc_scale"):
                v = 1 + 0.1 * z
            elif leaf in ("base", "hc_base", "sinks", "position_bias"):
                v = 0.5 * z
            elif leaf == "e_score_correction_bias":
                v = 0.1 * z
            elif leaf == "gate_up_proj":
                v = 3.0 * z * p.shape[-1] ** -0.5  # push some SwiGLU pre-activations past swiglu_limit
            elif "shared_experts" in name and ("gate_proj" in name or "up_proj" in name):
                v = 3.0 * z * p.shape[-1] ** -0.5
            else:
                v = z * p.shape[-1] ** -0.5
            p.copy_(v.to(torch.float32).to(p.dtype))


class Margins:
    """the smallest gap of any top-k decision (learned routing on scores + bias, the CSA indexer's top-k)"""

    def __init__(self, model):
        self.worst, self.index_worst, self.hooks = float("inf"), float("inf"), []
        for mod in model.modules():
            if isinstance(mod, M.DeepseekV4TopKRouter):
                self.hooks.append(mod.register_forward_hook(self.router))
            if isinstance(mod, M.DeepseekV4Indexer):
                self.hooks.append(mod.scorer.register_forward_hook(self.scorer))
                self.k, self.m = mod.index_topk, mod.compress_rate

    def router(self, mod, inp, out):
        s = mod.score_fn(out[0]) + mod.e_score_correction_bias
        srt = s.sort(-1, descending=True)[0]
        self.worst = min(self.worst, (srt[:, mod.top_k - 1] - srt[:, mod.top_k]).min().item())

    def scorer(self, mod, inp, out):  # prefill without cache: query t sees entries j < (t + 1) / m
        sc = out[0].clone()
        S, n = sc.shape
        vis = torch.arange(n).view(1, -1) < (torch.arange(S).view(-1, 1) + 1) // self.m
        sc[~vis] = float("-inf")
        srt = sc.sort(-1, descending=True)[0]
        if n > self.k:
            ok = torch.isfinite(srt[:, self.k])
            if ok.any():
                gap = (srt[ok, self.k - 1] - srt[ok, self.k]).min().item()
                self.worst, self.index_worst = min(self.worst, gap), min(self.index_worst, gap)

    def remove(self):
        for h in self.hooks:
            h.remove()


def run(model, ids):
    with torch.no_grad():
        full = model(ids.unsqueeze(0), use_cache=False).logits[0]
        out = model(ids[:P].unsqueeze(0), use_cache=True)
        steps, pkv = [out.logits[0]], out.cache
        for s in range(P, T):
            o = model(ids[s:s + 1].unsqueeze(0), cache=pkv, use_cache=True)
            steps.append(o.logits[0])
            pkv = o.cache
    return full, torch.cat(steps, 0)


def main():
    torch.manual_seed(0)
    cfg = build(CONFIG)
    af = M.DeepseekV4RotaryEmbedding(cfg).compress_attention_scaling
    assert abs(af - (0.1 * math.log(FACTOR) + 1)) < 1e-15, af
    c1 = copy.deepcopy(CONFIG)
    c1["rope_parameters"]["compress"]["attention_factor"] = 1.0
    cfg1 = build(c1)
    for seed in range(100, 200):
        g = torch.Generator().manual_seed(seed)
        model = DeepseekV4ForCausalLM(cfg).double().eval()
        draw(model, g)
        ids = torch.randint(0, CONFIG["vocab_size"], (T,), generator=g)
        mg = Margins(model)
        full, dec = run(model, ids)
        mg.remove()
        model1 = DeepseekV4ForCausalLM(cfg1).double().eval()
        model1.load_state_dict(model.state_dict())
        mg1 = Margins(model1)
        full1, _ = run(model1, ids)
        mg1.remove()
        c0 = copy.deepcopy(CONFIG)
        c0["swiglu_limit"] = 0.0
        model0 = DeepseekV4ForCausalLM(build(c0)).double().eval()
        model0.load_state_dict(model.state_dict())
        mg0 = Margins(model0)  # the experts output 0 here: only the indexer's decisions matter
        with torch.no_grad():
            full0 = model0(ids.unsqueeze(0), use_cache=False).logits[0]
        mg0.remove()
        if min(mg.worst, mg1.worst, mg0.index_worst) > 1e-5:
            break
        print(f"seed {seed}: a top-k margin of {min(mg.worst, mg1.worst):.3g}, next seed")
    else:
        sys.exit("no seed with every top-k margin > 1e-5")
    d_dec = (dec - full).abs().max().item()
    d_af = (full1 - full).abs().max().item()
    d_l0 = (full0 - full).abs().max().item()
    assert d_dec < 1e-4, d_dec
    print(f"seed {seed}: attention scaling {af:.6f}; cached decode vs prefill {d_dec:.3g}; "
          f"attention_factor 1.0 vs absent {d_af:.3g}; swiglu_limit 0 vs 1.5 {d_l0:.3g}; "
          f"min top-k margin {min(mg.worst, mg1.worst, mg0.index_worst):.3g}; "
          f"logit std {full.std():.3g}")

    os.makedirs(OUT, exist_ok=True)
    model.float().save_pretrained(OUT)
    saved = json.load(open(os.path.join(OUT, "config.json")))
    assert "attention_factor" not in saved["rope_parameters"]["compress"], saved["rope_parameters"]
    for extra in ("generation_config.json",):
        if os.path.exists(os.path.join(OUT, extra)):
            os.remove(os.path.join(OUT, extra))
    # the saved model reads back to the same logits (float32 weights, float64 run)
    back = DeepseekV4ForCausalLM.from_pretrained(OUT, config=build(saved)).double().eval()
    with torch.no_grad():
        assert (back(ids.unsqueeze(0), use_cache=False).logits[0] - full).abs().max().item() == 0.0

    # transformers on the official golden model as it saves it (data/golden/deepseek_v4_hf)
    G, _ = read_safetensors(os.path.join(HERE, "deepseek_v4", "model.safetensors"))
    hf_dir = os.path.join(HERE, "deepseek_v4_hf")
    gc = json.load(open(os.path.join(hf_dir, "config.json")))
    gm = DeepseekV4ForCausalLM.from_pretrained(hf_dir, config=build(gc)).double().eval()
    gids = torch.tensor(G["tokens"][1])
    with torch.no_grad():
        golden = gm(gids.unsqueeze(0), use_cache=False).logits[0]
    d_off = (golden - torch.tensor(G["logits"][1])).abs().max().item()
    print(f"transformers vs the official float64 golden on data/golden/deepseek_v4_hf: {d_off:.3g}")
    assert d_off < 1e-4

    write_safetensors(os.path.join(OUT, "expected.safetensors"),
                      {"tokens": ("I64", ids.numpy()), "dims": ("I64", np.array([T, P], np.int64)),
                       "logits": ("F64", full.numpy()), "decode_logits": ("F64", dec.numpy()),
                       "logits_af1": ("F64", full1.numpy()), "logits_limit0": ("F64", full0.numpy()),
                       "golden_logits": ("F64", golden.numpy())},
                      {"generator": "data/golden/make_deepseek_v4_hf_compat.py"})
    print(f"wrote {os.path.relpath(OUT)}/")


if __name__ == "__main__":
    main()
