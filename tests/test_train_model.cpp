// test_train_model.cpp — the whole tiny DeepSeek-V3 network of ref/train/tiny_v3.h: its gradient of
// every parameter against central finite differences in double, its float32 gradient against the
// double one, and a few AdamW steps that must drive the loss down (the pieces assembled really learn);
// the same network with the V2 rules (softmax, device-limited routing, q_proj) and V2's three balance
// losses (V2 report §2.2.3) against finite differences.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <random>

#include "core/rope.h"
#include "train/adamw.h"
#include "train/tiny_v3.h"

using namespace dsref;

namespace {

TinyV3Config tiny_config() {
    TinyV3Config c;
    c.V = 11;
    c.d = 8;
    c.L = 2;
    c.first_dense = 1;  // layer 0 dense, layer 1 MoE (first_k_dense_replace = 1)
    c.I_dense = 12;
    c.I_moe = 4;
    c.n_shared = 1;
    c.mla.d = 8;
    c.mla.H = 2;
    c.mla.d_q = 6;
    c.mla.d_c = 5;
    c.mla.d_n = 3;
    c.mla.d_r = 4;
    c.mla.d_v = 3;
    c.mla.scale = 1.0 / std::sqrt(7.0);
    c.mla.inv_freq = rope_inv_freq(4, 10000.0, RopeScaling{});
    c.gate.E = 4;
    c.gate.K = 2;
    c.gate.n_group = 2;
    c.gate.topk_group = 1;
    c.gate.scoring = MoeScoring::Sigmoid;
    c.gate.topk_method = MoeTopk::NoauxTc;
    c.gate.norm_topk_prob = true;
    c.gate.routed_scaling_factor = 2.5;
    return c;
}

ParamMap<double> init(const TinyV3Config& c, uint64_t seed) {
    std::mt19937_64 g(seed);
    std::normal_distribution<double> n(0.0, 1.0);
    ParamMap<double> p;
    for (const auto& [name, shape] : tiny_v3_shapes(c)) {
        int64_t size = 1;
        for (int64_t s : shape) size *= s;
        auto& v = p[name];
        v.resize(size);
        const bool norm = name.find("norm") != std::string::npos;
        const bool bias = name.find("bias") != std::string::npos;
        for (auto& x : v) x = bias ? 0.05 * n(g) : norm ? 1.0 + 0.1 * n(g) : 0.4 * n(g);
    }
    return p;
}

}  // namespace

TEST_CASE("tiny V3: every parameter's gradient matches finite differences (double)", "[train][model]") {
    const TinyV3Config c = tiny_config();
    auto p = init(c, 7);
    const std::vector<int32_t> ids = {1, 4, 4, 9, 0, 10}, tg = {4, 4, 9, 0, 10, 2};
    const int64_t T = 6;
    const double alpha = 0.01;
    ParamMap<double> g;
    const TinyV3Losses l0 = tiny_v3_step(c, p, &g, ids.data(), tg.data(), T, alpha);
    CHECK(l0.ce > 0);
    CHECK(l0.aux > 0);
    REQUIRE(l0.load.size() == 1);
    int64_t routed = 0;
    for (int64_t x : l0.load[0]) routed += x;
    CHECK(routed == T * c.gate.K);
    CHECK(g.count("model.layers.1.mlp.gate.e_score_correction_bias") == 0);  // selection only: no gradient
    auto loss = [&] {
        const auto l = tiny_v3_step<double>(c, p, nullptr, ids.data(), tg.data(), T, alpha);
        return l.ce + l.aux;
    };
    const double h = 1e-6;
    int checked = 0;
    for (auto& [name, v] : p) {
        if (name.find("e_score_correction_bias") != std::string::npos) continue;
        REQUIRE(g.count(name));
        const size_t step = std::max<size_t>(1, v.size() / 6);
        for (size_t i = 0; i < v.size(); i += step) {
            const double keep = v[i];
            v[i] = keep + h;
            const double lp = loss();
            v[i] = keep - h;
            const double lm = loss();
            v[i] = keep;
            const double num = (lp - lm) / (2 * h);
            INFO(name << "[" << i << "] analytic " << g[name][i] << " numeric " << num);
            // as tests/test_train_backward.cpp: central differences in double are good to ~1e-8 here;
            // 1e-6 relative (absolute below 1) still catches any wrong term. A routing flip under ±h
            // would show as a jump far above this; none happens on this fixture.
            CHECK(std::abs(g[name][i] - num) <= 1e-6 * std::max(1.0, std::abs(num)));
            checked++;
        }
    }
    CHECK(checked > 150);

    // float32 gradients agree with the double ones norm-wise per tensor: float products of O(1)
    // values over a few layers lose ~1e-6 relative; 1e-4 is the autograd-golden bar of the trainer
    ParamMap<float> pf, gf;
    for (const auto& [name, v] : p) pf[name] = std::vector<float>(v.begin(), v.end());
    const TinyV3Losses lf = tiny_v3_step(c, pf, &gf, ids.data(), tg.data(), T, alpha);
    CHECK(lf.ce == Approx(l0.ce).epsilon(1e-5));
    for (const auto& [name, gd] : g) {
        double num = 0, den = 0;
        for (size_t i = 0; i < gd.size(); i++) {
            num += (gf[name][i] - gd[i]) * (gf[name][i] - gd[i]);
            den += gd[i] * gd[i];
        }
        INFO(name);
        CHECK(std::sqrt(num) <= 1e-4 * std::sqrt(den) + 1e-7);
    }
}

