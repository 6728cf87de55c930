// moe_block.h — the DeepSeekMoE sub-block of a decoder layer (moe/moe.h is the layer's math).
#pragma once
#include <memory>
#include <string>

#include "io/config.h"
#include "io/weights.h"
#include "model/blocks.h"
#include "moe/moe.h"

namespace dsref {

// The gate fields of a V2/V3 config.json, validated with every other MoE field (moe_intermediate_size,
// n_shared_experts); the error names c.source and the field.
MoeGateConfig moe_gate_config(const ModelConfig& c);

// Reads one layer's MoE weights under `prefix` (mlp_prefix(i), or "" for op inputs; names and shapes
// from io/checkpoint_layout.h's moe_tensors), checking every shape; a missing tensor is an Error naming it.
// experts = false: the routed experts are only checked, not read (streamed).
MoeWeights load_moe_weights(const ModelConfig& c, const MoeGateConfig& g, const WeightLoader& w,
                            const std::string& prefix, bool experts = true);

// What the streamed experts of this process have read so far (the progress line, `info`'s estimate).
struct MoeStreamStats {
    int64_t experts = 0;  // expert dequantizations
    int64_t bytes = 0;    // checkpoint bytes they read (codes + scales)
};
MoeStreamStats moe_stream_stats();

// The FeedForwardBlock of an MoE decoder layer. Its forward records, when the trace wants them,
// `topk_idx.{layer}` (I32 [T, K]) and `topk_weight.{layer}` (F32 [T, K]). With an emulation mode in
// `prec` it runs model/precision.h's moe_forward_emulated instead of moe/moe.h's float32 layer.
// stream (float32 only): the routed experts are read from `w` in each forward, only those some token
// is routed to (moe/moe.h moe_forward_streamed), and released after; `w` must outlive the block.
std::unique_ptr<FeedForwardBlock> make_moe_block(const ModelConfig& c, const WeightLoader& w,
                                                 const std::string& prefix,
                                                 const PrecisionPolicy& prec = PrecisionPolicy(), bool stream = false);

}  // namespace dsref
