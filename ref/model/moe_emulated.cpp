// moe_emulated.cpp — the DeepSeekMoE layer with the rounding points of an emulated reference
// (model/precision.h): transformers' DeepseekV3MoE with eager experts, or the official MoE.forward.
// The float32 layer is moe/moe.h; this one follows the references' own loop structure, because where
// they round (the per-expert products, a bf16 sum in ascending expert id) is part of the result.
#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "core/linear.h"
#include "core/tensor.h"
#include "model/precision.h"

namespace dsref {

namespace {

// The official Gate.forward (inference/model.py) in bf16: logits = linear(x, W) R; s = sigmoid R (softmax
// in float32); selection on s + bias in float32 (groups: top-2 sum with a bias, max without); weights are
// the rounded s gathered, normalized for sigmoid (their sum R, the quotient R) and ·route_scale R.
MoeRouting official_gate(const float* x, const MoeWeights& w, int64_t T, const MoeGateConfig& g,
                         const PrecisionPolicy& p) {
    if (g.scoring == MoeScoring::SqrtSoftplus)
        fail("--emulate: scoring_func sqrtsoftplus (DeepSeek-V4) has no emulated rounding points");
    const int64_t E = g.E, K = g.K, d = w.d;
    std::vector<float> logits(T * E);  // [T, E]
    p.linear(logits.data(), x, w.gate, T, d, E);
    MoeRouting r;
    r.T = T, r.K = K, r.E = E;
    r.topk_idx.resize(T * K);
    r.topk_weight.resize(T * K);
    r.scores.resize(T * E);
    r.margin.resize(T);
    const bool bias = !w.bias.empty();
    for (int64_t t = 0; t < T; t++) {
        const float* z = logits.data() + t * E;
        float* s = r.scores.data() + t * E;
        if (g.scoring == MoeScoring::Sigmoid) {
            for (int64_t e = 0; e < E; e++) s[e] = bf16_round((float)(1.0 / (1.0 + std::exp(-(double)z[e]))));
        } else {  // scores.softmax(dim=-1, dtype=torch.float32): stays float32
            const float zmax = *std::max_element(z, z + E);
            double sum = 0;
            for (int64_t e = 0; e < E; e++) sum += std::exp((double)z[e] - zmax);
            for (int64_t e = 0; e < E; e++) s[e] = (float)(std::exp((double)z[e] - zmax) / sum);
        }
        std::vector<float> u(s, s + E);
        if (bias)
            for (int64_t e = 0; e < E; e++) u[e] = s[e] + w.bias[e];  // bf16 + float32 bias → float32
        int32_t* idx = r.topk_idx.data() + t * K;
        moe_select_topk(idx, &r.margin[t], u.data(), E, g.n_group, g.topk_group, K,
                        bias ? GroupScore::Top2Sum : GroupScore::Max);
        float* wt = r.topk_weight.data() + t * K;
        for (int64_t k = 0; k < K; k++) wt[k] = s[idx[k]];
        if (g.scoring == MoeScoring::Sigmoid) {  // weights /= weights.sum(): both in bf16
            double sum = 0;
            for (int64_t k = 0; k < K; k++) sum += wt[k];
            const float denom = bf16_round((float)sum);
            for (int64_t k = 0; k < K; k++) wt[k] = bf16_round(wt[k] / denom);
        }
        for (int64_t k = 0; k < K; k++) {
            const float v = wt[k] * (float)g.routed_scaling_factor;  // weights *= route_scale
            wt[k] = bf16_round(v);  // bf16 already (sigmoid) or .type_as(x) (softmax)
        }
    }
    return r;
}

}  // namespace

MoeRouting moe_forward_emulated(float* y, const float* x, int64_t T, const MoeGateConfig& g, const MoeWeights& w,
                                const PrecisionPolicy& p, const std::vector<Fp8Weight>& fp8) {
    if (p.none()) fail("moe_forward_emulated: no emulation mode (the float32 layer is moe_forward)");
    moe_weights_check(w, g);
    const int64_t d = w.d, K = g.K, E = g.E;
    // The router: transformers' DeepseekV3TopkRouter is float32 (dsref's own router); the official one is bf16.
    MoeRouting r = p.hf() ? moe_gate_forward(x, w.gate.data(), w.bias.empty() ? nullptr : w.bias.data(), T, d, g)
                          : official_gate(x, w, T, g, p);
    auto fp8_of = [&](int64_t expert, int k) -> const Fp8Weight* {  // expert E = the shared one
        const size_t i = (size_t)(expert * 3 + k);
        return i < fp8.size() && !fp8[i].empty() ? &fp8[i] : nullptr;
    };

    std::vector<float> acc(T * d, 0.0f);  // [T, d] the bf16 sum of the routed experts (zeros_like(x))
    for (int64_t e = 0; e < E; e++) {     // ascending expert id, as both references loop
        std::vector<int64_t> rows, slots;  // the tokens routed to e, and their k
        for (int64_t t = 0; t < T; t++)
            for (int64_t k = 0; k < K; k++)
                if (r.topk_idx[t * K + k] == e) rows.push_back(t), slots.push_back(k);
        if (rows.empty()) continue;
        const int64_t n = (int64_t)rows.size();
        std::vector<float> xe(n * d), ye(n * d);  // [n, d]
        for (int64_t i = 0; i < n; i++) std::copy(x + rows[i] * d, x + (rows[i] + 1) * d, xe.begin() + i * d);
        const Fp8Weight* fw[3] = {fp8_of(e, 0), fp8_of(e, 1), fp8_of(e, 2)};
        p.swiglu(ye.data(), xe.data(), w.w_gate[e], w.w_up[e], w.w_down[e], n, d, w.I, fw);
        for (int64_t i = 0; i < n; i++) {
            const float wt = r.topk_weight[rows[i] * K + slots[i]];
            float* a = acc.data() + rows[i] * d;
            for (int64_t c = 0; c < d; c++) {
                // hf: (bf16 output · float32 weight) R, then index_add_ R; official: bf16 · bf16 R, then += R
                const float v = bf16_round(ye[i * d + c] * wt);
                a[c] = bf16_round(a[c] + v);
            }
        }
    }
    if (w.I_shared > 0) {  // + shared_experts(x), a bf16 add
        std::vector<float> z(T * d);
        const Fp8Weight* fw[3] = {fp8_of(E, 0), fp8_of(E, 1), fp8_of(E, 2)};
        p.swiglu(z.data(), x, w.shared_gate, w.shared_up, w.shared_down, T, d, w.I_shared, fw);
        for (int64_t j = 0; j < T * d; j++) acc[j] = bf16_round(acc[j] + z[j]);
    }
    std::copy(acc.begin(), acc.end(), y);
    return r;
}

}  // namespace dsref