TEST_CASE("tiny V3 learns: AdamW steps on a repeated sequence drive the loss down", "[train][model]") {
    const TinyV3Config c = tiny_config();
    const auto pd = init(c, 3);
    ParamMap<float> p;
    for (const auto& [name, v] : pd) p[name] = std::vector<float>(v.begin(), v.end());
    const auto shapes = tiny_v3_shapes(c);
    const std::vector<int32_t> seq = {1, 2, 3, 4, 5, 6, 7, 8, 9, 1, 2, 3, 4};
    const int64_t T = 12;
    AdamWConfig ac;
    ac.weight_decay = 0.0;
    std::map<std::string, AdamWState<float>> st;
    double first = 0, last = 0;
    for (int64_t k = 0; k < 40; k++) {
        ParamMap<float> g;
        const auto l = tiny_v3_step(c, p, &g, seq.data(), seq.data() + 1, T, 0.0);
        if (k == 0) first = l.ce;
        last = l.ce;
        for (auto& [name, gv] : g)
            adamw_step(p[name].data(), gv.data(), st[name], (int64_t)gv.size(), k + 1, 1e-2,
                       adamw_decays(shapes.at(name)) ? ac.weight_decay : 0.0, ac);
    }
    INFO("loss " << first << " -> " << last);
    CHECK(first > 1.5);     // ~ log 11 = 2.4 at init, far from the solution
    CHECK(last < 0.1 * first);  // a deterministic sequence is memorized
}

TEST_CASE("tiny V3 with the MTP module: loss ce + λ·L_MTP + balance; every gradient matches finite differences",
          "[train][model][mtp]") {
    TinyV3Config c = tiny_config();
    c.n_mtp = 1;  // layer 2 = the MTP module (train/mtp_backward.h)
    auto p = init(c, 11);
    REQUIRE(p.count("model.layers.2.eh_proj.weight") == 1);
    REQUIRE(p.count("model.layers.2.shared_head.head.weight") == 1);
    const std::vector<int32_t> ids = {1, 4, 4, 9, 0, 10}, tg = {4, 4, 9, 0, 10, 2};
    const int64_t T = 6;
    const double alpha = 0.01, lambda = 0.3;
    ParamMap<double> g;
    const TinyV3Losses l0 = tiny_v3_step(c, p, &g, ids.data(), tg.data(), T, alpha, lambda);
    CHECK(l0.mtp > 0);
    REQUIRE(l0.load.size() == 2);  // layer 1 and the MTP layer
    int64_t routed = 0;
    for (int64_t x : l0.load[1]) routed += x;
    CHECK(routed == (T - 1) * c.gate.K);  // the MTP module sees T − 1 positions
    // without λ the MTP module is out: the main loss is the same, the MTP tensors get no gradient
    ParamMap<double> g0;
    const TinyV3Losses lm0 = tiny_v3_step(c, p, &g0, ids.data(), tg.data(), T, alpha, 0.0);
    CHECK(lm0.ce == l0.ce);
    CHECK(lm0.mtp == 0);
    CHECK(g0.count("model.layers.2.eh_proj.weight") == 0);
    auto loss = [&] {
        const auto l = tiny_v3_step<double>(c, p, nullptr, ids.data(), tg.data(), T, alpha, lambda);
        return l.ce + lambda * l.mtp + l.aux;
    };
    const double h = 1e-6;
    int checked = 0, checked_main = 0;
    for (auto& [name, v] : p) {
        if (name.find("e_score_correction_bias") != std::string::npos) continue;
        REQUIRE(g.count(name));
        const size_t step = std::max<size_t>(1, v.size() / 4);
        for (size_t i = 0; i < v.size(); i += step) {
            const double keep = v[i];
            v[i] = keep + h;
            const double lp = loss();
            v[i] = keep - h;
            const double lm = loss();
            v[i] = keep;
            const double num = (lp - lm) / (2 * h);
            INFO(name << "[" << i << "] analytic " << g[name][i] << " numeric " << num);
            // the tolerance of the test above: central differences in double, no routing flip under ±h
            CHECK(std::abs(g[name][i] - num) <= 1e-6 * std::max(1.0, std::abs(num)));
            checked++;
            if (name.rfind("model.layers.2.", 0) != 0) checked_main++;
        }
    }
    CHECK(checked > 200);
    CHECK(checked_main > 100);  // the main model's gradients include the MTP path through h
    // and the MTP path does reach the main model: its embedding's gradient differs with λ
    double diff = 0;
    for (size_t i = 0; i < g["model.embed_tokens.weight"].size(); i++)
        diff += std::abs(g["model.embed_tokens.weight"][i] - g0["model.embed_tokens.weight"][i]);
    CHECK(diff > 1e-6);
}

