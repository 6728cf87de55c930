// checkpoint_layout_v4.cpp — the DeepSeek-V4 tensor names and shapes (the table in checkpoint_layout_v4.h).
#include "io/checkpoint_layout_v4.h"

#include "core/error.h"

namespace dsref {

std::string v4_layer_prefix(const V4Config& c, int64_t i) {
    return i < c.num_hidden_layers ? "layers." + std::to_string(i) + "."
                                   : "mtp." + std::to_string(i - c.num_hidden_layers) + ".";
}

int64_t v4_layer_ratio(const V4Config& c, int64_t i) {
    if (i < 0 || i >= (int64_t)c.compress_ratio.size())
        fail(c.source, ": field 'compress_ratios' has ", c.compress_ratio.size(), " entries; layer ", i,
             i >= c.num_hidden_layers ? " (an MTP block)" : "", " needs one");
    return c.compress_ratio[(size_t)i];
}

bool v4_layer_hash(const V4Config& c, int64_t i) { return i < c.num_hidden_layers && c.hash_layer[(size_t)i]; }

static V4Spec spec(const std::string& name, Shape shape, InitKind kind, int64_t layer, bool fp8 = false,
                   int64_t expert = -1) {
    V4Spec s;
    s.w.name = name, s.w.shape = std::move(shape), s.w.kind = kind, s.w.layer = layer, s.w.fp8 = fp8;
    s.w.expert = expert;
    return s;
}

std::vector<V4Spec> v4_layer_layout(const V4Config& c, int64_t i) {
    const int64_t L = c.num_hidden_layers, d = c.hidden_size, n = c.hc_mult, M = (2 + n) * n, H = c.num_attention_heads;
    const int64_t dh = c.head_dim, ql = c.q_lora_rank, G = c.o_groups, R = c.o_lora_rank;
    const int64_t E = c.n_routed_experts, I = c.moe_intermediate_size;
    if (i < 0 || i >= L + c.num_nextn_predict_layers) fail("v4 layout: layer ", i, " does not exist");
    const std::string p = v4_layer_prefix(c, i), a = p + "attn.", f = p + "ffn.";
    const int64_t m = v4_layer_ratio(c, i);
    std::vector<V4Spec> v;
    for (const char* k : {"attn", "ffn"}) {
        v.push_back(spec(p + "hc_" + k + "_fn", {M, n * d}, InitKind::Linear, i));
        v.push_back(spec(p + "hc_" + k + "_base", {M}, InitKind::ProjBias, i));
        v.push_back(spec(p + "hc_" + k + "_scale", {3}, InitKind::Norm, i));
    }
    v.push_back(spec(p + "attn_norm.weight", {d}, InitKind::Norm, i));
    v.push_back(spec(p + "ffn_norm.weight", {d}, InitKind::Norm, i));
    v.push_back(spec(a + "attn_sink", {H}, InitKind::ProjBias, i));
    v.push_back(spec(a + "wq_a.weight", {ql, d}, InitKind::Linear, i, true));
    v.push_back(spec(a + "q_norm.weight", {ql}, InitKind::Norm, i));
    v.push_back(spec(a + "wq_b.weight", {H * dh, ql}, InitKind::Linear, i, true));
    v.push_back(spec(a + "wkv.weight", {dh, d}, InitKind::Linear, i, true));
    v.push_back(spec(a + "kv_norm.weight", {dh}, InitKind::Norm, i));
    v.push_back(spec(a + "wo_a.weight", {G * R, H * dh / G}, InitKind::Linear, i));  // bf16 in the official code
    v.push_back(spec(a + "wo_b.weight", {d, G * R}, InitKind::Linear, i, true));
    auto compressor = [&](const std::string& q, int64_t ratio, int64_t hd) {
        const int64_t cw = (ratio == 4 ? 2 : 1) * hd;
        v.push_back(spec(q + "ape", {ratio, cw}, InitKind::ProjBias, i));
        v.push_back(spec(q + "wkv.weight", {cw, d}, InitKind::Linear, i));  // float in the official code
        v.push_back(spec(q + "wgate.weight", {cw, d}, InitKind::Linear, i));
        v.push_back(spec(q + "norm.weight", {hd}, InitKind::Norm, i));
    };
    if (m > 0) compressor(a + "compressor.", m, dh);
    if (m == 4) {
        v.push_back(spec(a + "indexer.wq_b.weight", {c.index_n_heads * c.index_head_dim, ql}, InitKind::Linear, i, true));
        v.push_back(spec(a + "indexer.weights_proj.weight", {c.index_n_heads, d}, InitKind::Linear, i));
        compressor(a + "indexer.compressor.", 4, c.index_head_dim);
    }
    v.push_back(spec(f + "gate.weight", {E, d}, InitKind::Linear, i));
    if (v4_layer_hash(c, i)) {
        V4Spec t = spec(f + "gate.tid2eid", {c.vocab_size, c.num_experts_per_tok}, InitKind::Bias, i);
        t.table = true;
        v.push_back(t);
    } else {
        v.push_back(spec(f + "gate.bias", {E}, InitKind::Bias, i));
    }
    auto expert = [&](const std::string& q, int64_t e) {
        for (const char* w : {"w1", "w3"}) {
            V4Spec s = spec(q + w + ".weight", {I, d}, InitKind::Linear, i, e < 0, e);
            s.fp4 = e >= 0;
            v.push_back(s);
        }
        V4Spec s = spec(q + "w2.weight", {d, I}, InitKind::Linear, i, e < 0, e);
        s.fp4 = e >= 0;
        v.push_back(s);
    };
    expert(f + "shared_experts.", -1);
    for (int64_t e = 0; e < E; ++e) expert(f + "experts." + std::to_string(e) + ".", e);
    if (i >= L) {
        v.push_back(spec(p + "e_proj.weight", {d, d}, InitKind::Linear, i, true));
        v.push_back(spec(p + "h_proj.weight", {d, d}, InitKind::Linear, i, true));
        for (const char* k : {"enorm.weight", "hnorm.weight", "norm.weight"}) v.push_back(spec(p + k, {d}, InitKind::Norm, i));
        v.push_back(spec(p + "hc_head_fn", {n, n * d}, InitKind::Linear, i));
        v.push_back(spec(p + "hc_head_base", {n}, InitKind::ProjBias, i));
        v.push_back(spec(p + "hc_head_scale", {1}, InitKind::Norm, i));
    }
    return v;
}

std::vector<V4Spec> v4_checkpoint_layout(const V4Config& c) {
    const int64_t d = c.hidden_size, n = c.hc_mult, V = c.vocab_size;
    std::vector<V4Spec> v = {
        spec("embed.weight", {V, d}, InitKind::Embedding, -1), spec("head.weight", {V, d}, InitKind::Linear, -1),
        spec("norm.weight", {d}, InitKind::Norm, -1),          spec("hc_head_fn", {n, n * d}, InitKind::Linear, -1),
        spec("hc_head_base", {n}, InitKind::ProjBias, -1),     spec("hc_head_scale", {1}, InitKind::Norm, -1),
    };
    for (int64_t i = 0; i < c.num_hidden_layers + c.num_nextn_predict_layers; ++i) {
        // an MTP block without a compress_ratios entry (transformers' layer_types has none) is left out here;
        // using it (--mtp) fails in v4_layer_ratio, naming the field
        if (i >= c.num_hidden_layers && i >= (int64_t)c.compress_ratio.size()) break;
        std::vector<V4Spec> l = v4_layer_layout(c, i);
        v.insert(v.end(), l.begin(), l.end());
    }
    return v;
}

}  // namespace dsref
