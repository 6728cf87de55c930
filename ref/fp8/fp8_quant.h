// fp8_quant.h — DeepSeek-V3 fine-grained FP8 quantization: 1×128 activation groups and 128×128 weight
// blocks, E4M3 codes with float32 scales (V3 report §3.3.2 "Fine-grained quantization"; DeepSeek-V3
// inference/kernel.py act_quant / weight_dequant, README_WEIGHTS.md "FP8 Weight Documentation").
// CPU twin of the CUDA quantization kernels.
//
// One group (a 1×128 run of an activation row, or a 128×128 weight block; edge groups are partial and
// cover only their real elements, which is what zero-padding to 128 gives as well):
//   amax = max |x| over the group, in float32, then amax = max(amax, fp32(1e-4))
//   s    = amax / 448                                  (float32 division)
//   s    = smallest power of two ≥ s                   (only for scale_fmt = ue8m0, V3.1; via frexp)
//   q    = e4m3_saturate(x / s)                        (IEEE float32 division, not x · (1/s))
// s is stored as is: it is the dequantization multiplier, x ≈ decode(q) · s (the checkpoint's
// `weight_scale_inv`, act_quant's `s`). Because |x / s| ≤ 448 up to one float32 ulp, which
// round-to-nearest-even maps to 448, the saturating cast never actually clamps a finite input.
//
// Dimension letters: M rows of activations (tokens), N output features (weight rows), K the GEMM inner
// dimension, KB = ceil(K/128) scale columns, NB = ceil(N/128) scale rows.
// Non-finite inputs are refused with an Error naming the element (a NaN would poison a whole group).
#pragma once
#include <cstdint>

namespace dsref {

constexpr int64_t kFp8Block = 128;      // group length along K and weight block side (V3 report, N_C = 128)
constexpr float kFp8E4M3Max = 448.0f;   // largest finite E4M3FN value
constexpr float kFp8AmaxFloor = 1e-4f;  // amax clamp of the official act_quant (Aug 2025); fp32(1e-4)

enum class Fp8ScaleFmt {
    Fp32,   // s = amax / 448
    Ue8m0,  // s rounded up to a power of two (DeepSeek-V3.1 `scale_fmt: ue8m0`)
};

// Number of 128-wide groups covering n elements: ceil(n / 128).
inline int64_t fp8_num_blocks(int64_t n) {
    return (n + kFp8Block - 1) / kFp8Block;
}

// Smallest power of two ≥ s, for a finite s > 0 (computed with frexp, exact; log2 can be off by one).
float ue8m0_round_up(float s);

// The scale of one group from its amax (≥ 0): max(amax, 1e-4) / 448, then ue8m0 rounding if asked.
float fp8_scale_from_amax(float amax, Fp8ScaleFmt fmt);

// Activations, per 1×128 group along K.
//   q     [M, K]   out: E4M3 codes
//   scale [M, KB]  out: dequantization multipliers
//   x     [M, K]   in
void fp8_quant_act(uint8_t* q, float* scale, const float* x, int64_t M, int64_t K, Fp8ScaleFmt fmt);

// Weights, per 128×128 block.
//   q         [N, K]    out: E4M3 codes
//   scale_inv [NB, KB]  out: dequantization multipliers (block (nb, kb) covers rows nb·128.., cols kb·128..)
//   w         [N, K]    in
void fp8_quant_weight(uint8_t* q, float* scale_inv, const float* w, int64_t N, int64_t K, Fp8ScaleFmt fmt);

// Dequantization: y = decode_e4m3(q) · scale, one float32 multiply per element.
// NaN policy (the same for activations and weights, for the fp8_dequant op and for FP8 checkpoints):
// the two E4M3 NaN codes (0x7F, 0xFF) and non-finite scales are refused with an Error naming the
// element (and, for weights, its block); callers prefix the tensor's name. A dequantized tensor is
// therefore never silently NaN or Inf.
//   y [M, K] out, q [M, K] E4M3 codes, scale [M, KB]
void fp8_dequant_act(float* y, const uint8_t* q, const float* scale, int64_t M, int64_t K);
// The one weight dequantizer (official kernel.py weight_dequant), used by the model's weight loader
// (io/weights.cpp) and the fp8_dequant op. Blocks are br × bc (128 × 128 in every released checkpoint;
// quantization_config.weight_block_size may say otherwise); edge blocks are partial.
//   y [N, K] out, q [N, K] E4M3 codes, scale_inv [ceil(N/br), ceil(K/bc)]
void fp8_dequant_weight(float* y, const uint8_t* q, const float* scale_inv, int64_t N, int64_t K,
                        int64_t br = kFp8Block, int64_t bc = kFp8Block);

// The baseline DeepSeek moved away from: one scale for the whole tensor (same rule, one group).
//   q [n] out, x [n] in; returns the scale.
float fp8_quant_per_tensor(uint8_t* q, const float* x, int64_t n, Fp8ScaleFmt fmt);

}  // namespace dsref
