// v4_info.cpp — DeepSeek-V4 parameter and KV-cache counts (v4_info.h).
#include "tools/v4_info.h"

#include <algorithm>

#include "core/error.h"

namespace dsref {

using json = nlohmann::json;

// One block (official Block): attention with its compressor / indexer, the MoE, two norms, two mHC mixes.
// Returns {total, routed experts not selected per token}.
static std::pair<int64_t, int64_t> block_params(const V4Config& c, int64_t ratio) {
    const int64_t d = c.hidden_size, H = c.num_attention_heads, dh = c.head_dim, ql = c.q_lora_rank;
    const int64_t G = c.o_groups, R = c.o_lora_rank, n = c.hc_mult;
    int64_t p = d * ql + ql + ql * H * dh + d * dh + dh + H * dh * R + G * R * d + H;  // attention
    auto compressor = [&](int64_t head, int64_t m) {
        const int64_t co = m == 4 ? 2 : 1;
        return m * co * head + 2 * d * co * head + head;  // ape, wkv, wgate, norm
    };
    if (ratio > 0) p += compressor(dh, ratio);
    if (ratio == 4) p += ql * c.index_n_heads * c.index_head_dim + d * c.index_n_heads + compressor(c.index_head_dim, 4);
    const int64_t I = c.moe_intermediate_size, E = c.n_routed_experts, K = c.num_experts_per_tok;
    p += E * d + E;                 // gate.weight, gate.bias (hash layers: tid2eid instead of the bias)
    p += E * 3 * d * I + 3 * d * I;  // routed and shared experts
    p += 2 * d;                     // attn_norm, ffn_norm
    const int64_t mix = (2 + n) * n;
    p += 2 * (mix * n * d + mix + 3);  // hc_attn_*, hc_ffn_*
    return {p, (E - K) * 3 * d * I};
}

json v4_model_info(const V4Config& c) {
    const int64_t d = c.hidden_size, V = c.vocab_size, n = c.hc_mult, L = c.num_hidden_layers;
    int64_t total = 0, inactive = 0, hash_bias = 0;
    for (int64_t i = 0; i < L; ++i) {
        auto [p, off] = block_params(c, c.compress_ratio[(size_t)i]);
        if (c.hash_layer[(size_t)i]) {
            p -= c.n_routed_experts;  // no bias on a hash gate
            hash_bias += V * c.num_experts_per_tok;
        }
        total += p;
        inactive += off;
    }
    const int64_t top = 2 * V * d + d + n * n * d + n + 1;  // embed, head, norm, hc_head_*
    total += top;
    int64_t mtp = 0, mtp_inactive = 0;
    for (int64_t k = 0; k < c.num_nextn_predict_layers; ++k) {
        if ((int64_t)c.compress_ratio.size() <= L + k)
            fail(c.source, ": field 'compress_ratios' has no entry for MTP block ", k, " (index ", L + k, ")");
        auto [p, off] = block_params(c, c.compress_ratio[(size_t)(L + k)]);
        mtp += p + 2 * d * d + 3 * d + n * n * d + n + 1;  // e_proj, h_proj, enorm/hnorm/norm, hc_head_*
        mtp_inactive += off;
    }
    json j;
    j["architecture"] = "deepseek_v4";
    j["parameters"] = {
        {"total", total},
        {"active_per_token", total - inactive},
        {"active_per_token_without_embeddings", total - inactive - V * d},
        {"mtp_total", mtp},
        {"mtp_active_per_token", mtp - mtp_inactive},
        {"total_with_mtp", total + mtp},
        {"tid2eid_entries", hash_bias},
        {"convention", "one parameter per logical weight element of the official inference/model.py, scales "
                       "excluded; active = total minus the unselected routed experts of every layer (embedding "
                       "and head included); MTP apart"},
    };
    int64_t n_sw = 0, n_csa = 0, n_hca = 0, hca_m = 128;
    for (int64_t i = 0; i < L; ++i) {
        const V4LayerType t = c.layer_type(i);
        if (t == V4LayerType::Sliding) n_sw++;
        else if (t == V4LayerType::Csa) n_csa++;
        else n_hca++, hca_m = c.compress_ratio[(size_t)i];
    }
    const double dh = (double)c.head_dim;
    j["layers"] = {{"sliding_attention", n_sw}, {"compressed_sparse_attention", n_csa},
                   {"heavily_compressed_attention", n_hca}, {"hash_moe", (int64_t)std::count(c.hash_layer.begin(), c.hash_layer.end(), true)}};
    j["kv_cache"] = {
        {"window_values_per_layer", c.sliding_window * c.head_dim},
        {"csa_values_per_token_per_layer", dh / 4 + (double)c.index_head_dim / 4},
        {"hca_values_per_token_per_layer", dh / (double)hca_m},
        {"values_per_token_all_layers", (double)n_csa * (dh / 4 + (double)c.index_head_dim / 4) + (double)n_hca * dh / (double)hca_m},
        {"bytes_per_token_bf16", 2.0 * ((double)n_csa * (dh / 4 + (double)c.index_head_dim / 4) + (double)n_hca * dh / (double)hca_m)},
        {"window_bytes_bf16_all_layers", 2 * L * c.sliding_window * c.head_dim},
    };
    return j;
}

}  // namespace dsref
