// op_layer.h — what the one-layer ops (`dsref op mla`, `dsref op moe`) share with the model.
//
// Their attributes carry config.json names. They become a config fragment that io/config.cpp's own
// section parsers validate, so an op and a checkpoint accept exactly the same fields and values, and
// the layer is built by the model's own factories (model/mla.h, model/moe_block.h) from the op's
// inputs (io/tensor_source.h's TensorMapSource), with the names and shapes of io/checkpoint_layout.h.
#pragma once
#include <functional>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "io/checkpoint_layout.h"
#include "ops/op_registry.h"

namespace dsref {

// The attributes among `keys` that are set, as a JSON object: integers, numbers, true/false and null
// become JSON values of those types, anything else a string.
nlohmann::json attrs_to_json(const OpAttrs& a, const std::vector<std::string>& keys);

// The RoPE fields of a config fragment from an MLA-style op's attributes: rope_theta, and rope_scaling
// {type: yarn, factor, ...} when `factor` is set (YaRN is on only then; the other YaRN attributes
// without it are a usage error naming the op). original_max_position_embeddings defaults to 4096,
// DeepSeek-V3's value.
void rope_attrs_to_json(const OpAttrs& a, const std::string& op, nlohmann::json& j);

// Runs `parse` (a config section parser over the attributes); an Error it throws becomes a UsageError,
// since the attributes are part of the command line.
void parse_op_attrs(const std::function<void()>& parse);

// Every input must be `x`-like (listed in `extra`) or a tensor the layer reads (`reads`); any other is
// refused before anything is loaded, as "op OP: unexpected input tensor 'NAME' (HINT)": a typo or a
// config mismatch is never silently ignored.
void check_op_inputs(const std::string& op, const TensorMap& in, const std::vector<WeightSpec>& reads,
                     const std::set<std::string>& extra, const std::string& hint);

}  // namespace dsref
