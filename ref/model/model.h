// model.h — the whole decoder-only model: embedding, L decoder layers, final norm and lm_head
// (spec 2.1; DeepSeek LLM = HF Llama layout, DeepSeek-V2/V3 = MLA + DeepSeekMoE).
//
//   h = E[token]                                  no √d scaling
//   for l in 0..L-1:
//       h = h + Attention_l(RMSNorm(h))           named "attn.{l}" (before the residual add)
//       h = h + FeedForward_l(RMSNorm(h))         the stream after the layer is "hidden.{l}"
//   logits = lm_head · RMSNorm(h)                 lm_head = E when tie_word_embeddings
//
// FeedForward_l is DeepSeekMoE (moe.h) for the layers `is_moe_layer(l)` picks (l ≥ first_k_dense_replace
// and l % moe_layer_freq == 0), the dense SwiGLU otherwise.
//
// Multi-token prediction (V3, spec 6) is a separate, optional pass (`mtp_forward`) over the MTP module
// stored as decoder layer L = num_hidden_layers. It is never read by `forward`.
//
// Weights stay in the mapped checkpoint and become float32 one layer at a time (peak memory ≈ one
// layer), unless `keep_weights` holds them all, which generation wants.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "model/blocks.h"
#include "io/config.h"
#include "io/safetensors.h"
#include "core/trace.h"
#include "io/weights.h"

namespace dsref {

struct ModelOptions {
    ForwardOptions fwd;
    bool keep_weights = false;  // load every layer once and keep it (generation)
    bool mtp = false;           // also check the MTP module's tensors up front (for mtp_forward)
};

class Model {
public:
    // Reads DIR/config.json and the checkpoint, and checks every tensor's presence and shape.
    explicit Model(const std::string& dir, ModelOptions opt = {});
    const ModelConfig& config() const { return cfg_; }

    // Runs `tokens` at positions cache.len .. cache.len+T-1 and appends them to the cache.
    // Returns logits [T, V] (or [1, V], the last row, with last_only). `final_hidden`, if given,
    // receives RMSNorm(h) [T, d] — the input of lm_head.
    std::vector<float> forward(const std::vector<int32_t>& tokens, KVCache& cache, Trace* trace = nullptr,
                               bool last_only = false, std::vector<float>* final_hidden = nullptr);

    // A full causal prefill at positions 0..T-1 with a fresh cache.
    std::vector<float> prefill(const std::vector<int32_t>& tokens, Trace* trace = nullptr, bool last_only = false);

    // Multi-token prediction with the first MTP module (layer L = num_hidden_layers, spec 6), for a
    // full prefill of tokens t_0..t_{T-1} (T ≥ 2). final_hidden: [T, d], the main model's h after
    // model.norm (`forward`'s final_hidden; vLLM's choice, the report leaves it open). Returns
    // mtp_logits [T-1, V]; row i predicts t_{i+2}:
    //   x_i = eh_proj · [enorm(Emb(t_{i+1})) ; hnorm(h_i)]          embedding first (checkpoint order)
    //   h'  = DecoderLayer_L(x_0..x_{T-2})                          causal, positions 0..T-2
    //   mtp_logits = shared_head.head · RMSNorm(h'; shared_head.norm)
    // Emb and the head are layer L's own embed_tokens / shared_head.head when the checkpoint has them,
    // else the main model's; the layer's FFN is MoE whenever the model has routed experts. The layer's
    // intermediates go to `trace` under index L (attn.{L}, hidden.{L}, topk_idx.{L}, ...).
    std::vector<float> mtp_forward(const std::vector<int32_t>& tokens, const std::vector<float>& final_hidden,
                                   Trace* trace = nullptr);

private:
    struct Layer {
        std::vector<float> input_norm, post_norm;  // [d] each
        std::unique_ptr<AttentionBlock> attn;
        std::unique_ptr<FeedForwardBlock> ffn;
    };
    Layer load_layer(int64_t i, bool moe) const;
    // One decoder layer on the residual stream h [T, d] (in place), at positions pos0..; x, y: [T, d]
    // scratch. Offers attn.{i} and hidden.{i} (and the blocks' own names) to `trace`.
    void layer_forward(const Layer& l, float* h, float* x, float* y, int64_t T, int64_t pos0, LayerCache& cache,
                       Trace* trace, int64_t i) const;
    void check_checkpoint() const;
    void check_mtp_checkpoint() const;  // layer L's tensors (the copies of Emb / head are optional)

    ModelConfig cfg_;
    ModelOptions opt_;
    Checkpoint ckpt_;
    WeightLoader loader_;
    std::vector<Layer> kept_;  // all layers, when keep_weights
};

}  // namespace dsref
