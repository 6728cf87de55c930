// test_dpo.cpp — DPO sigmoid loss with cDPO label smoothing (ref/rl/dpo.h, op dpo_loss): golden numbers
// (computed independently of dsref in double precision, printed with 12 decimals), finite differences,
// stability and the op interface.
#include <cmath>
#include <random>

#include <catch2/catch.hpp>

#include "core/error.h"
#include "ops/op_registry.h"
#include "rl/dpo.h"

using namespace dsref;

// The golden figures are printed with 12 decimals: half a unit of the last digit.
static const double kTol12 = 5e-13;

TEST_CASE("DPO: golden figures of one pair, with and without label smoothing", "[dpo][golden]") {
    DpoResult r = dpo_loss({-12.5}, {-14.0}, {-13.0}, {-13.5}, 0.1, 0.0);
    CHECK(std::fabs(r.loss - 0.644396660074) <= kTol12);
    CHECK(std::fabs(r.grad_chosen[0] - -0.047502081252) <= kTol12);
    CHECK(std::fabs(r.grad_rejected[0] - 0.047502081252) <= kTol12);
    CHECK(std::fabs(r.chosen_rewards[0] - 0.05) <= 1e-15);
    CHECK(std::fabs(r.rejected_rewards[0] - -0.05) <= 1e-15);
    CHECK(std::fabs(r.reward_margin - 0.1) <= 1e-15);
    CHECK(r.reward_accuracy == 1.0);
    r = dpo_loss({-12.5}, {-14.0}, {-13.0}, {-13.5}, 0.1, 0.1);
    CHECK(std::fabs(r.loss - 0.654396660074) <= kTol12);
    CHECK(std::fabs(r.grad_chosen[0] - -0.037502081252) <= kTol12);
    CHECK(std::fabs(r.grad_rejected[0] - 0.037502081252) <= kTol12);
}

TEST_CASE("DPO: the batch loss is the mean over pairs and its gradients match central differences", "[dpo][fd]") {
    std::mt19937_64 rng(8);
    std::normal_distribution<double> n(0.0, 3.0);
    for (double beta : {0.05, 0.1, 0.5})
        for (double ls : {0.0, 0.1, 0.3}) {
            const int N = 6;
            std::vector<double> pc(N), pr(N), rc(N), rr(N);
            for (int k = 0; k < N; k++) {
                pc[k] = -20 + n(rng);
                pr[k] = -20 + n(rng);
                rc[k] = -20 + n(rng);
                rr[k] = -20 + n(rng);
            }
            const DpoResult r = dpo_loss(pc, pr, rc, rr, beta, ls);
            double mean = 0.0;
            for (int k = 0; k < N; k++) mean += dpo_loss({pc[k]}, {pr[k]}, {rc[k]}, {rr[k]}, beta, ls).loss / N;
            CHECK(std::fabs(r.loss - mean) < 1e-15);
            for (int k = 0; k < N; k++) {
                const double h = 1e-6;
                std::vector<double> p = pc, m = pc;
                p[k] += h;
                m[k] -= h;
                const double fdc = (dpo_loss(p, pr, rc, rr, beta, ls).loss - dpo_loss(m, pr, rc, rr, beta, ls).loss) / (2 * h);
                p = pr;
                m = pr;
                p[k] += h;
                m[k] -= h;
                const double fdr = (dpo_loss(pc, p, rc, rr, beta, ls).loss - dpo_loss(pc, m, rc, rr, beta, ls).loss) / (2 * h);
                // Central differences in double: error ~1e-10 (rounding 1e-16·loss/h); 1e-8 is far below any real term.
                CHECK(std::fabs(fdc - r.grad_chosen[k]) < 1e-8);
                CHECK(std::fabs(fdr - r.grad_rejected[k]) < 1e-8);
            }
        }
}

TEST_CASE("DPO: stable for huge margins, refuses bad input", "[dpo][edge]") {
    // beta·Delta = ±1000: exp would overflow in a naive log(1 + exp(-u)).
    DpoResult r = dpo_loss({0.0}, {-10000.0}, {0.0}, {0.0}, 0.1, 0.0);
    CHECK(r.loss == Approx(0.0).margin(1e-300));
    CHECK(r.grad_chosen[0] == 0.0);
    r = dpo_loss({-10000.0}, {0.0}, {0.0}, {0.0}, 0.1, 0.0);
    CHECK(r.loss == Approx(1000.0).epsilon(1e-15));
    CHECK(r.grad_chosen[0] == Approx(-0.1).epsilon(1e-15));
    CHECK(log_sigmoid(-800.0) == Approx(-800.0).epsilon(1e-15));
    CHECK(sigmoid(-800.0) >= 0.0);
    CHECK_THROWS_WITH(dpo_loss({std::nan("")}, {0.0}, {0.0}, {0.0}, 0.1, 0.0), Catch::Contains("policy_chosen_logps"));
    CHECK_THROWS_WITH(dpo_loss({0.0, 1.0}, {0.0}, {0.0}, {0.0}, 0.1, 0.0), Catch::Contains("policy_rejected_logps"));
    CHECK_THROWS_AS(dpo_loss({0.0}, {0.0}, {0.0}, {0.0}, 0.1, 1.5), UsageError);
    CHECK_THROWS_AS(dpo_loss({}, {}, {}, {}, 0.1, 0.0), Error);
}

TEST_CASE("dpo_loss op", "[dpo][op]") {
    auto vec = [](std::vector<float> v) { return Tensor::from_f32({(int64_t)v.size()}, v); };
    TensorMap in;
    in["policy_chosen_logps"] = vec({-12.5f, -3.0f});
    in["policy_rejected_logps"] = vec({-14.0f, -2.0f});
    in["ref_chosen_logps"] = vec({-13.0f, -3.0f});
    in["ref_rejected_logps"] = vec({-13.5f, -2.5f});
    const TensorMap out = run_op("dpo_loss", in, OpAttrs());  // beta 0.1, label_smoothing 0
    const DpoResult r = dpo_loss({-12.5, -3.0}, {-14.0, -2.0}, {-13.0, -3.0}, {-13.5, -2.5}, 0.1, 0.0);
    CHECK(out.at("loss").rank() == 0);
    CHECK(out.at("loss").f32()[0] == (float)r.loss);
    CHECK(out.at("grad_policy_chosen_logps").f32()[1] == (float)r.grad_chosen[1]);
    CHECK(out.at("grad_policy_rejected_logps").f32()[0] == (float)r.grad_rejected[0]);
    CHECK(out.at("chosen_rewards").f32()[0] == (float)r.chosen_rewards[0]);
    CHECK(out.at("rejected_rewards").f32()[1] == (float)r.rejected_rewards[1]);
    CHECK(out.at("reward_accuracy").f32()[0] == 0.5f);  // pair 2: chosen 0 vs rejected 0.05
    OpAttrs a;
    a.set("beta", "0.2");
    a.set("label_smoothing", "0.1");
    const TensorMap out2 = run_op("dpo_loss", in, a);
    CHECK(out2.at("loss").f32()[0] == (float)dpo_loss({-12.5, -3.0}, {-14.0, -2.0}, {-13.0, -3.0}, {-13.5, -2.5}, 0.2, 0.1).loss);
    OpAttrs typo;
    typo.set("betta", "0.2");
    CHECK_THROWS_AS(run_op("dpo_loss", in, typo), UsageError);
    TensorMap missing = in;
    missing.erase("ref_rejected_logps");
    CHECK_THROWS_WITH(run_op("dpo_loss", missing, OpAttrs()), Catch::Contains("ref_rejected_logps"));
}