TEST_CASE("tiny V2 with its three balance losses: every gradient matches finite differences",
          "[train][model][balance]") {
    // V2 rules: softmax, group_limited_greedy, q_proj, YaRN; α1 (expert), α2 (device), α3 (communication)
    TinyV3Config c = tiny_config();
    c.mla.d_q = 0;  // q_lora_rank null (V2-Lite): q_proj
    RopeScaling yarn;  // V2's rope_scaling: YaRN with mscale = mscale_all_dim (model/mla.h's softmax scale)
    yarn.type = RopeScalingType::Yarn;
    yarn.factor = 4.0;
    yarn.original_max_position_embeddings = 4;
    yarn.mscale = yarn.mscale_all_dim = 0.707;
    c.mla.inv_freq = rope_inv_freq(4, 10000.0, yarn);
    c.mla.scale = yarn_softmax_scale(7, yarn);
    c.gate.scoring = MoeScoring::Softmax;
    c.gate.topk_method = MoeTopk::GroupLimitedGreedy;  // n_group = D = 2 devices, topk_group = M = 1
    c.gate.norm_topk_prob = false;
    c.gate.routed_scaling_factor = 1.5;
    auto p = init(c, 13);
    CHECK(p.count("model.layers.1.mlp.gate.e_score_correction_bias") == 0);  // the V2 layout: no bias
    CHECK(p.count("model.layers.0.self_attn.q_proj.weight") == 1);
    const std::vector<int32_t> ids = {1, 4, 4, 9, 0, 10}, tg = {4, 4, 9, 0, 10, 2};
    const int64_t T = 6;
    BalanceLossWeights bw(0.05);
    bw.alpha_device = 0.1, bw.alpha_comm = 0.2, bw.D = c.gate.n_group, bw.M = c.gate.topk_group;
    ParamMap<double> g;
    const TinyV3Losses l0 = tiny_v3_step(c, p, &g, ids.data(), tg.data(), T, bw);
    const TinyV3Losses l_expert = tiny_v3_step<double>(c, p, nullptr, ids.data(), tg.data(), T, bw.alpha);
    CHECK(l0.ce == l_expert.ce);
    CHECK(l_expert.aux > 0);
    CHECK(l0.aux > l_expert.aux + 1e-3);  // the device and communication terms are in aux
    auto loss = [&] {
        const auto l = tiny_v3_step<double>(c, p, nullptr, ids.data(), tg.data(), T, bw);
        return l.ce + l.aux;
    };
    const double h = 1e-6;
    int checked = 0;
    double worst = 0;
    for (auto& [name, v] : p) {
        REQUIRE(g.count(name));
        const size_t step = std::max<size_t>(1, v.size() / 6);
        for (size_t i = 0; i < v.size(); i += step) {
            const double keep = v[i];
            v[i] = keep + h;
            const double lp = loss();
            v[i] = keep - h;
            const double lm = loss();
            v[i] = keep;
            const double num = (lp - lm) / (2 * h);
            INFO(name << "[" << i << "] analytic " << g[name][i] << " numeric " << num);
            // the tolerance of the V3 test above: central differences in double, no routing flip under ±h
            CHECK(std::abs(g[name][i] - num) <= 1e-6 * std::max(1.0, std::abs(num)));
            worst = std::max(worst, std::abs(g[name][i] - num) / std::max(1.0, std::abs(num)));
            checked++;
        }
    }
    CHECK(checked > 150);
    std::printf("report: tiny V2 with alpha1, alpha2, alpha3: %d gradient elements vs central differences, worst %.1e\n",
                checked, worst);
    // the balance terms reach the router: mlp.gate.weight's gradient differs from the CE-and-α1-only one
    ParamMap<double> g1;
    tiny_v3_step(c, p, &g1, ids.data(), tg.data(), T, bw.alpha);
    double diff = 0;
    for (size_t i = 0; i < g["model.layers.1.mlp.gate.weight"].size(); i++)
        diff += std::abs(g["model.layers.1.mlp.gate.weight"][i] - g1["model.layers.1.mlp.gate.weight"][i]);
    CHECK(diff > 1e-4);
}
