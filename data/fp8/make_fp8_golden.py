#!/usr/bin/env python3
"""make_fp8_golden.py — golden files for dsref's FP8 module (ref/core/fp8_format.h, ref/fp8/), from
implementations that share no code with ref/core/fp8_format.cpp and ref/fp8/*.cpp:

  * casts:  ml_dtypes 0.6 (float8_e4m3fn, float8_e5m2, bfloat16) for the formats it has, plus an exact
            rational-arithmetic encoder written here (`encode_exact`, Python integers and Fractions) for
            E5M6. The two are cross-checked against each other on every input before anything is written.
  * quant:  a numpy re-implementation of DeepSeek-V3's act_quant (1x128) and the 128x128 weight rule,
            with ml_dtypes doing the FP8 cast and float64 log2 (not frexp) for the ue8m0 rounding.
  * gemm:   float64 numpy matmul for `exact`; a numpy emulation of the tensor-core accumulator (frexp /
            trunc / rint on whole arrays, exact rational fused multiply-add for the promotion).

ml_dtypes' cast is the non-saturating one: E4M3 overflow (and +-inf) gives NaN with the input's sign,
E5M2 / BF16 overflow gives +-inf, NaN keeps its sign and becomes the canonical NaN (E4M3 0x7F, E5M2 0x7E).
The `saturate` mode is emulated around it: clamp finite values and +-inf to +-max first (NaN untouched),
then cast. For round-to-nearest-even that is the same as "anything that rounds above max becomes max".

Run from the repository root with a Python that has numpy 2 and ml_dtypes:
    python3 data/fp8/make_fp8_golden.py
It rewrites data/fp8/fp8_cast.safetensors, fp8_quant.safetensors and fp8_gemm.safetensors (seeded, so the
output is the same every time).
"""
import json
import math
import os
import struct
import sys
from fractions import Fraction

import ml_dtypes
import numpy as np

OUT_DIR = os.path.dirname(os.path.abspath(__file__))
VERSION = "1"

# ---- safetensors writer (safetensors README): 8-byte LE header length, JSON header, byte buffer --------
NP_TO_ST = {np.dtype("uint8"): "U8", np.dtype("int16"): "I16", np.dtype("int32"): "I32",
            np.dtype("float32"): "F32", np.dtype("uint16"): "BF16"}  # uint16 arrays are written as BF16 bits


