// rmsnorm.h — RMSNorm (Zhang & Sennrich 2019, "Root Mean Square Layer Normalization", eq. 4), as
// DeepSeek-V3 inference/model.py RMSNorm and transformers' DeepseekV3RMSNorm / LlamaRMSNorm use it.
//
//   y[t, i] = w[i] · x[t, i] / sqrt( (1/d) Σ_j x[t, j]² + eps )
//
// eps inside the square root, no mean subtraction, no bias. The mean of squares is accumulated in
// double, so the result is the float32 rounding of a nearly exact value. (HF rounds the normalized x
// to bf16 before the weight multiply; dsref does not emulate bf16: ref/README.md, "Pinned choices".)
#pragma once
#include <cstdint>

namespace dsref {

// y: [T, d] out (may alias x) · x: [T, d] · w: [d] · T rows, d features
void rmsnorm_forward(float* y, const float* x, const float* w, int64_t T, int64_t d, float eps);

}  // namespace dsref
