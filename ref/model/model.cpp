// model.cpp — embedding → decoder layers (MLA/GQA + dense MLP or DeepSeekMoE) → final norm → lm_head
// (spec 2.1), and the optional multi-token-prediction pass (spec 6).
#include "model/model.h"

#include <algorithm>

#include "core/error.h"
#include "core/linear.h"
#include "core/rmsnorm.h"
#include "io/checkpoint_layout.h"
#include "model/moe_block.h"
#include "moe/moe_gate.h"

namespace dsref {

size_t KVCache::bytes() const {
    size_t n = 0;
    for (const LayerCache& l : layers) n += (l.a.size() + l.b.size()) * sizeof(float);
    return n;
}

Model::Model(const std::string& dir, ModelOptions opt)
    : cfg_(load_config(dir)), opt_(std::move(opt)), ckpt_(dir), loader_(ckpt_, cfg_) {
    bool any_moe = opt_.mtp && cfg_.has_moe();  // the MTP layer is MoE whenever the model has experts
    for (int64_t i = 0; i < cfg_.num_hidden_layers; i++) any_moe = any_moe || cfg_.is_moe_layer(i);
    if (any_moe) {  // the gate's fields, before any weight is read (the error names the field)
        try {
            moe_gate_config(cfg_);
        } catch (const Error& e) {
            fail(cfg_.source, ": ", e.what());
        }
        if (cfg_.moe_intermediate_size < 1)
            fail(cfg_.source, ": field 'moe_intermediate_size' must be >= 1 for MoE layers, got ",
                 cfg_.moe_intermediate_size);
        if (cfg_.n_shared_experts < 0)
            fail(cfg_.source, ": field 'n_shared_experts' must be >= 0, got ", cfg_.n_shared_experts);
    }
    check_checkpoint();
    if (opt_.mtp) check_mtp_checkpoint();
    if (opt_.keep_weights)
        for (int64_t i = 0; i < cfg_.num_hidden_layers; i++) kept_.push_back(load_layer(i, cfg_.is_moe_layer(i)));
}

// Every tensor the config implies must be there with its shape, before any compute starts.
void Model::check_checkpoint() const {
    for (const WeightSpec& s : checkpoint_layout(cfg_)) {
        if (s.layer >= cfg_.num_hidden_layers) continue;  // MTP layers: only read with --mtp
        loader_.check(s);
    }
}

// The MTP tensors of layer L that may be missing: the copies of the embedding and of the head (and the
// head's norm), for which the main model's are used.
static bool mtp_optional(const std::string& name, int64_t L) {
    const std::string p = layer_prefix(L);
    return name == p + "embed_tokens.weight" || name == p + "shared_head.head.weight" ||
           name == p + "shared_head.norm.weight";
}

void Model::check_mtp_checkpoint() const {
    const int64_t L = cfg_.num_hidden_layers;
    if (cfg_.num_nextn_predict_layers < 1)
        fail(cfg_.source, ": --mtp needs a multi-token-prediction layer, but num_nextn_predict_layers = ",
             cfg_.num_nextn_predict_layers);
    for (const WeightSpec& s : checkpoint_layout(cfg_)) {
        if (s.layer != L) continue;  // only the first MTP module (depth 1) is run
        if (!ckpt_.has(s.name) && mtp_optional(s.name, L)) continue;
        loader_.check(s, "MTP tensor");
    }
}

Model::Layer Model::load_layer(int64_t i, bool moe) const {
    const std::string p = layer_prefix(i);
    const int64_t d = cfg_.hidden_size;
    Layer l;
    l.input_norm = loader_.load(p + "input_layernorm.weight", {d});
    l.post_norm = loader_.load(p + "post_attention_layernorm.weight", {d});
    l.attn = cfg_.is_mla() ? make_mla_block(cfg_, loader_, p, opt_.fwd.attn) : make_gqa_block(cfg_, loader_, p);
    l.ffn = moe ? make_moe_block(cfg_, loader_, p) : make_dense_mlp_block(cfg_, loader_, p, cfg_.intermediate_size);
    return l;
}

void Model::layer_forward(const Layer& l, float* h, float* x, float* y, int64_t T, int64_t pos0, LayerCache& cache,
                          Trace* trace, int64_t i) const {
    const int64_t d = cfg_.hidden_size;
    const float eps = (float)cfg_.rms_norm_eps;
    rmsnorm_forward(x, h, l.input_norm.data(), T, d, eps);
    l.attn->forward(y, x, T, pos0, cache, trace, i);
    trace_f32(trace, "attn." + std::to_string(i), {T, d}, y);
    for (int64_t j = 0; j < T * d; j++) h[j] += y[j];
    rmsnorm_forward(x, h, l.post_norm.data(), T, d, eps);
    l.ffn->forward(y, x, T, trace, i);
    for (int64_t j = 0; j < T * d; j++) h[j] += y[j];
    trace_f32(trace, "hidden." + std::to_string(i), {T, d}, h);
}

std::vector<float> Model::forward(const std::vector<int32_t>& tokens, KVCache& cache, Trace* trace, bool last_only,
                                  std::vector<float>* final_hidden) {
    const int64_t T = (int64_t)tokens.size(), d = cfg_.hidden_size, V = cfg_.vocab_size, L = cfg_.num_hidden_layers;
    if (T == 0) fail("forward: no tokens");
    for (int32_t t : tokens)
        if (t < 0 || t >= V) fail("token id ", t, " is outside the vocabulary [0, ", V, ")");
    if (cache.layers.empty()) cache.layers.resize(L);
    const int64_t pos0 = cache.len;
    const float eps = (float)cfg_.rms_norm_eps;

    std::vector<float> h = loader_.load_rows("model.embed_tokens.weight", {V, d}, tokens);  // [T, d]
    std::vector<float> x(T * d), y(T * d);                                                   // [T, d] scratch
    for (int64_t i = 0; i < L; i++) {
        Layer loaded;
        const Layer& l = opt_.keep_weights ? kept_[i] : (loaded = load_layer(i, cfg_.is_moe_layer(i)));
        layer_forward(l, h.data(), x.data(), y.data(), T, pos0, cache.layers[i], trace, i);
    }
    cache.len += T;

    rmsnorm_forward(x.data(), h.data(), loader_.load("model.norm.weight", {d}).data(), T, d, eps);
    if (final_hidden) *final_hidden = x;
    const int64_t rows = last_only ? 1 : T;
    const float* xs = x.data() + (T - rows) * d;
    const std::string head = cfg_.tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight";
    std::vector<float> logits(rows * V);  // [rows, V]
    linear_forward(logits.data(), xs, loader_.load(head, {V, d}).data(), rows, d, V);
    return logits;
}

std::vector<float> Model::prefill(const std::vector<int32_t>& tokens, Trace* trace, bool last_only) {
    KVCache cache;
    return forward(tokens, cache, trace, last_only);
}

std::vector<float> Model::mtp_forward(const std::vector<int32_t>& tokens, const std::vector<float>& final_hidden,
                                      Trace* trace) {
    const int64_t T = (int64_t)tokens.size(), d = cfg_.hidden_size, V = cfg_.vocab_size, L = cfg_.num_hidden_layers;
    check_mtp_checkpoint();
    if (T < 2) fail("--mtp: multi-token prediction needs at least 2 tokens (row i predicts t_{i+2}), got ", T);
    if ((int64_t)final_hidden.size() != T * d)
        fail("mtp_forward: final_hidden has ", final_hidden.size(), " values, expected T·d = ", T * d);
    for (int32_t t : tokens)
        if (t < 0 || t >= V) fail("token id ", t, " is outside the vocabulary [0, ", V, ")");
    const std::string p = layer_prefix(L);
    const float eps = (float)cfg_.rms_norm_eps;
    const int64_t n = T - 1;  // MTP positions 0..T-2
    auto own_or_main = [&](const std::string& own, const std::string& main) { return ckpt_.has(own) ? own : main; };
    const std::string main_head = cfg_.tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight";

    // x_i = eh_proj · [enorm(Emb(t_{i+1})) ; hnorm(h_i)], i = 0..T-2
    const std::vector<int32_t> next(tokens.begin() + 1, tokens.end());
    const std::vector<float> emb =
        loader_.load_rows(own_or_main(p + "embed_tokens.weight", "model.embed_tokens.weight"), {V, d}, next);  // [n, d]
    std::vector<float> cat(n * 2 * d);  // [n, 2d]: normalized embedding in columns [0, d), hidden in [d, 2d)
    {
        const std::vector<float> enorm = loader_.load(p + "enorm.weight", {d});
        const std::vector<float> hnorm = loader_.load(p + "hnorm.weight", {d});
        std::vector<float> e(n * d), hh(n * d);  // [n, d] each
        rmsnorm_forward(e.data(), emb.data(), enorm.data(), n, d, eps);
        rmsnorm_forward(hh.data(), final_hidden.data(), hnorm.data(), n, d, eps);  // rows h_0..h_{T-2}
        for (int64_t i = 0; i < n; i++) {
            std::copy(e.begin() + i * d, e.begin() + (i + 1) * d, cat.begin() + i * 2 * d);
            std::copy(hh.begin() + i * d, hh.begin() + (i + 1) * d, cat.begin() + i * 2 * d + d);
        }
    }
    std::vector<float> h(n * d);  // [n, d] the MTP layer's residual stream
    linear_forward(h.data(), cat.data(), loader_.load(p + "eh_proj.weight", {d, 2 * d}).data(), n, 2 * d, d);

    // One decoder layer, causal over positions 0..n-1, with its own fresh cache.
    const Layer l = load_layer(L, cfg_.has_moe());
    LayerCache cache;
    std::vector<float> x(n * d), y(n * d);  // [n, d] scratch
    layer_forward(l, h.data(), x.data(), y.data(), n, 0, cache, trace, L);

    // shared head
    rmsnorm_forward(x.data(), h.data(),
                    loader_.load(own_or_main(p + "shared_head.norm.weight", "model.norm.weight"), {d}).data(), n, d, eps);
    std::vector<float> logits(n * V);  // [n, V]
    linear_forward(logits.data(), x.data(),
                   loader_.load(own_or_main(p + "shared_head.head.weight", main_head), {V, d}).data(), n, d, V);
    return logits;
}

}  // namespace dsref
