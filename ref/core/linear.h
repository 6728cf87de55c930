// linear.h — y = x Wᵀ, the one matrix product every projection uses (weights are [out, in] as in HF).
//
// Threads and determinism: the output is cut into fixed tiles of kTileT rows × kTileN columns, and
// each tile is one Eigen product computed by one thread. The tiling does not depend on the number
// of threads, so every output element is computed by the same instructions in the same order at any
// thread count: results are bit-identical for --threads 1, 2, ... (a test checks this).
#pragma once
#include <cstdint>

namespace dsref {

constexpr int64_t kTileT = 64, kTileN = 128;

// y: [T, N] out · x: [T, K] · w: [N, K] (row-major, the HF [out, in] layout)
void linear_forward(float* y, const float* x, const float* w, int64_t T, int64_t K, int64_t N);

}  // namespace dsref