def write_safetensors(path, tensors):
    header, chunks, offset = {"__metadata__": {"version": VERSION, "generator": "data/fp8/make_fp8_golden.py"}}, [], 0
    for name in sorted(tensors):
        arr = np.ascontiguousarray(tensors[name])
        raw = arr.astype(arr.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": NP_TO_ST[arr.dtype], "shape": list(arr.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - (8 + len(h)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(chunks))
    print(f"wrote {os.path.relpath(path)} ({os.path.getsize(path)} bytes, {len(tensors)} tensors)")


# ---- formats ---------------------------------------------------------------------------------------------
# name: (exponent bits X, mantissa bits Y, finite-NaN convention (no inf), ml_dtypes type or None)
FORMATS = {
    "e4m3": (4, 3, True, ml_dtypes.float8_e4m3fn),
    "e5m2": (5, 2, False, ml_dtypes.float8_e5m2),
    "e5m6": (5, 6, False, None),
    "e8m7": (8, 7, False, ml_dtypes.bfloat16),
}


def fmt_max(X, Y, fn):
    bias = 2 ** (X - 1) - 1
    if fn:
        return Fraction(2 ** (Y + 1) - 2, 2 ** Y) * Fraction(2) ** (2 ** X - 1 - bias)
    return Fraction(2 ** (Y + 1) - 1, 2 ** Y) * Fraction(2) ** (2 ** X - 2 - bias)


def round_half_even(q):
    """Nearest integer to the Fraction q >= 0, ties to even."""
    fl = q.numerator // q.denominator
    r = q - fl
    if r > Fraction(1, 2) or (r == Fraction(1, 2) and fl % 2 == 1):
        return fl + 1
    return fl


def encode_exact(v, X, Y, fn, saturate):
    """Code of v (a float, possibly inf/NaN, or a Fraction) in eXmY, by exact rational arithmetic.

    The value is located between two consecutive representable numbers by integer arithmetic and rounded
    to nearest, ties to the even code; a value past max is handled by the overflow mode."""
    bias = 2 ** (X - 1) - 1
    sign = 1 << (X + Y)
    e_ones, m_ones = 2 ** X - 1, 2 ** Y - 1
    nan_code = (e_ones << Y) | (m_ones if fn else 1 << (Y - 1))
    max_code = ((e_ones << Y) | (m_ones - 1)) if fn else (((e_ones - 1) << Y) | m_ones)
    over_code = max_code if saturate else (nan_code if fn else e_ones << Y)
    if isinstance(v, float):
        if math.isnan(v):
            return (sign if math.copysign(1.0, v) < 0 else 0) | nan_code
        s = sign if math.copysign(1.0, v) < 0 else 0
        if math.isinf(v):
            return s | over_code
        a = Fraction(abs(v))
    else:
        s = sign if v < 0 else 0
        a = abs(v)
    if a == 0:
        return s
    emin = 1 - bias
    if a < Fraction(2) ** emin:  # subnormal grid 2^(emin - Y)
        code = round_half_even(a / Fraction(2) ** (emin - Y))
    else:
        E = a.numerator.bit_length() - a.denominator.bit_length()
        if Fraction(2) ** E > a:
            E -= 1
        assert Fraction(2) ** E <= a < Fraction(2) ** (E + 1)
        m = round_half_even(a / Fraction(2) ** (E - Y))  # in [2^Y, 2^(Y+1)]
        code = ((E + bias - 1) << Y) + m
    if code > max_code:  # codes are ordered like values
        return s | over_code
    return s | code


def cast_ml_dtypes(x32, mltype, X, Y, fn, saturate):
    """ml_dtypes cast of a float32 array; saturate mode = clamp (NaN untouched) then cast."""
    x = x32.copy()
    if saturate:
        mx = np.float32(float(fmt_max(X, Y, fn)))
        finite_or_inf = ~np.isnan(x)
        x[finite_or_inf] = np.clip(x[finite_or_inf], -mx, mx)
    with np.errstate(invalid="ignore", over="ignore"):
        y = x.astype(mltype)
    width = np.uint8 if X + Y + 1 == 8 else np.uint16
    return y.view(width).astype(np.int64)


def golden_casts(rng):
    # Every BF16 bit pattern, as float32 (exact).
    bf16_bits = np.arange(65536, dtype=np.uint32).astype(np.uint16)
    x_bf16 = (bf16_bits.astype(np.uint32) << 16).view(np.float32)

    # Random float32 values aimed at the hard cases.
    parts = [
        rng.integers(0, 2 ** 32, 4096, dtype=np.uint64).astype(np.uint32).view(np.float32),  # any bits, NaN payloads
        (rng.choice([-1.0, 1.0], 4096) * np.exp2(rng.uniform(-30, 20, 4096))).astype(np.float32),  # log-uniform
        rng.uniform(-2 ** -6, 2 ** -6, 1024).astype(np.float32),    # E4M3 subnormal range
        rng.uniform(-2 ** -14, 2 ** -14, 1024).astype(np.float32),  # E5M2 subnormal range
        rng.uniform(-520, 520, 1024).astype(np.float32),            # E4M3 top binade and overflow
        rng.uniform(-70000, 70000, 1024).astype(np.float32),        # E5M2 top binade and overflow
        np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, 448, 464, 480, -464, 57344, 61440, -61440,
                  65024, 65280, 2 ** -9, 2 ** -10, 2 ** -16, 2 ** -17, 2 ** -20, 2 ** -21, 3.4e38, -3.4e38,
                  1.4e-45, -1.4e-45], dtype=np.float32),
    ]
    # Midpoints of consecutive representable values of each narrow format, and one float32 ulp either side.
    for name in ("e4m3", "e5m2", "e5m6"):
        X, Y, fn, _ = FORMATS[name]
        max_code = ((2 ** X - 1) << Y | (2 ** Y - 2)) if fn else (((2 ** X - 2) << Y) | (2 ** Y - 1))
        vals = [decode_exact(c, X, Y) for c in range(max_code + 1)]
        mids = np.array([float((vals[i] + vals[i + 1]) / 2) for i in range(len(vals) - 1)], dtype=np.float32)
        if len(mids) > 512:  # E5M6 has 3966 intervals: a random sample keeps the file small
            mids = np.sort(rng.choice(mids, 512, replace=False))
        mids = np.concatenate([mids, [np.float32(float(fmt_max(X, Y, fn) * (1 + Fraction(1, 2 ** (Y + 1)))))]])
        for m in (mids, -mids):
            parts += [m, np.nextafter(m, np.float32(np.inf)), np.nextafter(m, np.float32(-np.inf))]
    x_rand = np.concatenate(parts).astype(np.float32)

    out = {"bf16_x": bf16_bits, "rand_x": x_rand}
    for name, (X, Y, fn, mltype) in FORMATS.items():
        for mode in ("saturate", "nan"):
            sat = mode == "saturate"
            inputs = [("rand", x_rand)] + ([("bf16", x_bf16)] if X + Y + 1 == 8 else [])
            for set_name, x in inputs:
                exact = np.array([encode_exact(float(v), X, Y, fn, sat) for v in x], dtype=np.int64)
                if mltype is not None:  # cross-check the two independent encoders
                    ml = cast_ml_dtypes(x, mltype, X, Y, fn, sat)
                    bad = np.nonzero(ml != exact)[0]
                    if len(bad):
                        i = bad[0]
                        sys.exit(f"{name} {mode}: ml_dtypes {ml[i]:#x} != exact {exact[i]:#x} for x = {x[i]!r}")
                if X + Y + 1 == 8:
                    out[f"{set_name}_{name}_{mode}"] = exact.astype(np.uint8)
                else:  # 12- and 16-bit codes, stored as I16 bit patterns
                    out[f"{set_name}_{name}_{mode}"] = exact.astype(np.uint16).view(np.int16)
    return out


