// test_moe_v4.cpp — covers DeepSeek-V4's MoE pieces: sqrtsoftplus scoring with the selection-only bias and
// hash routing (ref/moe/moe_gate.h moe_route / moe_route_hash) and the clamped SwiGLU expert
// (ref/core/swiglu.h swiglu_forward_clamped), against hand values and the float64 golden of
// data/golden/make_deepseek_v4_cases.py (official DeepSeek-V4 inference/model.py Gate / Expert).
#include <catch2/catch.hpp>
#include <cmath>

#include "core/error.h"
#include "core/linear.h"
#include "core/swiglu.h"
#include "core/tensor.h"
#include "io/safetensors.h"
#include "moe/moe_gate.h"

using namespace dsref;

TEST_CASE("v4 gate: sqrtsoftplus by hand", "[moe][v4]") {
    MoeGateConfig g;
    g.E = 3, g.K = 1, g.scoring = MoeScoring::SqrtSoftplus, g.topk_method = MoeTopk::NoauxTc;
    g.norm_topk_prob = true, g.routed_scaling_factor = 2.0;
    const std::vector<float> z = {0.0f, 30.0f, -30.0f};
    const MoeRouting r = moe_route(z.data(), nullptr, 1, g);
    CHECK(r.scores[0] == Approx(std::sqrt(std::log(2.0))).epsilon(1e-7));
    CHECK(r.scores[1] == Approx(std::sqrt(30.0)).epsilon(1e-7));            // softplus(30) = 30 + 9e-14
    CHECK(r.scores[2] == Approx(std::exp(-15.0)).epsilon(1e-6));             // sqrt(e^-30): no underflow to 0
    CHECK(r.topk_idx[0] == 1);
    CHECK(r.topk_weight[0] == 2.0f);  // K = 1 normalized to 1, × 2
    CHECK(std::string(moe_scoring_name(parse_moe_scoring("sqrtsoftplus"))) == "sqrtsoftplus");
}

TEST_CASE("v4 gate: golden (learned and hash routing, clamped expert)", "[moe][v4][golden]") {
    const TensorMap t = read_safetensors("data/golden/deepseek_v4/gate.safetensors");
    const std::vector<int64_t> dims = t.at("dims").to_i64();
    const int64_t T = dims[0], d = dims[1], E = dims[2], K = dims[3], V = dims[4], I = dims[5];
    const std::vector<float> x = t.at("in.x").to_f32(), w = t.at("in.w_gate").to_f32(), b = t.at("in.bias").to_f32();
    MoeGateConfig g;
    g.E = E, g.K = K, g.scoring = MoeScoring::SqrtSoftplus, g.topk_method = MoeTopk::NoauxTc;
    g.norm_topk_prob = true, g.routed_scaling_factor = 1.5;
    const MoeRouting r = moe_gate_forward(x.data(), w.data(), b.data(), T, d, g);
    const std::vector<int64_t> idx = t.at("out.topk_idx").to_i64();
    const std::vector<double> wt = t.at("out.topk_weight").to_f64(), sc = t.at("out.scores").to_f64();
    // Float32 logits (16 terms) and a few float32 roundings on O(1) values: 1e-5.
    for (int64_t i = 0; i < T * E; ++i) CHECK(std::fabs(r.scores[i] - sc[i]) < 1e-5);
    for (int64_t tk = 0; tk < T; ++tk) {
        REQUIRE(r.margin[tk] > 1e-4f);  // the case has no near-ties, so the selected set must agree exactly
        // torch.topk returns the same descending order dsref pins (sorted=True, no ties here)
        for (int64_t k = 0; k < K; ++k) {
            CHECK(r.topk_idx[tk * K + k] == idx[tk * K + k]);
            CHECK(std::fabs(r.topk_weight[tk * K + k] - wt[tk * K + k]) < 1e-5);
        }
    }

    const std::vector<int64_t> ids = t.at("in.token_ids").to_i64();
    const Tensor& tab = t.at("in.tid2eid");
    std::vector<float> logits(T * E);
    linear_forward(logits.data(), x.data(), w.data(), T, d, E);
    const MoeRouting h = moe_route_hash(logits.data(), tab.i32(), V, ids.data(), T, g, "ffn.gate.tid2eid");
    const std::vector<int64_t> hidx = t.at("out.hash_idx").to_i64();
    const std::vector<double> hwt = t.at("out.hash_weight").to_f64();
    for (int64_t i = 0; i < T * K; ++i) {
        CHECK(h.topk_idx[i] == hidx[i]);
        CHECK(std::fabs(h.topk_weight[i] - hwt[i]) < 1e-5);
    }

    std::vector<int32_t> bad(tab.i32(), tab.i32() + V * K);
    bad[ids[2] * K + 1] = (int32_t)E;
    CHECK_THROWS_WITH(moe_route_hash(logits.data(), bad.data(), V, ids.data(), T, g, "layers.0.ffn.gate.tid2eid"),
                      Catch::Contains("layers.0.ffn.gate.tid2eid") && Catch::Contains("n_routed_experts"));

    const std::vector<float> w1 = t.at("in.w1").to_f32(), w2 = t.at("in.w2").to_f32(), w3 = t.at("in.w3").to_f32();
    std::vector<float> x2(x);
    for (float& v : x2) v *= 2.0f;
    std::vector<float> y(T * d), y0(T * d);
    swiglu_forward_clamped(y.data(), x2.data(), w1.data(), w3.data(), w2.data(), T, d, I, 10.0f);
    swiglu_forward_clamped(y0.data(), x2.data(), w1.data(), w3.data(), w2.data(), T, d, I, 0.0f);
    const std::vector<double> ex = t.at("out.expert").to_f64(), ex0 = t.at("out.expert_nolimit").to_f64();
    // Pre-activations up to ~25 (16 terms): float32 relative error ~1e-6 on outputs up to ~100: 1e-3 absolute.
    double m = 0, m0 = 0;
    for (int64_t i = 0; i < T * d; ++i) {
        m = std::max(m, std::fabs(y[i] - ex[i]) / (1.0 + std::fabs(ex[i])));
        m0 = std::max(m0, std::fabs(y0[i] - ex0[i]) / (1.0 + std::fabs(ex0[i])));
    }
    CHECK(m < 1e-5);
    CHECK(m0 < 1e-5);
}
