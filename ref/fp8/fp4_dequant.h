// fp4_dequant.h — DeepSeek-V4's FP4 expert weights back to float32: E2M1 codes packed two per byte, one
// UE8M0 scale per 32 consecutive values of a row (DeepSeek-V4 inference/kernel.py fp4_gemm, which
// dequantizes the weight as LUT[nibble] · 2^(scale − 127) before the product; inference/convert.py
// cast_e2m1fn_to_e4m3fn reads the same layout). Formats: core/fp4_format.h.
//
//   W[n, k] = e2m1(nibble(packed[n, k/2], k mod 2)) · ue8m0(scale[n, k/32])
//
// nibble(b, 0) = b & 0xF (element 2j), nibble(b, 1) = b >> 4 (element 2j+1). Every product is exact in
// float32 (a 2-bit significand times a power of two), so the result is bit-exact, not approximate.
//
// Shapes: packed [N, K/2] bytes (the checkpoint's I8 / U8 tensor), scale [N, K/32] UE8M0 codes,
// out [N, K] float32. K must be a multiple of 32 (checked; the error names `what`).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace dsref {

constexpr int64_t kFp4Block = 32;  // values per UE8M0 scale (kernel.py fp4_block_size)

// packed: [N, K/2] · scale: [N, K/32] · returns [N, K]. A NaN scale (0xFF) is an Error naming `what`.
std::vector<float> fp4_dequantize(const uint8_t* packed, const uint8_t* scale, int64_t N, int64_t K,
                                  const std::string& what);

// The inverse for tests and `dsref init`: each 32-value block gets the scale 2^ceil(log2(amax/6)) (the
// power-of-two rule of kernel.py fp4_act_quant), codes are RNE-encoded. w: [N, K] · packed: [N, K/2] out ·
// scale: [N, K/32] out.
void fp4_quantize(const float* w, int64_t N, int64_t K, uint8_t* packed, uint8_t* scale);

}  // namespace dsref
