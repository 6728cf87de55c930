#!/usr/bin/env python3
"""make_fp4_golden.py — golden file for dsref's FP4 formats (ref/core/fp4_format.h) and the FP4 expert
dequantizer (ref/fp8/fp4_dequant.h), from ml_dtypes 0.7 (float4_e2m1fn, float8_e8m0fnu), which shares no
code with ref/.

  e2m1_codes [16] U8, e2m1_values [16] F32     every E2M1 code and its ml_dtypes value
  ue8m0_codes [255] U8, ue8m0_values [255] F32 every non-NaN UE8M0 code and its value
  enc_in [n] F32, enc_code [n] U8              ml_dtypes' RNE cast of edge cases (every midpoint and one
                                               float32 ulp either side, overflow, +-inf, +-0) and random values
  dq_packed [N, K/2] U8, dq_scale [N, K/32] U8, dq_out [N, K] F32
                                               a packed expert weight dequantized the way DeepSeek-V4
                                               inference/convert.py does it (FP4_TABLE[nibble], low nibble =
                                               even element) times ml_dtypes' UE8M0 value

Run from the repository root:  python3 data/fp8/make_fp4_golden.py   (seeded: same bytes every time)
"""
import json
import os
import struct

import ml_dtypes
import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fp4_cast.safetensors")
E2M1, E8M0 = ml_dtypes.float4_e2m1fn, ml_dtypes.float8_e8m0fnu
# inference/convert.py FP4_TABLE
FP4_TABLE = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0],
                     np.float32)


def write_safetensors(path, tensors):
    """safetensors README layout: 8-byte LE header length, JSON header padded to 8, raw LE data."""
    st = {np.dtype("uint8"): "U8", np.dtype("float32"): "F32"}
    header, chunks, offset = {"__metadata__": {"generator": "data/fp8/make_fp4_golden.py"}}, [], 0
    for name in sorted(tensors):
        raw = np.ascontiguousarray(tensors[name]).tobytes()
        header[name] = {"dtype": st[tensors[name].dtype], "shape": list(tensors[name].shape),
                        "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - (8 + len(h)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(chunks))
    print(f"wrote {os.path.relpath(path)} ({os.path.getsize(path)} bytes, {len(tensors)} tensors)")


def main():
    rng = np.random.default_rng(14)
    codes = np.arange(16, dtype=np.uint8)
    vals = codes.view(E2M1).astype(np.float32)
    assert np.array_equal(np.abs(vals), np.abs(FP4_TABLE))
    ucodes = np.arange(255, dtype=np.uint8)
    uvals = ucodes.view(E8M0).astype(np.float32)

    pos = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]
    edge = []
    for a, b in zip(pos[:-1], pos[1:]):
        m = np.float32((a + b) / 2)
        edge += [m, np.nextafter(m, np.float32(0)), np.nextafter(m, np.float32(10))]
    edge += pos + [6.0001, 7.0, 100.0, 3.4e38, np.inf, 1e-30, 2.0 ** -149]
    edge = np.array(edge, np.float32)
    enc_in = np.concatenate([edge, -edge, rng.normal(0, 3, 200).astype(np.float32)])
    with np.errstate(over="ignore"):
        enc_code = enc_in.astype(E2M1).view(np.uint8)

    N, K = 6, 128
    packed = rng.integers(0, 256, (N, K // 2), dtype=np.uint8)
    scale = rng.integers(117, 138, (N, K // 32), dtype=np.uint8)
    scale[0, 0], scale[1, 1] = 0, 252  # 2^-127 and 2^125 (6 * 2^126 would overflow float32)
    w = np.stack([FP4_TABLE[packed & 0xF], FP4_TABLE[packed >> 4]], axis=-1).reshape(N, K)
    w = w * np.repeat(scale.view(E8M0).astype(np.float32), 32, axis=1)

    write_safetensors(OUT, {
        "e2m1_codes": codes, "e2m1_values": vals, "ue8m0_codes": ucodes, "ue8m0_values": uvals,
        "enc_in": enc_in, "enc_code": enc_code.astype(np.uint8),
        "dq_packed": packed, "dq_scale": scale, "dq_out": w.astype(np.float32),
    })


if __name__ == "__main__":
    main()
