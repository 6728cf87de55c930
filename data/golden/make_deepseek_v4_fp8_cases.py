#!/usr/bin/env python3
"""make_deepseek_v4_fp8_cases.py — the golden V4 model of data/golden/deepseek_v4_model/ stored as the hub
checkpoints store it: FP8 E4M3 projections with a UE8M0 `.scale` per 128x128 block (the official Linear layers
of the default dtype: wq_a, wq_b, wkv, wo_b, indexer.wq_b, the shared experts) and FP4 E2M1 routed experts,
two codes per byte (I8 [out, in/2], element 2j in the low nibble), with a UE8M0 `.scale` per 32 values
(F8_E8M0 [out, in/32]; the tiny model's w2 has in = 16 < 32 and stays F32). Encoded with ml_dtypes (float8_e4m3fn, float4_e2m1fn, round to nearest even), scales
2^ceil(log2(amax / 448)) and 2^ceil(log2(amax / 6)) as the official quantizers make them (kernel.py).

  data/golden/deepseek_v4_fp8/{config.json, model.safetensors}   (quantization_config fp8, expert_dtype fp4)
  data/golden/deepseek_v4/fp8_model.safetensors   tokens, logits: the float64 model (v4_model_ref.py) on the
                                                  dequantized weights

Run from the repository root:  python3 data/golden/make_deepseek_v4_fp8_cases.py
"""
import json
import os
import re
import sys

import ml_dtypes
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_deepseek_v4_model_cases as MK  # noqa: E402
import v4_model_ref as R  # noqa: E402
from safetensors_io import read_safetensors, write_safetensors  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
FP8 = re.compile(r"(attn\.(wq_a|wq_b|wkv|wo_b|indexer\.wq_b)|shared_experts\.w[123]|e_proj|h_proj)\.weight$")
FP4 = re.compile(r"\.experts\.\d+\.w[123]\.weight$")


def pow2_ceil(x):
    return np.exp2(np.ceil(np.log2(np.maximum(x, 1e-30))))


def fp8(w):
    R_, C = w.shape
    q = np.zeros((R_, C), np.uint8)
    s = np.zeros(((R_ + 127) // 128, (C + 127) // 128), np.float32)
    deq = np.zeros_like(w, dtype=np.float64)
    for i in range(s.shape[0]):
        for j in range(s.shape[1]):
            b = w[i * 128:(i + 1) * 128, j * 128:(j + 1) * 128]
            sc = pow2_ceil(np.abs(b).max() / 448.0)
            codes = (b / sc).astype(ml_dtypes.float8_e4m3fn)
            q[i * 128:(i + 1) * 128, j * 128:(j + 1) * 128] = codes.view(np.uint8)
            deq[i * 128:(i + 1) * 128, j * 128:(j + 1) * 128] = codes.astype(np.float64) * sc
            s[i, j] = sc
    e8 = s.astype(ml_dtypes.float8_e8m0fnu).view(np.uint8)
    assert (e8.view(ml_dtypes.float8_e8m0fnu).astype(np.float32) == s).all()
    return q, e8, deq


def fp4(w):
    R_, C = w.shape
    blocks = w.reshape(R_, C // 32, 32)
    sc = pow2_ceil(np.abs(blocks).max(-1) / 6.0)  # [R, C/32]
    codes = (blocks / sc[..., None]).astype(ml_dtypes.float4_e2m1fn)
    deq = (codes.astype(np.float64) * sc[..., None]).reshape(R_, C)
    c = codes.view(np.uint8).reshape(R_, C) & 0xF
    packed = (c[:, 0::2] | (c[:, 1::2] << 4)).astype(np.uint8).view(np.int8)
    return packed, sc.astype(ml_dtypes.float8_e8m0fnu).view(np.uint8), deq


def main():
    src = os.path.join(HERE, "deepseek_v4_model")
    cfg = json.load(open(os.path.join(src, "config.json")))
    W, _ = read_safetensors(os.path.join(src, "model.safetensors"))
    out, deq = {}, {}
    n8 = n4 = 0
    for k, (dt, v) in W.items():
        if FP8.search(k):
            q, s, d = fp8(v.astype(np.float32))
            out[k], out[k[:-len("weight")] + "scale"] = ("F8_E4M3", q), ("F8_E8M0", s)
            deq[k] = torch.tensor(d)
            n8 += 1
        elif FP4.search(k) and v.shape[1] % 32 == 0:  # w1, w3 (in = d = 32); w2 (in = I = 16) stays F32
            q, s, d = fp4(v.astype(np.float32))
            out[k], out[k[:-len("weight")] + "scale"] = ("I8", q), ("F8_E8M0", s)
            deq[k] = torch.tensor(d)
            n4 += 1
        else:
            out[k] = (dt, v)
            deq[k] = torch.tensor(v).to(torch.float64) if dt != "I32" else torch.tensor(v)
    cfg = dict(cfg, quantization_config={"quant_method": "fp8", "fmt": "e4m3", "scale_fmt": "ue8m0",
                                         "activation_scheme": "dynamic", "weight_block_size": [128, 128]},
               expert_dtype="fp4")
    dst = os.path.join(HERE, "deepseek_v4_fp8")
    os.makedirs(dst, exist_ok=True)
    with open(os.path.join(dst, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    write_safetensors(os.path.join(dst, "model.safetensors"), out, {"generator": "data/golden/make_deepseek_v4_fp8_cases.py"})
    G, _ = read_safetensors(os.path.join(HERE, "deepseek_v4", "model.safetensors"))
    ids = torch.tensor(G["tokens"][1])
    logits = R.Model(MK.args(cfg), deq)(ids)
    write_safetensors(os.path.join(HERE, "deepseek_v4", "fp8_model.safetensors"),
                      {"tokens": ("I64", ids.numpy()), "logits": ("F64", logits.numpy())},
                      {"generator": "data/golden/make_deepseek_v4_fp8_cases.py"})
    print(f"wrote {dst} ({n8} FP8, {n4} FP4 tensors) and data/golden/deepseek_v4/fp8_model.safetensors")


if __name__ == "__main__":
    main()
