// layernorm.h — LayerNorm (Ba, Kiros & Hinton 2016, "Layer Normalization", eq. 4) with weight and bias,
// as DeepSeek-V3.2-Exp inference/model.py LayerNorm (F.layer_norm, eps 1e-6) normalizes the indexer key.
//
//   μ[t] = (1/d) Σ_i x[t, i]      σ²[t] = (1/d) Σ_i (x[t, i] − μ[t])²      (biased variance, as torch)
//   y[t, i] = (x[t, i] − μ[t]) / sqrt(σ²[t] + eps) · w[i] + b[i]
//
// Mean and variance are accumulated in double (two passes), so the result is the float32 rounding of a
// nearly exact value.
#pragma once
#include <cstdint>

namespace dsref {

// y: [T, d] out (may alias x) · x: [T, d] · w: [d] · b: [d] · T rows, d features
void layernorm_forward(float* y, const float* x, const float* w, const float* b, int64_t T, int64_t d, float eps);

}  // namespace dsref
