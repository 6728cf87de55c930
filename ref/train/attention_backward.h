// attention_backward.h — causal scaled dot-product attention with grouped KV heads, forward (saving
// the probabilities) and backward, for training (one sequence, queries = keys, pos0 = 0).
//
//   s[h, t, u] = scale · q[t, h] · k[u, g(h)]   (u ≤ t),   P = softmax_u(s),   o[t, h] = Σ_u P v[u, g(h)]
//   dP = dO vᵀ,   dS = P ⊙ (dP − Σ_u dP ⊙ P),   dq = scale · dS k,   dk += scale · dSᵀ q,   dv += Pᵀ dO
//
// g(h) = ⌊h · H_kv / H⌋ as core/attention.h (HF repeat_kv); H_kv = H is MHA and MLA's naive path
// (model/mla.h: every head has its own k and v). The products run per head in F (Eigen, on the [T, H, d]
// buffers in place); the softmax and dS's row sums in double, after subtracting the row max.
#pragma once
#include <cstdint>
#include <vector>

namespace dsref {

// o: [T, H, d_v] out · P: [H, T, T] out (saved; zero above the diagonal) · q: [T, H, d] ·
// k: [T, H_kv, d] · v: [T, H_kv, d_v]
template <class F>
void attn_fwd(F* o, std::vector<F>& P, const F* q, const F* k, const F* v, int64_t T, int64_t H, int64_t H_kv,
              int64_t d, int64_t d_v, double scale);
// dq: [T, H, d] out · dk: [T, H_kv, d] out · dv: [T, H_kv, d_v] out · dout: [T, H, d_v]
template <class F>
void attn_bwd(F* dq, F* dk, F* dv, const F* dout, const std::vector<F>& P, const F* q, const F* k, const F* v,
              int64_t T, int64_t H, int64_t H_kv, int64_t d, int64_t d_v, double scale);

}  // namespace dsref
