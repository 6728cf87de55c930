// hadamard.h — the orthonormal Walsh–Hadamard transform, y = n^-1/2 · H_n x, H_n in Sylvester order
// (H_1 = [1], H_2n = [[H_n, H_n], [H_n, −H_n]]), as DeepSeek-V3.2-Exp inference/model.py rotate_activation
// applies it (fast_hadamard_transform's hadamard_transform with scale = n^-1/2) to the indexer's query
// and key before their FP8 quantization (model/dsa_indexer.h). H_n/√n is orthogonal and symmetric, so dot
// products are unchanged: (Hq)·(Hk) = q·k; what it changes is the spread of the values that one FP8
// scale per 128 must cover.
//
// The butterflies run in double and each output is rounded to float once.
#pragma once
#include <cstdint>

namespace dsref {

// In place on `rows` contiguous vectors of length n (a power of two). x: [rows, n]
void hadamard_forward(float* x, int64_t rows, int64_t n);

}  // namespace dsref
