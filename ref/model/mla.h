// mla.h — Multi-head Latent Attention as DeepSeek-V2/V3 define it (V2 report §2.1, eqs 9–19, and
// App. C; V3 report §2.1.1, eqs 1–11; DeepSeek-V3 inference/model.py MLA; transformers
// modeling_deepseek_v3.py DeepseekV3Attention), with the decoupled RoPE (V2 report §2.1.3; the pairing
// is pinned in core/rope.h) and YaRN (V2 report §3.1.4, V3 report §4.3; core/rope.h).
//
// Dimension letters: T new tokens, S cached + new tokens, d hidden, H heads, d_q = q_lora_rank
// (0 = no query compression), d_c = kv_lora_rank, d_n = qk_nope_head_dim, d_r = qk_rope_head_dim,
// d_v = v_head_dim, d_k = d_n + d_r (the query/key head size of the softmax).
//
//   c_q   = RMSNorm(W_qa x; q_a_layernorm)   q = W_qb c_q              (d_q > 0)
//   q     = W_q x                                                      (d_q = 0, V2-Lite)
//   q[h]  = [q_nope[h] (d_n) | q_pe[h] (d_r)],  q_pe ← RoPE(q_pe, p)      rows per head: nope first
//   [c_kv | k_pe] = W_kva x                   c = RMSNorm(c_kv; kv_a_layernorm),  k_pe ← RoPE(k_pe, p)
//   [k_nope[h] | v[h]] = W_kvb[h] c           W_kvb rows per head: [W_UK[h] (d_n) | W_UV[h] (d_v)]
//   score[h](t, s) = scale · (q_nope[h](t)·k_nope[h](s) + q_pe[h](t)·k_pe(s)),  s ≤ t
//   out = W_o · concat_h Σ_s softmax_s(score[h](t, ·)) v[h](s)
//
// RoPE pairs adjacent dims (2j, 2j+1) of the checkpoint layout and uses the YaRN frequencies;
// k_pe is one vector shared by all heads. scale = d_k^-1/2 · mscale(factor, mscale_all_dim)² under
// YaRN, d_k^-1/2 with plain RoPE (official MLA.__init__; never 576^-1/2 in the absorbed path, where the
// official code keeps the same softmax_scale). Like the official code, cos/sin are never multiplied by
// a YaRN factor (HF's get_mscale(mscale)/get_mscale(mscale_all_dim) ratio, 1.0 for every released
// config; io/config.cpp refuses a config where it is not).
//
// Two paths compute the same attention (official MLA.forward, attn_impl "naive" and "absorb"; the
// absorption is V2 report §2.1.2's "W_UK can be absorbed into W_Q, and W_UV into W_O"):
//   naive   decompresses per-head K = [k_nope | k_pe] and V and caches them:
//           H·(d_n + d_r) + H·d_v values per token per layer;
//   absorb  caches only c (d_c) and k_pe after RoPE (d_r) — d_c + d_r values — folds W_UK into the
//           query, q̃[h] = W_UK[h]ᵀ q_nope[h] (d_c), attends in latent space, õ[h] = Σ_s P c(s), and
//           applies W_UV[h] after the attention: o[h] = W_UV[h] õ[h]. This is MQA with one shared
//           576-dim key [c | k_pe] and one shared 512-dim value c (for the real d_c = 512, d_r = 64).
//           What absorb fixes is the cache; the order of the products is chosen by cost
//           (mla_absorb_decompresses): a step with many new queries, a prefill, decompresses the cached
//           latents and attends per head as naive does (fewer multiply-adds: 2·d_c + d_r = 1088 per
//           query-key pair against d_n + d_r + d_v = 320 for V3), a decode step attends in latent space.
//           Inference engines do the same (MHA for prefill, MQA over the latent for decode).
//
// Pinned choice: the norms inside MLA (q_a_layernorm, kv_a_layernorm) use eps 1e-6 whatever the
// config's rms_norm_eps says, as HF and the official code do (transformers DeepseekV3Attention builds
// them as DeepseekV3RMSNorm(q_lora_rank / kv_lora_rank) with the class default eps 1e-6; official
// MLA.__init__ uses RMSNorm's default eps = 1e-6); the model does the same (kMlaLatentNormEps). Every
// released config has rms_norm_eps = 1e-6, so the two readings differ only on made-up configs.
//
// Threads: every product is a fixed tile or a fixed per-head unit, so results are bit-identical at
// any thread count (as in linear.h).
//
// Precision emulation (model/precision.h): with an emulation mode the layer follows the reference's own
// structure and rounding points instead (model/mla_emulated.cpp): transformers' DeepseekV3Attention
// (decompressed per-head K and V, eager attention) for hf-bf16, the official MLA.forward with
// attn_impl="absorb" for official-bf16 / official-fp8, whatever `path` says.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "model/blocks.h"
#include "model/dsa_indexer.h"
#include "io/config.h"
#include "core/trace.h"
#include "io/weights.h"

