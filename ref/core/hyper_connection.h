// hyper_connection.h — manifold-constrained hyper-connections (mHC; Xie et al. 2025, "mHC: Manifold-
// Constrained Hyper-Connections", building on Zhu et al. 2024, "Hyper-Connections") as DeepSeek-V4 uses them
// around every attention and MoE sub-layer and before the head (DeepSeek-V4 inference/model.py Block.hc_pre,
// Block.hc_post, ParallelHead.hc_head; inference/kernel.py hc_split_sinkhorn).
//
// The residual stream is n = hc_mult copies X [n, d] per token instead of one vector. With x = vec(X) [n·d]:
//   r       = 1 / sqrt( mean(x²) + norm_eps )                  (RMS of all n·d values, norm_eps = rms_norm_eps)
//   m       = (F x) · r                                        F = hc_*_fn [(2+n)·n, n·d]: the mixes
//   pre_i   = σ(m_i · α_0 + b_i) + hc_eps                      i < n        α = hc_*_scale [3], b = hc_*_base
//   post_i  = 2 σ(m_{n+i} · α_1 + b_{n+i})                     i < n
//   C_jk    = m_{2n + j·n + k} · α_2 + b_{2n + j·n + k}        j, k < n
//   C       = Sinkhorn(C): row softmax + hc_eps, then a column normalisation, then hc_sinkhorn_iters − 1
//             times (rows, columns), each dividing by (sum + hc_eps). C tends to a doubly-stochastic matrix
//             (the Birkhoff polytope of the mHC paper §3: its products stay bounded, so deep stacks of
//             residual mixes neither blow up nor vanish).
//   hc_pre:  y = Σ_i pre_i X_i                                 [d], the sub-layer's input (before its RMSNorm)
//   hc_post: X'_k = post_k · f(y) + Σ_j C_jk X_j               [n, d], the new residual streams
// The head collapses the streams with its own mixes (F = hc_head_fn [n, n·d], α = hc_head_scale [1]):
//   hc_head: y = Σ_i (σ(m_i α_0 + b_i) + hc_eps) X_i           (no post, no Sinkhorn)
// The embedding enters as n identical copies (Transformer.forward: h.repeat over the hc axis).
//
// Precision: the mixes come from linear_forward in float32 (the official code runs hc_pre in float32);
// the mean of squares, σ, exp and every Sinkhorn step are evaluated in double and stored as float32.
// Shapes: T tokens, n = hc_mult, d hidden. Everything row-major.
#pragma once
#include <cstdint>
#include <vector>

namespace dsref {

struct HcParams {
    int64_t n = 4;           // hc_mult
    int64_t iters = 20;      // hc_sinkhorn_iters
    double hc_eps = 1e-6;    // hc_eps
    double norm_eps = 1e-6;  // rms_norm_eps (the r above)
};

// The split of one sub-layer's mixes. mixes: [T, (2+n)n] · scale: [3] · base: [(2+n)n]
// pre: [T, n] out · post: [T, n] out · comb: [T, n, n] out (comb[t, j, k] = C_jk)
void hc_split_sinkhorn(float* pre, float* post, float* comb, const float* mixes, const float* scale,
                       const float* base, int64_t T, const HcParams& p);

// m = (F x) · r for every token. x: [T, n, d] · fn: [M, n·d] · mixes: [T, M] out
void hc_mixes(float* mixes, const float* x, const float* fn, int64_t T, int64_t d, int64_t M, const HcParams& p);

// hc_pre: y [T, d] out, pre/post [T, n] out, comb [T, n, n] out · x: [T, n, d] · fn: [(2+n)n, n·d] ·
// scale: [3] · base: [(2+n)n]
void hc_pre(float* y, float* pre, float* post, float* comb, const float* x, const float* fn, const float* scale,
            const float* base, int64_t T, int64_t d, const HcParams& p);

// hc_post: out [T, n, d] out (must not alias residual) · f: [T, d] the sub-layer output ·
// residual: [T, n, d] · post: [T, n] · comb: [T, n, n]
void hc_post(float* out, const float* f, const float* residual, const float* post, const float* comb, int64_t T,
             int64_t d, const HcParams& p);

// hc_head: y [T, d] out · x: [T, n, d] · fn: [n, n·d] · scale: [1] · base: [n]
void hc_head(float* y, const float* x, const float* fn, const float* scale, const float* base, int64_t T,
             int64_t d, const HcParams& p);

}  // namespace dsref
