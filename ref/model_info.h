// model_info.h — what `dsref info` reports about a config: parameter counts and KV-cache sizes.
//
// Parameters are counted from `checkpoint_layout`, the same list `init` writes and the model checks,
// so the count is the number of stored weight elements (FP8 scales excluded). Active parameters per
// token leave out the routed experts a token does not use: (E − K) experts per MoE layer.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>

#include "config.h"

namespace dsref {

struct ParamCounts {
    int64_t total = 0;       // main model (layers 0..L-1, embedding, norm, head)
    int64_t active = 0;      // used per token by the main model
    int64_t mtp_total = 0;   // the MTP modules (layers L..), counted apart
};
ParamCounts count_params(const ModelConfig& c);

// Values cached per token per layer by the model's own attention (GQA: 2·H_kv·d_h; MLA absorbed:
// d_c + d_r).
int64_t kv_values_per_token_layer(const ModelConfig& c);

// Everything `dsref info` prints: architecture, parameters, KV-cache bytes, the config values used.
nlohmann::json model_info(const ModelConfig& c);

}  // namespace dsref