namespace dsref {

constexpr double kMlaLatentNormEps = 1e-6;

struct MlaDims {
    int64_t d = 0;    // hidden size
    int64_t H = 0;    // heads
    int64_t d_q = 0;  // q_lora_rank; 0 = no query compression (q_proj)
    int64_t d_c = 0;  // kv_lora_rank
    int64_t d_n = 0;  // qk_nope_head_dim
    int64_t d_r = 0;  // qk_rope_head_dim (even)
    int64_t d_v = 0;  // v_head_dim
    double latent_eps = kMlaLatentNormEps;  // eps of q_a_layernorm and kv_a_layernorm
    double rope_theta = 10000.0;
    RopeScaling rope_scaling;  // "none" or "yarn"
    int64_t d_k() const { return d_n + d_r; }
};
MlaDims mla_dims(const ModelConfig& c);

// One layer's attention weights, HF layout [out, in], float32.
struct MlaWeights {
    std::vector<float> q_a;        // q_a_proj            [d_q, d]            (d_q > 0)
    std::vector<float> q_a_norm;   // q_a_layernorm       [d_q]               (d_q > 0)
    std::vector<float> q_b;        // q_b_proj            [H·d_k, d_q]        (d_q > 0)
    std::vector<float> q;          // q_proj              [H·d_k, d]          (d_q = 0)
    std::vector<float> kv_a;       // kv_a_proj_with_mqa  [d_c + d_r, d]
    std::vector<float> kv_a_norm;  // kv_a_layernorm      [d_c]
    std::vector<float> kv_b;       // kv_b_proj           [H·(d_n + d_v), d_c]
    std::vector<float> o;          // o_proj              [d, H·d_v]
};

// official-fp8: the stored E4M3 codes of the projections that act_quant + fp8_gemm multiply (kv_b_proj
// is dequantized to bf16 for the absorbed einsums, as the official MLA.forward does).
struct MlaFp8Weights {
    Fp8Weight q_a, q_b, q, kv_a, o;
};

// The softmax scale of MLA for these dims (official MLA.__init__): d_k^-1/2, times mscale² under YaRN.
double mla_softmax_scale(const MlaDims& m);

// Values one token adds to a layer's cache on each path (LayerCache a + b, see blocks.h).
int64_t mla_cache_values_per_token(const MlaDims& m, MlaPath path);

class MlaLayer {
public:
    // Checks that every weight has its size. `prec`: the rounding points to reproduce (default float32),
    // with the weights already as that reference holds them (PrecisionPolicy::load).
    // `indexer` (DeepSeek Sparse Attention, V3.2; model/dsa_indexer.h): each query then attends only to
    // the positions the indexer selects for it, on both paths (official MLA.forward adds the index mask
    // to every head's scores); the indexer's keys are cached in LayerCache::index_k.
    MlaLayer(const MlaDims& dims, MlaWeights w, const PrecisionPolicy& prec = PrecisionPolicy(),
             MlaFp8Weights fp8 = MlaFp8Weights(), std::optional<DsaIndexer> indexer = std::nullopt);
    const MlaDims& dims() const { return m_; }
    double softmax_scale() const { return scale_; }

    // out: [T, d] · x: [T, d] normalized input, tokens at positions pos0..pos0+T-1, where pos0 is the
    // number of tokens already in `cache` (filled by the same path). Appends this step to `cache`:
    //   naive:  a = K [S, H, d_k], b = V [S, H, d_v]      absorb: a = c [S, d_c], b = k_pe [S, d_r]
    // Offers to `trace` (name.{layer}): q_nope [T, H, d_n], q_pe [T, H, d_r] (after RoPE),
    // kv_latent [T, d_c] (after kv_a_layernorm), k_pe [T, d_r] (after RoPE).
    void forward(MlaPath path, float* out, const float* x, int64_t T, int64_t pos0, LayerCache& cache,
                 Trace* trace, int64_t layer) const;

private:
    MlaDims m_;
    MlaWeights w_;
    std::vector<double> inv_freq_;  // [d_r/2], YaRN-blended when rope_scaling is yarn
    double scale_;
    PrecisionPolicy prec_;
    MlaFp8Weights fp8_;
    std::optional<DsaIndexer> indexer_;

    // The emulated references (model/mla_emulated.cpp); same arguments as forward.
    void forward_emulated(float* out, const float* x, int64_t T, int64_t pos0, LayerCache& cache, Trace* trace,
                          int64_t layer) const;
    void attend_hf(float* o, const float* q, const float* latent, const float* k_pe, int64_t T, int64_t pos0,
                   LayerCache& cache) const;
    void attend_official(float* o, const float* q, const float* latent, const float* k_pe, int64_t T, int64_t pos0,
                         LayerCache& cache) const;

    // keep: null, or the indexer's [T, pos0 + T] selection flags
    void attend_naive(float* o, const float* q, const float* latent, const float* k_pe, int64_t T, int64_t pos0,
                      LayerCache& cache, const uint8_t* keep) const;
    void attend_absorbed(float* o, const float* q, const float* latent, const float* k_pe, int64_t T, int64_t pos0,
                         LayerCache& cache, const uint8_t* keep) const;
    // The absorb path's attention in the naive product order, from the latent cache (c, k_pe: [pos0 + T, ·])
    void attend_decompressed(float* o, const float* q, const float* c, const float* k_pe, int64_t T, int64_t pos0,
                             const uint8_t* keep) const;
};

// The absorb path's product order: true when decompressing the cached latents into per-head K and V
// (S·H·d_c·(d_n + d_v) multiply-adds) and attending per head (d_n + d_r + d_v per query-key pair) costs
// fewer multiply-adds than the absorbed order (T·H·d_c·(d_n + d_v) for q̃ and W_UV, 2·d_c + d_r per pair).
// A prefill (many new queries) decompresses, a decode step (T = 1) stays absorbed. Either way the cache
// holds the latent only; the order changes rounding only (a test bounds it), never the math.
bool mla_absorb_decompresses(const MlaDims& m, int64_t T, int64_t pos0);

// One layer's MLA weights under `prefix` (attn_prefix(i), or "" for op inputs), names and shapes from
// io/checkpoint_layout.h's mla_tensors.
MlaWeights load_mla_weights(const ModelConfig& c, const WeightLoader& w, const std::string& prefix);

// The MLA block of a decoder layer (weights under `prefix`), on the given path (declared in blocks.h).

}  // namespace dsref
