// v4_attention.h — DeepSeek-V4's attention block for one layer, prefill at positions 0..T−1
// (DeepSeek-V4 technical report §2.3; official DeepSeek-V4 inference/model.py Attention.forward,
// Compressor.forward, get_window_topk_idxs, get_compress_topk_idxs; inference/kernel.py sparse_attn).
// Plain arrays in, plain arrays out: the caller (config, checkpoint) supplies the weights.
//
// Shared-KV multi-query attention: H query heads, ONE key/value head of d_h dims that is both K and V.
//   c    = RMSNorm(x W_qa^T; q_norm)                                     [T, q_lora]
//   q_h  = RMS(c W_qb^T)_h  (per head, no weight: q_h / sqrt(mean(q_h²) + eps))   [T, H, d_h]
//   kv   = RMSNorm(x W_kv^T; kv_norm)                                     [T, d_h]
//   RoPE (interleaved pairs) on the TRAILING d_r dims of q_h and kv, at the token's position
//   keys of query t: the window {s : max(0, t − n_win + 1) ≤ s ≤ t} and, on compressed layers
//   (ratio m > 0), the compressed entries j with (j + 1)·m ≤ t + 1 (HCA: all of them; CSA: the indexer's
//   top-k of them — not modelled here yet)
//   p    = softmax over the keys of (q_h · k) / sqrt(d_h), with one extra logit sink_h in the
//          denominator only (the sink has no value):  p_s = e^{l_s} / (Σ e^{l} + e^{sink_h})
//   o_h  = Σ_s p_s kv_s, then the inverse RoPE (angle −p·θ) on its trailing d_r dims
//   output = W_ob · concat_g( W_oa,g · o_[g] )     o_[g] = the H/G heads of group g, [H·d_h/G];
//            W_oa [G·R, H·d_h/G] holds the G blocks (rows g·R .. g·R+R−1), W_ob [d, G·R]
//
// The compressor (ratio m; overlap when m = 4, official Compressor):
//   a = x W_ckv^T, z = x W_cgate^T        [T, c·d_h], c = 2 with overlap, else 1;  z += ape[t mod m]
//   entry i pools tokens im .. im+m−1 per dimension with softmax weights over the pooled slots:
//     no overlap:  C_i = Σ_{r<m} softmax_r(z_{im+r}) a_{im+r}
//     overlap:     2m slots, the first m are group i−1's FIRST d_h dims (a[:, :d_h], z[:, :d_h]; for i = 0
//                  they are absent: a = 0, z = −inf), the last m are group i's SECOND d_h dims
//   C_i = RMSNorm(C_i; compressor.norm), then RoPE on its trailing d_r dims at position i·m.
//   Only the ⌊T/m⌋ complete groups make entries.
//
// Precision: float32 storage, linear_forward products, softmax and pooling sums in double. The official
// code fake-quantizes the window KV's non-rope dims to FP8 (64-wide blocks) and runs in bf16; dsref does
// neither (a pinned choice, ref/README.md).
// Shapes: T tokens, d hidden, H heads, d_h head_dim, d_r rope dims, G o_groups, R o_lora_rank.
#pragma once
#include <cstdint>
#include <vector>

namespace dsref {

struct V4AttnDims {
    int64_t d = 0, H = 0, d_h = 0, d_r = 0, q_lora = 0, G = 0, R = 0;
    int64_t window = 0;         // sliding_window
    int64_t ratio = 0;          // compress ratio m: 0 (window only), 4 (CSA), 128 (HCA)
    double eps = 1e-6;          // rms_norm_eps
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
};

struct V4AttnOut {
    std::vector<float> out;            // [T, d]
    std::vector<float> window_attn;    // [T, H, d_h] o before the inverse RoPE
    std::vector<float> compressed_kv;  // [⌊T/m⌋, d_h] (empty when ratio = 0)
};

// inv_freq: [d_r/2] the layer's RoPE frequencies (window-only layers: rope_theta, no YaRN; compressed
// layers: compress_rope_theta with YaRN — the caller picks them, as the official Attention.__init__ does).
// ratio = 4 (CSA) needs the indexer and is refused here; any other ratio m > 0 attends every complete
// compressed entry (HCA semantics; the real configs use m = 128, the config reader refuses other values).
V4AttnOut v4_attention_forward(const float* x, int64_t T, const V4AttnDims& dims, const V4AttnWeights& w,
                               const std::vector<double>& inv_freq);

// The compressor alone. x: [T, d] · returns [⌊T/m⌋, d_h]
std::vector<float> v4_compress(const float* x, int64_t T, const V4AttnDims& dims, const V4AttnWeights& w,
                               const std::vector<double>& inv_freq);

// Attention with a sink over an explicit key set (official kernel.py sparse_attn).
// o: [T, H, d_h] out · q: [T, H, d_h] · kv: [S, d_h] · idx: [T, n_idx] key rows, −1 = none · sink: [H]
void v4_sink_attention(float* o, const float* q, const float* kv, const int64_t* idx, int64_t T, int64_t H,
                       int64_t d_h, int64_t n_idx, const float* sink, double scale);

}  // namespace dsref
