// v4_model.h — the whole DeepSeek-V4 model: embedding → hc_mult residual streams → decoder blocks (mHC around
// the attention of the layer's type and around the MoE) → hc_head → norm → head; plus the MTP block
// (DeepSeek-V4 technical report §2; official DeepSeek-V4 inference/model.py Transformer.forward,
// Block.forward, MoE.forward, ParallelHead, MTPBlock.forward).
//
//   h⁰_t = [E[t_t]] × n                                    [T, n, d]   (n = hc_mult identical streams)
//   block i:  y, pre, post, C = hc_pre(h; hc_attn_*)       (core/hyper_connection.h)
//             a = Attn_i(RMSNorm(y; attn_norm))            (model/v4_attention.h: window / CSA / HCA by
//                                                          compress_ratios[i])
//             h = hc_post(a, h, post, C)
//             y, pre, post, C = hc_pre(h; hc_ffn_*)
//             f = MoE_i(RMSNorm(y; ffn_norm), token ids)   routed (sqrtsoftplus + selection bias, or hash
//                                                          tid2eid on the first num_hash_layers) + 1 shared
//             h = hc_post(f, h, post, C)
//   logits  = head · RMSNorm(hc_head(h; hc_head_*); norm)  [T, V]
//   MoE_i(x) = Σ_k g_k · E_{idx_k}(x) + S(x),  E(x) = w2 · (silu(min(w1 x, L)) ⊙ clamp(w3 x, −L, L)),
//              L = swiglu_limit (moe/moe_gate.h for g and idx; core/swiglu.h for the clamp); the official
//              Expert scales the activation, w2 · (g_k · act); --compat hf scales the output, g_k · (w2 · act)
//   MTP k (row r < T−1 predicts t_{r+2}): x_r = e_proj · enorm(E[t_{r+1}]) + h_proj · hnorm(h^L_r) per stream,
//              block L+k over x at positions 0..T−2 with token ids t_1.., then mtp.k's hc_head_*, norm and the
//              main head (official MTPBlock.forward; the caller shifts the ids, as the V3 MTP does).
//
// Weights are read as float32 from the official layout (io/checkpoint_layout_v4.h) and kept: this runs tiny
// and cut checkpoints, not the 284B one in 2 GB. The layout transformers 5 saves (save_pretrained) is read too,
// detected by `model.embed_tokens.weight`: the official names under `model.`, except embed →
// model.embed_tokens.weight, norm → model.norm.weight, hc_head_{fn,base,scale} → model.hc_head.hc_{fn,base,scale},
// head.weight unprefixed, and each attention's kv_norm saved as `attn.norm.weight` (its reverse renaming
// maps every `.kv_norm.` to `.norm.`); gate.tid2eid is I64 there. It has no MTP block.
// Quantized weights as the hub checkpoints store them (by the stored dtype): F8_E4M3 [out, in] with `.scale`
// [⌈out/128⌉, ⌈in/128⌉] (F8_E8M0 or float), W = e4m3 · scale per 128×128 block; routed experts FP4, I8
// [out, in/2] (two E2M1 codes per byte) with `.scale` F8_E8M0 [out, in/32] (fp8/fp4_dequant.h). Dequantized to
// float32 once (weight-only: activations are not quantized, unlike the official fp8_gemm / fp4_gemm). Cached decode: V4Cache holds each layer's window rows,
// compressed entries and compressor states; forward(tokens at positions cache.len..) continues it.
// V4Compat::Hf follows transformers' DeepseekV4ForCausalLM where it differs from the official code: routing
// weights / (sum + 1e-20), each routed expert's output (not its activation) times its weight, the compressed
// layers' cos/sin times V4Config::compress_rope_scale, swiglu_limit 0 clamping to 0, and no MTP block.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/trace.h"
#include "io/checkpoint_layout_v4.h"
#include "io/config_v4.h"
#include "io/safetensors.h"
#include "io/weights.h"
#include "model/v4_attention.h"

namespace dsref {

struct V4Cache {
    int64_t len = 0;
    std::vector<V4LayerCache> layers;  // [L]
    size_t bytes() const;
};

class V4Model {
public:
    // reads config.json, checks every tensor's name and shape; compat: the reference followed where the
    // official code and transformers differ (io/config_v4.h, `dsref forward --help`)
    explicit V4Model(const std::string& dir, V4Compat compat = V4Compat::Official);
    const V4Config& config() const { return cfg_; }

    // Logits [T, V] for tokens at positions cache.len .. cache.len + T − 1; advances the cache.
    // hidden (optional): the final streams [T, n, d] before hc_head (the MTP block's input).
    // Offers to `trace`, per layer i: attn.{i} [T, d], hidden.{i} [T, n, d], hc_pre.{i} / hc_post.{i} [T, n],
    // hc_comb.{i} [T, n, n] (the attention sub-layer's mixes; hc_ffn_pre/post/comb.{i} the MoE's),
    // window_attn.{i} [T, H, d_h], compressed_kv.{i} [n_c, d_h], index_topk.{i} I32 [T, kk],
    // index_scores.{i} [T, n_c], index_margin.{i} [T], topk_idx.{i} I32 [T, K], topk_weight.{i} [T, K].
    std::vector<float> forward(const std::vector<int32_t>& tokens, V4Cache& cache, Trace* trace = nullptr,
                               std::vector<float>* hidden = nullptr);

    // MTP block k: logits [T−1, V] from the final streams hidden [T, n, d] and the tokens (T ≥ 2).
    // Its intermediates go to `trace` under i = L + k.
    std::vector<float> mtp_forward(const std::vector<float>& hidden, const std::vector<int32_t>& tokens,
                                   int64_t k = 0, Trace* trace = nullptr);

private:
    const std::vector<float>& w(const std::string& name);  // a float tensor of the layout, as float32
    std::string stored(const std::string& official) const;  // the name in this checkpoint's layout
    void check_weight(const V4Spec& s) const;                // s.w.name stored; FP8 / FP4 with their `.scale`
    std::vector<float> load_weight(const std::string& official, const Shape& shape) const;
    const std::vector<int32_t>& table(const std::string& name);
    // one block on the streams h [T, n, d] in place; ids: [T] the tokens (hash routing)
    void block(int64_t i, std::vector<float>& h, int64_t T, const std::vector<int32_t>& ids, V4LayerCache& cache,
               Trace* trace);
    std::vector<float> head(const std::vector<float>& h, int64_t T, const std::string& prefix);

    V4Config cfg_;
    Checkpoint ckpt_;
    WeightLoader loader_;
    bool hf_layout_ = false;
    std::map<std::string, Shape> shapes_;
    std::map<std::string, std::vector<float>> weights_;
    std::map<std::string, std::vector<int32_t>> tables_;
    std::vector<double> inv_window_, inv_compress_;  // [d_r/2] RoPE frequencies of the two layer kinds
};

}  // namespace dsref

#include "model/generate.h"

namespace dsref {

// Cached generation on a V4 model (as model/generate.h): a prefill of the prompt, then one decode step per
// new token through V4Cache.
GenerateResult v4_generate(V4Model& model, const std::vector<int32_t>& prompt, int64_t max_new, const SamplingParams& sp,
                           bool stop_at_eos);

}  // namespace dsref
