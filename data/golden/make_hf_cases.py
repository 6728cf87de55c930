#!/usr/bin/env python3
"""make_hf_cases.py — tiny checkpoints written by transformers 5 itself, with transformers' own forward
as the expected output (data/golden/hf/<case>/).

Needs:  pip install torch==2.* transformers==5.24.0 safetensors numpy
Run:    python data/golden/make_hf_cases.py            (writes data/golden/hf/<case>/)

This is the second peer of dsref's goldens (the first is the independent float64 forward of
llama_ref.py / deepseek_ref.py): transformers is what engines compare against. Each case is built as an
engine developer would meet it: a transformers config object, `save_pretrained` (so config.json is in
transformers 5's own spelling: `rope_parameters`, `dtype`, `layer_types`, ...), weights stored BF16 (the
V3 router bias F32, as in the real checkpoints), then reloaded with `from_pretrained` and run with the
eager attention and eager experts (`attn_implementation="eager"`, `experts_implementation="eager"`: the
readable reference paths; SDPA and grouped-mm kernels round elsewhere).

Each case directory holds
    config.json, model.safetensors     written by save_pretrained
    expected_f32.safetensors           transformers' float32 forward (dtype=torch.float32)
    expected_bf16.safetensors          transformers' bfloat16 forward (dtype=torch.bfloat16), stored F32
    expected_f64.safetensors           (llama, qwen2) the independent float64 forward of llama_ref.py
with tokens I32 [T], logits [T, V], hidden.{i} [T, d] (output of model.layers.{i}), attn.{i} [T, d]
(output[0] of model.layers.{i}.self_attn), and for DeepSeek-V3 MoE layers topk_idx.{i} I32 [T, K]
(output[2] of model.layers.{i}.mlp.gate, each row sorted by expert id: transformers' topk runs with
sorted=False) and topk_weight.{i} [T, K] in the same order; for V3 also q_pe.{i} [T, H, d_r] and
k_pe.{i} [T, d_r] after RoPE, in transformers' de-interleaved order [x0, x2, ..., x1, x3, ...].

Weights are drawn here, not by transformers' initialiser (whose std 0.02 makes every activation
vanish): projections N(0, 1/in), embedding N(0, 1), norms 1 + 0.1 N(0, 1), biases 0.2 N(0, 1), the V3
router bias 0.1 N(0, 1). Seeds are fixed and torch runs on one thread, so a re-run writes the same bytes.
"""
import json
import os
import shutil
import sys

import torch
import transformers
from safetensors.torch import save_file
from transformers import (AutoModelForCausalLM, DeepseekV3Config, DeepseekV3ForCausalLM, LlamaConfig,
                          LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM)
from transformers.models.deepseek_v3 import modeling_deepseek_v3

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llama_ref  # noqa: E402  the independent float64 forward of the GQA models

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hf")


# ----------------------------------------------------------------------------------------------
# The cases

def llama_theta():
    """Llama in transformers 5's spelling with a non-default theta: rope_parameters {default, 250000}."""
    cfg = LlamaConfig(vocab_size=96, hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                      rms_norm_eps=1e-6, bos_token_id=0, eos_token_id=1,
                      rope_parameters={"rope_type": "default", "rope_theta": 250000.0})
    return cfg, LlamaForCausalLM, 96


