// model.cpp — embedding → decoder layers → final norm → lm_head (spec 2.1).
#include "model.h"

#include <algorithm>

#include "error.h"
#include "layout.h"
#include "linear.h"
#include "rmsnorm.h"

namespace dsref {

size_t KVCache::bytes() const {
    size_t n = 0;
    for (const LayerCache& l : layers) n += (l.a.size() + l.b.size()) * sizeof(float);
    return n;
}

Model::Model(const std::string& dir, ModelOptions opt)
    : cfg_(load_config(dir)), opt_(std::move(opt)), ckpt_(dir), loader_(ckpt_, cfg_) {
    for (int64_t i = 0; i < cfg_.num_hidden_layers; i++)
        if (cfg_.is_moe_layer(i))
            fail(cfg_.source, ": layer ", i, " is a DeepSeekMoE layer (n_routed_experts ", cfg_.n_routed_experts,
                 ", first_k_dense_replace ", cfg_.first_k_dense_replace,
                 "); MoE layers are not implemented yet, only configs whose layers are all dense run "
                 "(first_k_dense_replace = num_hidden_layers)");
    if (opt_.fwd.attn != "naive" && opt_.fwd.attn != "absorb")
        usage_fail("--attn must be naive or absorb, got '", opt_.fwd.attn, "'");
    check_checkpoint();
    if (opt_.keep_weights)
        for (int64_t i = 0; i < cfg_.num_hidden_layers; i++) kept_.push_back(load_layer(i));
}

// Every tensor the config implies must be there with its shape, before any compute starts.
void Model::check_checkpoint() const {
    for (const WeightSpec& s : checkpoint_layout(cfg_)) {
        if (s.layer >= cfg_.num_hidden_layers) continue;  // MTP layers: only read with --mtp
        if (!ckpt_.has(s.name)) fail("checkpoint ", ckpt_.dir(), ": missing tensor '", s.name, "' (shape ", shape_str(s.shape), ")");
        const TensorRef& r = ckpt_.get(s.name);
        if (r.shape != s.shape)
            fail("checkpoint ", ckpt_.dir(), ": tensor '", s.name, "' has shape ", shape_str(r.shape), ", expected ",
                 shape_str(s.shape));
    }
}

Model::Layer Model::load_layer(int64_t i) const {
    const std::string p = layer_prefix(i);
    const int64_t d = cfg_.hidden_size;
    Layer l;
    l.input_norm = loader_.load(p + "input_layernorm.weight", {d});
    l.post_norm = loader_.load(p + "post_attention_layernorm.weight", {d});
    l.attn = cfg_.is_mla() ? make_mla_block(cfg_, loader_, p, opt_.fwd.attn) : make_gqa_block(cfg_, loader_, p);
    l.ffn = make_dense_mlp_block(cfg_, loader_, p, cfg_.intermediate_size);
    return l;
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
        const Layer& l = opt_.keep_weights ? kept_[i] : (loaded = load_layer(i));
        rmsnorm_forward(x.data(), h.data(), l.input_norm.data(), T, d, eps);
        l.attn->forward(y.data(), x.data(), T, pos0, cache.layers[i], trace, i);
        trace_f32(trace, "attn." + std::to_string(i), {T, d}, y.data());
        for (int64_t j = 0; j < T * d; j++) h[j] += y[j];
        rmsnorm_forward(x.data(), h.data(), l.post_norm.data(), T, d, eps);
        l.ffn->forward(y.data(), x.data(), T, trace, i);
        for (int64_t j = 0; j < T * d; j++) h[j] += y[j];
        trace_f32(trace, "hidden." + std::to_string(i), {T, d}, h.data());
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

}  // namespace dsref
