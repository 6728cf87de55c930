#!/usr/bin/env python3
"""make_llama_cases.py — writes the small random Llama-layout checkpoints under data/golden/llama/ and
their float64 expected outputs (from llama_ref.py, an implementation independent of dsref's C++).

Run:  /usr/bin/python3 data/golden/make_llama_cases.py      (writes data/golden/llama/<case>/)

Each case directory holds
    config.json             a complete HF LlamaForCausalLM config
    model.safetensors       (or model.safetensors.index.json + model-0000k-of-0000n.safetensors)
    expected.safetensors    tokens I32 [T], logits F64 [T, V], hidden.{i} / attn.{i} F64 [T, d]

Weights use the exact HF names and [out, in] shapes (ref/io/checkpoint_layout.h, dense subset). Initialisation keeps
activations O(1): projections N(0, 1/in_features), embedding N(0, 1) (N(0, 1/d) when tied), RMSNorm
weights 1 + 0.1 N(0, 1); see `make_weights`.
The expected outputs are computed from the weights as read back from disk, so a BF16 case is computed
from the BF16-rounded values. Seeds are fixed and torch runs on one thread: re-running rewrites the same
bytes.
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import write_safetensors  # noqa: E402
import llama_ref  # noqa: E402

T = 64  # tokens per case; by causality, rows [0, t) of the expected output are also the answer for
        # the prefix tokens[:t], so one file covers every T from 1 to 64.

# d hidden, H heads, H_kv KV heads, d_h explicit head_dim (None: omitted from config.json -> d/H),
# L layers, I intermediate, V vocab, theta rope_theta, dtype storage, shards (1 = model.safetensors).
CASES = [
    dict(name="gqa1", seed=101, d=32, H=4, H_kv=1, d_h=None, L=2, I=48, V=64, theta=10000.0,
         tied=False, dtype="F32", shards=1),
    dict(name="gqa2", seed=102, d=32, H=4, H_kv=2, d_h=None, L=2, I=64, V=80, theta=10000.0,
         tied=False, dtype="BF16", shards=1),
    dict(name="mha", seed=103, d=32, H=4, H_kv=4, d_h=None, L=2, I=48, V=64, theta=10000.0,
         tied=False, dtype="F32", shards=1),
    # the same weights as `mha` (same seed), split over 3 files with model.safetensors.index.json
    dict(name="mha_sharded", seed=103, d=32, H=4, H_kv=4, d_h=None, L=2, I=48, V=64, theta=10000.0,
         tied=False, dtype="F32", shards=3),
    # tied embeddings (no lm_head.weight), head_dim 16 != d/H = 12, odd vocab, Llama-3 style theta
    dict(name="tied", seed=104, d=48, H=4, H_kv=2, d_h=16, L=2, I=48, V=97, theta=500000.0,
         tied=True, dtype="BF16", shards=1),
    dict(name="deep", seed=105, d=48, H=6, H_kv=3, d_h=None, L=4, I=48, V=64, theta=10000.0,
         tied=False, dtype="BF16", shards=1),
]


def head_dim(c):
    return c["d_h"] if c["d_h"] is not None else c["d"] // c["H"]


def make_config(c):
    cfg = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": c["d"],
        "intermediate_size": c["I"],
        "num_hidden_layers": c["L"],
        "num_attention_heads": c["H"],
        "num_key_value_heads": c["H_kv"],
    }
    if c["d_h"] is not None:
        cfg["head_dim"] = c["d_h"]
    cfg.update({
        "vocab_size": c["V"],
        "max_position_embeddings": 256,
        "rms_norm_eps": 1e-06,
        "rope_theta": c["theta"],
        "rope_scaling": None,
        "hidden_act": "silu",
        "attention_bias": False,
        "attention_dropout": 0.0,
        "mlp_bias": False,
        "pretraining_tp": 1,
        "initializer_range": 0.02,
        "tie_word_embeddings": c["tied"],
        "torch_dtype": {"F32": "float32", "BF16": "bfloat16"}[c["dtype"]],
        "bos_token_id": 0,
        "eos_token_id": 1,
        "use_cache": True,
    })
    return cfg


def make_weights(c, rng):
    """{HF name: float32 array}, drawn in a fixed order from `rng`.

    Projections [out, in] ~ N(0, 1/in) so each output has variance ~ its input's; embedding ~ N(0, 1);
    lm_head ~ N(0, 1/d) (a projection); RMSNorm weights 1 + 0.1 N(0, 1) (not all ones, so a missing
    weight multiply is caught). A tied embedding is also the head, so it is drawn N(0, 1/d) instead:
    with N(0, 1) the logits would be ~sqrt(d) (max ~45 at d = 48). The first RMSNorm is scale-invariant,
    so the smaller embedding changes nothing else, and the residual stream is O(1) after layer 0."""
    d, H, H_kv, d_h, I, V = c["d"], c["H"], c["H_kv"], head_dim(c), c["I"], c["V"]

    def proj(out_f, in_f):
        return rng.standard_normal((out_f, in_f)) / np.sqrt(in_f)

    def norm(n):
        return 1.0 + 0.1 * rng.standard_normal(n)

    embed_scale = 1.0 / np.sqrt(d) if c["tied"] else 1.0
    w = {"model.embed_tokens.weight": rng.standard_normal((V, d)) * embed_scale}
    for i in range(c["L"]):
        p = f"model.layers.{i}."
        w[p + "input_layernorm.weight"] = norm(d)
        w[p + "self_attn.q_proj.weight"] = proj(H * d_h, d)
        w[p + "self_attn.k_proj.weight"] = proj(H_kv * d_h, d)
        w[p + "self_attn.v_proj.weight"] = proj(H_kv * d_h, d)
        w[p + "self_attn.o_proj.weight"] = proj(d, H * d_h)
        w[p + "post_attention_layernorm.weight"] = norm(d)
        w[p + "mlp.gate_proj.weight"] = proj(I, d)
        w[p + "mlp.up_proj.weight"] = proj(I, d)
        w[p + "mlp.down_proj.weight"] = proj(d, I)
    w["model.norm.weight"] = norm(d)
    if not c["tied"]:
        w["lm_head.weight"] = proj(V, d)
    return {name: a.astype(np.float32) for name, a in w.items()}


def write_checkpoint(case_dir, c, weights):
    """model.safetensors, or `shards` files + model.safetensors.index.json (HF file names)."""
    dtype = c["dtype"]
    meta = {"format": "pt"}
    if c["shards"] == 1:
        write_safetensors(os.path.join(case_dir, "model.safetensors"),
                          {n: (dtype, a) for n, a in weights.items()}, metadata=meta)
        return
    # Deal tensors out in creation order into `shards` consecutive groups of about equal bytes, so
    # a layer's tensors straddle two files.
    n = c["shards"]
    names = list(weights)
    sizes = [weights[k].size * (2 if dtype == "BF16" else 4) for k in names]
    total = sum(sizes)
    groups = [[] for _ in range(n)]
    running = 0
    for name, size in zip(names, sizes):
        groups[min(n - 1, running * n // total)].append(name)
        running += size
    weight_map = {}
    for k, group in enumerate(groups):
        file = f"model-{k + 1:05d}-of-{n:05d}.safetensors"
        write_safetensors(os.path.join(case_dir, file),
                          {name: (dtype, weights[name]) for name in group}, metadata=meta)
        for name in group:
            weight_map[name] = file
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    with open(os.path.join(case_dir, "model.safetensors.index.json"), "w") as f:
        f.write(json.dumps(index, indent=2) + "\n")


def make_tokens(c, rng):
    """T random ids in [0, V), with the edge ids 0 and V-1 forced in (embedding row bounds)."""
    tokens = rng.integers(0, c["V"], size=T)
    tokens[3] = 0
    tokens[T - 2] = c["V"] - 1
    return [int(t) for t in tokens]


def make_case(root, c):
    case_dir = os.path.join(root, c["name"])
    os.makedirs(case_dir, exist_ok=True)
    for old in os.listdir(case_dir):  # a re-run must not leave a stale single file next to shards
        if old.endswith(".safetensors") or old.endswith(".json"):
            os.remove(os.path.join(case_dir, old))
    rng = np.random.default_rng(c["seed"])
    weights = make_weights(c, rng)
    tokens = make_tokens(c, rng)
    with open(os.path.join(case_dir, "config.json"), "w") as f:
        f.write(json.dumps(make_config(c), indent=2) + "\n")
    write_checkpoint(case_dir, c, weights)
    # expected output from the checkpoint as read back from disk (BF16 rounding included)
    llama_ref.write_expected(case_dir, tokens, os.path.join(case_dir, "expected.safetensors"))
    size = sum(os.path.getsize(os.path.join(case_dir, f)) for f in os.listdir(case_dir))
    print(f"{c['name']:12s} d={c['d']} H={c['H']} H_kv={c['H_kv']} d_h={head_dim(c)} L={c['L']} "
          f"I={c['I']} V={c['V']} {c['dtype']} shards={c['shards']} tied={c['tied']}  {size / 1024:.1f} KiB")


def main():
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "llama")
    os.makedirs(root, exist_ok=True)
    for c in CASES:
        make_case(root, c)


if __name__ == "__main__":
    main()
