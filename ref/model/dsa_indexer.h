// dsa_indexer.h — the lightning indexer of DeepSeek Sparse Attention (DeepSeek-V3.2 paper §2.1, eq. 1;
// DeepSeek-V3.2-Exp inference/model.py Indexer.forward, with the half-split RoPE of its fixed version;
// transformers modeling_deepseek_v32.py DeepseekV32Indexer).
//
// Dimension letters: T new tokens, S cached + new tokens, d hidden, d_q = q_lora_rank, n_I index heads,
// d_I index head size, d_r = qk_rope_head_dim (≤ d_I), k = index_topk.
//
//   q_I[t, h] = (W_qb^I qr[t])[h]   [T, n_I, d_I], per head [rope (d_r) | nope]   (rope FIRST, unlike MLA)
//   k_I[s]    = LayerNorm(W_k^I x[s]; k_norm weight, bias, eps 1e-6)   [S, d_I], one key for all heads
//   RoPE on q_I[t, h][0:d_r] and k_I[s][0:d_r], MLA's (YaRN) frequencies, HALF-SPLIT pairs (j, j + d_r/2)
//                     (MLA itself pairs adjacent dims; the first V3.2-Exp release had this wrong)
//   w[t, h]   = (W_w x[t])[h] · n_I^-1/2                                  [T, n_I]
//   I[t, s]   = Σ_h w[t, h] · ReLU(q_I[t, h] · k_I[s]) · d_I^-1/2,  s ≤ pos(t)   (−inf for s > pos(t))
//   topk[t]   = the min(k, pos(t) + 1) positions s ≤ pos(t) of largest I[t, s]
//
// qr = q_a_layernorm(q_a_proj x) is MLA's compressed query (model/mla.h), shared with the indexer.
//
// Pinned choices: top-k is sorted by score, ties to the LOWER position (torch.topk leaves the order of
// equal values unspecified); index_margin[t] = I of the k-th − I of the (k+1)-th candidate (+inf when
// every visible position is selected) shows how close a selection is to a tie.
//
// Modes (ForwardOptions::indexer, `forward --indexer`):
//   exact  the math above in float32 (products) with the head sum in double: what transformers computes
//          (it skips the rotation and the FP8 steps);
//   fp8    the official deployment path's rounding points: (1) q_I and k_I rotated by the orthonormal
//          Walsh–Hadamard transform (core/hadamard.h, official rotate_activation), (2) each rotated
//          vector quantized to E4M3 in 1×128 groups (fp8/fp8_quant.h fp8_quant_act, official act_quant,
//          the checkpoint's scale_fmt), (3) the key cache holds the quantized keys (one fp32 scale per
//          128 values), (4) scores from the dequantized values, fp32 products, double head sum (official
//          fp8_index: k_scale · Σ_h w·q_scale·ReLU(q8·k8), which is the same value up to rounding).
//          The rotation preserves dot products, so fp8 differs from exact only by the quantization.
//          Needs d_I a power of two.
//
// Cost: the scores are O(T·S·n_I·d_I) multiply-adds, computed for every visible pair (like the official
// dense emulation); the point of DSA is that the main attention then reads k positions, not S.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/rope.h"
#include "core/trace.h"
#include "fp8/fp8_quant.h"
#include "io/config.h"
#include "io/weights.h"
#include "model/blocks.h"

namespace dsref {

constexpr double kIndexerKNormEps = 1e-6;  // official LayerNorm default; transformers nn.LayerNorm(eps=1e-6)

// IndexerMode (exact | fp8) is declared in model/blocks.h, with the other forward options.

struct IndexerDims {
    int64_t d = 0, d_q = 0, n_I = 0, d_I = 0, d_r = 0, k = 0;
    double rope_theta = 10000.0;
    RopeScaling rope_scaling;
    Fp8ScaleFmt scale_fmt = Fp8ScaleFmt::Fp32;  // fp8 mode: act_quant's scale format
};
IndexerDims indexer_dims(const ModelConfig& c);

// One layer's indexer weights, HF layout [out, in], float32.
struct IndexerWeights {
    std::vector<float> wq_b;          // indexer.wq_b          [n_I·d_I, d_q]
    std::vector<float> wk;            // indexer.wk            [d_I, d]
    std::vector<float> k_norm;        // indexer.k_norm.weight [d_I]
    std::vector<float> k_norm_bias;   // indexer.k_norm.bias   [d_I]
    std::vector<float> weights_proj;  // indexer.weights_proj  [n_I, d]
};
// Under `prefix` (attn_prefix(i), or "" for op inputs): names and shapes from io/checkpoint_layout.h.
IndexerWeights load_indexer_weights(const ModelConfig& c, const WeightLoader& w, const std::string& prefix);

// What one step selects. S = pos0 + T, kk = min(k, S).
struct IndexerSelection {
    int64_t S = 0, kk = 0;
    std::vector<int32_t> topk;  // [T, kk] positions, best first, −1 where fewer than kk are visible
    std::vector<float> scores;  // [T, S] I[t, s], −inf for s > pos0 + t
    std::vector<float> margin;  // [T]
};

// The selection step alone, on given scores: queries at positions pos0 .. pos0 + T − 1.
// scores: [T, S] (entries above pos0 + t are ignored) · fills sel.topk, sel.margin (sel.scores untouched).
void dsa_select_topk(IndexerSelection& sel, const float* scores, int64_t T, int64_t S, int64_t pos0, int64_t k);

class DsaIndexer {
public:
    DsaIndexer(const IndexerDims& dims, IndexerWeights w, IndexerMode mode = IndexerMode::Exact);
    const IndexerDims& dims() const { return m_; }

    // x: [T, d] the attention block's (normalized) input · qr: [T, d_q] MLA's compressed query ·
    // k_cache: [pos0, d_I] the keys of earlier steps, grows to [pos0 + T, d_I].
    // Offers to `trace` (name.{layer}): index_q [T, n_I, d_I] and index_k [T, d_I] (after RoPE; after the
    // rotation and the FP8 round trip in fp8 mode), index_weights [T, n_I] (w), index_scores [T, S],
    // index_topk I32 [T, kk], index_margin [T].
    IndexerSelection forward(const float* x, const float* qr, int64_t T, int64_t pos0, std::vector<float>& k_cache,
                             Trace* trace, int64_t layer) const;

private:
    IndexerDims m_;
    IndexerWeights w_;
    IndexerMode mode_;
    std::vector<double> inv_freq_;  // [d_r/2], MLA's (YaRN) frequencies
};

}  // namespace dsref
