// v4_attention.h — DeepSeek-V4's attention block for one layer, prefill and cached decode
// (DeepSeek-V4 technical report §2.3; official DeepSeek-V4 inference/model.py Attention.forward,
// Compressor.forward, Indexer.forward, get_window_topk_idxs, get_compress_topk_idxs; inference/kernel.py
// sparse_attn). Plain arrays in, plain arrays out: the caller (config, checkpoint) supplies the weights.
//
// Shared-KV multi-query attention: H query heads, ONE key/value head of d_h dims that is both K and V.
//   c    = RMSNorm(x W_qa^T; q_norm)                                     [T, q_lora]  (also the indexer's qr)
//   q_h  = RMS(c W_qb^T)_h  (per head, no weight: q_h / sqrt(mean(q_h²) + eps))   [T, H, d_h]
//   kv   = RMSNorm(x W_kv^T; kv_norm)                                     [T, d_h]
//   RoPE (interleaved pairs) on the TRAILING d_r dims of q_h and kv, at the token's position p
//   keys of the query at p: the window {s : max(0, p − n_win + 1) ≤ s ≤ p} and, on compressed layers
//   (ratio m > 0), compressed entries j with (j + 1)·m ≤ p + 1 — HCA (m = 128): all of them; CSA (m = 4):
//   the indexer's top-k of them (below)
//   p    = softmax over the keys of (q_h · k) / sqrt(d_h), with one extra logit sink_h in the
//          denominator only (the sink has no value):  p_s = e^{l_s} / (Σ e^{l} + e^{sink_h})
//   o_h  = Σ_s p_s kv_s, then the inverse RoPE (angle −p·θ) on its trailing d_r dims
//   output = W_ob · concat_g( W_oa,g · o_[g] )     o_[g] = the H/G heads of group g, [H·d_h/G];
//            W_oa [G·R, H·d_h/G] holds the G blocks (rows g·R .. g·R+R−1), W_ob [d, G·R]
//
// The compressor (ratio m, head size d_c; overlap when m = 4, official Compressor):
//   a = x W_ckv^T, z = x W_cgate^T + ape[p mod m]      [T, c·d_c], c = 2 with overlap, else 1
//   entry i pools tokens im .. im+m−1 per dimension with softmax weights over the pooled slots:
//     no overlap:  C_i = Σ_{r<m} softmax_r(z_{im+r}) a_{im+r}
//     overlap:     2m slots, the first m are group i−1's FIRST d_c dims (a[:, :d_c], z[:, :d_c]; for i = 0
//                  they are absent: a = 0, z = −inf), the last m are group i's SECOND d_c dims
//   C_i = RMSNorm(C_i; compressor.norm), then RoPE on its trailing d_r dims at position i·m.
//   An entry exists once its group is complete. The state between steps is the official kv_state /
//   score_state: the rows of the incomplete group and (overlap) the last complete group's rows.
//
// The CSA indexer (official Indexer, the lightning indexer of DeepSeek-V3.2 over compressed keys):
//   q_I  = (c W_qb^I^T)_h, RoPE on its trailing d_r dims (the layer's frequencies)    [T, n_I, d_I]
//   K_I  = the indexer's own overlapping compressor (m = 4, d_c = d_I) over x           [n_c, d_I]
//   w    = x W_w^T · d_I^-1/2 · n_I^-1/2                                                [T, n_I]
//   I[t, j] = Σ_h w[t, h] · ReLU(q_I[t, h] · K_I[j]),  j < (p + 1) / m
//   selected = the min(index_topk, (p + 1)/m) visible entries of largest I (ties: lower j), padded with −1
// The official code rotates q_I and K_I by a Hadamard matrix and fake-quantizes them to FP4; the rotation
// is orthonormal, so without the FP4 step it cancels in q_I · K_I, and dsref does neither (ref/README.md).
//
// --compat hf (V4AttnDims::rope_scale = a ≠ 1): transformers multiplies the compressed layers' cos/sin by its
// YaRN attention_factor a, so every rotation above — q_h, kv, the inverse rotation of o_h, the compressed
// entries, q_I and K_I — also scales its d_r rope dims by a (the official code has a = 1).
//
// Precision: float32 storage, linear_forward products; softmax, pooling and indexer dot products in
// double. The official code fake-quantizes the window KV's non-rope dims to FP8 (64-wide blocks) and runs
// in bf16; dsref does neither (a pinned choice, ref/README.md).
// Shapes: T new tokens at positions pos0 .. pos0+T−1, d hidden, H heads, d_h head_dim, d_r rope dims,
// G o_groups, R o_lora_rank, n_I / d_I index heads / head size, n_c compressed entries.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace dsref {

struct V4AttnDims {
    int64_t d = 0, H = 0, d_h = 0, d_r = 0, q_lora = 0, G = 0, R = 0;
    int64_t window = 0;         // sliding_window
    int64_t ratio = 0;          // compress ratio m: 0 (window only), 4 (CSA), 128 (HCA)
    int64_t n_I = 0, d_I = 0;   // index_n_heads, index_head_dim (CSA)
    int64_t topk = 0;           // index_topk (CSA)
    double eps = 1e-6;          // rms_norm_eps
    double rope_scale = 1.0;    // cos/sin multiplier a (1: official; --compat hf: transformers' attention_factor)
};

