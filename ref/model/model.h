// model.h — the whole decoder-only model: embedding, L decoder layers, final norm and lm_head
// (DeepSeek LLM = HF Llama layout; DeepSeek-V2/V3 = MLA + DeepSeekMoE).
//
//   h = E[token]                                  no √d scaling
//   for l in 0..L-1:  h = DecoderLayer_l(h)       model/decoder_layer.h ("attn.{l}", "hidden.{l}")
//   logits = lm_head · RMSNorm(h; model.norm)     lm_head = E when tie_word_embeddings
//
// The feed-forward of layer l is DeepSeekMoE for the layers `is_moe_layer(l)` picks
// (l ≥ first_k_dense_replace and l % moe_layer_freq == 0), the dense SwiGLU otherwise.
//
// Multi-token prediction (V3) is a separate module (model/mtp.h) that reads the main model's final
// hidden state; `forward` never reads the MTP layer.
//
// Weights stay in the mapped checkpoint and become float32 one layer at a time, unless `keep_weights`
// holds them all, which generation wants. Without it the routed experts are streamed (only those some
// token uses, one per thread, model/moe_block.h), each layer's mapped pages are released after it and
// the head is read in slices: peak memory ≈ one layer's attention and shared parts + one expert per
// thread, not the checkpoint (V3's real shapes: one MoE layer holds 45 GB of float32 experts).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/trace.h"
#include "io/config.h"
#include "io/safetensors.h"
#include "io/weights.h"
#include "model/blocks.h"
#include "model/decoder_layer.h"

namespace dsref {

struct ModelOptions {
    ForwardOptions fwd;
    bool keep_weights = false;  // load every layer once and keep it (generation)
    // A progress line on stderr after each layer: layer i/L, experts streamed, GB read, elapsed, ETA.
    bool progress = false;
};

class Model {
public:
    // Reads DIR/config.json and the checkpoint, and checks every tensor's presence and shape.
    explicit Model(const std::string& dir, ModelOptions opt = {});
    const ModelConfig& config() const { return cfg_; }
    const ModelOptions& options() const { return opt_; }
    const Checkpoint& checkpoint() const { return ckpt_; }
    const WeightLoader& weights() const { return loader_; }

    // Runs `tokens` at positions cache.len .. cache.len+T-1, appends them to the cache and returns the
    // final hidden state RMSNorm(h; model.norm) [T, d] — the input of lm_head (and of the MTP module).
    std::vector<float> forward_hidden(const std::vector<int32_t>& tokens, KVCache& cache, Trace* trace = nullptr);
    // logits [rows, V] = lm_head · x. x: [rows, d], a final hidden state
    std::vector<float> lm_head(const float* x, int64_t rows) const;

    // forward_hidden, then lm_head on every row (or only the last one, [1, V], with last_only).
    std::vector<float> forward(const std::vector<int32_t>& tokens, KVCache& cache, Trace* trace = nullptr,
                               bool last_only = false);
    // A full causal prefill at positions 0..T-1 with a fresh cache.
    std::vector<float> prefill(const std::vector<int32_t>& tokens, Trace* trace = nullptr, bool last_only = false);

    // Token ids must lie in [0, vocab_size); the error names the offending id.
    void check_tokens(const std::vector<int32_t>& tokens) const;

private:
    void check_checkpoint() const;

    ModelConfig cfg_;
    ModelOptions opt_;
    Checkpoint ckpt_;
    WeightLoader loader_;
    std::vector<DecoderLayer> kept_;  // all layers, when keep_weights
    std::vector<float> head_;         // lm_head [V, d] as float32, when keep_weights (else read in slices)
    Bf16Words head16_;                // lm_head [V, d] as bf16 words, when keep_weights and fwd.hold_bf16
};

}  // namespace dsref
