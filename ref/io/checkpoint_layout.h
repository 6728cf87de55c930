// layout.h — every tensor of an HF checkpoint, by name and shape (spec 7.1), from the config alone.
//
// One list serves three users: `dsref init` writes exactly these tensors, the model checks a
// checkpoint against them before running, and `dsref info` counts parameters from them.
#pragma once
#include <string>
#include <vector>

#include "io/config.h"
#include "core/tensor.h"

namespace dsref {

enum class InitKind {
    Embedding,  // N(0, 1)
    Linear,     // N(0, 1/in_features), so activations stay O(1)
    Norm,       // 1 + 0.1·N(0, 1)
    Bias,       // e_score_correction_bias: 0.1·N(0, 1) (may be negative), kept F32
};

struct WeightSpec {
    std::string name;
    Shape shape;
    InitKind kind;
    bool fp8 = false;   // stored as F8_E4M3 + `<name>_scale_inv` in an FP8 checkpoint (spec 7.2, pitfall 14)
    int64_t layer = -1; // decoder layer index (num_hidden_layers.. for MTP), -1 for global tensors
    int64_t expert = -1;  // routed expert index, -1 otherwise (for active-parameter counts)
};

// The main model (layers 0..L-1) plus `num_nextn_predict_layers` MTP layers (index L..).
std::vector<WeightSpec> checkpoint_layout(const ModelConfig& c);

// "model.layers.{i}." — the prefix of decoder layer i.
std::string layer_prefix(int64_t i);

}  // namespace dsref
