// swiglu.h — the SwiGLU feed-forward block (Shazeer 2020, "GLU Variants Improve Transformer", §2;
// DeepSeek-V3 inference/model.py MLP and Expert), used by the dense layers, every routed expert and
// the shared experts:
//
//   MLP(x) = W_down · ( silu(W_gate · x) ⊙ (W_up · x) ),   silu(z) = z / (1 + e^{−z})
//
// HF names gate_proj / up_proj / down_proj = official w1 / w3 / w2 (DeepSeek-V3 inference/convert.py).
#pragma once
#include <cstdint>

namespace dsref {

// y: [T, d] out · x: [T, d] · w_gate, w_up: [I, d] · w_down: [d, I]
void swiglu_forward(float* y, const float* x, const float* w_gate, const float* w_up, const float* w_down,
                    int64_t T, int64_t d, int64_t I);

// silu(g) ⊙ u element-wise, in place into g. g, u: [n]
void swiglu_gate(float* g, const float* u, int64_t n);

}  // namespace dsref

namespace dsref {

// The clamped SwiGLU of DeepSeek-V4 (inference/model.py Expert.forward, `swiglu_limit` L > 0), used by every
// routed and shared expert:   silu(min(g, L)) ⊙ clamp(u, −L, L),  in place into g. L = 0 means no clamp.
// g, u: [n]
void swiglu_gate_clamped(float* g, const float* u, int64_t n, float limit);

// swiglu_forward with that gate. y: [T, d] out · x: [T, d] · w_gate, w_up: [I, d] · w_down: [d, I]
void swiglu_forward_clamped(float* y, const float* x, const float* w_gate, const float* w_up, const float* w_down,
                            int64_t T, int64_t d, int64_t I, float limit);

}  // namespace dsref
