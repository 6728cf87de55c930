// model_info.cpp — parameter counts and KV-cache sizes from a config alone.
#include "tools/model_info.h"

#include <algorithm>
#include <iomanip>
#include <sstream>

#include "io/checkpoint_layout.h"

namespace dsref {

ParamCounts count_params(const ModelConfig& c) {
    ParamCounts p;
    for (const WeightSpec& s : checkpoint_layout(c)) {
        const int64_t n = shape_numel(s.shape);
        p.tensors += (c.fp8_weights && s.fp8) ? 2 : 1;
        if (c.fp8_weights && s.fp8)
            p.fp8_scales += ((s.shape[0] + c.fp8_block_rows - 1) / c.fp8_block_rows) *
                            ((s.shape[1] + c.fp8_block_cols - 1) / c.fp8_block_cols);
        if (s.layer >= c.num_hidden_layers) {
            const std::string p_mtp = layer_prefix(s.layer);
            const bool copy = s.name == p_mtp + "embed_tokens.weight" || s.name == p_mtp + "shared_head.head.weight";
            (copy ? p.mtp_copies : p.mtp_total) += n;
            continue;
        }
        p.total += n;
        if (s.name == "model.embed_tokens.weight" && !c.tie_word_embeddings) continue;  // a lookup, not a product
        if (s.expert < 0 || s.expert < c.num_experts_per_tok) p.active += n;  // K of E experts are active
    }
    return p;
}

ForwardEstimate estimate_forward(const ModelConfig& c, int64_t T, int threads) {
    const int64_t L = c.num_hidden_layers, d = c.hidden_size, V = c.vocab_size;
    const double es = (c.torch_dtype == "bfloat16" || c.torch_dtype == "float16") ? 2.0 : 4.0;
    auto stored = [&](const WeightSpec& s) {
        const double n = (double)shape_numel(s.shape);
        if (c.fp8_weights && s.fp8)
            return n + 4.0 * (double)(((s.shape[0] + c.fp8_block_rows - 1) / c.fp8_block_rows) *
                                      ((s.shape[1] + c.fp8_block_cols - 1) / c.fp8_block_cols));
        return n * (s.kind == InitKind::Bias ? 4.0 : es);
    };
    std::vector<double> held_f32(L, 0), held_stored(L, 0);
    double expert_f32 = 0, expert_stored = 0, read = 0;
    const ModelTensors g = model_tensors(c);
    int64_t first_moe = -1;
    for (int64_t i = L - 1; i >= 0; i--)
        if (c.is_moe_layer(i)) first_moe = i;
    for (const WeightSpec& s : checkpoint_layout(c)) {
        if (s.layer >= L) continue;  // MTP layers: not read by a forward
        if (s.layer < 0) {
            if (s.name == g.embed.name && !c.tie_word_embeddings) read += stored(s) * (double)T / (double)V;
            else read += stored(s);
            continue;
        }
        if (s.expert >= 0) {
            // one routed expert's three weights (every expert of every MoE layer has the same shapes)
            if (s.expert == 0 && s.layer == first_moe) expert_f32 += 4.0 * (double)shape_numel(s.shape), expert_stored += stored(s);
            continue;
        }
        held_f32[s.layer] += 4.0 * (double)shape_numel(s.shape);
        held_stored[s.layer] += stored(s);
        read += stored(s);
    }
    for (int64_t i = 0; i < L; i++)
        if (c.is_moe_layer(i)) read += (double)std::min<int64_t>(c.n_routed_experts, T * c.num_experts_per_tok) * expert_stored;
    ForwardEstimate e;
    e.bytes_read = read;
    const double head_slice = 4.0 * (double)std::min<int64_t>(V, 8192) * (double)d;
    const double act = 4.0 * (double)T * (double)d * (8.0 + 2.0 * (double)c.num_experts_per_tok) + 8.0 * (double)T * V;
    const double kv = 4.0 * (double)L * (double)T * (double)kv_values_per_token_layer(c);
    double anon_layer = 0, peak_layer = 0;
    for (int64_t i = 0; i < L; i++) {
        const bool moe = c.is_moe_layer(i);
        const int64_t nt = moe ? std::min<int64_t>(threads, std::min<int64_t>(c.n_routed_experts, T * c.num_experts_per_tok)) : 0;
        anon_layer = std::max(anon_layer, held_f32[i] + (double)nt * expert_f32);
        peak_layer = std::max(peak_layer, held_f32[i] + held_stored[i] + (double)nt * (expert_f32 + expert_stored));
    }
    e.anonymous = std::max(anon_layer, head_slice) + act + kv;
    e.peak = std::max(peak_layer, head_slice * (1.0 + es / 4.0)) + act + kv;
    return e;
}

int64_t kv_values_per_token_layer(const ModelConfig& c) {
    if (c.is_mla()) return c.kv_lora_rank + c.qk_rope_head_dim;
    return 2 * c.num_key_value_heads * c.head_dim;
}

// MLA against the caches the same model would need with other attention kinds (V2 report §2.1.4,
// Table 1). d_h is the per-head size of the paper's MHA comparison, qk_nope_head_dim (128 in every
// released config).
static nlohmann::json kv_cache_comparison(const ModelConfig& c) {
    const int64_t H = c.num_attention_heads, d_h = c.qk_nope_head_dim, L = c.num_hidden_layers;
    const int64_t d_c = c.kv_lora_rank, d_r = c.qk_rope_head_dim, d_v = c.v_head_dim;
    nlohmann::json rows = nlohmann::json::array();
    auto row = [&](const std::string& mechanism, int64_t values) {
        rows.push_back({{"mechanism", mechanism},
                        {"values", values},
                        {"bytes_bf16", 2 * values},
                        {"bytes_bf16_all_layers", 2 * values * L}});
    };
    row("MLA latent (--attn absorb): d_c + d_r = " + std::to_string(d_c) + " + " + std::to_string(d_r), d_c + d_r);
    row("MLA decompressed (--attn naive): H·(d_n + d_r) + H·d_v", H * (c.qk_head_dim() + d_v));
    row("MHA, the paper's 2·H·d_h (d_h = qk_nope_head_dim = " + std::to_string(d_h) + ")", 2 * H * d_h);
    const int64_t g = std::min<int64_t>(8, H / 2);  // DeepSeek 67B's 8 KV heads, or fewer for small H
    if (g >= 2 && g < H) row("GQA, " + std::to_string(g) + " KV heads: 2·" + std::to_string(g) + "·d_h", 2 * g * d_h);
    row("MQA: 2·d_h", 2 * d_h);
    return rows;
}

// The real V2 / V2-Lite / V3 figures (config values of data/configs; V2 report Table 1), computed here.
static nlohmann::json reference_figures() {
    struct Real {
        const char* name;
        int64_t H, d_h, d_c, d_r, L;
    };
    const Real models[] = {{"DeepSeek-V3", 128, 128, 512, 64, 61},
                           {"DeepSeek-V2", 128, 128, 512, 64, 60},
                           {"DeepSeek-V2-Lite", 16, 128, 512, 64, 27}};
    nlohmann::json out = nlohmann::json::array();
    for (const Real& m : models) {
        const int64_t mla = m.d_c + m.d_r, mha = 2 * m.H * m.d_h;
        std::ostringstream s;
        s << m.name << ": MLA caches d_c + d_r = " << m.d_c << " + " << m.d_r << " = " << mla
          << " values per token per layer against 2·" << m.H << "·" << m.d_h << " = " << mha << " for MHA ("
          << std::fixed << std::setprecision(2) << 100.0 * mla / mha << " %); bf16 per token over " << m.L
          << " layers: " << 2 * mla * m.L << " B against " << 2 * mha * m.L << " B";
        out.push_back(s.str());
    }
    // V2 report §1: "KV cache reduced by 93.3 %" is against DeepSeek 67B (95 layers, GQA with 8 KV heads,
    // d_h 128, bf16) with V2's deployed cache at ~6 bits per element (V2 report §3.2.3).
    const int64_t llm67b = 2 * 8 * 128 * 95 * 2, v2_values = (512 + 64) * 60;
    const double v2_6bit = v2_values * 0.75;
    std::ostringstream s;
    s << "V2's \"93.3 % smaller KV cache\" compares with DeepSeek 67B (95 layers, 8 KV heads, bf16: 2·8·128·95·2 = "
      << llm67b << " B per token) and V2's cache at ~6 bits per value (" << v2_values << " × 0.75 = " << std::fixed
      << std::setprecision(0) << v2_6bit << " B): 1 − " << v2_6bit << "/" << llm67b << " = " << std::setprecision(1)
      << 100.0 * (1.0 - v2_6bit / (double)llm67b) << " %";
    out.push_back(s.str());
    return out;
}

nlohmann::json model_info(const ModelConfig& c) {
    using json = nlohmann::json;
    const ParamCounts p = count_params(c);
    const int64_t per_layer = kv_values_per_token_layer(c);
    json j;
    j["architecture"] = arch_name(c.arch);
    j["parameters"] = {{"total", p.total}, {"active_per_token", p.active}};
    if (c.num_nextn_predict_layers > 0) {
        j["parameters"]["mtp_total"] = p.mtp_total;
        j["parameters"]["mtp_copies"] = p.mtp_copies;
        j["parameters"]["stored_total"] = p.total + p.mtp_total + p.mtp_copies;
    }
    if (c.fp8_weights) {
        j["parameters"]["fp8_scale_elements"] = p.fp8_scales;
        j["parameters"]["stored_elements_with_scales"] = p.total + p.mtp_total + p.mtp_copies + p.fp8_scales;
    }
    j["parameters"]["stored_tensors"] = p.tensors;
    j["parameters"]["convention"] =
        "total: every main-model tensor (embedding, all experts, lm_head); active: total minus the unused "
        "routed experts and minus the embedding table (a lookup); MTP layers counted apart";
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
    const RopeScaling& rs = c.rope_scaling;
    if (rs.is_yarn())
        cfg["rope_scaling"] = {{"type", "yarn"},
                               {"factor", rs.factor},
                               {"original_max_position_embeddings", rs.original_max_position_embeddings},
                               {"beta_fast", rs.beta_fast},
                               {"beta_slow", rs.beta_slow},
                               {"mscale", rs.mscale},
                               {"mscale_all_dim", rs.mscale_all_dim}};
    else if (rs.type == RopeScalingType::Llama3)
        cfg["rope_scaling"] = {{"type", "llama3"},
                               {"factor", rs.factor},
                               {"low_freq_factor", rs.low_freq_factor},
                               {"high_freq_factor", rs.high_freq_factor},
                               {"original_max_position_embeddings", rs.original_max_position_embeddings}};
    else
        cfg["rope_scaling"] = nullptr;
    if (!c.is_mla()) {
        cfg["num_key_value_heads"] = c.num_key_value_heads;
        cfg["head_dim"] = c.head_dim;
        cfg["qkv_bias"] = c.qkv_bias;
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
            cfg["scoring_func"] = moe_scoring_name(c.scoring_func);
            cfg["topk_method"] = moe_topk_name(c.topk_method);
            cfg["norm_topk_prob"] = c.norm_topk_prob;
        }
        cfg["num_nextn_predict_layers"] = c.num_nextn_predict_layers;
        cfg["fp8_weights"] = c.fp8_weights;
    }
    if (c.has_indexer()) {  // DSA (V3.2, model/dsa_indexer.h): the indexer's weights and key cache
        const int64_t n_I = c.index_n_heads, d_I = c.index_head_dim, L = c.num_hidden_layers;
        cfg["index_n_heads"] = n_I;
        cfg["index_head_dim"] = d_I;
        cfg["index_topk"] = c.index_topk;
        const int64_t params = n_I * d_I * c.q_lora_rank + d_I * c.hidden_size + 2 * d_I + n_I * c.hidden_size;
        j["dsa_indexer"] = {
            {"parameters_per_layer", params},
            {"parameters_main_model", params * L},
            {"key_cache_values_per_token_per_layer", d_I},
            {"key_cache_bytes_per_token_fp32", 4 * d_I * L},
            // the official FP8 key cache: d_I E4M3 codes + one fp32 scale per 128 (Indexer.k_cache, k_scale_cache)
            {"key_cache_bytes_per_token_fp8", (d_I + 4 * fp8_num_blocks(d_I)) * L},
            {"attention_positions_per_query", c.index_topk}};
    }
    j["config"] = cfg;
    if (c.is_mla()) {
        j["kv_cache_comparison"] = kv_cache_comparison(c);
        j["reference_figures"] = reference_figures();
    }
    return j;
}

}  // namespace dsref
