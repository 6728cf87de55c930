// test_moe_gate.cpp — covers ref/moe/moe_gate.cpp and the `moe_gate` op (ref/ops/ops_moe.cpp): hand-derived
// routing for every scoring/top-k variant and both weight rules, −inf group masking, ties, bad
// input, thread independence, and golden routing from data/moe/moe_ref.py (float64, independent).
#include <catch2/catch.hpp>
#include <cmath>

#include "core/error.h"
#include "io/config.h"
#include "io/safetensors.h"
#include "model/moe_block.h"
#include "moe/moe_gate.h"
#include "moe_fixtures.h"
#include "ops/op_registry.h"
#include "lab_expect.h"
#include "test_util.h"

using namespace dsref;
using dsref_test::v3_gate;

namespace {

// logit(s): the router logit whose sigmoid is s, so tests can state sigmoid scores directly.
float logit(double s) { return (float)std::log(s / (1.0 - s)); }

MoeGateConfig v2_gate(int64_t E, int64_t K, int64_t G, int64_t Kg, MoeTopk m, double scale, bool norm) {
    MoeGateConfig g;
    g.E = E;
    g.K = K;
    g.n_group = G;
    g.topk_group = Kg;
    g.scoring = MoeScoring::Softmax;
    g.topk_method = m;
    g.norm_topk_prob = norm;
    g.routed_scaling_factor = scale;
    return g;
}

std::vector<int32_t> idx_of(const MoeRouting& r, int64_t t) {
    return std::vector<int32_t>(r.topk_idx.begin() + t * r.K, r.topk_idx.begin() + (t + 1) * r.K);
}

// Sigmoid scores go through float logits and back: 1e-6 covers float32 rounding of logit and sigmoid.
constexpr double kHandTol = 1e-6;

}  // namespace

TEST_CASE("softmax gate, greedy: top-K of the probabilities, V2 rule scales or normalizes", "[ref][moe][gate]") {
    // logits ln(1..4) → softmax = [0.1, 0.2, 0.3, 0.4]; top-2 = experts 3, 2.
    const float z[4] = {(float)std::log(1.0), (float)std::log(2.0), (float)std::log(3.0), (float)std::log(4.0)};
    MoeRouting r = moe_route(z, nullptr, 1, v2_gate(4, 2, 1, 1, MoeTopk::Greedy, 16.0, false));
    CHECK(idx_of(r, 0) == std::vector<int32_t>{3, 2});
    CHECK(r.scores[0] == Approx(0.1).epsilon(kHandTol));
    CHECK(r.topk_weight[0] == Approx(0.4 * 16).epsilon(kHandTol));  // no normalization, ×16
    CHECK(r.topk_weight[1] == Approx(0.3 * 16).epsilon(kHandTol));
    // norm_topk_prob with K > 1: normalize (4/7, 3/7) and do NOT scale (V2 remote code: either/or).
    r = moe_route(z, nullptr, 1, v2_gate(4, 2, 1, 1, MoeTopk::Greedy, 16.0, true));
    CHECK(r.topk_weight[0] == Approx(4.0 / 7).epsilon(kHandTol));
    CHECK(r.topk_weight[1] == Approx(3.0 / 7).epsilon(kHandTol));
    // K = 1 with norm_topk_prob: the V2 rule does not normalize a single weight, it scales it.
    r = moe_route(z, nullptr, 1, v2_gate(4, 1, 1, 1, MoeTopk::Greedy, 16.0, true));
    CHECK(r.topk_weight[0] == Approx(0.4 * 16).epsilon(kHandTol));
}

TEST_CASE("group_limited_greedy: groups rank by max, softmax is over all experts before masking",
          "[ref][moe][gate]") {
    // 6 experts in 3 groups of 2; probabilities p ∝ [1, 8, 5, 4, 7, 2] / 27.
    // Group max: g0 = 8, g1 = 5, g2 = 7 → keep g0, g2 (Kg = 2) → candidates {0:1, 1:8, 4:7, 5:2}.
    // (By sum, g1 = 9 would win a place: the method must use max.) Top-3 = experts 1, 4, 5.
    const double p[6] = {1, 8, 5, 4, 7, 2};
    float z[6];
    for (int i = 0; i < 6; i++) z[i] = (float)std::log(p[i]);
    const MoeRouting r = moe_route(z, nullptr, 1, v2_gate(6, 3, 3, 2, MoeTopk::GroupLimitedGreedy, 1.0, false));
    CHECK(idx_of(r, 0) == std::vector<int32_t>{1, 4, 5});
    // The weights are the probabilities over ALL 6 experts (sum 27), not over the 4 kept ones (sum 18).
    CHECK(r.topk_weight[0] == Approx(8.0 / 27).epsilon(kHandTol));
    CHECK(r.topk_weight[1] == Approx(7.0 / 27).epsilon(kHandTol));
    CHECK(r.topk_weight[2] == Approx(2.0 / 27).epsilon(kHandTol));
}

