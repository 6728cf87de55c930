// decoder_layer.h — one pre-norm decoder layer on the residual stream (DeepSeek LLM §2.1; DeepSeek-V2
// report §2; DeepSeek-V3 report §2.1):
//
//   h = h + Attention(RMSNorm(h; input_layernorm))              "attn.{i}": the attention output
//   h = h + FeedForward(RMSNorm(h; post_attention_layernorm))   "hidden.{i}": the stream after the layer
//
// Attention is GQA (llama) or MLA (V2/V3); FeedForward is the dense SwiGLU or DeepSeekMoE. The main
// model runs layers 0..L-1; the MTP module (model/mtp.h) runs layer L the same way.
#pragma once
#include <memory>
#include <vector>

#include "core/trace.h"
#include "io/config.h"
#include "io/weights.h"
#include "model/blocks.h"

namespace dsref {

class DecoderLayer {
public:
    // Loads decoder layer i (names from io/checkpoint_layout.h); moe picks DeepSeekMoE for the FFN.
    DecoderLayer(const ModelConfig& c, const WeightLoader& w, int64_t i, bool moe, const ForwardOptions& fwd);

    // h: [T, d] in/out, tokens at positions pos0..pos0+T-1 (pos0 = the tokens already in `cache`).
    // Appends this step to `cache`; offers attn.{i}, hidden.{i} and the blocks' own names to `trace`.
    void forward(float* h, int64_t T, int64_t pos0, LayerCache& cache, Trace* trace) const;

private:
    int64_t i_, d_;
    float eps_;
    std::shared_ptr<FiniteGuard> finite_;  // the NaN/Inf check of attn.{i} and hidden.{i}
    PrecisionPolicy prec_;  // rmsnorm and residual adds at the emulated reference's rounding points
    std::vector<float> input_norm_, post_norm_;  // [d] each
    std::unique_ptr<AttentionBlock> attn_;
    std::unique_ptr<FeedForwardBlock> ffn_;
};

}  // namespace dsref
