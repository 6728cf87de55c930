// fp4_format.h — the two micro-scaling formats of DeepSeek-V4's FP4 experts, bit-exact:
// E2M1 (4-bit float, OCP Microscaling Formats (MX) v1.0 §5.3.3, "FP4 E2M1") and UE8M0 (the
// unsigned exponent-only scale of the MX spec, §5.4.1). DeepSeek-V4 inference/kernel.py
// (fp4_gemm, fp4_act_quant) and inference/convert.py (FP4_TABLE, cast_e2m1fn_to_e4m3fn) store each routed
// expert weight as E2M1 codes with one UE8M0 scale per 32 consecutive values along the input dimension.
//
// E2M1: 1 sign bit, 2 exponent bits (bias 1), 1 mantissa bit; no infinities, no NaN (ml_dtypes'
// float4_e2m1fn). Code s.ee.m:
//   e = 0:  ±m · 0.5                       (0, 0.5)          subnormal
//   e ≥ 1:  ±(1 + m/2) · 2^(e − 1)         (1, 1.5, 2, 3, 4, 6)
// so the 16 codes are 0, .5, 1, 1.5, 2, 3, 4, 6 and their negatives (0x8 is −0).
// Encode is round-to-nearest-even and saturates to ±6 (|x| > 6 and ±inf give ±6), as ml_dtypes' cast
// does; NaN has no code, and encoding it is an error.
//
// UE8M0: 8 exponent bits, no sign, no mantissa, bias 127: code c is 2^(c − 127) for c = 0..254 (c = 0 is
// 2^−127, a float32 subnormal, still exact), and 0xFF is NaN. The DeepSeek quantizers only ever make
// powers of two (kernel.py _pow2_ceil), so encode takes a power of two and refuses anything else.
//
// Packing (the hub checkpoints, stored as I8 [out, in/2]; kernel.py _fp4_to_f32): byte j of a row holds
// element 2j in its LOW nibble and element 2j+1 in its HIGH nibble.
#pragma once
#include <cstdint>

namespace dsref {

constexpr float kE2m1Max = 6.0f;

float e2m1_decode(uint8_t code);   // low 4 bits are read
uint8_t e2m1_encode(float x);      // RNE, saturating; NaN → Error
float ue8m0_decode(uint8_t code);  // 2^(code − 127); 0xFF → NaN
uint8_t ue8m0_encode(float pow2);  // pow2 must be 2^k, −127 ≤ k ≤ 127 (else Error)

// One packed byte: element 2j (low nibble) and 2j+1 (high nibble).
inline uint8_t e2m1_pack(uint8_t even, uint8_t odd) {
    return (uint8_t)((even & 0xF) | ((odd & 0xF) << 4));
}

}  // namespace dsref
