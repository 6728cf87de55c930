// moe_gate.cpp — the DeepSeekMoE router (rules in moe_gate.h): scores, group-limited top-K, combine weights.
#include "moe/moe_gate.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "core/error.h"
#include "core/linear.h"

namespace dsref {

MoeScoring parse_moe_scoring(const std::string& s) {
    if (s == "softmax") return MoeScoring::Softmax;
    if (s == "sigmoid") return MoeScoring::Sigmoid;
    if (s == "sqrtsoftplus") return MoeScoring::SqrtSoftplus;
    fail("scoring_func '", s, "' is not supported (softmax | sigmoid | sqrtsoftplus)");
}

MoeTopk parse_moe_topk(const std::string& s) {
    if (s == "greedy") return MoeTopk::Greedy;
    if (s == "group_limited_greedy") return MoeTopk::GroupLimitedGreedy;
    if (s == "noaux_tc") return MoeTopk::NoauxTc;
    fail("topk_method '", s, "' is not supported (greedy | group_limited_greedy | noaux_tc)");
}

const char* moe_scoring_name(MoeScoring s) {
    switch (s) {
        case MoeScoring::Softmax: return "softmax";
        case MoeScoring::Sigmoid: return "sigmoid";
        case MoeScoring::SqrtSoftplus: return "sqrtsoftplus";
    }
    return "?";
}

// Step 2 for one token: s [E] out · z [E]
static void moe_scores(float* s, const float* z, int64_t E, MoeScoring scoring) {
    if (scoring == MoeScoring::Sigmoid) {
        for (int64_t i = 0; i < E; i++) s[i] = (float)(1.0 / (1.0 + std::exp(-(double)z[i])));
    } else if (scoring == MoeScoring::SqrtSoftplus) {  // ln(1 + e^z) = max(z, 0) + ln(1 + e^-|z|), no overflow
        for (int64_t i = 0; i < E; i++) {
            const double zi = z[i];
            s[i] = (float)std::sqrt(std::max(zi, 0.0) + std::log1p(std::exp(-std::fabs(zi))));
        }
    } else {  // softmax over all E experts, before any masking (V2 report eq. 22; Gate.forward)
        const float zmax = *std::max_element(z, z + E);
        double sum = 0;
        for (int64_t i = 0; i < E; i++) sum += std::exp((double)z[i] - zmax);
        for (int64_t i = 0; i < E; i++) s[i] = (float)(std::exp((double)z[i] - zmax) / sum);
    }
}

const char* moe_topk_name(MoeTopk m) {
    switch (m) {
        case MoeTopk::Greedy: return "greedy";
        case MoeTopk::GroupLimitedGreedy: return "group_limited_greedy";
        case MoeTopk::NoauxTc: return "noaux_tc";
    }
    return "?";
}

// Does this method rank groups at all (greedy ignores n_group, as the V2 remote code does)?
static bool uses_groups(const MoeGateConfig& g) { return g.topk_method != MoeTopk::Greedy && g.n_group > 1; }

void moe_gate_check(const MoeGateConfig& g, int64_t bias_len) {
    if (g.E < 1) fail("moe gate: n_routed_experts must be >= 1, got ", g.E);
    if (g.K < 1) fail("moe gate: num_experts_per_tok must be >= 1, got ", g.K);
    if (g.n_group < 1) fail("moe gate: n_group must be >= 1, got ", g.n_group);
    if (g.E % g.n_group != 0)
        fail("moe gate: n_routed_experts = ", g.E, " is not divisible by n_group = ", g.n_group);
    if (!(g.routed_scaling_factor > 0) || !std::isfinite(g.routed_scaling_factor))
        fail("moe gate: routed_scaling_factor must be a positive number, got ", g.routed_scaling_factor);
    if (!(g.norm_eps >= 0) || !std::isfinite(g.norm_eps))
        fail("moe gate: the normalization epsilon must be a number >= 0, got ", g.norm_eps);
    if (uses_groups(g)) {
        if (g.topk_group < 1 || g.topk_group > g.n_group)
            fail("moe gate: topk_group = ", g.topk_group, " must be in [1, n_group = ", g.n_group, "]");
        const int64_t reachable = g.topk_group * (g.E / g.n_group);
        if (g.K > reachable)
            fail("moe gate: num_experts_per_tok = ", g.K, " is larger than the ", reachable,
                 " experts that topk_group = ", g.topk_group, " groups of ", g.E / g.n_group, " hold");
        if (g.topk_method == MoeTopk::NoauxTc && g.E / g.n_group < 2)
            fail("moe gate: noaux_tc scores a group by its top-2 experts, but n_routed_experts / n_group = ",
                 g.E / g.n_group);
    } else if (g.K > g.E) {
        fail("moe gate: num_experts_per_tok = ", g.K, " is larger than n_routed_experts = ", g.E);
    }
    if (g.topk_method == MoeTopk::NoauxTc) {
        if (bias_len >= 0 && bias_len != g.E)
            fail("moe gate: e_score_correction_bias has ", bias_len, " elements, expected n_routed_experts = ", g.E);
    } else if (bias_len >= 0) {
        fail("moe gate: an e_score_correction_bias was given but topk_method = ", moe_topk_name(g.topk_method),
             " does not use one (only noaux_tc does)");
    }
}

// Sort order of the selection: larger score first, ties to the lower id.
static bool before(float a, int64_t ia, float b, int64_t ib) { return a > b || (a == b && ia < ib); }

// LAB(moe_topk) task: group-limited top-K (moe_gate.h steps 4-5): score each of n_group groups (Max or Top2Sum), keep the
// LAB(moe_topk) best topk_group groups, mask the rest to -inf, write the K best ids sorted, and the margin.
// LAB(moe_topk) hint: order with before() (ties to the lower id); margin = smallest gap at a selection boundary.
void moe_select_topk(int32_t* idx, float* margin, const float* u, int64_t E, int64_t n_group, int64_t topk_group,
                     int64_t K, GroupScore group_score) {
    // LAB(moe_topk): begin
    const float NEG_INF = -std::numeric_limits<float>::infinity();
    float gap = std::numeric_limits<float>::infinity();
    std::vector<float> masked(u, u + E);  // [E] u, −inf outside the kept groups

    if (n_group > 1) {
        const int64_t per = E / n_group;
        std::vector<float> gs(n_group);  // [G] group scores
        for (int64_t g = 0; g < n_group; g++) {
            const float* ug = u + g * per;
            if (group_score == GroupScore::Max) {
                gs[g] = *std::max_element(ug, ug + per);
            } else {  // sum of the two largest (with repeats: two equal maxima both count)
                float a = NEG_INF, b = NEG_INF;
                for (int64_t j = 0; j < per; j++) {
                    if (ug[j] > a) { b = a; a = ug[j]; }
                    else if (ug[j] > b) b = ug[j];
                }
                gs[g] = a + b;
            }
        }
        std::vector<int64_t> order(n_group);  // groups, best first
        std::iota(order.begin(), order.end(), 0);
        std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return before(gs[a], a, gs[b], b); });
        if (topk_group < n_group) gap = std::min(gap, gs[order[topk_group - 1]] - gs[order[topk_group]]);
        for (int64_t r = topk_group; r < n_group; r++)
            std::fill(masked.begin() + order[r] * per, masked.begin() + (order[r] + 1) * per, NEG_INF);
    }

    // Top-K of the masked scores, sorted: a partial sort of the ids.
    std::vector<int64_t> ids(E);
    std::iota(ids.begin(), ids.end(), 0);
    const int64_t m = std::min<int64_t>(K + 1, E);  // one more, for the margin to the best unselected
    std::partial_sort(ids.begin(), ids.begin() + m, ids.end(),
                      [&](int64_t a, int64_t b) { return before(masked[a], a, masked[b], b); });
    for (int64_t k = 0; k < K; k++) idx[k] = (int32_t)ids[k];
    for (int64_t k = 0; k + 1 < m; k++) {
        const float hi = masked[ids[k]], lo = masked[ids[k + 1]];
        if (lo != NEG_INF) gap = std::min(gap, hi - lo);
    }
    if (margin) *margin = gap;
    // LAB(moe_topk): end
}

