// decoder_layer.cpp — RMSNorm → attention → residual add → RMSNorm → feed-forward → residual add.
#include "model/decoder_layer.h"

#include <string>

#include "core/rmsnorm.h"
#include "io/checkpoint_layout.h"
#include "model/moe_block.h"

namespace dsref {

DecoderLayer::DecoderLayer(const ModelConfig& c, const WeightLoader& w, int64_t i, bool moe, const ForwardOptions& fwd)
    : i_(i), d_(c.hidden_size), eps_((float)c.rms_norm_eps), finite_(fwd.finite), prec_(fwd.precision) {
    const DecoderNormTensors n = decoder_norm_tensors(c, i);
    input_norm_ = prec_.load(w, n.input_norm);
    post_norm_ = prec_.load(w, n.post_norm);
    const std::string a = attn_prefix(i), m = mlp_prefix(i);
    attn_ = c.is_mla() ? make_mla_block(c, w, a, fwd.attn, prec_, fwd.indexer) : make_gqa_block(c, w, a, prec_, fwd.hold_bf16);
    ffn_ = moe ? make_moe_block(c, w, m, prec_, fwd.stream_experts) : make_dense_mlp_block(c, w, m, c.intermediate_size, prec_, fwd.hold_bf16);
}

void DecoderLayer::forward(float* h, int64_t T, int64_t pos0, LayerCache& cache, Trace* trace) const {
    const int64_t d = d_;
    std::vector<float> x(T * d), y(T * d);  // [T, d] the normalized input and a block's output
    prec_.rmsnorm(x.data(), h, input_norm_.data(), T, d, eps_);
    attn_->forward(y.data(), x.data(), T, pos0, cache, trace, i_);
    trace_f32(trace, "attn." + std::to_string(i_), {T, d}, y.data());
    finite_->check("attn." + std::to_string(i_), y.data(), T, d);
    prec_.residual_add(h, y.data(), T * d);
    prec_.rmsnorm(x.data(), h, post_norm_.data(), T, d, eps_);
    ffn_->forward(y.data(), x.data(), T, trace, i_);
    prec_.residual_add(h, y.data(), T * d);
    trace_f32(trace, "hidden." + std::to_string(i_), {T, d}, h);
    finite_->check("hidden." + std::to_string(i_), h, T, d);
}

}  // namespace dsref
