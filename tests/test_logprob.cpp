// test_logprob.cpp — per-token log-probs with temperature and their backward pass (ref/rl/logprob.h):
// golden numbers of one logits row (computed independently of dsref in double precision), finite
// differences, stability and refusal of bad logits.
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <iomanip>
#include <limits>
#include <random>

#include <catch2/catch.hpp>

#include "core/error.h"
#include "rl/logprob.h"
#include "test_util.h"

using namespace dsref;


TEST_CASE("logits-level example: golden figures at temperature 0.7", "[logprob][golden]") {
    const float z[4] = {2.0f, 0.5f, -1.0f, 0.0f};
    const int32_t y = 0;
    const double T = 0.7;
    std::vector<double> x;
    logprobs_forward(x, z, &y, {}, 1, 1, 4, T);
    CHECK_PRINTED(x[0], "-0.172705110042");
    const double zd[4] = {2.0, 0.5, -1.0, 0.0};
    double logp[4];
    log_softmax_row(logp, zd, 4, T);
    const char* p[] = {"0.8413856945", "0.0987106680", "0.0115806533", "0.0483229842"};
    for (int j = 0; j < 4; j++) CHECK_PRINTED(std::exp(logp[j]), p[j]);
    std::vector<double> gz;
    logprobs_backward(gz, {1.0}, z, &y, {}, 1, 1, 4, T);  // dx/dz
    const char* dxdz[] = {"0.2265918651", "-0.1410152401", "-0.0165437904", "-0.0690328346"};
    for (int j = 0; j < 4; j++) CHECK_PRINTED(gz[j], dxdz[j]);
    double dH[4];
    CHECK_PRINTED(entropy_from_logits(zd, 4, T, dH), "0.571925010508");
    const char* dHdz[] = {"-0.4798541617", "0.2458794243", "0.0642973484", "0.1696773890"};
    for (int j = 0; j < 4; j++) CHECK_PRINTED(dH[j], dHdz[j]);
}

TEST_CASE("log-prob and entropy gradients match central differences", "[logprob][fd]") {
    std::mt19937_64 rng(17);
    std::normal_distribution<double> n01(0.0, 1.0);
    for (double T : {0.3, 0.7, 1.0, 1.6})
        for (int64_t V : {2, 5, 33}) {
            std::vector<double> z(V);
            for (double& v : z) v = (double)(float)(2.0 * n01(rng));  // float-exact, so both paths agree
            std::vector<float> zf(z.begin(), z.end());
            const int32_t y = (int32_t)(rng() % V);
            std::vector<double> gz;
            logprobs_backward(gz, {1.0}, zf.data(), &y, {}, 1, 1, V, T);
            std::vector<double> dH(V);
            entropy_from_logits(z.data(), V, T, dH.data());
            for (int64_t j = 0; j < V; j++) {
                const double h = 1e-6;
                std::vector<double> zp = z, zm = z, lp(V), lm(V);
                zp[j] += h;
                zm[j] -= h;
                log_softmax_row(lp.data(), zp.data(), V, T);
                log_softmax_row(lm.data(), zm.data(), V, T);
                // FD in double, h = 1e-6: truncation ~1e-12/T³, rounding ~1e-10; 1e-8 separates them from errors.
                CHECK(std::fabs((lp[y] - lm[y]) / (2 * h) - gz[j]) < 1e-8);
                const double fdH =
                    (entropy_from_logits(zp.data(), V, T, nullptr) - entropy_from_logits(zm.data(), V, T, nullptr)) / (2 * h);
                CHECK(std::fabs(fdH - dH[j]) < 1e-8);
            }
        }
}

TEST_CASE("log-softmax is stable for huge logits and accepts -inf entries", "[logprob][edge]") {
    // Logits near the float32 maximum: z/T overflows float32 but not the double computation.
    const float big = 3.0e38f;
    const float z[3] = {big, big, -big};
    const int32_t y = 1;
    std::vector<double> x;
    logprobs_forward(x, z, &y, {}, 1, 1, 3, 0.5);
    CHECK(x[0] == Approx(-std::log(2.0)).epsilon(1e-12));
    // Shift invariance: adding a constant to the row leaves the log-probs unchanged.
    const float z1[4] = {1.0f, -2.0f, 0.5f, 3.0f}, z2[4] = {1001.0f, 998.0f, 1000.5f, 1003.0f};
    const int32_t y2 = 2;
    std::vector<double> x1, x2;
    logprobs_forward(x1, z1, &y2, {}, 1, 1, 4, 0.9);
    logprobs_forward(x2, z2, &y2, {}, 1, 1, 4, 0.9);
    CHECK(std::fabs(x1[0] - x2[0]) < 1e-12);
    // A -inf logit (a masked vocabulary entry) has probability 0 and gets no gradient.
    const float zi[3] = {0.0f, -std::numeric_limits<float>::infinity(), 0.0f};
    const int32_t y0 = 0;
    logprobs_forward(x, zi, &y0, {}, 1, 1, 3, 1.0);
    CHECK(x[0] == Approx(-std::log(2.0)).epsilon(1e-15));
    std::vector<double> g;
    logprobs_backward(g, {1.0}, zi, &y0, {}, 1, 1, 3, 1.0);
    CHECK(g[1] == 0.0);
    CHECK(g[0] == Approx(0.5).epsilon(1e-15));
}

TEST_CASE("bad logits and tokens are refused by name", "[logprob][edge]") {
    std::vector<double> x;
    const int32_t y = 1;
    const float nan_row[3] = {0.0f, std::nanf(""), 1.0f};
    CHECK_THROWS_WITH(logprobs_forward(x, nan_row, &y, {}, 1, 1, 3, 1.0),
                      Catch::Contains("logits") && Catch::Contains("NaN"));
    const float inf_row[3] = {0.0f, std::numeric_limits<float>::infinity(), 1.0f};
    CHECK_THROWS_WITH(logprobs_forward(x, inf_row, &y, {}, 1, 1, 3, 1.0), Catch::Contains("+inf"));
    const float ok[3] = {0.0f, 1.0f, 2.0f};
    const int32_t y_bad = 3;
    CHECK_THROWS_WITH(logprobs_forward(x, ok, &y_bad, {}, 1, 1, 3, 1.0), Catch::Contains("tokens"));
    CHECK_THROWS_AS(logprobs_forward(x, ok, &y, {}, 1, 1, 3, 0.0), UsageError);  // temperature 0
    const float dead[3] = {0.0f, -std::numeric_limits<float>::infinity(), 1.0f};
    CHECK_THROWS_WITH(logprobs_forward(x, dead, &y, {}, 1, 1, 3, 1.0), Catch::Contains("-inf"));
    // A masked position is never read: its token id may be -100.
    const int32_t pad = -100;
    logprobs_forward(x, ok, &pad, {0.0}, 1, 1, 3, 1.0);
    CHECK(x[0] == 0.0);
}
