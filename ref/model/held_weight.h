// held_weight.h — a projection's weight as a block holds it: float32 (the default), or the checkpoint's
// bf16 words (ForwardOptions::hold_bf16, `generate --hold-bf16`), which halves the bytes a decode step
// reads. Products on bf16 words are core/linear_bf16.h's, bit-identical to float32 weights.
#pragma once
#include <cstdint>
#include <vector>

#include "io/weights.h"
#include "model/precision.h"

namespace dsref {

struct HeldWeight {
    std::vector<float> f32;      // [N, K] as float32 (PrecisionPolicy::load), or empty
    Bf16Words bf16;              // [N, K] the stored bf16 words (huge pages), or empty
};

// The weight as float32, or with bf16 = true its stored words (an error unless it is stored BF16).
HeldWeight hold_weight(const WeightLoader& w, const WeightSpec& s, const PrecisionPolicy& prec, bool bf16);

// y = x Wᵀ (+ bias) through prec.linear (float32) or linear_forward_bf16 (then the bias added as
// prec.linear adds it; hold_bf16 runs in the float32 policy only, so nothing is rounded).
// y: [T, N] · x: [T, K] · w: [N, K] · bias: [N] or null
void held_linear(float* y, const float* x, const HeldWeight& w, int64_t T, int64_t K, int64_t N,
                 const PrecisionPolicy& prec, const float* bias = nullptr);

}  // namespace dsref