MoeRouting moe_route(const float* logits, const float* bias, int64_t T, const MoeGateConfig& g) {
    moe_gate_check(g, bias ? g.E : -1);
    const int64_t E = g.E, K = g.K;
    for (int64_t i = 0; bias && i < E; i++)
        if (!std::isfinite(bias[i])) fail("moe gate: e_score_correction_bias[", i, "] is not finite");
    for (int64_t j = 0; j < T * E; j++)
        if (!std::isfinite(logits[j])) fail("moe gate: router logit of token ", j / E, ", expert ", j % E, " is not finite");

    MoeRouting r;
    r.T = T;
    r.K = K;
    r.E = E;
    r.topk_idx.resize(T * K);
    r.topk_weight.resize(T * K);
    r.scores.resize(T * E);
    r.margin.resize(T);
    const bool groups = uses_groups(g);
    const GroupScore gscore = g.topk_method == MoeTopk::NoauxTc ? GroupScore::Top2Sum : GroupScore::Max;

    int64_t zero_sum_token = T;  // first token whose weights cannot be normalized (errors cannot leave an omp loop)
    // One token per iteration; every token's result depends on that token only. Small batches stay on
    // one thread: a parallel region costs more than routing a few thousand scores.
#pragma omp parallel for schedule(static) if (T * E >= kMoeParallelMin)
    for (int64_t t = 0; t < T; t++) {
        const float* z = logits + t * E;  // [E]
        float* s = r.scores.data() + t * E;  // [E]
        moe_scores(s, z, E, g.scoring);
        std::vector<float> u(s, s + E);  // [E] selection scores
        if (g.topk_method == MoeTopk::NoauxTc && bias)
            for (int64_t i = 0; i < E; i++) u[i] = s[i] + bias[i];  // float32 add, as the references do

        int32_t* idx = r.topk_idx.data() + t * K;
        moe_select_topk(idx, &r.margin[t], u.data(), E, groups ? g.n_group : 1, g.topk_group, K, gscore);

        float* w = r.topk_weight.data() + t * K;
        double sum = 0;
        for (int64_t k = 0; k < K; k++) {
            w[k] = s[idx[k]];  // the unbiased score: the bias never enters a weight
            sum += w[k];
        }
        bool normalize, scale;
        if (g.topk_method == MoeTopk::NoauxTc) {  // V3 rule: optional normalization (any K), then scale
            normalize = g.norm_topk_prob;
            scale = true;
        } else {  // V2 remote-code rule: normalize or scale, never both
            normalize = K > 1 && g.norm_topk_prob;
            scale = !normalize;
        }
        const double den = sum + g.norm_eps;
        if (normalize && !(den > 0)) {  // every selected sigmoid underflowed: refuse rather than divide by 0
#pragma omp critical(moe_gate_zero_sum)
            zero_sum_token = std::min(zero_sum_token, t);
            continue;
        }
        for (int64_t k = 0; k < K; k++) {
            double v = w[k];
            if (normalize) v /= den;
            if (scale) v *= g.routed_scaling_factor;
            w[k] = (float)v;
        }
    }
    if (zero_sum_token < T)
        fail("moe gate: token ", zero_sum_token, ": the selected scores sum to 0, the weights cannot be normalized");
    return r;
}

