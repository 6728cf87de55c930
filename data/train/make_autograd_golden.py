#!/usr/bin/env python3
"""make_autograd_golden.py -- the training golden: transformers' DeepseekV3ForCausalLM and PyTorch
autograd + torch.optim.AdamW run the same ten steps that `dsref train` runs, on the same init checkpoint
and batches; tests/test_train_autograd.cpp compares the per-step losses and the step-0 gradient of
every parameter.

Independence: the forward is transformers' (eager attention, eager experts), the gradients are
autograd's, the update is torch.optim.AdamW after torch.nn.utils.clip_grad_norm_ with weight decay on
the rank >= 2 tensors (two parameter groups); only the batching rule and the LR schedule are written
here, from `dsref train --help`'s contract. The model runs in float64, except where transformers itself
casts to float32 (RMSNorm's variance, the router logits, the attention softmax): the golden is float32
accurate (~1e-6 relative), far inside the test's 1e-4.

Writes data/train/autograd/:
    config.json, model.safetensors   the init checkpoint (save_pretrained, float32; router bias random)
    ids.bin                          the training tokens, little-endian uint32
    golden.safetensors               loss F64 [STEPS]; grad.NAME F64 (the step-0 gradient of the batch-mean
                                     loss, before clipping) for every parameter, by its checkpoint name
Run from the repository root (needs torch and transformers 5):
    python3 data/train/make_autograd_golden.py
"""
import json
import math
import os

import numpy as np
import torch
from safetensors.torch import save_file
from transformers import DeepseekV3Config, DeepseekV3ForCausalLM

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "autograd")
STEPS, B, S, N = 10, 2, 16, 203
LR, WARMUP, MIN_LR_FRAC, WD, CLIP = 1e-2, 2, 0.1, 0.1, 1.0
BETAS, EPS = (0.9, 0.95), 1e-8


def lr_at(k):
    """--schedule cosine with --warmup: lr·(k+1)/W for k < W, then cosine to MIN_LR_FRAC·lr."""
    if k < WARMUP:
        return LR * (k + 1) / WARMUP
    x = min(1.0, (k - WARMUP) / max(1, STEPS - WARMUP))
    return LR * (MIN_LR_FRAC + (1 - MIN_LR_FRAC) * 0.5 * (1 + math.cos(math.pi * x)))


def main():
    torch.set_num_threads(1)
    cfg = DeepseekV3Config(vocab_size=64, hidden_size=32, intermediate_size=48, moe_intermediate_size=16,
                           num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                           n_shared_experts=1, n_routed_experts=4, num_experts_per_tok=2, n_group=1,
                           topk_group=1, first_k_dense_replace=1, routed_scaling_factor=2.5,
                           norm_topk_prob=True, q_lora_rank=24, kv_lora_rank=16, qk_rope_head_dim=4,
                           qk_nope_head_dim=8, v_head_dim=8, max_position_embeddings=64, rms_norm_eps=1e-6,
                           bos_token_id=0, eos_token_id=1, num_nextn_predict_layers=0,
                           tie_word_embeddings=False,
                           rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
                                            "original_max_position_embeddings": 8, "beta_fast": 32,
                                            "beta_slow": 1, "mscale": 1.0, "mscale_all_dim": 1.0})
    torch.manual_seed(16)
    model = DeepseekV3ForCausalLM(cfg)
    g = torch.Generator().manual_seed(16)
    with torch.no_grad():  # projections N(0, 1/in), embedding N(0, 1), norms 1 + 0.1 N, router bias 0.1 N
        tensors = dict(model.named_parameters())
        tensors.update({n: b for n, b in model.named_buffers() if n.endswith("e_score_correction_bias")})
        for name in sorted(tensors):
            t = tensors[name]
            z = torch.randn(t.shape, generator=g, dtype=torch.float64)
            if name.endswith("e_score_correction_bias"):
                v = 0.1 * z
            elif "norm" in name:
                v = 1.0 + 0.1 * z
            elif "embed_tokens" in name:
                v = z
            else:
                v = z / t.shape[-1] ** 0.5
            t.copy_(v.to(t.dtype))
    model = model.to(torch.float32)
    os.makedirs(OUT, exist_ok=True)
    model.save_pretrained(OUT)
    # the model as stored (float32), run in float64
    model = DeepseekV3ForCausalLM.from_pretrained(OUT, dtype=torch.float64, attn_implementation="eager",
                                                  experts_implementation="eager")
    model.train()
    ids = torch.randint(0, cfg.vocab_size, (N,), generator=g)
    np.asarray(ids.numpy(), dtype="<u4").tofile(os.path.join(OUT, "ids.bin"))

    params = dict(model.named_parameters())
    decay = [p for p in params.values() if p.dim() >= 2]
    no_decay = [p for p in params.values() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": WD}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=LR, betas=BETAS, eps=EPS)
    losses, grads = [], {}
    for k in range(STEPS):
        rows = [((k * B + b) * S) % (N - S - 1) for b in range(B)]
        x = torch.stack([ids[o:o + S] for o in rows])
        y = torch.stack([ids[o + 1:o + S + 1] for o in rows])
        logits = model(x).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, cfg.vocab_size), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        losses.append(loss.item())
        if k == 0:
            grads = {n: p.grad.detach().clone() for n, p in params.items()}
        torch.nn.utils.clip_grad_norm_(list(params.values()), CLIP)
        for group in opt.param_groups:
            group["lr"] = lr_at(k)
        opt.step()
        print(f"step {k}: loss {loss.item():.8f}")
    # the packed experts of transformers 5 back to the checkpoint's per-expert names
    out = {"loss": torch.tensor(losses, dtype=torch.float64)}
    for n, gr in grads.items():
        if n.endswith("mlp.experts.gate_up_proj"):  # [E, 2I, d]: gate rows first, then up
            p = n[: -len("gate_up_proj")]
            half = gr.shape[1] // 2
            for e in range(gr.shape[0]):
                out[f"grad.{p}{e}.gate_proj.weight"] = gr[e, :half].contiguous()
                out[f"grad.{p}{e}.up_proj.weight"] = gr[e, half:].contiguous()
        elif n.endswith("mlp.experts.down_proj"):  # [E, d, I]
            p = n[: -len("down_proj")]
            for e in range(gr.shape[0]):
                out[f"grad.{p}{e}.down_proj.weight"] = gr[e].contiguous()
        else:
            out["grad." + n] = gr.contiguous()
    save_file(out, os.path.join(OUT, "golden.safetensors"))
    with open(os.path.join(OUT, "run.json"), "w") as f:
        json.dump(dict(steps=STEPS, batch=B, seq_len=S, lr=LR, warmup=WARMUP, schedule="cosine",
                       min_lr_frac=MIN_LR_FRAC, weight_decay=WD, clip=CLIP, beta1=BETAS[0], beta2=BETAS[1],
                       eps=EPS), f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
