// dense_backward.h — forward and hand-written backward of the dense building blocks, in float32 (for
// training) and double (for the finite-difference checks of tests/test_train_backward.cpp).
//
//   linear      y = x Wᵀ                          dx = dy W,   dW += dyᵀ x
//   embedding   y[t] = E[id_t]                    dE[id_t] += dy[t]
//   RMSNorm     y = w ⊙ x · r,  r = (mean x² + eps)^-1/2
//               dx = r (w ⊙ dy) − r³/d · x · Σ_j w_j dy_j x_j,   dw += Σ_t dy ⊙ x · r
//   SwiGLU MLP  y = (silu(x W_gᵀ) ⊙ x W_uᵀ) W_dᵀ    (DeepSeek-V3 inference/model.py MLP / Expert)
//               silu'(g) = σ(g) (1 + g (1 − σ(g)))
//
// Gradient arguments named d* are ACCUMULATED into (+=) for the parameters, and WRITTEN (=) for the
// activations, so a parameter shared by several uses (a tied embedding, the MTP module's shared
// head) sums its contributions. The float32 forward equals core/'s forward to float rounding
// (tests/test_train_backward.cpp checks it). Serial loops and Eigen products with
// EIGEN_DONT_PARALLELIZE: results do not depend on the thread count.
#pragma once
#include <cstdint>
#include <vector>

namespace dsref {

// y: [T, N] out · x: [T, K] · w: [N, K]
template <class F> void lin_fwd(F* y, const F* x, const F* w, int64_t T, int64_t K, int64_t N);
// dx: [T, K] out (nullptr: not needed) · dw: [N, K] += · dy: [T, N] · x: [T, K] · w: [N, K]
template <class F>
void lin_bwd(F* dx, F* dw, const F* dy, const F* x, const F* w, int64_t T, int64_t K, int64_t N);

// y: [T, d] out · table: [V, d] · ids: [T]
template <class F> void embed_fwd(F* y, const F* table, const int32_t* ids, int64_t T, int64_t d);
// dtable: [V, d] += · dy: [T, d] · ids: [T]
template <class F> void embed_bwd(F* dtable, const F* dy, const int32_t* ids, int64_t T, int64_t d);

// y: [T, d] out · x: [T, d] · w: [d] · rstd: [T] out (saved for the backward)
template <class F> void rms_fwd(F* y, F* rstd, const F* x, const F* w, int64_t T, int64_t d, double eps);
// dx: [T, d] out · dw: [d] += · dy: [T, d] · x: [T, d] · w: [d] · rstd: [T] from rms_fwd
template <class F>
void rms_bwd(F* dx, F* dw, const F* dy, const F* x, const F* w, const F* rstd, int64_t T, int64_t d);

// The SwiGLU MLP; the saved activations g = x W_gᵀ, u = x W_uᵀ, h = silu(g) ⊙ u.
template <class F> struct MlpCache {
    std::vector<F> g, u, h;  // [T, I] each
};
// y: [T, d] out · x: [T, d] · w_gate, w_up: [I, d] · w_down: [d, I]
template <class F>
void mlp_fwd(F* y, MlpCache<F>& c, const F* x, const F* w_gate, const F* w_up, const F* w_down, int64_t T,
             int64_t d, int64_t I);
// dx: [T, d] out · dw_*: += · dy: [T, d] · the forward's arguments and cache
template <class F>
void mlp_bwd(F* dx, F* dw_gate, F* dw_up, F* dw_down, const F* dy, const MlpCache<F>& c, const F* x,
             const F* w_gate, const F* w_up, const F* w_down, int64_t T, int64_t d, int64_t I);

}  // namespace dsref
