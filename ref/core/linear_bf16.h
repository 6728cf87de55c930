// linear_bf16.h — y = x Wᵀ with W held as bf16 (the checkpoint's own bytes), for generation.
//
// Decode multiplies one row by every weight once per token, so its time is the time to read the
// weights: holding a bf16 checkpoint as float32 doubles the bytes read per token. `generate
// --hold-bf16` keeps the bf16 words and multiplies them here. bf16 → float32 is exact and every output is
// summed in core/linear.h's order, so the results are bit-identical to linear_forward on the widened
// weight, at any T and thread count (tests/test_linear_bf16.cpp):
//
//   T > 1: linear_forward's work units, each widening its column tile of W into a per-thread buffer first;
//   T = 1: one fused pass over W in linear.h's single-row order (16 lanes, pairwise, then the tail),
//          8 rows of W at a time, widening each value as it is read.
#pragma once
#include <cstdint>

namespace dsref {

// y: [T, N] out · x: [T, K] · w: [N, K] bf16 words (row-major, the HF [out, in] layout)
void linear_forward_bf16(float* y, const float* x, const uint16_t* w, int64_t T, int64_t K, int64_t N);

// The T = 1 pass alone. y: [N] out · x: [K] · w: [N, K] bf16
void gemv_bf16(float* y, const float* x, const uint16_t* w, int64_t K, int64_t N);

}  // namespace dsref
