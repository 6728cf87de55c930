// config_v4.h — the config.json of DeepSeek-V4 (`model_type: deepseek_v4`, DeepseekV4ForCausalLM: V4-Flash,
// V4-Pro). Both spellings are read: the hub config of the official release (`compress_ratios` per layer,
// `num_hash_layers`, `qk_rope_head_dim`, `rope_scaling`) and transformers 5's (`layer_types` +
// `compress_rates`, `mlp_layer_types`, `partial_rotary_factor`, `rope_parameters` {main, compress});
// when both are given they must agree. Every key is read through a FieldReader or is on the harmless
// allow-list (io/config_keys.h): nothing that changes the math is ignored, and values dsref does not model
// are refused naming the field.
//
// Semantics (official DeepSeek-V4 inference/model.py ModelArgs and Attention.__init__):
//   compress_ratios[i] = 0 (sliding window only), 4 (CSA: compressor + indexer), 128 (HCA: compressor);
//   the hub list has num_hidden_layers + num_nextn_predict_layers entries (the MTP blocks' ratios last);
//   window-only layers use rope_theta without YaRN, compressed layers compress_rope_theta with YaRN;
//   the first num_hash_layers MoE layers route by tid2eid; every layer is MoE (no dense layers).
//
// The compat mode (V4Compat) decides the two readings that depend on which reference is followed
// (`dsref forward --help` lists every difference of transformers' DeepseekV4ForCausalLM from the official code):
//   - the compressed layers' cos/sin multiplier (compress_rope_scale). Official: 1, always; an attention_factor
//     other than 1 is refused, and so is a nested rope_parameters.compress (yarn) WITHOUT attention_factor (there
//     transformers derives 0.1·ln(factor) + 1). Hf: transformers' value — the given attention_factor, else 1.0 in
//     the flat spelling (its config injects it) and 0.1·ln(factor) + 1 in the nested one (1 when factor ≤ 1);
//   - the routing normalization. Official Gate.forward normalizes iff scoring_func ≠ softmax (norm_topk_prob
//     must say the same; it defaults to that). Hf: transformers normalizes every score with + 1e-20 and has no
//     softmax router at all (ACT2FN has no "softmax"): scoring_func softmax is refused.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/rope.h"
#include "moe/moe_gate.h"

namespace dsref {

enum class V4LayerType { Sliding, Csa, Hca };
const char* v4_layer_type_name(V4LayerType t);  // the transformers names: sliding_attention, ...

// Which reference the V4 forward follows where the official code and transformers differ.
enum class V4Compat { Official, Hf };  // official DeepSeek-V4 inference/model.py | transformers' deepseek_v4
const char* v4_compat_name(V4Compat c);               // "official" | "hf"
V4Compat v4_compat_from_name(const std::string& s);  // the names above; else an error listing them

struct V4Config {
    std::string source;
    int64_t vocab_size = 0, hidden_size = 0, num_hidden_layers = 0, num_attention_heads = 0;
    int64_t head_dim = 0, qk_rope_head_dim = 0, q_lora_rank = 0, o_groups = 0, o_lora_rank = 0;
    int64_t sliding_window = 0;
    int64_t n_routed_experts = 0, n_shared_experts = 0, num_experts_per_tok = 0, moe_intermediate_size = 0;
    MoeScoring scoring_func = MoeScoring::SqrtSoftplus;
    bool norm_topk_prob = true;
    double routed_scaling_factor = 1.0, swiglu_limit = 0.0;
    int64_t index_n_heads = 0, index_head_dim = 0, index_topk = 0;
    int64_t hc_mult = 0, hc_sinkhorn_iters = 0;
    double hc_eps = 0, rms_norm_eps = 0;
    double rope_theta = 0, compress_rope_theta = 0;
    RopeScaling compress_rope;  // YaRN of the compressed layers
    V4Compat compat = V4Compat::Official;
    double compress_rope_scale = 1.0;  // the compressed layers' cos/sin multiplier (transformers' attention_factor)
    int64_t num_nextn_predict_layers = 0;
    int64_t max_position_embeddings = 0;
    bool tie_word_embeddings = false;
    bool fp8_weights = false;  // quantization_config fp8 (128×128 E4M3 blocks, UE8M0 scales)
    bool fp4_experts = false;  // expert_dtype fp4
    std::vector<int64_t> compress_ratio;     // [L + MTP] 0 / 4 / 128
    std::vector<bool> hash_layer;            // [L] mlp_layer_types == hash_moe
    int64_t bos_token_id = -1, eos_token_id = -1;

    V4LayerType layer_type(int64_t i) const;  // of compress_ratio[i]
};

bool is_v4_config(const nlohmann::json& j);  // model_type deepseek_v4 or architectures[0] DeepseekV4ForCausalLM
V4Config parse_v4_config(const nlohmann::json& j, const std::string& source, V4Compat compat = V4Compat::Official);
// a config.json or a directory holding one
V4Config load_v4_config(const std::string& path, V4Compat compat = V4Compat::Official);
bool path_is_v4_config(const std::string& path);    // that file parses as JSON and is_v4_config (no throw)

}  // namespace dsref