MoeRouting moe_route_hash(const float* logits, const int32_t* tid2eid, int64_t V, const int64_t* token_ids,
                          int64_t T, const MoeGateConfig& g, const std::string& what) {
    moe_gate_check(g, -1);
    const int64_t E = g.E, K = g.K;
    for (int64_t t = 0; t < T; t++) {
        if (token_ids[t] < 0 || token_ids[t] >= V)
            fail(what, ": token id ", token_ids[t], " (position ", t, ") is outside the table's ", V, " rows");
        for (int64_t k = 0; k < K; k++) {
            const int32_t e = tid2eid[token_ids[t] * K + k];
            if (e < 0 || e >= E)
                fail(what, "[", token_ids[t], ", ", k, "] = ", e, " is not an expert id (n_routed_experts = ", E, ")");
        }
    }
    for (int64_t j = 0; j < T * E; j++)
        if (!std::isfinite(logits[j])) fail("moe gate: router logit of token ", j / E, ", expert ", j % E, " is not finite");
    MoeRouting r;
    r.T = T, r.K = K, r.E = E;
    r.topk_idx.resize(T * K);
    r.topk_weight.resize(T * K);
    r.scores.resize(T * E);
    r.margin.assign(T, std::numeric_limits<float>::infinity());
    for (int64_t t = 0; t < T; t++) {
        float* s = r.scores.data() + t * E;
        moe_scores(s, logits + t * E, E, g.scoring);
        double sum = 0;
        for (int64_t k = 0; k < K; k++) {
            const int32_t e = tid2eid[token_ids[t] * K + k];
            r.topk_idx[t * K + k] = e;
            sum += s[e];
        }
        const double den = sum + g.norm_eps;
        if (g.norm_topk_prob && !(den > 0)) fail("moe gate: token ", t, ": the hash-selected scores sum to 0");
        for (int64_t k = 0; k < K; k++) {
            double v = s[r.topk_idx[t * K + k]];
            if (g.norm_topk_prob) v /= den;
            r.topk_weight[t * K + k] = (float)(v * g.routed_scaling_factor);
        }
    }
    return r;
}

MoeRouting moe_gate_forward(const float* x, const float* w_gate, const float* bias, int64_t T, int64_t d,
                            const MoeGateConfig& g) {
    moe_gate_check(g, bias ? g.E : -1);
    std::vector<float> logits(T * g.E);  // [T, E]
    linear_forward(logits.data(), x, w_gate, T, d, g.E);
    return moe_route(logits.data(), bias, T, g);
}

}  // namespace dsref
