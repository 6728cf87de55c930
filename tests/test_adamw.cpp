// test_adamw.cpp — ref/train/adamw.cpp against torch.optim.AdamW and clip_grad_norm_ (the golden file
// data/train/adamw_golden.json, written by data/train/make_adamw_golden.py in float64), and the LR
// schedules against hand-computed values.
#include <catch2/catch.hpp>

#include <cmath>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "train/adamw.h"

using namespace dsref;

TEST_CASE("AdamW with clipping matches torch.optim.AdamW + clip_grad_norm_ step by step", "[train][adamw]") {
    std::ifstream in("data/train/adamw_golden.json");
    REQUIRE(in.good());
    const nlohmann::json j = nlohmann::json::parse(in);
    AdamWConfig c;
    c.beta1 = j["beta1"];
    c.beta2 = j["beta2"];
    c.eps = j["eps"];
    const double wd = j["weight_decay"], clip = j["clip"];
    std::vector<std::string> names;
    std::map<std::string, std::vector<double>> p;
    std::map<std::string, std::vector<int64_t>> shape;
    std::map<std::string, AdamWState<double>> st;
    for (auto& [name, s] : j["shapes"].items()) {
        names.push_back(name);
        shape[name] = s.get<std::vector<int64_t>>();
        p[name] = j["init"][name].get<std::vector<double>>();
    }
    CHECK(adamw_decays(shape["w"]));
    CHECK_FALSE(adamw_decays(shape["norm"]));
    int64_t step = 0;
    for (const auto& js : j["steps"]) {
        step++;
        std::map<std::string, std::vector<double>> g;
        std::vector<double*> gp;
        std::vector<int64_t> sizes;
        for (const auto& n : names) {
            g[n] = js["grads"][n].get<std::vector<double>>();
            gp.push_back(g[n].data());
            sizes.push_back((int64_t)g[n].size());
        }
        const double norm = clip_grad_norm(gp, sizes, clip);
        // float64 both sides; torch sums per-tensor norms, then the norm of the norms: a few ulp apart
        CHECK(norm == Approx((double)js["grad_norm"]).epsilon(1e-13));
        for (const auto& n : names) {
            adamw_step(p[n].data(), g[n].data(), st[n], (int64_t)p[n].size(), step, js["lr"],
                       adamw_decays(shape[n]) ? wd : 0.0, c);
            const auto want = js["params"][n].get<std::vector<double>>();
            INFO("step " << step << " tensor " << n);
            // float64; torch's lerp/addcmul/addcdiv order differs from ours by a few ulp per step
            for (size_t i = 0; i < want.size(); i++) CHECK(p[n][i] == Approx(want[i]).epsilon(1e-12));
        }
    }
    CHECK(step == 6);
}

TEST_CASE("AdamW by hand: the first step moves every weight by lr against its gradient's sign", "[train][adamw]") {
    // step 1: m̂ = g, v̂ = g², so the update is lr · g / (|g| + eps) ≈ lr · sign(g), after the decay
    AdamWConfig c;
    std::vector<double> p = {1.0, -2.0}, g = {0.5, -3.0};
    AdamWState<double> s;
    adamw_step(p.data(), g.data(), s, 2, 1, 0.1, 0.5, c);
    CHECK(p[0] == Approx(1.0 * (1 - 0.05) - 0.1 * 0.5 / (0.5 + 1e-8)).epsilon(1e-15));
    CHECK(p[1] == Approx(-2.0 * (1 - 0.05) + 0.1 * 3.0 / (3.0 + 1e-8)).epsilon(1e-15));
    CHECK_THROWS_AS(adamw_step(p.data(), g.data(), s, 2, 0, 0.1, 0.0, c), Error);
}

TEST_CASE("clipping: coef = min(1, C / (norm + 1e-6)); no scaling below the threshold", "[train][adamw]") {
    std::vector<double> a = {3.0, 0.0}, b = {4.0};
    std::vector<double*> gs = {a.data(), b.data()};
    CHECK(clip_grad_norm(gs, {2, 1}, 10.0) == 5.0);
    CHECK(a[0] == 3.0);  // norm 5 < 10: untouched
    CHECK(clip_grad_norm(gs, {2, 1}, 1.0) == 5.0);
    CHECK(a[0] == Approx(3.0 / (5.0 + 1e-6)).epsilon(1e-15));
    CHECK(b[0] == Approx(4.0 / (5.0 + 1e-6)).epsilon(1e-15));
}

TEST_CASE("LR schedules: warmup, constant, cosine to the floor, DeepSeek's multi-step", "[train][adamw]") {
    const double lr = 1e-3;
    CHECK(lr_at(LrSchedule::Constant, lr, 0, 100, 4, 0.0) == Approx(0.25e-3).epsilon(1e-15));
    CHECK(lr_at(LrSchedule::Constant, lr, 3, 100, 4, 0.0) == Approx(1e-3).epsilon(1e-15));
    CHECK(lr_at(LrSchedule::Constant, lr, 99, 100, 4, 0.0) == 1e-3);
    // cosine from k = W (full lr) to the floor f·lr at k = N
    CHECK(lr_at(LrSchedule::Cosine, lr, 10, 110, 10, 0.1) == Approx(1e-3).epsilon(1e-15));
    CHECK(lr_at(LrSchedule::Cosine, lr, 60, 110, 10, 0.1) == Approx(1e-3 * (0.1 + 0.9 * 0.5)).epsilon(1e-14));
    CHECK(lr_at(LrSchedule::Cosine, lr, 110, 110, 10, 0.1) == Approx(1e-4).epsilon(1e-12));
    // DeepSeek LLM §2.3: ×0.316 from 80 % of the steps, ×0.1 from 90 %
    CHECK(lr_at(LrSchedule::DeepSeek, lr, 79, 100, 0, 0.0) == 1e-3);
    CHECK(lr_at(LrSchedule::DeepSeek, lr, 80, 100, 0, 0.0) == Approx(0.316e-3).epsilon(1e-15));
    CHECK(lr_at(LrSchedule::DeepSeek, lr, 89, 100, 0, 0.0) == Approx(0.316e-3).epsilon(1e-15));
    CHECK(lr_at(LrSchedule::DeepSeek, lr, 90, 100, 0, 0.0) == Approx(1e-4).epsilon(1e-15));
    CHECK(parse_lr_schedule("cosine") == LrSchedule::Cosine);
    CHECK_THROWS_AS(parse_lr_schedule("linear"), Error);
}
