// model_info.cpp — parameter counts and KV-cache sizes from a config alone.
#include "model_info.h"

#include "layout.h"

namespace dsref {

ParamCounts count_params(const ModelConfig& c) {
    ParamCounts p;
    for (const WeightSpec& s : checkpoint_layout(c)) {
        const int64_t n = shape_numel(s.shape);
        if (s.layer >= c.num_hidden_layers) {
            p.mtp_total += n;
            continue;
        }
        p.total += n;
        if (s.expert < 0 || s.expert < c.num_experts_per_tok) p.active += n;  // K of E experts are active
    }
    return p;
}

int64_t kv_values_per_token_layer(const ModelConfig& c) {
    if (c.is_mla()) return c.kv_lora_rank + c.qk_rope_head_dim;
    return 2 * c.num_key_value_heads * c.head_dim;
}

nlohmann::json model_info(const ModelConfig& c) {
    using json = nlohmann::json;
    const ParamCounts p = count_params(c);
    const int64_t per_layer = kv_values_per_token_layer(c);
    json j;
    j["architecture"] = arch_name(c.arch);
    j["parameters"] = {{"total", p.total}, {"active_per_token", p.active}};
    if (c.num_nextn_predict_layers > 0) j["parameters"]["mtp_total"] = p.mtp_total;
    j["kv_cache"] = {{"values_per_token_per_layer", per_layer},
                     {"values_per_token", per_layer * c.num_hidden_layers},
                     {"bytes_per_token_fp32", 4 * per_layer * c.num_hidden_layers},
                     {"bytes_per_token_bf16", 2 * per_layer * c.num_hidden_layers}};
    json cfg = {{"hidden_size", c.hidden_size},
                {"intermediate_size", c.intermediate_size},
                {"num_hidden_layers", c.num_hidden_layers},
                {"num_attention_heads", c.num_attention_heads},
                {"vocab_size", c.vocab_size},
                {"rms_norm_eps", c.rms_norm_eps},
                {"rope_theta", c.rope_theta},
                {"tie_word_embeddings", c.tie_word_embeddings},
                {"bos_token_id", c.bos_token_id},
                {"eos_token_id", c.eos_token_id}};
    if (c.rope_scaling.is_yarn())
        cfg["rope_scaling"] = {{"type", "yarn"},
                               {"factor", c.rope_scaling.factor},
                               {"original_max_position_embeddings", c.rope_scaling.original_max_position_embeddings},
                               {"beta_fast", c.rope_scaling.beta_fast},
                               {"beta_slow", c.rope_scaling.beta_slow},
                               {"mscale", c.rope_scaling.mscale},
                               {"mscale_all_dim", c.rope_scaling.mscale_all_dim}};
    else
        cfg["rope_scaling"] = nullptr;
    if (!c.is_mla()) {
        cfg["num_key_value_heads"] = c.num_key_value_heads;
        cfg["head_dim"] = c.head_dim;
    } else {
        cfg["q_lora_rank"] = c.q_lora_rank;
        cfg["kv_lora_rank"] = c.kv_lora_rank;
        cfg["qk_nope_head_dim"] = c.qk_nope_head_dim;
        cfg["qk_rope_head_dim"] = c.qk_rope_head_dim;
        cfg["v_head_dim"] = c.v_head_dim;
        if (c.has_moe()) {
            cfg["n_routed_experts"] = c.n_routed_experts;
            cfg["n_shared_experts"] = c.n_shared_experts;
            cfg["num_experts_per_tok"] = c.num_experts_per_tok;
            cfg["moe_intermediate_size"] = c.moe_intermediate_size;
            cfg["n_group"] = c.n_group;
            cfg["topk_group"] = c.topk_group;
            cfg["first_k_dense_replace"] = c.first_k_dense_replace;
            cfg["moe_layer_freq"] = c.moe_layer_freq;
            cfg["routed_scaling_factor"] = c.routed_scaling_factor;
            cfg["scoring_func"] = c.scoring_func;
            cfg["topk_method"] = c.topk_method;
            cfg["norm_topk_prob"] = c.norm_topk_prob;
        }
        cfg["num_nextn_predict_layers"] = c.num_nextn_predict_layers;
        cfg["fp8_weights"] = c.fp8_weights;
    }
    j["config"] = cfg;
    return j;
}

}  // namespace dsref
