// mtp.cpp — the V3 multi-token-prediction module (depth 1) on top of the main model's final hidden state.
#include "model/mtp.h"

#include <algorithm>

#include "core/error.h"
#include "core/linear.h"
#include "core/rmsnorm.h"
#include "io/checkpoint_layout.h"
#include "model/decoder_layer.h"
#include "model/moe_block.h"

namespace dsref {

Mtp::Mtp(Model& model) : model_(model) {
    const ModelConfig& c = model.config();
    const WeightLoader& w = model.weights();
    const int64_t L = c.num_hidden_layers;
    if (c.num_nextn_predict_layers < 1)
        fail(c.source, ": --mtp needs a multi-token-prediction layer, but num_nextn_predict_layers = ",
             c.num_nextn_predict_layers);
    if (!model.options().fwd.precision.none())
        usage_fail("--mtp with --emulate: neither emulated reference runs the MTP module");
    if (c.has_moe()) moe_gate_config(c);  // the MTP layer is MoE whenever the model has routed experts
    const MtpTensors m = mtp_tensors(c, L);
    const ModelTensors g = model_tensors(c);
    // The copies of the embedding and of the head (and the head's norm) may be absent: the main model's serve.
    embed_ = w.has(m.embed.name) ? m.embed.name : g.embed.name;
    head_norm_ = w.has(m.head_norm.name) ? m.head_norm.name : g.norm.name;
    head_ = w.has(m.head.name) ? m.head.name : g.lm_head.name;
    for (const WeightSpec* s : {&m.enorm, &m.hnorm, &m.eh_proj}) w.check(*s, "MTP tensor");
    for (const WeightSpec& s : decoder_layer_layout(c, L, c.has_moe())) w.check(s, "MTP tensor");
    for (const WeightSpec* s : {&m.embed, &m.head_norm, &m.head})
        if (w.has(s->name)) w.check(*s, "MTP tensor");
}

Mtp::Output Mtp::forward(const std::vector<int32_t>& tokens, Trace* trace, bool last_only) {
    const int64_t T = (int64_t)tokens.size(), d = model_.config().hidden_size;
    if (T < 2) fail("--mtp: multi-token prediction needs at least 2 tokens (row i predicts t_{i+2}), got ", T);
    KVCache cache;
    const std::vector<float> h = model_.forward_hidden(tokens, cache, trace);  // [T, d] after model.norm
    Output out;
    const int64_t rows = last_only ? 1 : T;
    out.logits = model_.lm_head(h.data() + (T - rows) * d, rows);
    model_.options().fwd.finite->check("logits", out.logits.data(), rows, model_.config().vocab_size);
    out.mtp_logits = forward_from_hidden(tokens, h, trace);
    return out;
}

std::vector<float> Mtp::forward_from_hidden(const std::vector<int32_t>& tokens, const std::vector<float>& final_hidden,
                                            Trace* trace) const {
    const ModelConfig& c = model_.config();
    const WeightLoader& w = model_.weights();
    const int64_t T = (int64_t)tokens.size(), d = c.hidden_size, V = c.vocab_size, L = c.num_hidden_layers;
    if (T < 2) fail("--mtp: multi-token prediction needs at least 2 tokens (row i predicts t_{i+2}), got ", T);
    if ((int64_t)final_hidden.size() != T * d)
        fail("mtp: final_hidden has ", final_hidden.size(), " values, expected T·d = ", T * d);
    model_.check_tokens(tokens);
    const MtpTensors m = mtp_tensors(c, L);
    const float eps = (float)c.rms_norm_eps;
    const int64_t n = T - 1;  // MTP positions 0..T-2

    // x_i = eh_proj · [enorm(Emb(t_{i+1})) ; hnorm(h_i)], i = 0..T-2
    const std::vector<int32_t> next(tokens.begin() + 1, tokens.end());
    const std::vector<float> emb = w.load_rows(embed_, {V, d}, next);  // [n, d]
    std::vector<float> cat(n * 2 * d);  // [n, 2d]: normalized embedding in columns [0, d), hidden in [d, 2d)
    {
        const std::vector<float> enorm = w.load(m.enorm), hnorm = w.load(m.hnorm);
        std::vector<float> e(n * d), hh(n * d);  // [n, d] each
        rmsnorm_forward(e.data(), emb.data(), enorm.data(), n, d, eps);
        rmsnorm_forward(hh.data(), final_hidden.data(), hnorm.data(), n, d, eps);  // rows h_0..h_{T-2}
        for (int64_t i = 0; i < n; i++) {
            std::copy(e.begin() + i * d, e.begin() + (i + 1) * d, cat.begin() + i * 2 * d);
            std::copy(hh.begin() + i * d, hh.begin() + (i + 1) * d, cat.begin() + i * 2 * d + d);
        }
    }
    std::vector<float> h(n * d);  // [n, d] the MTP layer's residual stream
    linear_forward(h.data(), cat.data(), w.load(m.eh_proj).data(), n, 2 * d, d);

    // One decoder layer, causal over positions 0..n-1, with its own fresh cache.
    const DecoderLayer layer(c, w, L, c.has_moe(), model_.options().fwd);
    LayerCache cache;
    layer.forward(h.data(), n, 0, cache, trace);

    // the shared head
    std::vector<float> x(n * d);  // [n, d]
    rmsnorm_forward(x.data(), h.data(), w.load(head_norm_, {d}).data(), n, d, eps);
    std::vector<float> logits(n * V);  // [n, V]
    linear_forward(logits.data(), x.data(), w.load(head_, {V, d}).data(), n, d, V);
    model_.options().fwd.finite->check("mtp_logits", logits.data(), n, V);
    return logits;
}

}  // namespace dsref
