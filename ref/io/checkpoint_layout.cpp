// checkpoint_layout.cpp — the HF tensor names and shapes of llama, qwen2, deepseek_v2, deepseek_v3 and deepseek_v32
// (transformers' modeling_llama.py / modeling_qwen2.py / modeling_deepseek_v3.py parameter names; DeepSeek-V3's
// inference/convert.py maps the official names onto these).
#include "io/checkpoint_layout.h"

namespace dsref {

std::string layer_prefix(int64_t i) { return "model.layers." + std::to_string(i) + "."; }
std::string attn_prefix(int64_t i) { return layer_prefix(i) + "self_attn."; }
std::string mlp_prefix(int64_t i) { return layer_prefix(i) + "mlp."; }

namespace {
WeightSpec linear(const std::string& name, Shape s, int64_t layer, std::string doc, int64_t expert = -1) {
    WeightSpec w{name, std::move(s), InitKind::Linear, true, layer, expert};
    w.shape_doc = std::move(doc);
    return w;
}
WeightSpec norm(const std::string& name, int64_t width, int64_t layer, std::string doc) {
    WeightSpec w{name, {width}, InitKind::Norm, false, layer};
    w.shape_doc = std::move(doc);
    return w;
}
WeightSpec bias(const std::string& name, int64_t width, int64_t layer, std::string doc) {
    WeightSpec w{name, {width}, InitKind::ProjBias, false, layer};
    w.shape_doc = std::move(doc);
    return w;
}
void push(std::vector<WeightSpec>& out, const MlpTensors& m) {
    out.push_back(m.gate);
    out.push_back(m.up);
    out.push_back(m.down);
}
void push(std::vector<WeightSpec>& out, const std::optional<WeightSpec>& w) {
    if (w) out.push_back(*w);
}
}  // namespace

ModelTensors model_tensors(const ModelConfig& c) {
    const int64_t d = c.hidden_size, V = c.vocab_size;
    ModelTensors t;
    t.embed = {"model.embed_tokens.weight", {V, d}, InitKind::Embedding};
    t.embed.shape_doc = "[vocab_size, hidden_size]";
    t.norm = norm("model.norm.weight", d, -1, "[hidden_size]");
    t.lm_head = c.tie_word_embeddings ? t.embed : linear("lm_head.weight", {V, d}, -1, "[vocab_size, hidden_size]");
    t.lm_head.fp8 = false;  // the head stays BF16 in FP8 checkpoints
    return t;
}

DecoderNormTensors decoder_norm_tensors(const ModelConfig& c, int64_t i) {
    const std::string p = layer_prefix(i);
    return {norm(p + "input_layernorm.weight", c.hidden_size, i, "[hidden_size]"),
            norm(p + "post_attention_layernorm.weight", c.hidden_size, i, "[hidden_size]")};
}

GqaTensors gqa_tensors(const ModelConfig& c, const std::string& p, int64_t i) {
    const int64_t d = c.hidden_size, H = c.num_attention_heads, hd = c.head_dim, Hkv = c.num_key_value_heads;
    GqaTensors t{linear(p + "q_proj.weight", {H * hd, d}, i, "[num_attention_heads·head_dim, hidden_size]"),
                 linear(p + "k_proj.weight", {Hkv * hd, d}, i, "[num_key_value_heads·head_dim, hidden_size]"),
                 linear(p + "v_proj.weight", {Hkv * hd, d}, i, "[num_key_value_heads·head_dim, hidden_size]"),
                 linear(p + "o_proj.weight", {d, H * hd}, i, "[hidden_size, num_attention_heads·head_dim]"),
                 {}, {}, {}};
    if (c.qkv_bias) {
        t.q_bias = bias(p + "q_proj.bias", H * hd, i, "[num_attention_heads·head_dim]");
        t.k_bias = bias(p + "k_proj.bias", Hkv * hd, i, "[num_key_value_heads·head_dim]");
        t.v_bias = bias(p + "v_proj.bias", Hkv * hd, i, "[num_key_value_heads·head_dim]");
    }
    return t;
}

MlaTensors mla_tensors(const ModelConfig& c, const std::string& p, int64_t i) {
    const int64_t d = c.hidden_size, H = c.num_attention_heads, qk = c.qk_head_dim();
    MlaTensors t;
    if (c.q_lora_rank > 0) {
        t.q_a = linear(p + "q_a_proj.weight", {c.q_lora_rank, d}, i, "[q_lora_rank, hidden_size]");
        t.q_a_norm = norm(p + "q_a_layernorm.weight", c.q_lora_rank, i, "[q_lora_rank]");
        t.q_b = linear(p + "q_b_proj.weight", {H * qk, c.q_lora_rank}, i,
                       "[H·(qk_nope_head_dim+qk_rope_head_dim), q_lora_rank]");
    } else {
        t.q = linear(p + "q_proj.weight", {H * qk, d}, i, "[H·(qk_nope_head_dim+qk_rope_head_dim), hidden_size]");
    }
    t.kv_a = linear(p + "kv_a_proj_with_mqa.weight", {c.kv_lora_rank + c.qk_rope_head_dim, d}, i,
                    "[kv_lora_rank+qk_rope_head_dim, hidden_size]");
    t.kv_a_norm = norm(p + "kv_a_layernorm.weight", c.kv_lora_rank, i, "[kv_lora_rank]");
    t.kv_b = linear(p + "kv_b_proj.weight", {H * (c.qk_nope_head_dim + c.v_head_dim), c.kv_lora_rank}, i,
                    "[H·(qk_nope_head_dim+v_head_dim), kv_lora_rank]");
    t.o = linear(p + "o_proj.weight", {d, H * c.v_head_dim}, i, "[hidden_size, H·v_head_dim]");
    return t;
}

IndexerTensors indexer_tensors(const ModelConfig& c, const std::string& p, int64_t i) {
    const std::string q = p + "indexer.";
    const int64_t n_I = c.index_n_heads, d_I = c.index_head_dim;
    IndexerTensors t{linear(q + "wq_b.weight", {n_I * d_I, c.q_lora_rank}, i, "[index_n_heads·index_head_dim, q_lora_rank]"),
                     linear(q + "wk.weight", {d_I, c.hidden_size}, i, "[index_head_dim, hidden_size]"),
                     norm(q + "k_norm.weight", d_I, i, "[index_head_dim]"),
                     bias(q + "k_norm.bias", d_I, i, "[index_head_dim]"),
                     linear(q + "weights_proj.weight", {n_I, c.hidden_size}, i, "[index_n_heads, hidden_size]")};
    t.weights_proj.fp8 = false;
    return t;
}

MlpTensors mlp_tensors(const std::string& p, int64_t d, int64_t I, int64_t i, int64_t expert) {
    return {linear(p + "gate_proj.weight", {I, d}, i, "[width, hidden_size]", expert),
            linear(p + "up_proj.weight", {I, d}, i, "[width, hidden_size]", expert),
            linear(p + "down_proj.weight", {d, I}, i, "[hidden_size, width]", expert)};
}

MoeTensors moe_tensors(const ModelConfig& c, const std::string& p, int64_t i) {
    const int64_t d = c.hidden_size, E = c.n_routed_experts, I = c.moe_intermediate_size;
    MoeTensors t;
    t.gate = linear(p + "gate.weight", {E, d}, i, "[n_routed_experts, hidden_size]");
    t.gate.fp8 = false;  // the router stays BF16 in FP8 checkpoints
    if (c.topk_method == MoeTopk::NoauxTc) {
        t.bias = WeightSpec{p + "gate.e_score_correction_bias", {E}, InitKind::Bias, false, i};
        t.bias->shape_doc = "[n_routed_experts], one correction per routed expert";
    }
    for (int64_t e = 0; e < E; e++) t.experts.push_back(mlp_tensors(p + "experts." + std::to_string(e) + ".", d, I, i, e));
    if (c.n_shared_experts > 0) t.shared = mlp_tensors(p + "shared_experts.", d, c.n_shared_experts * I, i);
    return t;
}

MtpTensors mtp_tensors(const ModelConfig& c, int64_t i) {
    const std::string p = layer_prefix(i);
    const int64_t d = c.hidden_size, V = c.vocab_size;
    MtpTensors t;
    t.embed = {p + "embed_tokens.weight", {V, d}, InitKind::Embedding, false, i};
    t.enorm = norm(p + "enorm.weight", d, i, "[hidden_size]");
    t.hnorm = norm(p + "hnorm.weight", d, i, "[hidden_size]");
    t.eh_proj = linear(p + "eh_proj.weight", {d, 2 * d}, i, "[hidden_size, 2·hidden_size]");
    t.eh_proj.fp8 = false;  // BF16 in the V3 checkpoint
    t.head_norm = norm(p + "shared_head.norm.weight", d, i, "[hidden_size]");
    t.head = linear(p + "shared_head.head.weight", {V, d}, i, "[vocab_size, hidden_size]");
    t.head.fp8 = false;
    return t;
}

std::vector<WeightSpec> flatten(const GqaTensors& t) {
    std::vector<WeightSpec> out = {t.q};
    push(out, t.q_bias);
    out.push_back(t.k);
    push(out, t.k_bias);
    out.push_back(t.v);
    push(out, t.v_bias);
    out.push_back(t.o);
    return out;
}
std::vector<WeightSpec> flatten(const MlaTensors& t) {
    std::vector<WeightSpec> out;
    for (const auto* w : {&t.q_a, &t.q_a_norm, &t.q_b, &t.q}) push(out, *w);
    for (const WeightSpec* w : {&t.kv_a, &t.kv_a_norm, &t.kv_b, &t.o}) out.push_back(*w);
    return out;
}
std::vector<WeightSpec> flatten(const IndexerTensors& t) { return {t.wq_b, t.wk, t.k_norm, t.k_norm_bias, t.weights_proj}; }
std::vector<WeightSpec> flatten(const MlpTensors& t) { return {t.gate, t.up, t.down}; }
std::vector<WeightSpec> flatten(const MoeTensors& t) {
    std::vector<WeightSpec> out = {t.gate};
    push(out, t.bias);
    for (const MlpTensors& e : t.experts) push(out, e);
    if (t.shared) push(out, *t.shared);
    return out;
}

std::vector<WeightSpec> decoder_layer_layout(const ModelConfig& c, int64_t i, bool moe) {
    const DecoderNormTensors n = decoder_norm_tensors(c, i);
    std::vector<WeightSpec> out = {n.input_norm};
    for (WeightSpec& w : c.is_mla() ? flatten(mla_tensors(c, attn_prefix(i), i)) : flatten(gqa_tensors(c, attn_prefix(i), i)))
        out.push_back(std::move(w));
    if (c.has_indexer())
        for (WeightSpec& w : flatten(indexer_tensors(c, attn_prefix(i), i))) out.push_back(std::move(w));
    out.push_back(n.post_norm);
    for (WeightSpec& w : moe ? flatten(moe_tensors(c, mlp_prefix(i), i))
                             : flatten(mlp_tensors(mlp_prefix(i), c.hidden_size, c.intermediate_size, i)))
        out.push_back(std::move(w));
    return out;
}

std::vector<WeightSpec> checkpoint_layout(const ModelConfig& c) {
    std::vector<WeightSpec> out;
    const ModelTensors g = model_tensors(c);
    const int64_t L = c.num_hidden_layers;
    out.push_back(g.embed);
    for (int64_t i = 0; i < L; i++)
        for (WeightSpec& w : decoder_layer_layout(c, i, c.is_moe_layer(i))) out.push_back(std::move(w));
    out.push_back(g.norm);
    if (!c.tie_word_embeddings) out.push_back(g.lm_head);
    // MTP modules: layer L+k holds enorm, hnorm, eh_proj, a full decoder layer (MoE whenever the model has
    // routed experts) and the shared head; the checkpoint also stores copies of the embedding and head there.
    for (int64_t k = 0; k < c.num_nextn_predict_layers; k++) {
        const int64_t i = L + k;
        const MtpTensors m = mtp_tensors(c, i);
        for (const WeightSpec* w : {&m.embed, &m.enorm, &m.hnorm, &m.eh_proj}) out.push_back(*w);
        for (WeightSpec& w : decoder_layer_layout(c, i, c.has_moe())) out.push_back(std::move(w));
        out.push_back(m.head_norm);
        out.push_back(m.head);
    }
    return out;
}

}  // namespace dsref