def decode_exact(code, X, Y):
    """Value of a finite code (Fraction); used for the midpoints above."""
    bias = 2 ** (X - 1) - 1
    e, m = (code >> Y) & (2 ** X - 1), code & (2 ** Y - 1)
    if e == 0:
        return Fraction(m, 2 ** Y) * Fraction(2) ** (1 - bias)
    return (1 + Fraction(m, 2 ** Y)) * Fraction(2) ** (e - bias)


# ---- quantization (DeepSeek-V3 kernel.py act_quant semantics, written for numpy) --------------------------
E4M3_MAX = np.float32(448.0)
AMAX_FLOOR = np.float32(1e-4)


def e4m3_saturate(x32):
    return cast_ml_dtypes(x32.astype(np.float32), ml_dtypes.float8_e4m3fn, 4, 3, True, True).astype(np.uint8)


def group_scale(amax, ue8m0):
    s = np.float32(np.maximum(np.float32(amax), AMAX_FLOOR) / E4M3_MAX)  # float32 division
    if ue8m0:
        s = np.float32(2.0 ** math.ceil(math.log2(float(s))))  # float64 log2 of a float32: exact enough
    return s


def quant_act(x, ue8m0):
    M, K = x.shape
    KB = -(-K // 128)
    q, s = np.zeros((M, K), np.uint8), np.zeros((M, KB), np.float32)
    for m in range(M):
        for kb in range(KB):
            g = x[m, kb * 128:(kb + 1) * 128]
            s[m, kb] = group_scale(np.max(np.abs(g)), ue8m0)
            q[m, kb * 128:(kb + 1) * 128] = e4m3_saturate(g / s[m, kb])
    return q, s


def quant_weight(w, ue8m0):
    N, K = w.shape
    NB, KB = -(-N // 128), -(-K // 128)
    q, s = np.zeros((N, K), np.uint8), np.zeros((NB, KB), np.float32)
    for nb in range(NB):
        for kb in range(KB):
            blk = w[nb * 128:(nb + 1) * 128, kb * 128:(kb + 1) * 128]
            s[nb, kb] = group_scale(np.max(np.abs(blk)), ue8m0)
            q[nb * 128:(nb + 1) * 128, kb * 128:(kb + 1) * 128] = e4m3_saturate(blk / s[nb, kb])
    return q, s


def division_sensitive_row(K):
    """A row whose first group has amax 1000 and values x with e4m3(x / s) != e4m3(x * (1/s)) in float32:
    it tells a true division from a multiply by the reciprocal."""
    amax = np.float32(1000.0)
    s = np.float32(amax / E4M3_MAX)
    r = np.float32(1) / s
    vals = np.arange(0, 0x7F, dtype=np.uint8).view(ml_dtypes.float8_e4m3fn).astype(np.float64)
    found = []
    for mid in ((vals[:-1] + vals[1:]) / 2).astype(np.float32):
        x = np.float32(mid * s)
        for x in [x] + [np.nextafter(x, np.float32(np.inf * d)) for d in (1, -1)]:
            if e4m3_saturate(np.array([x / s])) != e4m3_saturate(np.array([x * r])):
                found.append(x)
    assert len(found) >= 5, found
    row = np.zeros(K, np.float32)
    row[0] = amax
    row[1:1 + len(found)] = found
    return row


def golden_quant(rng):
    K = 300  # not a multiple of 128: groups of 128, 128, 44
    x = np.zeros((7, K), np.float32)                                            # row 0: zeros
    x[1] = rng.standard_normal(K) * 3e-5                                       # row 1: amax below the 1e-4 clamp
    x[2] = rng.standard_normal(K)
    x[3] = rng.standard_normal(K) * 1e3
    x[3, 7] = 5e4                                                              # an outlier in group 0
    x[4] = rng.choice([-1, 1], K) * np.exp2(rng.uniform(-20, 10, K))          # wide range: subnormal codes
    x[5] = rng.standard_normal(K)
    x[5, 256:] = 0                                                             # a zero edge group
    x[6] = division_sensitive_row(K)                                           # x / s, not x * (1/s)
    out = {"act_x": x.astype(np.float32)}
    for fmt in ("fp32", "ue8m0"):
        q, s = quant_act(out["act_x"], fmt == "ue8m0")
        out[f"act_q_{fmt}"], out[f"act_scale_{fmt}"] = q, s

    N = 136  # block rows of 128 and 8
    w = (rng.standard_normal((N, K)) * 0.02).astype(np.float32)
    w[0:128, 128:256] = 0                                                      # an all-zero block
    w[128:, 256:] *= 1e-3                                                      # partial corner block below the clamp
    w[130, 3] = 7.0                                                            # an outlier in block (1, 0)
    out["weight_w"] = w
    for fmt in ("fp32", "ue8m0"):
        q, s = quant_weight(w, fmt == "ue8m0")
        out[f"weight_q_{fmt}"], out[f"weight_scale_inv_{fmt}"] = q, s
    return out


# ---- GEMM -----------------------------------------------------------------------------------------------
def e4m3_values(q):
    return q.view(ml_dtypes.float8_e4m3fn).astype(np.float64)


def gemm_exact(a, a_s, b, b_s):
    K = a.shape[1]
    kcol = np.arange(K) // 128
    A = e4m3_values(a) * a_s[:, kcol].astype(np.float64)                           # [M, K]
    B = e4m3_values(b) * b_s[np.arange(b.shape[0]) // 128][:, kcol].astype(np.float64)  # [N, K]
    return (A @ B.T).astype(np.float32)


def round_significant(v, mbits, rne):
    """v rounded to 1 + mbits significant bits, toward zero or to nearest even (frexp formulation)."""
    fr, e = np.frexp(v)
    sc = np.ldexp(fr, mbits + 1)
    sc = np.rint(sc) if rne else np.trunc(sc)
    return np.ldexp(sc, e - mbits - 1)


def fma_f32(s, p, acc):
    """float32 fma(s, p, acc), exactly rounded, elementwise (rational arithmetic)."""
    out = np.empty(acc.shape, np.float32)
    for i in np.ndindex(acc.shape):
        exact = Fraction(float(s[i])) * Fraction(float(p[i])) + Fraction(float(acc[i]))
        code = encode_exact(exact, 8, 23, False, False)
        out[i] = np.uint32(code).view(np.float32)
    return out


def gemm_tensorcore(a, a_s, b, b_s, mbits, rne, promote):
    M, K = a.shape
    N = b.shape[0]
    av, bv = e4m3_values(a), e4m3_values(b)
    P = promote if promote else K
    acc = np.zeros((M, N), np.float32)
    for k0 in range(0, K, P):
        part = np.zeros((M, N))
        for k in range(k0, min(K, k0 + P)):
            part = round_significant(part + np.outer(av[:, k], bv[:, k]), mbits, rne)
        kb = k0 // 128
        s = (a_s[:, kb][:, None] * b_s[np.arange(N) // 128, kb][None, :]).astype(np.float32)  # float32 product
        acc = fma_f32(s, part.astype(np.float32), acc)
    return acc


def golden_gemm(rng):
    out = {}
    # Case "blk": per-group scales, K and N not multiples of 128.
    M, N, K = 8, 130, 1000
    a, a_s = quant_act(rng.standard_normal((M, K)).astype(np.float32), False)
    b, b_s = quant_weight(rng.standard_normal((N, K)).astype(np.float32), False)
    out.update(blk_a=a, blk_a_scale=a_s, blk_b=b, blk_b_scale=b_s)
    out["blk_c_exact"] = gemm_exact(a, a_s, b, b_s)
    out["blk_c_tc_trunc_m13_p128"] = gemm_tensorcore(a, a_s, b, b_s, 13, False, 128)
    out["blk_c_tc_rne_m13_p128"] = gemm_tensorcore(a, a_s, b, b_s, 13, True, 128)
    out["blk_c_tc_trunc_m7_p128"] = gemm_tensorcore(a, a_s, b, b_s, 7, False, 128)
    # Case "const": one scale per tensor, so longer promotion intervals are allowed.
    M, N, K = 4, 8, 2048
    x = rng.standard_normal((M, K)).astype(np.float32)
    w = rng.standard_normal((N, K)).astype(np.float32)
    sx, sw = group_scale(np.max(np.abs(x)), False), group_scale(np.max(np.abs(w)), False)
    a, b = e4m3_saturate(x / sx), e4m3_saturate(w / sw)
    a_s, b_s = np.full((M, K // 128), sx, np.float32), np.full((1, K // 128), sw, np.float32)
    out.update(const_a=a, const_a_scale=a_s, const_b=b, const_b_scale=b_s)
    out["const_c_exact"] = gemm_exact(a, a_s, b, b_s)
    out["const_c_tc_trunc_m13_p0"] = gemm_tensorcore(a, a_s, b, b_s, 13, False, 0)
    out["const_c_tc_trunc_m13_p512"] = gemm_tensorcore(a, a_s, b, b_s, 13, False, 512)
    out["const_c_tc_rne_m13_p0"] = gemm_tensorcore(a, a_s, b, b_s, 13, True, 0)
    return out


def main():
    rng = np.random.default_rng(20250505)
    write_safetensors(os.path.join(OUT_DIR, "fp8_cast.safetensors"), golden_casts(rng))
    write_safetensors(os.path.join(OUT_DIR, "fp8_quant.safetensors"), golden_quant(rng))
    write_safetensors(os.path.join(OUT_DIR, "fp8_gemm.safetensors"), golden_gemm(rng))


if __name__ == "__main__":
    main()
