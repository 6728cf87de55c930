// tiny_policy.h — a checkpoint directory as trainable weights and back: the TinyV3Config of an HF
// config.json (DeepSeek-V3 with MoE), its tensors as a float32 ParamMap, and the directory that
// model/model.h (the KV-cache sampler) loads again after an update.
#pragma once
#include <string>

#include "io/config.h"
#include "train/tiny_v3.h"

namespace dsref {

// The training network's dimensions from a deepseek_v3 config; anything train/tiny_v3.h does not model
// (no MoE, moe_layer_freq != 1, another architecture) is an error naming the config.
TinyV3Config tiny_v3_config_of(const ModelConfig& c);

struct TinyPolicy {
    ModelConfig config;     // the checkpoint's config.json, written back unchanged (dtype float32)
    TinyV3Config net;
    ParamMap<float> params; // every tensor tiny_v3_shapes names
};

TinyPolicy load_tiny_policy(const std::string& dir);
// DIR/config.json + DIR/model.safetensors (float32); DIR is created.
void save_tiny_policy(const std::string& dir, const TinyPolicy& p);

}  // namespace dsref