TEST_CASE("noaux_tc: top-2-sum groups, bias chooses, unbiased weights normalized then scaled", "[ref][moe][gate]") {
    // 8 experts, 4 groups of 2, keep 2 groups, top-2.
    //   s = [0.9 0.1 | 0.6 0.55 | 0.15 0.8 | 0.7 0.2]
    // top-2 sums: g0 1.0, g1 1.15, g2 0.95, g3 0.9 → keep g1, g0 → experts 0 (0.9), 2 (0.6).
    // weights 0.9/1.5·2.5 = 1.5, 0.6/1.5·2.5 = 1.0. (By max: g0 0.9, g2 0.8 would give experts 0, 5.)
    const double s[8] = {0.9, 0.1, 0.6, 0.55, 0.15, 0.8, 0.7, 0.2};
    float z[8];
    for (int i = 0; i < 8; i++) z[i] = logit(s[i]);
    const MoeGateConfig g = v3_gate(8, 2, 4, 2);
    std::vector<float> zero(8, 0.0f);
    MoeRouting r = moe_route(z, zero.data(), 1, g);
    CHECK(idx_of(r, 0) == std::vector<int32_t>{0, 2});
    CHECK(r.topk_weight[0] == Approx(1.5).epsilon(kHandTol));
    CHECK(r.topk_weight[1] == Approx(1.0).epsilon(kHandTol));
    // Sum-of-top-2 vs max: a gate ranking groups by max would have picked expert 5.
    MoeGateConfig gmax = v2_gate(8, 2, 4, 2, MoeTopk::GroupLimitedGreedy, 1.0, false);
    gmax.scoring = MoeScoring::Sigmoid;
    CHECK(idx_of(moe_route(z, nullptr, 1, gmax), 0) == std::vector<int32_t>{0, 5});

    // Bias b0 = −0.5, b5 = +0.1: u = [0.4 0.1 | 0.6 0.55 | 0.15 0.9 | 0.7 0.2];
    // top-2 sums g0 0.5, g1 1.15, g2 1.05, g3 0.9 → keep g1, g2 → by u: expert 5 (0.9), expert 2 (0.6).
    // Weights from the UNBIASED s: 0.8/1.4·2.5, 0.6/1.4·2.5 (the biased u would give 1.5, 1.0).
    std::vector<float> b(8, 0.0f);
    b[0] = -0.5f;
    b[5] = 0.1f;
    r = moe_route(z, b.data(), 1, g);
    CHECK(idx_of(r, 0) == std::vector<int32_t>{5, 2});
    CHECK(r.topk_weight[0] == Approx(0.8 / 1.4 * 2.5).epsilon(kHandTol));
    CHECK(r.topk_weight[1] == Approx(0.6 / 1.4 * 2.5).epsilon(kHandTol));
    CHECK(r.scores[5] == Approx(0.8).epsilon(kHandTol));  // scores are the unbiased s
    // Without normalization the weights are s·2.5.
    MoeGateConfig gn = g;
    gn.norm_topk_prob = false;
    r = moe_route(z, b.data(), 1, gn);
    CHECK(r.topk_weight[0] == Approx(0.8 * 2.5).epsilon(kHandTol));
}

TEST_CASE("noaux_tc renormalizes even at K = 1: the weight is exactly routed_scaling_factor", "[ref][moe][gate]") {
    const float z[4] = {logit(0.3), logit(0.7), logit(0.2), logit(0.6)};
    std::vector<float> zero(4, 0.0f);
    const MoeRouting r = moe_route(z, zero.data(), 1, v3_gate(4, 1, 2, 1));
    CHECK(r.topk_idx[0] == 1);
    CHECK(r.topk_weight[0] == 2.5f);  // s/s·2.5, exact
}

