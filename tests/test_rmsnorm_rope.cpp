// test_rmsnorm_rope.cpp — covers ref/core/rmsnorm.cpp and ref/core/rope.cpp: hand-derived values, YaRN at the
// real V3 settings (YaRN as in ref/core/rope.h), and the identities RoPE must satisfy.
#include <catch2/catch.hpp>
#include <cmath>

#include "core/rmsnorm.h"
#include "core/rope.h"
#include "lab_expect.h"
#include "test_util.h"

using namespace dsref;

TEST_CASE("RMSNorm of a small vector matches the hand computation", "[ref][rmsnorm]") {
    // x = [1, 2, 3, 4]: mean(x²) = 30/4 = 7.5; with eps = 0.5 the rms is sqrt(8) = 2√2.
    const float x[4] = {1, 2, 3, 4}, w[4] = {1, 0.5f, 2, -1};
    float y[4];
    rmsnorm_forward(y, x, w, 1, 4, 0.5f);
    const double r = 1.0 / std::sqrt(8.0);
    CHECK(y[0] == Approx(1 * r).epsilon(1e-7));
    CHECK(y[1] == Approx(2 * 0.5 * r).epsilon(1e-7));
    CHECK(y[2] == Approx(3 * 2 * r).epsilon(1e-7));
    CHECK(y[3] == Approx(-4 * r).epsilon(1e-7));
}

TEST_CASE("RMSNorm puts eps inside the square root and is scale invariant", "[ref][rmsnorm]") {
    // eps inside the sqrt: x = [1e-3, 1e-3], eps = 1e-6 → y = 1e-3 / sqrt(1e-6 + 1e-6) = 0.7071.
    // (eps added outside, 1e-3/(1e-3 + 1e-6), would give 0.999.)
    const float x[2] = {1e-3f, 1e-3f}, w[2] = {1, 1};
    float y[2];
    rmsnorm_forward(y, x, w, 1, 2, 1e-6f);
    CHECK(y[0] == Approx(1.0 / std::sqrt(2.0)).epsilon(1e-6));
    // Scale invariance (eps negligible): RMSNorm(c·x) == RMSNorm(x).
    std::vector<float> a = dsref_test::randn(3 * 64, 1), b(a), wv = dsref_test::randn(64, 2), ya(a.size()), yb(a.size());
    for (float& v : b) v *= 37.0f;
    rmsnorm_forward(ya.data(), a.data(), wv.data(), 3, 64, 1e-12f);
    rmsnorm_forward(yb.data(), b.data(), wv.data(), 3, 64, 1e-12f);
    // float rounding of the inputs and of 1/rms only
    dsref_test::check_elements("RMSNorm(37 x) against RMSNorm(x)", yb, ya, 1e-5,
                               "y[t, i] = x[t, i] / sqrt(mean_j x[t, j]^2 + eps) * w[i] does not change when x is scaled");
}

TEST_CASE("YaRN at the real DeepSeek-V3 settings gives low=10, high=23 and the hand-derived divisions", "[ref][rope][yarn]") {
    RopeScaling s;
    s.type = RopeScalingType::Yarn;
    s.factor = 40;
    s.original_max_position_embeddings = 4096;
    s.beta_fast = 32;
    s.beta_slow = 1;
    const YarnRange r = yarn_range(64, 10000, s);
    CHECK(r.low == 10);
    CHECK(r.high == 23);
    const std::vector<double> plain = rope_inv_freq(64, 10000, RopeScaling{}), yarn = rope_inv_freq(64, 10000, s);
    // By hand from rope.h's ramp: j ≤ 10 unchanged, j ≥ 23 divided by 40, j=11 → ÷1.0811, 16 → ÷1.8182, 20 → ÷4, 22 → ÷10.
    CHECK(plain[10] / yarn[10] == Approx(1.0).epsilon(1e-12));
    CHECK(plain[11] / yarn[11] == Approx(1.0811).epsilon(1e-4));
    CHECK(plain[16] / yarn[16] == Approx(1.8182).epsilon(1e-4));
    CHECK(plain[20] / yarn[20] == Approx(4.0).epsilon(1e-12));
    CHECK(plain[22] / yarn[22] == Approx(10.0).epsilon(1e-12));
    CHECK(plain[23] / yarn[23] == Approx(40.0).epsilon(1e-12));
    CHECK(plain[31] / yarn[31] == Approx(40.0).epsilon(1e-12));
}