def llama3_rope():
    """R1-Distill-Llama's RoPE (rope_type llama3) at a small L0: with head_dim 32 and theta 500000 the 16
    frequencies fall in all three bands (2 kept, 2 smoothed, 12 divided by the factor 8)."""
    cfg = LlamaConfig(vocab_size=96, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=32, max_position_embeddings=1024,
                      rms_norm_eps=1e-5, bos_token_id=0, eos_token_id=1,
                      rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                                       "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                       "original_max_position_embeddings": 128})
    return cfg, LlamaForCausalLM, 96


def qwen2(tied):
    """R1-Distill-Qwen's architecture: q/k/v biases, no o_proj bias, GQA, use_sliding_window false."""
    def build():
        cfg = Qwen2Config(vocab_size=96, hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                          rms_norm_eps=1e-6, bos_token_id=0, eos_token_id=1, tie_word_embeddings=tied,
                          use_sliding_window=False, sliding_window=64, max_window_layers=1,
                          rope_parameters={"rope_type": "default", "rope_theta": 1000000.0})
        return cfg, Qwen2ForCausalLM, 96
    return build


def v3_yarn(n_group=4, topk_group=2):
    """A tiny DeepSeek-V3: 3 layers (1 dense, 2 MoE), 16 routed experts in 4 groups, top-4, YaRN with
    theta 50000 and factor 4 in rope_parameters."""
    cfg = DeepseekV3Config(vocab_size=96, hidden_size=64, intermediate_size=96, moe_intermediate_size=32,
                           num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=4,
                           n_shared_experts=1, n_routed_experts=16, num_experts_per_tok=4, n_group=n_group,
                           topk_group=topk_group, first_k_dense_replace=1, routed_scaling_factor=2.5,
                           norm_topk_prob=True, q_lora_rank=48, kv_lora_rank=32, qk_rope_head_dim=8,
                           qk_nope_head_dim=16, v_head_dim=16, max_position_embeddings=128, rms_norm_eps=1e-6,
                           bos_token_id=0, eos_token_id=1,
                           rope_parameters={"rope_type": "yarn", "rope_theta": 50000.0, "factor": 4.0,
                                            "original_max_position_embeddings": 32, "beta_fast": 32,
                                            "beta_slow": 1, "mscale": 1.0, "mscale_all_dim": 1.0})
    return cfg, DeepseekV3ForCausalLM, 96


def v3_flat():
    """v3_yarn without expert groups (n_group 1): the top-4 of 16 is decided by small score gaps, so
    transformers' bf16 forward routes some tokens differently from float32."""
    return v3_yarn(n_group=1, topk_group=1)


CASES = {"llama_theta": (llama_theta, 1101), "v3_yarn": (v3_yarn, 1102), "llama3_rope": (llama3_rope, 1103),
         "qwen2_untied": (qwen2(False), 1104), "qwen2_tied": (qwen2(True), 1105), "v3_flat": (v3_flat, 1102)}


# ----------------------------------------------------------------------------------------------
# Weights and checkpoint

def fill_weights(model, seed):
    """Overwrites every parameter (and the V3 router bias) with the distributions of the file header."""
    g = torch.Generator().manual_seed(seed)
    tied = model.config.tie_word_embeddings
    d = model.config.hidden_size
    tensors = dict(model.named_parameters())
    tensors.update({n: b for n, b in model.named_buffers() if n.endswith("e_score_correction_bias")})
    with torch.no_grad():
        for name in sorted(tensors):
            t = tensors[name]
            z = torch.randn(t.shape, generator=g, dtype=torch.float64)
            if name.endswith("e_score_correction_bias"):
                v = 0.1 * z
            elif "norm" in name:
                v = 1.0 + 0.1 * z
            elif name.endswith(".bias"):
                v = 0.2 * z
            elif "embed_tokens" in name:
                v = z / d ** 0.5 if tied else z
            else:  # [.., out, in] projections, packed experts included
                v = z / t.shape[-1] ** 0.5
            t.copy_(v.to(t.dtype))


def write_checkpoint(case_dir, cfg, model_cls, seed):
    torch.manual_seed(seed)
    model = model_cls(cfg)
    fill_weights(model, seed)
    model = model.to(torch.bfloat16)
    for layer in model.model.layers:  # the V3 router bias stays F32, as in the real checkpoints
        gate = getattr(getattr(layer, "mlp", None), "gate", None)
        if gate is not None and hasattr(gate, "e_score_correction_bias"):
            gate.e_score_correction_bias = gate.e_score_correction_bias.to(torch.float32)
    model.save_pretrained(case_dir)


# ----------------------------------------------------------------------------------------------
# transformers' forward, with hooks for the named intermediates

def hf_forward(case_dir, dtype, tokens):
    model = AutoModelForCausalLM.from_pretrained(case_dir, dtype=dtype, attn_implementation="eager",
                                                 experts_implementation="eager")
    model.eval()
    out, hooks = {}, []
    for i, layer in enumerate(model.model.layers):
        hooks.append(layer.register_forward_hook(
            lambda m, a, o, i=i: out.__setitem__(f"hidden.{i}", (o[0] if isinstance(o, tuple) else o)[0])))
        hooks.append(layer.self_attn.register_forward_hook(
            lambda m, a, o, i=i: out.__setitem__(f"attn.{i}", o[0][0])))
        gate = getattr(getattr(layer, "mlp", None), "gate", None)
        if gate is not None and hasattr(gate, "e_score_correction_bias"):
            def record_gate(m, a, o, i=i):
                _, w, idx = o
                order = torch.argsort(idx, dim=-1)
                out[f"topk_idx.{i}"] = torch.gather(idx, 1, order).to(torch.int32)
                out[f"topk_weight.{i}"] = torch.gather(w, 1, order)
            hooks.append(gate.register_forward_hook(record_gate))
    rope_calls = []
    original_rope = modeling_deepseek_v3.apply_rotary_pos_emb_interleave

    def recording_rope(q, k, cos, sin, *args, **kwargs):
        q_embed, k_embed = original_rope(q, k, cos, sin, *args, **kwargs)
        rope_calls.append((q_embed, k_embed))
        return q_embed, k_embed

    modeling_deepseek_v3.apply_rotary_pos_emb_interleave = recording_rope
    try:
        with torch.no_grad():
            logits = model(torch.tensor([tokens])).logits[0]
    finally:
        modeling_deepseek_v3.apply_rotary_pos_emb_interleave = original_rope
        for h in hooks:
            h.remove()
    for i, (q, k) in enumerate(rope_calls):  # q [1, H, T, d_r] -> [T, H, d_r]; k [1, 1, T, d_r] -> [T, d_r]
        out[f"q_pe.{i}"] = q[0].transpose(0, 1)
        out[f"k_pe.{i}"] = k[0, 0]
    tensors = {"tokens": torch.tensor(tokens, dtype=torch.int32), "logits": logits}
    tensors.update(out)
    return {k: (v.float() if v.is_floating_point() else v).contiguous() for k, v in tensors.items()}


def make_tokens(V, T, seed):
    g = torch.Generator().manual_seed(seed)
    t = torch.randint(0, V, (T,), generator=g)
    t[3], t[T - 2] = 0, V - 1  # both ends of the embedding table
    return [int(x) for x in t]


def make_case(name):
    build, seed = CASES[name]
    cfg, model_cls, T = build()
    case_dir = os.path.join(ROOT, name)
    shutil.rmtree(case_dir, ignore_errors=True)
    os.makedirs(case_dir)
    write_checkpoint(case_dir, cfg, model_cls, seed)
    tokens = make_tokens(cfg.vocab_size, T, seed + 1)
    meta = {"producer": f"data/golden/make_hf_cases.py (transformers {transformers.__version__}, eager)"}
    for tag, dtype in (("f32", torch.float32), ("bf16", torch.bfloat16)):
        save_file(hf_forward(case_dir, dtype, tokens), os.path.join(case_dir, f"expected_{tag}.safetensors"),
                  metadata=meta)
    if cfg.model_type in ("llama", "qwen2"):  # and the independent float64 forward
        llama_ref.write_expected(case_dir, tokens, os.path.join(case_dir, "expected_f64.safetensors"))
    size = sum(os.path.getsize(os.path.join(case_dir, f)) for f in os.listdir(case_dir))
    print(f"{name:12s} T={T} {size / 1024:.0f} KiB")


def main():
    torch.set_num_threads(1)
    names = sys.argv[1:] or list(CASES)
    for n in names:
        make_case(n)


if __name__ == "__main__":
    main()
