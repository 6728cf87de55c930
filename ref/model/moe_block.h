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
MoeWeights load_moe_weights(const ModelConfig& c, const MoeGateConfig& g, const WeightLoader& w,
                            const std::string& prefix);

// The FeedForwardBlock of an MoE decoder layer. Its forward records, when the trace wants them,
// `topk_idx.{layer}` (I32 [T, K]) and `topk_weight.{layer}` (F32 [T, K]). With an emulation mode in
// `prec` it runs model/precision.h's moe_forward_emulated instead of moe/moe.h's float32 layer.
std::unique_ptr<FeedForwardBlock> make_moe_block(const ModelConfig& c, const WeightLoader& w,
                                                 const std::string& prefix,
                                                 const PrecisionPolicy& prec = PrecisionPolicy());

}  // namespace dsref