TEST_CASE("the YaRN softmax scale matches the hand computation for V3 and V2", "[ref][rope][yarn]") {
    RopeScaling v3;
    v3.type = RopeScalingType::Yarn;
    v3.factor = 40;
    v3.mscale = v3.mscale_all_dim = 1.0;
    RopeScaling v2 = v3;
    v2.mscale = v2.mscale_all_dim = 0.707;
    CHECK(yarn_softmax_scale(192, v3) == Approx(0.1352338).epsilon(1e-6));
    CHECK(yarn_softmax_scale(192, v2) == Approx(0.1147214).epsilon(1e-6));
    CHECK(yarn_softmax_scale(192, RopeScaling{}) == Approx(1.0 / std::sqrt(192.0)).epsilon(1e-12));
    CHECK(yarn_get_mscale(1.0, 1.0) == 1.0);
}

TEST_CASE("RoPE at position 0 is the identity, and it preserves norms", "[ref][rope]") {
    for (RopeLayout layout : {RopeLayout::Interleaved, RopeLayout::Half}) {
        const int64_t T = 5, N = 3, D = 16;
        std::vector<float> x = dsref_test::randn(T * N * D, 7), y = x;
        std::vector<int64_t> pos = {0, 1, 17, 300, 4095};
        rope_forward(y.data(), T, N, D, N * D, D, pos.data(), rope_inv_freq(D, 10000, RopeScaling{}), layout);
        for (int64_t i = 0; i < N * D; i++) CHECK(y[i] == x[i]);  // row 0 is position 0: cos 1, sin 0 exactly
        for (int64_t v = 0; v < T * N; v++) {
            double nx = 0, ny = 0;
            for (int64_t i = 0; i < D; i++) nx += x[v * D + i] * x[v * D + i], ny += y[v * D + i] * y[v * D + i];
            CHECK(std::sqrt(ny) == Approx(std::sqrt(nx)).epsilon(1e-6));  // float rounding of cos/sin and products
        }
    }
}

TEST_CASE("RoPE q·k depends only on the relative position", "[ref][rope]") {
    RopeScaling yarn;
    yarn.type = RopeScalingType::Yarn;
    yarn.factor = 4;
    yarn.original_max_position_embeddings = 64;
    for (RopeLayout layout : {RopeLayout::Interleaved, RopeLayout::Half}) {
        for (const RopeScaling& s : {RopeScaling{}, yarn}) {
            const int64_t D = 32;
            const std::vector<double> f = rope_inv_freq(D, 10000, s);
            const std::vector<float> q0 = dsref_test::randn(D, 1), k0 = dsref_test::randn(D, 2);
            auto dot_at = [&](int64_t pq, int64_t pk) {
                std::vector<float> q = q0, k = k0;
                rope_forward(q.data(), 1, 1, D, D, D, &pq, f, layout);
                rope_forward(k.data(), 1, 1, D, D, D, &pk, f, layout);
                double d = 0;
                for (int64_t i = 0; i < D; i++) d += (double)q[i] * k[i];
                return d;
            };
            // same offset 5 at three absolute places; float cos/sin rounding bounds the difference
            CHECK(dot_at(5, 0) == Approx(dot_at(105, 100)).margin(1e-4));
            CHECK(dot_at(5, 0) == Approx(dot_at(1005, 1000)).margin(1e-4));
            CHECK(std::fabs(dot_at(5, 0) - dot_at(6, 0)) > 1e-3);  // and it does depend on the offset
        }
    }
}

TEST_CASE("interleaved and half RoPE rotate different pairs", "[ref][rope]") {
    // x = e_1 (the second coordinate), one pair step of θ_0 = 1 radian at position 1.
    // Interleaved pairs (0,1): e_1 → (−sin 1, cos 1, 0, 0). Half pairs (0,2),(1,3): e_1 turns with
    // θ_1 = 10000^(-2/4) = 0.01: → (0, cos 0.01, 0, sin 0.01).
    const int64_t pos = 1;
    std::vector<float> a = {0, 1, 0, 0}, b = a;
    const std::vector<double> f = rope_inv_freq(4, 10000, RopeScaling{});
    rope_forward(a.data(), 1, 1, 4, 4, 4, &pos, f, RopeLayout::Interleaved);
    rope_forward(b.data(), 1, 1, 4, 4, 4, &pos, f, RopeLayout::Half);
    CHECK(a[0] == Approx(-std::sin(1.0)).epsilon(1e-6));
    CHECK(a[1] == Approx(std::cos(1.0)).epsilon(1e-6));
    CHECK(b[1] == Approx(std::cos(0.01)).epsilon(1e-6));
    CHECK(b[3] == Approx(std::sin(0.01)).epsilon(1e-6));
    CHECK(b[0] == 0.0f);
}
