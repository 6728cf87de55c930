// linear_bf16.h — y = x Wᵀ with W held as bf16 (the checkpoint's own bytes), for generation.
//
// Decode multiplies one row by every weight once per token, so its time is the time to read the
// weights: holding a bf16 checkpoint as float32 doubles the bytes read per token. `generate
// --hold-bf16` keeps the bf16 words and multiplies them here; the values are the same (bf16 → float32
// is exact), only the products' summation order can differ.
//
//   T > 1: the tiles of core/linear.h, each column tile of W converted to float32 into a per-unit buffer
//          first, then the same Eigen product: bit-identical to linear_forward on the converted weight
//          (a test checks it).
//   T = 1: one fused pass over W (decode): each output is a dot product over K, accumulated in 16 lanes
//          (lane j sums k ≡ j mod 16 in increasing k), the lanes added pairwise (8, 4, 2, 1), then the
//          K mod 16 tail in order. The order is fixed per output, whatever the thread count, so results are
//          bit-identical at any thread count; it is not Eigen's matrix-vector order, so a 1-row product
//          differs from linear_forward's in the last bits (the test bounds it by the sum of |x·w|).
#pragma once
#include <cstdint>

namespace dsref {

// y: [T, N] out · x: [T, K] · w: [N, K] bf16 words (row-major, the HF [out, in] layout)
void linear_forward_bf16(float* y, const float* x, const uint16_t* w, int64_t T, int64_t K, int64_t N);

// The T = 1 pass alone. y: [N] out · x: [K] · w: [N, K] bf16
void gemv_bf16(float* y, const float* x, const uint16_t* w, int64_t K, int64_t N);

}  // namespace dsref
