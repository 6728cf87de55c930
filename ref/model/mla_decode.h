// mla_decode.h — one decode step of absorbed MLA over a latent cache, the attention core only (V2 report
// §2.1.2: W_UK absorbed into the query, W_UV into the output; DeepSeek-V3 inference/model.py MLA.forward,
// attn_impl "absorb"): for each sequence b and head h,
//
//   score_s = scale · ( q̃[b,h] · c_s + q_pe[b,h] · k_pe_s ),   s < S_b
//   õ[b,h]  = Σ_s softmax(score)_s · c_s                        [d_c]
//
// with q̃ = W_UK[h]ᵀ q_nope (already folded), c_s the cached latent (after kv_a_layernorm) and k_pe_s its
// RoPE'd key. This is what MlaLayer's absorbed path computes for one new token per sequence, written as a
// plain double-precision loop: the CPU twin of cuda/mla_decode.cu (paged cache, split-KV) and an oracle
// independent of the model's tiled online softmax.
#pragma once
#include <cstdint>
#include <vector>

namespace dsref {

// o_lat: [B, H, d_c] out · q_lat: [B, H, d_c] · q_pe: [B, H, d_r] · kv: [Σ_b S_b, d_c + d_r] the keys of
// every sequence one after the other (per key: c, then k_pe) · seq_start: [B + 1] first key of each
// sequence (S_b = seq_start[b+1] − seq_start[b] ≥ 1). Computed in double, rounded once to float.
void mla_decode_latent(float* o_lat, const float* q_lat, const float* q_pe, const float* kv,
                       const std::vector<int64_t>& seq_start, int64_t H, int64_t d_c, int64_t d_r, double scale);

}  // namespace dsref
