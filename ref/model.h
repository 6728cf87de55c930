// model.h — the whole decoder-only model: embedding, L decoder layers, final norm and lm_head
// (spec 2.1; DeepSeek LLM = HF Llama layout, DeepSeek-V2/V3 = MLA + DeepSeekMoE).
//
//   h = E[token]                                  no √d scaling
//   for l in 0..L-1:
//       h = h + Attention_l(RMSNorm(h))           named "attn.{l}" (before the residual add)
//       h = h + FeedForward_l(RMSNorm(h))         the stream after the layer is "hidden.{l}"
//   logits = lm_head · RMSNorm(h)                 lm_head = E when tie_word_embeddings
//
// Weights stay in the mapped checkpoint and become float32 one layer at a time (peak memory ≈ one
// layer), unless `keep_weights` holds them all, which generation wants.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "blocks.h"
#include "config.h"
#include "safetensors.h"
#include "trace.h"
#include "weights.h"

namespace dsref {

struct ModelOptions {
    ForwardOptions fwd;
    bool keep_weights = false;  // load every layer once and keep it (generation)
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

private:
    struct Layer {
        std::vector<float> input_norm, post_norm;  // [d] each
        std::unique_ptr<AttentionBlock> attn;
        std::unique_ptr<FeedForwardBlock> ffn;
    };
    Layer load_layer(int64_t i) const;
    void check_checkpoint() const;

    ModelConfig cfg_;
    ModelOptions opt_;
    Checkpoint ckpt_;
    WeightLoader loader_;
    std::vector<Layer> kept_;  // all layers, when keep_weights
};

}  // namespace dsref