TEST_CASE("dropped groups are masked with -inf: a negative bias cannot pull in a masked expert",
          "[ref][moe][gate]") {
    // 4 experts, 2 groups of 2, keep 1 group, top-2.
    //   s = [0.5 0.45 | 0.6 0.1], b = [−0.3 −0.7 | −0.9 −0.95] → u = [0.2 −0.25 | −0.3 −0.85]
    // group sums: g0 −0.05, g1 −1.15 → keep g0. With −inf: experts 0, 1.
    // With 0.0 masking (HF native): masked u = [0.2 −0.25 0 0] → experts 0, 2 — a dropped group's expert.
    const float z[4] = {logit(0.5), logit(0.45), logit(0.6), logit(0.1)};
    const float b[4] = {-0.3f, -0.7f, -0.9f, -0.95f};
    const MoeRouting r = moe_route(z, b, 1, v3_gate(4, 2, 2, 1));
    CHECK(idx_of(r, 0) == std::vector<int32_t>{0, 1});
    CHECK(r.topk_weight[0] == Approx(0.5 / 0.95 * 2.5).epsilon(kHandTol));
    CHECK(r.topk_weight[1] == Approx(0.45 / 0.95 * 2.5).epsilon(kHandTol));
}

TEST_CASE("ties go to the lower expert id and the lower group id; margin flags them", "[ref][moe][gate]") {
    // All logits equal: every expert ties, every group ties → groups 0, 1 kept, experts 0, 1, 2.
    const float z[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    std::vector<float> zero(8, 0.0f);
    MoeRouting r = moe_route(z, zero.data(), 1, v3_gate(8, 3, 4, 2));
    CHECK(idx_of(r, 0) == std::vector<int32_t>{0, 1, 2});
    CHECK(r.margin[0] == 0.0f);
    r = moe_route(z, nullptr, 1, v2_gate(8, 3, 1, 1, MoeTopk::Greedy, 1.0, false));
    CHECK(idx_of(r, 0) == std::vector<int32_t>{0, 1, 2});
    // A clear winner has a positive margin: the smallest gap in the sorted top-(K+1).
    const float z2[4] = {logit(0.9), logit(0.5), logit(0.2), logit(0.1)};
    r = moe_route(z2, nullptr, 1, v2_gate(4, 2, 1, 1, MoeTopk::Greedy, 1.0, false));
    CHECK(r.margin[0] > 0.0f);
}

TEST_CASE("moe_select_topk with one group is a plain sorted top-K", "[ref][moe][gate]") {
    const float u[6] = {0.3f, 0.9f, -1.0f, 0.9f, 0.5f, 0.1f};
    int32_t idx[4];
    float m;
    moe_select_topk(idx, &m, u, 6, 1, 1, 4, GroupScore::Max);
    CHECK(std::vector<int32_t>(idx, idx + 4) == std::vector<int32_t>{1, 3, 4, 0});
    CHECK(m == 0.0f);  // experts 1 and 3 tie
}

TEST_CASE("bad gate configurations and inputs are refused with clear messages", "[ref][moe][gate][errors]") {
    const std::vector<float> z(16, 0.0f), b(16, 0.0f), b15(15, 0.0f);
    // num_experts_per_tok larger than the experts topk_group groups hold: 2 groups of 4 = 8 < 9.
    CHECK_THROWS_WITH(moe_route(z.data(), b.data(), 1, v3_gate(16, 9, 4, 2)),
                      Catch::Contains("num_experts_per_tok = 9") && Catch::Contains("topk_group = 2"));
    CHECK_THROWS_WITH(moe_route(z.data(), b.data(), 1, v3_gate(16, 4, 3, 2)),
                      Catch::Contains("not divisible by n_group = 3"));
    // (moe_route takes a pointer; lengths are checked where the bias is read: moe_gate_check.)
    CHECK_THROWS_WITH(moe_gate_check(v3_gate(16, 4, 4, 2), (int64_t)b15.size()),
                      Catch::Contains("e_score_correction_bias has 15 elements"));
    CHECK_THROWS_WITH(moe_route(z.data(), b.data(), 1, v2_gate(16, 4, 4, 2, MoeTopk::GroupLimitedGreedy, 1, false)),
                      Catch::Contains("only noaux_tc"));
    CHECK_THROWS_WITH(moe_route(z.data(), b.data(), 1, v3_gate(16, 4, 4, 5)), Catch::Contains("topk_group = 5"));
    CHECK_THROWS_WITH(moe_route(z.data(), b.data(), 1, v3_gate(16, 2, 16, 2)), Catch::Contains("top-2"));
    CHECK_THROWS_WITH(moe_route(z.data(), nullptr, 1, v2_gate(16, 17, 1, 1, MoeTopk::Greedy, 1, false)),
                      Catch::Contains("larger than n_routed_experts = 16"));
    CHECK_THROWS_WITH(parse_moe_scoring("relu"), Catch::Contains("scoring_func 'relu'"));
    CHECK_THROWS_WITH(parse_moe_topk("topk"), Catch::Contains("topk_method 'topk'"));
    std::vector<float> bad = z;
    bad[5] = NAN;
    CHECK_THROWS_WITH(moe_route(bad.data(), b.data(), 1, v3_gate(16, 4, 4, 2)), Catch::Contains("not finite"));
    // Every selected sigmoid underflows to 0: normalization would divide by zero.
    const std::vector<float> tiny(16, -200.0f);
    CHECK_THROWS_WITH(moe_route(tiny.data(), b.data(), 1, v3_gate(16, 4, 4, 2)), Catch::Contains("sum to 0"));
    // From a config.json: the real V3 gate is accepted, a bad one names its field.
    ModelConfig c;
    c.n_routed_experts = 256;
    c.num_experts_per_tok = 8;
    c.n_group = 8;
    c.topk_group = 4;
    c.scoring_func = MoeScoring::Sigmoid;
    c.topk_method = MoeTopk::NoauxTc;
    c.norm_topk_prob = true;
    c.routed_scaling_factor = 2.5;
    c.moe_intermediate_size = 2048;
    const MoeGateConfig g = moe_gate_config(c);
    CHECK(g.topk_method == MoeTopk::NoauxTc);
    c.num_experts_per_tok = 129;  // 4 groups of 32 hold 128
    CHECK_THROWS_WITH(moe_gate_config(c), Catch::Contains("128 experts"));
}

TEST_CASE("the gate gives bit-identical results at 1 and 2 threads", "[ref][moe][gate]") {
    const int64_t T = 1100, d = 48, E = 32;  // T·E = 35,200 >= kMoeParallelMin: the parallel path
    const std::vector<float> x = dsref_test::randn(T * d, 11), w = dsref_test::randn(E * d, 12, 0.2f),
                             b = dsref_test::randn(E, 13, 0.1f);
    const MoeGateConfig g = v3_gate(E, 6, 8, 3);
    MoeRouting r1, r2;
    {
        dsref_test::ThreadScope one(1);
        r1 = moe_gate_forward(x.data(), w.data(), b.data(), T, d, g);
    }
    {
        dsref_test::ThreadScope two(2);
        r2 = moe_gate_forward(x.data(), w.data(), b.data(), T, d, g);
    }
    CHECK(r1.topk_idx == r2.topk_idx);
    CHECK(r1.topk_weight == r2.topk_weight);
    CHECK(r1.scores == r2.scores);
}

// ---- golden routing from data/moe (moe_ref.py, float64) -------------------------------------------------

namespace {
struct GoldenCase {
    TensorMap t;
    OpAttrs attrs;
};

GoldenCase load_case(const std::string& name) {
    const std::string path = "data/moe/" + name + ".safetensors";
    GoldenCase c;
    c.t = read_safetensors(path);
    const SafetensorsFile file(path);
    for (const auto& kv : file.metadata()) c.attrs.set(kv.first, kv.second);
    return c;
}

// Relative to max(1, |ref|): float32 logits over d ≤ 32 terms and a float32 sigmoid/softmax are
// good to ~1e-6 relative (2^-24 per rounding); 1e-5 leaves a 10x margin and is far below the
// differences the wrong rules make (> 1e-2, asserted by the generator).
constexpr double kGoldenTol = 1e-5;

double max_rel_err(const std::vector<float>& got, const std::vector<double>& ref) {
    REQUIRE(got.size() == ref.size());
    double m = 0;
    for (size_t i = 0; i < got.size(); i++)
        m = std::max(m, std::fabs((double)got[i] - ref[i]) / std::max(1.0, std::fabs(ref[i])));
    return m;
}
}  // namespace

TEST_CASE("golden routing (V3, V3 negative bias, V3 K=1, V2, V2-Lite, V2 norm) matches the float64 oracle",
          "[golden][moe][gate]") {
    for (const char* name : {"v3", "v3_negbias", "v3_k1", "v2", "v2_lite", "v2_norm"}) {
        INFO("case " << name);
        GoldenCase c = load_case(name);
        TensorMap in{{"x", c.t.at("x")}, {"weight", c.t.at("gate.weight")}};
        if (c.t.count("gate.e_score_correction_bias")) in["bias"] = c.t.at("gate.e_score_correction_bias");
        OpAttrs a;  // the gate's subset of the case's attributes
        for (const auto& kv : c.attrs.all()) a.set(kv.first, kv.second);
        const TensorMap out = run_op("moe_gate", in, a);
        // Every token's margin is >= 1e-3 by construction, so the routing must match exactly.
        const std::vector<int64_t> want_idx = c.t.at("expected.topk_idx").to_i64();
        const Tensor& got_idx = out.at("topk_idx");
        REQUIRE(got_idx.numel() == (int64_t)want_idx.size());
        dsref_test::check_elements("topk_idx [T, K]", got_idx.to_i64(), want_idx, 0,
                                   "the K best of s + bias inside the topk_group best groups (noaux_tc: a group "
                                   "scores the sum of its 2 best), sorted by value");
        CHECK(max_rel_err(out.at("topk_weight").to_f32(), c.t.at("expected.topk_weight").to_f64()) < kGoldenTol);
        CHECK(max_rel_err(out.at("scores").to_f32(), c.t.at("expected.scores").to_f64()) < kGoldenTol);
        // The margins agree too (same definition); 1e-5 absolute for the same float32 reasons.
        const std::vector<float> m = out.at("margin").to_f32();
        const std::vector<double> mref = c.t.at("expected.margin").to_f64();
        dsref_test::check_elements("margin [T]", m, mref, 1e-5,
                                   "the K-th selected value minus the best value left out");
    }
}

TEST_CASE("golden negative-bias case: -inf and 0.0 masking choose different experts", "[golden][moe][gate]") {
    GoldenCase c = load_case("v3_negbias");
    const std::vector<int64_t> ours = c.t.at("expected.topk_idx").to_i64(),
                               zero = c.t.at("wrong.zero_mask.topk_idx").to_i64();
    const std::vector<double> bias = c.t.at("gate.e_score_correction_bias").to_f64();
    CHECK(*std::max_element(bias.begin(), bias.end()) < 0);  // the whole bias is negative
    int differing = 0;
    const int64_t K = c.t.at("expected.topk_idx").dim(1);
    for (size_t t = 0; t < ours.size() / K; t++) {
        bool diff = false;
        for (int64_t k = 0; k < K; k++) diff |= ours[t * K + k] != zero[t * K + k];
        differing += diff;
    }
    CHECK(differing >= 2);
    // And our gate reproduces the -inf routing, not the 0.0 one (checked token by token above).
}

TEST_CASE("op moe_gate: attributes and inputs are checked", "[ref][moe][gate][errors]") {
    const TensorMap in{{"x", Tensor::from_f32({2, 4}, dsref_test::randn(8, 1))},
                       {"weight", Tensor::from_f32({8, 4}, dsref_test::randn(32, 2))}};
    auto attrs = [](std::map<std::string, std::string> kv) { return OpAttrs(kv); };
    CHECK(run_op("moe_gate", in, attrs({{"num_experts_per_tok", "2"}})).at("topk_idx").shape == Shape{2, 2});
    CHECK_THROWS_AS(run_op("moe_gate", in, attrs({})), UsageError);  // K is required
    CHECK_THROWS_AS(run_op("moe_gate", in, attrs({{"num_experts_per_tok", "2"}, {"topk_groups", "2"}})), UsageError);
    CHECK_THROWS_AS(run_op("moe_gate", in, attrs({{"num_experts_per_tok", "2"}, {"scoring_func", "tanh"}})),
                    UsageError);
    CHECK_THROWS_AS(run_op("moe_gate", in, attrs({{"num_experts_per_tok", "2"}, {"n_routed_experts", "7"}})),
                    UsageError);
    TensorMap with_bias = in;
    with_bias["bias"] = Tensor::from_f32({7}, std::vector<float>(7, 0.0f));
    CHECK_THROWS_WITH(run_op("moe_gate", with_bias,
                             attrs({{"num_experts_per_tok", "2"}, {"topk_method", "noaux_tc"}, {"scoring_func", "sigmoid"}})),
                      Catch::Contains("e_score_correction_bias has 7 elements"));
    CHECK_THROWS_WITH(run_op("moe_gate", in,
                             attrs({{"num_experts_per_tok", "5"}, {"n_group", "4"}, {"topk_group", "2"},
                                    {"topk_method", "group_limited_greedy"}})),
                      Catch::Contains("larger than the 4 experts"));
    TensorMap bad_w = in;
    bad_w["weight"] = Tensor::from_f32({8, 3}, dsref_test::randn(24, 2));
    CHECK_THROWS_WITH(run_op("moe_gate", bad_w, attrs({{"num_experts_per_tok", "2"}})), Catch::Contains("'weight'"));
}
