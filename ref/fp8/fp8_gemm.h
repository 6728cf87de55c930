// fp8_gemm.h — block-scaled FP8 GEMM C = A·Bᵀ with two accumulation models (V3 report §3.3.2
// "Increasing accumulation precision"; DeepSeek-V3 inference/kernel.py fp8_gemm). CPU twin of the CUDA
// FP8 GEMM kernels.
//
//   C[m, n] = Σ_kb a_scale[m, kb] · b_scale[n/128, kb] · Σ_{k in block kb} A[m, k]·B[n, k]
//
// A holds E4M3 codes of activations quantized per 1×128 group, B E4M3 codes of a weight quantized per
// 128×128 block (fp8_quant.h); the scales are dequantization multipliers.
//
// Accumulation models:
//   exact       the oracle. Every element is decoded and scaled in double (exact), the products are
//               summed in double (Eigen GEMM on fixed 64-row tiles, so the result does not depend on the
//               thread count) and the sum is rounded once to float32.
//   tensorcore  emulates an H800/Hopper FP8 tensor core plus DeepSeek's promotion to CUDA cores:
//               1. the raw FP8 products A[m,k]·B[n,k] (exact, unscaled) are added in K order into a
//                  partial sum that keeps only `acc_mantissa_bits` explicit mantissa bits (default 13,
//                  i.e. the ~14 significant bits of the report); the partial sum is rounded after every
//                  add, toward zero (`truncate`, default) or to nearest even (`rne`); its exponent
//                  range is unlimited;
//               2. every `promote_interval` elements of K (default 128 = N_C; 0 = never, i.e. once at
//                  the end) the partial sum is converted to float32, multiplied by its scales and added
//                  to a float32 accumulator: acc = fmaf(a_scale · b_scale, float(partial), acc) — one
//                  fp32 multiply for the scale product, then one fused multiply-add;
//               3. promote_interval must be a multiple of 128; when it spans several K blocks their scales
//                  must be equal (checked for every row and block row; an Error otherwise) because a
//                  partial sum can only be multiplied by one scale.
//               Each partial sum (promote_interval products, or K when never) is staged exactly in double
//               as long as it has at most 65536 products (every sum is a multiple of 2^-18 below 2^35);
//               longer ones are refused.
// Inputs with an E4M3 NaN code or a non-finite scale are refused with an Error naming the element.
//
// Dimension letters: M rows of A (tokens), N rows of B (output features), K inner dimension,
// KB = ceil(K/128), NB = ceil(N/128). Rows run in parallel (OpenMP); results are bit-identical at
// any thread count.
#pragma once
#include <cstdint>

namespace dsref {

enum class Fp8Accum { Exact, TensorCore };
enum class AccRounding { Truncate, Rne };

struct Fp8GemmConfig {
    Fp8Accum accum = Fp8Accum::Exact;
    int acc_mantissa_bits = 13;                        // tensorcore: explicit mantissa bits, 1..52
    AccRounding acc_rounding = AccRounding::Truncate;  // tensorcore: rounding after every add
    int64_t promote_interval = 128;                    // tensorcore: 0 (never) or a multiple of 128
};

// Block-scaled GEMM.
//   c       [M, N]   out, float32
//   a       [M, K]   E4M3 codes
//   a_scale [M, KB]  float32, per 1×128 group of A
//   b       [N, K]   E4M3 codes
//   b_scale [NB, KB] float32, per 128×128 block of B
void fp8_gemm(float* c, const uint8_t* a, const float* a_scale, const uint8_t* b, const float* b_scale,
              int64_t M, int64_t N, int64_t K, const Fp8GemmConfig& cfg);

// The tensor-core accumulator's rounding: v rounded to 1 + mantissa_bits significant bits (toward zero or
// to nearest even), exponent unlimited. v must be 0 or a normal double; mantissa_bits in 1..52.
double fp8_acc_round(double v, int mantissa_bits, AccRounding r);

}  // namespace dsref