// One compressor's weights. c = 2 when m = 4 (overlap), else 1; d_c = d_h (attention) or d_I (indexer).
struct V4CompressorWeights {
    const float* wkv = nullptr;    // [c·d_c, d]
    const float* wgate = nullptr;  // [c·d_c, d]
    const float* ape = nullptr;    // [m, c·d_c]
    const float* norm = nullptr;   // [d_c]
};

struct V4AttnWeights {
    const float* wq_a = nullptr;     // [q_lora, d]
    const float* q_norm = nullptr;   // [q_lora]
    const float* wq_b = nullptr;     // [H·d_h, q_lora]
    const float* wkv = nullptr;      // [d_h, d]
    const float* kv_norm = nullptr;  // [d_h]
    const float* wo_a = nullptr;     // [G·R, H·d_h/G]
    const float* wo_b = nullptr;     // [d, G·R]
    const float* sink = nullptr;     // [H]
    // compressor (ratio > 0)
    const float* c_wkv = nullptr;    // [c·d_h, d]
    const float* c_wgate = nullptr;  // [c·d_h, d]
    const float* c_ape = nullptr;    // [m, c·d_h]
    const float* c_norm = nullptr;   // [d_h]
    // indexer (ratio 4)
    const float* i_wq_b = nullptr;          // [n_I·d_I, q_lora]
    const float* i_weights_proj = nullptr;  // [n_I, d]
    V4CompressorWeights i_comp;             // the indexer's compressor, d_c = d_I, c = 2
};

// The official Compressor's kv_state / score_state between steps.
struct V4CompressorState {
    std::vector<float> prev_a, prev_z;  // [m, c·d_c] the last complete group's rows (overlap); empty: none
    std::vector<float> cur_a, cur_z;    // [r, c·d_c] the incomplete group's rows, r < m (z includes ape)
};

// One layer's cache: everything a later step needs.
struct V4LayerCache {
    int64_t len = 0;                 // tokens seen
    std::vector<float> kv;           // [min(len, window), d_h] the window keys of positions len−rows .. len−1
    std::vector<float> ckv;          // [n_c, d_h] compressed entries
    V4CompressorState comp;
    std::vector<float> index_k;      // [n_c, d_I] the indexer's compressed keys (CSA)
    V4CompressorState index_comp;
    size_t bytes() const;
};

struct V4AttnOut {
    std::vector<float> out;            // [T, d]
    std::vector<float> window_attn;    // [T, H, d_h] o before the inverse RoPE
    std::vector<float> compressed_kv;  // [n_c, d_h] every entry so far (empty when ratio = 0)
    int64_t kk = 0;                    // CSA: min(index_topk, (pos0 + T)/m)
    std::vector<int32_t> index_topk;   // [T, kk] selected entries, best first, −1 = none (CSA)
    std::vector<float> index_scores;   // [T, n_c] I[t, j], −inf where not visible (CSA)
    std::vector<float> index_margin;   // [T] I of the kk-th − I of the next visible entry (+inf: none left)
};

// inv_freq: [d_r/2] the layer's RoPE frequencies (window-only layers: rope_theta, no YaRN; compressed
// layers: compress_rope_theta with YaRN — the caller picks them, as the official Attention.__init__ does).
// One step over T new tokens; `cache` holds the earlier ones and is updated.
V4AttnOut v4_attention_step(const float* x, int64_t T, const V4AttnDims& dims, const V4AttnWeights& w,
                            const std::vector<double>& inv_freq, V4LayerCache& cache);

// A prefill at positions 0..T−1 with a fresh cache.
V4AttnOut v4_attention_forward(const float* x, int64_t T, const V4AttnDims& dims, const V4AttnWeights& w,
                               const std::vector<double>& inv_freq);

// One compressor step: appends the entries the T new tokens complete to `entries` [n_c, d_c].
// x: [T, d] at positions pos0.. · m ratio · d_c head size · d_r rope dims · rope_scale: the cos/sin multiplier.
void v4_compressor_step(std::vector<float>& entries, V4CompressorState& st, const float* x, int64_t T, int64_t pos0,
                        int64_t d, int64_t m, int64_t d_c, int64_t d_r, const V4CompressorWeights& w, double eps,
                        const std::vector<double>& inv_freq, double rope_scale = 1.0);

// The attention's compressor alone over a prefill. x: [T, d] · returns [⌊T/m⌋, d_h]
std::vector<float> v4_compress(const float* x, int64_t T, const V4AttnDims& dims, const V4AttnWeights& w,
                               const std::vector<double>& inv_freq);

// Attention with a sink over an explicit key set (official kernel.py sparse_attn).
// o: [T, H, d_h] out · q: [T, H, d_h] · kv: [S, d_h] · idx: [T, n_idx] key rows, −1 = none · sink: [H]
void v4_sink_attention(float* o, const float* q, const float* kv, const int64_t* idx, int64_t T, int64_t H,
                       int64_t d_h, int64_t n_idx, const float* sink, double scale);

}  // namespace dsref
