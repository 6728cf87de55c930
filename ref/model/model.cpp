// model.cpp — embedding → decoder layers (MLA/GQA + dense MLP or DeepSeekMoE) → final norm → lm_head.
#include "model/model.h"

#include "core/error.h"
#include "core/linear.h"
#include "core/rmsnorm.h"
#include "io/checkpoint_layout.h"
#include "model/moe_block.h"

namespace dsref {

size_t KVCache::bytes() const {
    size_t n = 0;
    for (const LayerCache& l : layers) n += (l.a.size() + l.b.size() + l.index_k.size()) * sizeof(float);
    return n;
}

Model::Model(const std::string& dir, ModelOptions opt)
    : cfg_(load_config(dir)), opt_(std::move(opt)), ckpt_(dir), loader_(ckpt_, cfg_) {
    PrecisionPolicy& prec = opt_.fwd.precision;
    prec.check_config(cfg_);
    prec.scale_fmt = cfg_.fp8_scale_fmt;  // official-fp8's act_quant uses the checkpoint's scale_fmt
    bool any_moe = false;
    for (int64_t i = 0; i < cfg_.num_hidden_layers; i++) any_moe = any_moe || cfg_.is_moe_layer(i);
    if (any_moe) moe_gate_config(cfg_);  // the MoE fields, before any weight is read (the error names the field)
    check_checkpoint();
    if (opt_.keep_weights)
        for (int64_t i = 0; i < cfg_.num_hidden_layers; i++)
            kept_.emplace_back(cfg_, loader_, i, cfg_.is_moe_layer(i), opt_.fwd);
}

// Every tensor the config implies must be there with its shape, before any compute starts.
void Model::check_checkpoint() const {
    for (const WeightSpec& s : checkpoint_layout(cfg_)) {
        if (s.layer >= cfg_.num_hidden_layers) continue;  // MTP layers: read by model/mtp.h only
        loader_.check(s);
    }
}

void Model::check_tokens(const std::vector<int32_t>& tokens) const {
    for (int32_t t : tokens)
        if (t < 0 || t >= cfg_.vocab_size) fail("token id ", t, " is outside the vocabulary [0, ", cfg_.vocab_size, ")");
}

std::vector<float> Model::forward_hidden(const std::vector<int32_t>& tokens, KVCache& cache, Trace* trace) {
    const int64_t T = (int64_t)tokens.size(), d = cfg_.hidden_size, L = cfg_.num_hidden_layers;
    if (T == 0) fail("forward: no tokens");
    check_tokens(tokens);
    if (cache.layers.empty()) cache.layers.resize(L);
    const int64_t pos0 = cache.len;

    const ModelTensors g = model_tensors(cfg_);
    const PrecisionPolicy& prec = opt_.fwd.precision;
    std::vector<float> h = loader_.load_rows(g.embed.name, g.embed.shape, tokens);  // [T, d]
    prec.round(h.data(), T * d);  // the embedding as the emulated reference holds it (bf16)
    for (int64_t i = 0; i < L; i++) {
        if (opt_.keep_weights) {
            kept_[i].forward(h.data(), T, pos0, cache.layers[i], trace);
        } else {
            const DecoderLayer layer(cfg_, loader_, i, cfg_.is_moe_layer(i), opt_.fwd);
            layer.forward(h.data(), T, pos0, cache.layers[i], trace);
        }
    }
    cache.len += T;
    std::vector<float> x(T * d);  // [T, d]
    prec.rmsnorm(x.data(), h.data(), prec.load(loader_, g.norm).data(), T, d, (float)cfg_.rms_norm_eps);
    return x;
}

std::vector<float> Model::lm_head(const float* x, int64_t rows) const {
    const int64_t d = cfg_.hidden_size, V = cfg_.vocab_size;
    std::vector<float> logits(rows * V);  // [rows, V]
    const PrecisionPolicy& prec = opt_.fwd.precision;
    prec.linear(logits.data(), x, prec.load(loader_, model_tensors(cfg_).lm_head), rows, d, V);
    return logits;
}

std::vector<float> Model::forward(const std::vector<int32_t>& tokens, KVCache& cache, Trace* trace, bool last_only) {
    const std::vector<float> x = forward_hidden(tokens, cache, trace);  // [T, d]
    const int64_t T = (int64_t)tokens.size(), rows = last_only ? 1 : T;
    return lm_head(x.data() + (T - rows) * cfg_.hidden_size, rows);
}

std::vector<float> Model::prefill(const std::vector<int32_t>& tokens, Trace* trace, bool last_only) {
    KVCache cache;
    return forward(tokens, cache, trace, last_only);
}

}  // namespace dsref
