// mla_backward.h — Multi-head Latent Attention for training: forward and backward of the NAIVE path
// (model/mla.h has the math; V2 report §2.1, V3 report §2.1.1 eqs 1–11; official MLA.forward with
// attn_impl = "naive"). Training only needs the naive path: the absorbed path is the same function
// of the same weights (model/mla.h), a rearrangement for a small KV cache, so it has the same
// gradients; a trainer processes whole sequences and keeps no cache.
//
//   c_q = RMSNorm(x W_qaᵀ) (d_q > 0), q = c_q W_qbᵀ (or x W_qᵀ), q[h] = [q_nope | RoPE(q_pe)]
//   [c_kv | k_pe] = x W_kvaᵀ, c = RMSNorm(c_kv), k_pe ← RoPE(k_pe) (one vector shared by all heads)
//   [k_nope[h] | v[h]] = c W_kvb[h]ᵀ,   k[h] = [k_nope[h] | k_pe]
//   out = Attention(q, k, v; scale, causal) W_oᵀ
//
// Backward in reverse: W_o, attention (train/attention_backward.h with H_kv = H), the inverse RoPE
// on the q_pe / k_pe gradients (train/rope_backward.h), k_pe's gradient summed over the heads, the
// two latent norms (eps 1e-6, model/mla.h kMlaLatentNormEps) and the projections.
#pragma once
#include <cstdint>
#include <vector>

#include "core/rope.h"

namespace dsref {

struct MlaTrainDims {
    int64_t d = 0, H = 0, d_q = 0, d_c = 0, d_n = 0, d_r = 0, d_v = 0;
    double scale = 0;                // softmax scale (d_k^-1/2 · YaRN mscale²)
    std::vector<double> inv_freq;    // [d_r/2] (core/rope.h rope_inv_freq: plain or YaRN)
    RopeLayout layout = RopeLayout::Interleaved;
};
template <class F> struct MlaTrainWeights {  // HF names; w_q used when d_q = 0, w_qa/q_norm/w_qb otherwise
    const F *w_q = nullptr, *w_qa = nullptr, *q_norm = nullptr, *w_qb = nullptr;
    const F *w_kva = nullptr, *kv_norm = nullptr, *w_kvb = nullptr, *w_o = nullptr;
};
template <class F> struct MlaTrainGrads {
    F *w_q = nullptr, *w_qa = nullptr, *q_norm = nullptr, *w_qb = nullptr;
    F *w_kva = nullptr, *kv_norm = nullptr, *w_kvb = nullptr, *w_o = nullptr;
};
template <class F> struct MlaTrainCache {
    std::vector<F> cq_raw, cq_rstd, cq, q, kva, c, c_rstd, kv, qh, kh, vh, P, o;
};

// out: [T, d] · x: [T, d] · positions 0..T−1
template <class F>
void mla_fwd(F* out, MlaTrainCache<F>& c, const F* x, const MlaTrainWeights<F>& w, const MlaTrainDims& m, int64_t T);
// dx: [T, d] out · grads += · dout: [T, d]
template <class F>
void mla_bwd(F* dx, MlaTrainGrads<F>& gr, const F* dout, const MlaTrainCache<F>& c, const F* x, const MlaTrainWeights<F>& w,
             const MlaTrainDims& m, int64_t T);

}  // namespace dsref
