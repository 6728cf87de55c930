// test_moe_balance.cpp — covers ref/moe/moe_balance.cpp: load statistics, the V3 sequence-wise loss, the
// aux-loss-free bias update (and a small simulation where it flattens a skewed load), V2's expert-,
// device- and communication-level losses, and device-limited routing, on hand-derived examples.
#include <catch2/catch.hpp>
#include <cmath>
#include <random>

#include "core/error.h"
#include "moe/moe_balance.h"
#include "moe/moe_gate.h"
#include "test_util.h"

using namespace dsref;

namespace {
// The tiny example of every loss test: T = 2 tokens, E = 4 experts, K = 2.
//   token 0 → experts {0, 1}, token 1 → experts {0, 2}
//   load c = [2, 1, 1, 0];  f = E/(K·T)·c = [2, 1, 1, 0]
const int32_t kIdx[4] = {0, 1, 0, 2};
// Affinities chosen so the per-token means are easy: P = [0.45, 0.2, 0.25, 0.1].
const float kSoftmax[8] = {0.4f, 0.3f, 0.2f, 0.1f, 0.5f, 0.1f, 0.3f, 0.1f};
// Sigmoid affinities whose per-token renormalization s' gives the same rows as kSoftmax:
// row 0 sums to 2.0, row 1 to 1.0.
const float kSigmoid[8] = {0.8f, 0.6f, 0.4f, 0.2f, 0.5f, 0.1f, 0.3f, 0.1f};
// Sums of a few float32 values in double: 1e-7 relative covers the float32 inputs.
constexpr double kTol = 1e-7;
}  // namespace

TEST_CASE("load, fraction and MaxVio of the tiny example", "[ref][moe][balance]") {
    CHECK(expert_load(kIdx, 2, 2, 4) == std::vector<int64_t>{2, 1, 1, 0});
    CHECK(expert_fraction(kIdx, 2, 2, 4) == std::vector<double>{2, 1, 1, 0});
    const LoadStats st = load_stats({2, 1, 1, 0});
    CHECK(st.mean == 1.0);
    CHECK(st.min == 0.0);
    CHECK(st.max == 2.0);
    CHECK(st.max_violation == 1.0);  // (2 − 1) / 1
    CHECK(load_stats({3, 3, 3}).max_violation == 0.0);
    const std::vector<double> P = mean_affinity(kSoftmax, 2, 4, false);
    CHECK(P[0] == Approx(0.45).epsilon(kTol));
    CHECK(P[3] == Approx(0.1).epsilon(kTol));
    CHECK_THROWS_WITH(expert_load(kIdx, 2, 2, 2), Catch::Contains("outside [0, 2)"));
}

TEST_CASE("V3 sequence-wise loss: alpha * sum f_i P_i with s renormalized over all experts", "[ref][moe][balance]") {
    // s' = [0.4 0.3 0.2 0.1] for both tokens' rows → P = [0.45, 0.2, 0.25, 0.1];
    // Σ f P = 2·0.45 + 0.2 + 0.25 + 0 = 1.35 → L = 1e-4 · 1.35.
    CHECK(v3_seq_aux_loss(kSigmoid, kIdx, 2, 4, 2, 1e-4) == Approx(1.35e-4).epsilon(kTol));
    // Perfect balance (f = 1, P = 1/E) gives exactly alpha: T = 2, E = 2, K = 1, one token each.
    const int32_t idx[2] = {0, 1};
    const float s[4] = {0.7f, 0.3f, 0.3f, 0.7f};
    CHECK(v3_seq_aux_loss(s, idx, 2, 2, 1, 0.5) == Approx(0.5).epsilon(kTol));
}

TEST_CASE("aux-loss-free bias update: b_i += gamma * sign(mean load - load_i)", "[ref][moe][balance]") {
    float b[4] = {0.0f, 0.5f, -0.25f, 1.0f};
    const int64_t load[4] = {2, 1, 1, 0};  // mean 1: expert 0 overloaded, 3 underloaded, 1 and 2 exact
    aux_free_bias_update(b, load, 4, 0.125);
    CHECK(b[0] == -0.125f);
    CHECK(b[1] == 0.5f);  // sign(0) = 0
    CHECK(b[2] == -0.25f);
    CHECK(b[3] == 1.125f);
}

