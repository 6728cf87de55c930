// rope_backward.h — RoPE forward and backward for training, in both pairings and with any frequencies
// (plain, YaRN, Llama 3: the frequencies come from core/rope.h's rope_inv_freq).
//
// RoPE rotates each pair (a, b) by the angle φ = pos · θ'_j:
//   a' = a cos φ − b sin φ,   b' = a sin φ + b cos φ
// a rotation, so its Jacobian is the rotation itself and the backward is the rotation by −φ:
//   da = da' cos φ + db' sin φ,   db = −da' sin φ + db' cos φ.
// Pairs are (2j, 2j+1) for RopeLayout::Interleaved (DeepSeek-V2/V3, the official apply_rotary_emb)
// and (j, j + d_r/2) for RopeLayout::Half (HF Llama). YaRN changes only θ'_j (its mscale goes into
// the softmax scale, never into cos/sin: core/rope.h), so the same backward serves it. φ is computed
// in double and cos/sin rounded once to F, as core/rope.cpp does.
#pragma once
#include <cstdint>
#include <vector>

#include "core/rope.h"

namespace dsref {

// Rotates in place x[t, n, 0:d_r] at x + t·row_stride + n·vec_stride by +φ (inverse = false, the
// forward) or −φ (inverse = true, the backward applied to the output gradient).
// x: [T, N, ≥d_r] strided · positions: [T] · inv_freq: [d_r/2]
template <class F>
void rope_apply(F* x, int64_t T, int64_t N, int64_t d_r, int64_t row_stride, int64_t vec_stride,
                const int64_t* positions, const std::vector<double>& inv_freq, RopeLayout layout, bool inverse);

}  // namespace dsref
