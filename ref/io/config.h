// config.h — the HF `config.json` of DeepSeek LLM (llama), DeepSeek-V2/V2-Lite, DeepSeek-V3/R1, DeepSeek-V3.2 and the
// R1-Distill families (DeepSeek-R1-Distill-Qwen = qwen2, DeepSeek-R1-Distill-Llama = llama with Llama 3 RoPE).
//
// Field names are the HF ones (DeepSeek-V3 inference/convert.py maps the official names onto them).
// Only the fields the math uses are kept; a missing required field, a wrong type or an inconsistent
// value is refused with a message that names the field, and so is every key that is neither read here
// nor on the allow-list of harmless keys (io/config_keys.h): nothing dsref does not model is ignored.
//
// RoPE comes in the two conventions transformers has used:
//   transformers 4:  top-level `rope_theta` + `rope_scaling` {type | rope_type, factor, ...}
//   transformers 5:  `rope_parameters` {rope_type, rope_theta, factor, ...}
// Both are read, for every architecture (`type` and `rope_type` alike); when both are given they must
// describe the same RoPE, field by field, else the error names the two fields. `rope_scaling` /
// `rope_parameters` absent, null or of rope_type "default" mean plain RoPE.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "core/rope.h"
#include "fp8/fp8_quant.h"
#include "io/config_keys.h"
#include "moe/moe_gate.h"

namespace dsref {

enum class Arch { Llama, Qwen2, DeepseekV2, DeepseekV3, DeepseekV32 };
const char* arch_name(Arch a);  // "llama", "qwen2", "deepseek_v2", "deepseek_v3", "deepseek_v32"

struct ModelConfig {
    Arch arch = Arch::Llama;
    std::string source;  // where it was read from, for messages

    // every architecture
    int64_t hidden_size = 0;          // d
    int64_t intermediate_size = 0;    // dense MLP width
    int64_t num_hidden_layers = 0;    // L
    int64_t num_attention_heads = 0;  // H
    int64_t num_key_value_heads = 0;  // H_kv (llama/qwen2 GQA; unused by MLA math)
    int64_t head_dim = 0;             // llama/qwen2: head size; V2/V3 configs use it for the RoPE dim only
    bool qkv_bias = false;            // q/k/v projection biases (qwen2: always, and no o_proj bias)
    int64_t vocab_size = 0;           // V
    double rms_norm_eps = 1e-6;
    double rope_theta = 10000.0;
    int64_t max_position_embeddings = 0;
    bool tie_word_embeddings = false;
    RopeScaling rope_scaling;
    int64_t bos_token_id = -1, eos_token_id = -1;
    std::string torch_dtype;

    // Multi-head Latent Attention (V2/V3, model/mla.h)
    int64_t q_lora_rank = 0;  // 0 = no query compression (HF null, V2-Lite)
    int64_t kv_lora_rank = 0, qk_nope_head_dim = 0, qk_rope_head_dim = 0, v_head_dim = 0;

    // DeepSeek Sparse Attention (V3.2, model/dsa_indexer.h): the lightning indexer of every MLA layer.
    // All three are required in a deepseek_v32 config (no default: each changes the selection).
    int64_t index_n_heads = 0;   // n_I
    int64_t index_head_dim = 0;  // d_I (its first qk_rope_head_dim dims carry RoPE)
    int64_t index_topk = 0;      // k, positions each query attends to

    // DeepSeekMoE (V2/V3, moe/moe_gate.h, moe/moe.h)
    int64_t n_routed_experts = 0, n_shared_experts = 0, num_experts_per_tok = 0, moe_intermediate_size = 0;
    int64_t n_group = 1, topk_group = 1, first_k_dense_replace = 0, moe_layer_freq = 1;
    double routed_scaling_factor = 1.0;
    MoeScoring scoring_func = MoeScoring::Softmax;  // parsed from the HF string
    MoeTopk topk_method = MoeTopk::Greedy;
    bool norm_topk_prob = false;
    int64_t num_nextn_predict_layers = 0;

    // FP8 checkpoints (DeepSeek-V3 report §3.3): quantization_config.quant_method == "fp8"
    bool fp8_weights = false;
    int64_t fp8_block_rows = 128, fp8_block_cols = 128;
    // `scale_fmt: ue8m0` (DeepSeek-V3.1: power-of-two activation scales), in quantization_config or at the
    // top level as the official config does. It changes only the activation quantization of the W8A8
    // path (`forward --emulate official-fp8`); the float32 forward dequantizes the stored weights.
    Fp8ScaleFmt fp8_scale_fmt = Fp8ScaleFmt::Fp32;

    nlohmann::json raw;  // the whole file, so `init` can write it back

    bool is_mla() const { return arch == Arch::DeepseekV2 || arch == Arch::DeepseekV3 || arch == Arch::DeepseekV32; }
    bool has_indexer() const { return arch == Arch::DeepseekV32; }  // DSA (V3.2)
    bool has_moe() const { return n_routed_experts > 0; }
    bool is_moe_layer(int64_t i) const;  // i >= first_k_dense_replace && i % moe_layer_freq == 0
    MoeGateConfig moe_gate() const;      // the gate's fields (moe/moe_gate.h), copied; not checked
    int64_t qk_head_dim() const { return qk_nope_head_dim + qk_rope_head_dim; }
};

// Reads `path` (a config.json, or a directory holding one).
ModelConfig load_config(const std::string& path);
// Parses and validates; `source` names the file in messages.
ModelConfig parse_config(const nlohmann::json& j, const std::string& source);

// The sections of parse_config, each reading and validating its fields into `c` (messages name the
// source and the field). parse_config passes its FieldReader, so that every key a section reads counts
// as modelled; a new field is read here the same way (io/config_keys.h). The one-layer ops (`dsref op
// mla`, `dsref op moe`) validate their attributes, which carry the same names, with the json overloads.
// rope_theta, rope_scaling, rope_parameters. config_file: also refuse YaRN settings on which transformers
// (cos/sin × attention_factor) and the official code (no factor) disagree; the op attributes skip this.
void parse_rope_section(FieldReader& r, ModelConfig& c, bool config_file = true);
void parse_mla_section(FieldReader& r, ModelConfig& c);   // q_lora_rank .. v_head_dim
void parse_moe_section(FieldReader& r, ModelConfig& c);   // n_routed_experts ..
void parse_indexer_section(FieldReader& r, ModelConfig& c);  // index_n_heads, index_head_dim, index_topk (V3.2)
void parse_rope_section(const nlohmann::json& j, const std::string& source, ModelConfig& c);
void parse_mla_section(const nlohmann::json& j, const std::string& source, ModelConfig& c);
void parse_moe_section(const nlohmann::json& j, const std::string& source, ModelConfig& c);

}  // namespace dsref
