// test_vector_exp.cpp — core/vector_exp.h: e^x through libmvec, and SwiGLU's gate built on it.
//   exp_f64      within 2 ulp of double of std::exp over [−740, 709], the special values exact, and each
//                value's result the same wherever it sits in the array (the padded last vector);
//   exp_rounded  the float32 result equal to std::exp in double rounded once for all but a few values
//                per hundred thousand (both libm's and libmvec's exp are within about 1 ulp of double,
//                so only values within that distance of a float32 rounding boundary can differ), and
//                never more than 1 float32 ulp apart;
//   swiglu_gate  equal to g / (1 + e^−g) · u with std::exp, by the same argument.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "core/swiglu.h"
#include "core/vector_exp.h"

using namespace dsref;

namespace {
// Distance in units in the last place between two finite floats of the same sign.
int64_t ulps(float a, float b) {
    int32_t ia, ib;
    std::memcpy(&ia, &a, 4);
    std::memcpy(&ib, &b, 4);
    return std::llabs((int64_t)ia - (int64_t)ib);
}
bool same_bits(float a, float b) { return std::memcmp(&a, &b, 4) == 0; }
}  // namespace

TEST_CASE("exp_f64: std::exp's values within 2 ulp, special values exact, independent of position") {
    std::mt19937_64 rng(5);
    std::uniform_real_distribution<double> u(-740.0, 709.0);
    std::vector<double> x(100003);
    for (double& v : x) v = u(rng);
    const double inf = std::numeric_limits<double>::infinity();
    const std::vector<double> special = {0.0, -0.0, -inf, inf, 1000.0, -1000.0, -1e-300};  // e^x exactly 1, 0 or inf
    std::copy(special.begin(), special.end(), x.begin());
    std::vector<double> y(x.size());
    exp_f64(y.data(), x.data(), (int64_t)x.size());
    for (size_t i = 0; i < x.size(); i++) {
        const double want = std::exp(x[i]);
        if (i < special.size() || want == 0.0 || std::isinf(want)) {
            CHECK(y[i] == want);
        } else {
            INFO("x = " << x[i]);
            CHECK(std::fabs(y[i] - want) <= 2 * std::fabs(want) * std::numeric_limits<double>::epsilon());
        }
    }
    CHECK(std::isnan([] {  // NaN stays NaN
        double v = std::numeric_limits<double>::quiet_NaN();
        exp_f64(&v, &v, 1);
        return v;
    }()));
    // every length from 1 to 20 and every offset: the same bits as in the long call
    for (int64_t n = 1; n <= 20; n++)
        for (int64_t off = 0; off < 9; off++) {
            std::vector<double> part(n);
            exp_f64(part.data(), x.data() + 1000 + off, n);
            for (int64_t j = 0; j < n; j++) CHECK(std::memcmp(&part[j], &y[1000 + off + j], 8) == 0);
        }
}

TEST_CASE("exp_rounded: float32 e^x as std::exp in double rounded once, but for values at a rounding edge") {
    std::mt19937_64 rng(6);
    std::uniform_real_distribution<float> u(-100.0f, 0.0f);  // the softmax's range: score − max <= 0
    std::vector<float> p(200000);
    for (float& v : p) v = u(rng);
    p[0] = -std::numeric_limits<float>::infinity();  // a key the indexer dropped
    p[1] = 0.0f;
    p[2] = -200.0f;  // underflows to 0
    std::vector<float> got = p;
    exp_rounded(got.data(), (int64_t)got.size());
    CHECK(got[0] == 0.0f);
    CHECK(got[1] == 1.0f);
    CHECK(got[2] == 0.0f);
    int64_t differ = 0;
    for (size_t i = 0; i < p.size(); i++) {
        const float want = (float)std::exp((double)p[i]);
        if (!same_bits(got[i], want)) {
            differ++;
            CHECK(ulps(got[i], want) <= 1);
        }
    }
    INFO(differ << " of " << p.size() << " differ");
    CHECK(differ <= 10);  // expected 0 (measured 0); each needs a value within ~1e-16 of a float32 edge
}

TEST_CASE("swiglu_gate: g / (1 + e^-g) * u in double with std::exp, rounded once") {
    std::mt19937_64 rng(7);
    std::normal_distribution<float> nd(0.0f, 4.0f);
    const int64_t n = 100001;  // not a multiple of the gate's block or of a vector
    std::vector<float> g(n), u(n);
    for (int64_t i = 0; i < n; i++) g[i] = nd(rng), u[i] = nd(rng);
    g[0] = -1000.0f, g[1] = 1000.0f, g[2] = 0.0f, g[3] = -90.0f;  // e^-g overflows; 0; e^-g large
    std::vector<float> got = g;
    swiglu_gate(got.data(), u.data(), n);
    int64_t differ = 0;
    for (int64_t i = 0; i < n; i++) {
        const float want = (float)((double)g[i] / (1.0 + std::exp(-(double)g[i])) * u[i]);
        if (!same_bits(got[i], want)) {
            differ++;
            CHECK(ulps(got[i], want) <= 1);
        }
    }
    INFO(differ << " of " << n << " differ");
    CHECK(differ <= 5);  // expected 0 (measured 0 of 4 194 304): see the header
    CHECK(got[0] == 0.0f);  // −1000 / (1 + e^1000 = inf) = −0, times u
}