TEST_CASE("the bias update flattens a skewed expert load within a few hundred steps", "[ref][moe][balance]") {
    // E = 16 experts, K = 2, batches of 256 tokens. Expert i's logit has a fixed offset 0.15·(8 − i)
    // plus noise, so expert 0 is strongly preferred. Route by sigmoid + bias (noaux_tc, one group),
    // update the bias with γ = 0.005 after every batch.
    const int64_t E = 16, K = 2, T = 256;
    MoeGateConfig g;
    g.E = E;
    g.K = K;
    g.scoring = MoeScoring::Sigmoid;
    g.topk_method = MoeTopk::NoauxTc;
    g.norm_topk_prob = true;
    std::mt19937_64 rng(5);
    std::normal_distribution<float> noise(0.0f, 1.0f);
    std::vector<float> bias(E, 0.0f), logits(T * E);
    double first = 0, last = 0;
    for (int step = 0; step < 300; step++) {
        for (int64_t t = 0; t < T; t++)
            for (int64_t i = 0; i < E; i++) logits[t * E + i] = 0.15f * (8 - i) + noise(rng);
        const MoeRouting r = moe_route(logits.data(), bias.data(), T, g);
        const std::vector<int64_t> load = expert_load(r.topk_idx.data(), T, K, E);
        if (step == 0) first = load_stats(load).max_violation;
        if (step >= 280) last += load_stats(load).max_violation / 20;  // mean over the last 20 steps
        aux_free_bias_update(bias.data(), load.data(), E, 0.005);
    }
    INFO("MaxVio first step " << first << ", mean of the last 20 " << last);
    CHECK(first > 1.5);       // heavily skewed at the start
    CHECK(last < first / 4);  // flattened: the noise floor of 512 assignments over 16 experts is ~0.3
    CHECK(bias[0] < 0);       // the favourite was pushed down ...
    CHECK(bias[E - 1] > 0);   // ... and the least liked pulled up
}

TEST_CASE("V2 expert-, device- and communication-level losses of the tiny example", "[ref][moe][balance]") {
    // Expert level: Σ f P = 1.35 → α1 = 0.003 gives 0.00405.
    CHECK(v2_expert_balance_loss(kSoftmax, kIdx, 2, 4, 2, 0.003) == Approx(0.00405).epsilon(kTol));
    // Device level, D = 2 devices {0,1}, {2,3}: f' = [(2+1)/2, (1+0)/2] = [1.5, 0.5],
    // P' = [0.65, 0.35] → Σ = 0.975 + 0.175 = 1.15 → α2 = 0.05 gives 0.0575.
    CHECK(v2_device_balance_loss(kSoftmax, kIdx, 2, 4, 2, 2, 0.05) == Approx(0.0575).epsilon(kTol));
    // Communication, M = 2: token 0 reaches device 0 only, token 1 devices 0 and 1 → counts [2, 1];
    // f'' = D/(M·T)·counts = [1, 0.5]; Σ f'' P'' = 0.65 + 0.175 = 0.825 → α3 = 0.02 gives 0.0165.
    CHECK(v2_comm_balance_loss(kSoftmax, kIdx, 2, 4, 2, 2, 2, 0.02) == Approx(0.0165).epsilon(kTol));
    CHECK_THROWS_WITH(v2_device_balance_loss(kSoftmax, kIdx, 2, 4, 2, 3, 0.05), Catch::Contains("D = 3"));
    CHECK_THROWS_WITH(v2_comm_balance_loss(kSoftmax, kIdx, 2, 4, 2, 2, 3, 0.02), Catch::Contains("M = 3"));
}

TEST_CASE("device-limited routing: best M devices by their top affinity, then top-K inside", "[ref][moe][balance]") {
    // E = 6 over D = 3 devices: [0.1 0.5 | 0.45 0.4 | 0.3 0.05]; device maxima 0.5, 0.45, 0.3.
    const float s[6] = {0.1f, 0.5f, 0.45f, 0.4f, 0.3f, 0.05f};
    int32_t idx[2];
    device_limited_topk(idx, s, 1, 6, 3, 1, 2);  // M = 1: device 0 only → experts 1, 0
    CHECK(std::vector<int32_t>(idx, idx + 2) == std::vector<int32_t>{1, 0});
    device_limited_topk(idx, s, 1, 6, 3, 2, 2);  // M = 2: devices 0, 1 → experts 1, 2
    CHECK(std::vector<int32_t>(idx, idx + 2) == std::vector<int32_t>{1, 2});
    CHECK_THROWS_WITH(device_limited_topk(idx, s, 1, 6, 3, 1, 3), Catch::Contains("K = 3"));
    // It is exactly the V2 gate with n_group = D, topk_group = M, on random softmax scores.
    const int64_t T = 50, E = 32;
    const std::vector<float> z = dsref_test::randn(T * E, 21);
    MoeGateConfig g;
    g.E = E;
    g.K = 6;
    g.n_group = 8;
    g.topk_group = 3;
    g.topk_method = MoeTopk::GroupLimitedGreedy;
    const MoeRouting r = moe_route(z.data(), nullptr, T, g);
    std::vector<int32_t> dl(T * 6);
    device_limited_topk(dl.data(), r.scores.data(), T, E, 8, 3, 6);
    CHECK(dl == r.topk_idx);
    // Every token touches at most M = 3 devices.
    for (int64_t t = 0; t < T; t++) {
        std::vector<bool> dev(8, false);
        int n = 0;
        for (int k = 0; k < 6; k++)
            if (!dev[dl[t * 6 + k] / 4]) dev[dl[t * 6 + k] / 4] = true, n++;
        CHECK(n <= 3);
    }
}
