// layout.cpp — the HF tensor names and shapes of llama, deepseek_v2 and deepseek_v3 (spec 7.1, 6).
#include "io/checkpoint_layout.h"

namespace dsref {

std::string layer_prefix(int64_t i) { return "model.layers." + std::to_string(i) + "."; }

// The attention tensors of one decoder layer.
static void attention_layout(const ModelConfig& c, const std::string& p, int64_t i, std::vector<WeightSpec>& out) {
    const int64_t d = c.hidden_size, H = c.num_attention_heads;
    auto lin = [&](const std::string& n, Shape s) { out.push_back({p + n, s, InitKind::Linear, true, i}); };
    auto norm = [&](const std::string& n, int64_t w) { out.push_back({p + n, {w}, InitKind::Norm, false, i}); };
    if (!c.is_mla()) {
        const int64_t hd = c.head_dim, Hkv = c.num_key_value_heads;
        lin("self_attn.q_proj.weight", {H * hd, d});
        lin("self_attn.k_proj.weight", {Hkv * hd, d});
        lin("self_attn.v_proj.weight", {Hkv * hd, d});
        lin("self_attn.o_proj.weight", {d, H * hd});
        return;
    }
    const int64_t qk = c.qk_head_dim();
    if (c.q_lora_rank > 0) {
        lin("self_attn.q_a_proj.weight", {c.q_lora_rank, d});
        norm("self_attn.q_a_layernorm.weight", c.q_lora_rank);
        lin("self_attn.q_b_proj.weight", {H * qk, c.q_lora_rank});
    } else {
        lin("self_attn.q_proj.weight", {H * qk, d});
    }
    lin("self_attn.kv_a_proj_with_mqa.weight", {c.kv_lora_rank + c.qk_rope_head_dim, d});
    norm("self_attn.kv_a_layernorm.weight", c.kv_lora_rank);
    lin("self_attn.kv_b_proj.weight", {H * (c.qk_nope_head_dim + c.v_head_dim), c.kv_lora_rank});
    lin("self_attn.o_proj.weight", {d, H * c.v_head_dim});
}

static void mlp_layout(const std::string& p, int64_t d, int64_t I, int64_t layer, int64_t expert,
                       std::vector<WeightSpec>& out) {
    out.push_back({p + "gate_proj.weight", {I, d}, InitKind::Linear, true, layer, expert});
    out.push_back({p + "up_proj.weight", {I, d}, InitKind::Linear, true, layer, expert});
    out.push_back({p + "down_proj.weight", {d, I}, InitKind::Linear, true, layer, expert});
}

static void decoder_layer_layout(const ModelConfig& c, int64_t i, bool moe, std::vector<WeightSpec>& out) {
    const std::string p = layer_prefix(i);
    const int64_t d = c.hidden_size;
    out.push_back({p + "input_layernorm.weight", {d}, InitKind::Norm, false, i});
    attention_layout(c, p, i, out);
    out.push_back({p + "post_attention_layernorm.weight", {d}, InitKind::Norm, false, i});
    if (!moe) {
        mlp_layout(p + "mlp.", d, c.intermediate_size, i, -1, out);
        return;
    }
    // DeepSeekMoE (spec 5.1): router, optional V3 correction bias, routed experts, one shared MLP.
    out.push_back({p + "mlp.gate.weight", {c.n_routed_experts, d}, InitKind::Linear, false, i});
    if (c.topk_method == MoeTopk::NoauxTc)
        out.push_back({p + "mlp.gate.e_score_correction_bias", {c.n_routed_experts}, InitKind::Bias, false, i});
    for (int64_t e = 0; e < c.n_routed_experts; e++)
        mlp_layout(p + "mlp.experts." + std::to_string(e) + ".", d, c.moe_intermediate_size, i, e, out);
    if (c.n_shared_experts > 0)
        mlp_layout(p + "mlp.shared_experts.", d, c.n_shared_experts * c.moe_intermediate_size, i, -1, out);
}

std::vector<WeightSpec> checkpoint_layout(const ModelConfig& c) {
    std::vector<WeightSpec> out;
    const int64_t d = c.hidden_size, V = c.vocab_size, L = c.num_hidden_layers;
    out.push_back({"model.embed_tokens.weight", {V, d}, InitKind::Embedding});
    for (int64_t i = 0; i < L; i++) decoder_layer_layout(c, i, c.is_moe_layer(i), out);
    out.push_back({"model.norm.weight", {d}, InitKind::Norm});
    if (!c.tie_word_embeddings) out.push_back({"lm_head.weight", {V, d}, InitKind::Linear});
    // MTP modules (spec 6): layer L+k holds enorm, hnorm, eh_proj, a full decoder layer and the
    // shared head; the checkpoint also stores copies of the embedding and head there.
    for (int64_t k = 0; k < c.num_nextn_predict_layers; k++) {
        const int64_t i = L + k;
        const std::string p = layer_prefix(i);
        out.push_back({p + "embed_tokens.weight", {V, d}, InitKind::Embedding, false, i});
        out.push_back({p + "enorm.weight", {d}, InitKind::Norm, false, i});
        out.push_back({p + "hnorm.weight", {d}, InitKind::Norm, false, i});
        out.push_back({p + "eh_proj.weight", {d, 2 * d}, InitKind::Linear, false, i});
        decoder_layer_layout(c, i, c.has_moe(), out);
        out.push_back({p + "shared_head.norm.weight", {d}, InitKind::Norm, false, i});
        out.push_back({p + "shared_head.head.weight", {V, d}, InitKind::Linear, false, i});
    }
    return out;
}

}  // namespace dsref
