// moe_block.cpp — the DeepSeekMoE feed-forward sub-block of a decoder layer: its weights read from the
// checkpoint (moe/moe.h holds the math).
#include "model/moe_block.h"

#include <atomic>

#include "core/error.h"

namespace dsref {

MoeGateConfig moe_gate_config(const ModelConfig& c) {
    const MoeGateConfig g = c.moe_gate();
    try {
        moe_gate_check(g, g.topk_method == MoeTopk::NoauxTc ? g.E : -1);
    } catch (const Error& e) {
        fail(c.source, ": ", e.what());
    }
    if (c.moe_intermediate_size < 1)
        fail(c.source, ": field 'moe_intermediate_size' must be >= 1 for MoE layers, got ", c.moe_intermediate_size);
    if (c.n_shared_experts < 0) fail(c.source, ": field 'n_shared_experts' must be >= 0, got ", c.n_shared_experts);
    return g;
}

MoeWeights load_moe_weights(const ModelConfig& c, const MoeGateConfig& g, const WeightLoader& wl,
                            const std::string& prefix, bool experts) {
    MoeWeights w;
    w.d = c.hidden_size;
    w.I = c.moe_intermediate_size;
    w.I_shared = c.n_shared_experts * c.moe_intermediate_size;
    if (c.n_routed_experts != g.E)
        fail("load_moe_weights: the gate config does not belong to this model config");
    const MoeTensors t = moe_tensors(c, prefix);
    w.gate = wl.load(t.gate);
    if (t.bias) {
        wl.check(*t.bias, "tensor (topk_method noaux_tc needs it)");
        w.bias = wl.load(*t.bias);
    }
    for (const MlpTensors& e : t.experts) {
        if (!experts) {
            for (const WeightSpec* s : {&e.gate, &e.up, &e.down}) wl.check(*s);
            continue;
        }
        w.w_gate.push_back(wl.load(e.gate));
        w.w_up.push_back(wl.load(e.up));
        w.w_down.push_back(wl.load(e.down));
    }
    if (t.shared) {
        w.shared_gate = wl.load(t.shared->gate);
        w.shared_up = wl.load(t.shared->up);
        w.shared_down = wl.load(t.shared->down);
    }
    moe_weights_check(w, g, experts);
    return w;
}

static std::atomic<int64_t> g_stream_experts{0}, g_stream_bytes{0};

MoeStreamStats moe_stream_stats() { return {g_stream_experts.load(), g_stream_bytes.load()}; }

namespace {
// The feed-forward sub-block of an MoE decoder layer (V2/V3 layers >= first_k_dense_replace).
class MoeBlock : public FeedForwardBlock {
public:
    MoeBlock(const ModelConfig& c, const WeightLoader& wl, const std::string& prefix, const PrecisionPolicy& prec,
             bool stream)
        : g_(moe_gate_config(c)), stream_(stream && prec.none()), wl_(wl),
          w_(load_moe_weights(c, g_, wl, prefix, !stream_)), prec_(prec) {
        if (!prec_.none()) emulated_weights(c, wl, prefix);
        if (stream_) experts_ = moe_tensors(c, prefix).experts;
    }

    void forward(float* out, const float* x, int64_t T, Trace* trace, int64_t layer) const override {
        MoeRouting r;
        if (stream_) {
            const MoeExpertFetch fetch = [this](int64_t e, float* wg, float* wu, float* wd) {
                const MlpTensors& t = experts_[e];
                int64_t bytes = 0;
                float* dst[3] = {wg, wu, wd};
                const WeightSpec* specs[3] = {&t.gate, &t.up, &t.down};
                for (int j = 0; j < 3; j++) {
                    wl_.load_into(dst[j], *specs[j]);
                    bytes += (int64_t)wl_.source().get(specs[j]->name).nbytes;
                    const std::string sname = specs[j]->name + "_scale_inv";
                    if (wl_.has(sname)) bytes += (int64_t)wl_.source().get(sname).nbytes;
                    wl_.release(specs[j]->name);
                }
                g_stream_experts++;
                g_stream_bytes += bytes;
            };
            const MoeExpertPrefetch prefetch = [this](const std::vector<int64_t>& used) {
                for (int64_t e : used)
                    for (const WeightSpec* s : {&experts_[e].gate, &experts_[e].up, &experts_[e].down})
                        wl_.prefetch(s->name);
            };
            r = moe_forward_streamed(out, x, T, g_, w_, fetch, nullptr, &prefetch);
        } else {
            r = prec_.none() ? moe_forward(out, x, T, g_, w_) : moe_forward_emulated(out, x, T, g_, w_, prec_, fp8_);
        }
        const std::string idx_name = "topk_idx." + std::to_string(layer), w_name = "topk_weight." + std::to_string(layer);
        if (trace && trace->wants(idx_name)) trace->record(idx_name, Tensor::from_i32({T, g_.K}, r.topk_idx));
        if (trace && trace->wants(w_name)) trace->record(w_name, Tensor::from_f32({T, g_.K}, r.topk_weight));
    }

private:
    // The weights as the emulated reference holds them: bf16, except the router bias (float32 in both
    // references) and, in transformers, the router weight; official-fp8 also keeps the stored codes.
    void emulated_weights(const ModelConfig& c, const WeightLoader& wl, const std::string& prefix) {
        if (!prec_.hf()) prec_.round_weight(w_.gate);
        for (auto* ws : {&w_.w_gate, &w_.w_up, &w_.w_down})
            for (std::vector<float>& e : *ws) prec_.round_weight(e);
        for (std::vector<float>* s : {&w_.shared_gate, &w_.shared_up, &w_.shared_down}) prec_.round_weight(*s);
        if (!prec_.fp8()) return;
        const MoeTensors t = moe_tensors(c, prefix);
        for (const MlpTensors& e : t.experts)
            for (const WeightSpec* s : {&e.gate, &e.up, &e.down}) fp8_.push_back(prec_.load_fp8(wl, *s));
        if (t.shared)
            for (const WeightSpec* s : {&t.shared->gate, &t.shared->up, &t.shared->down})
                fp8_.push_back(prec_.load_fp8(wl, *s));
    }

    MoeGateConfig g_;
    bool stream_;
    const WeightLoader& wl_;
    std::vector<MlpTensors> experts_;  // [E] the routed experts' names and shapes, when streamed
    MoeWeights w_;
    PrecisionPolicy prec_;
    std::vector<Fp8Weight> fp8_;  // official-fp8: [E + 1 (shared)][gate, up, down], as stored
};
}  // namespace

std::unique_ptr<FeedForwardBlock> make_moe_block(const ModelConfig& c, const WeightLoader& w,
                                                 const std::string& prefix, const PrecisionPolicy& prec, bool stream) {
    return std::make_unique<MoeBlock>(c, w, prefix, prec, stream);
}

}  // namespace dsref
