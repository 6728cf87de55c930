// test_linear_bf16.cpp — core/linear_bf16.h: y = x Wᵀ on bf16 weights.
//   T > 1: bit-identical to linear_forward on the weights converted to float32, at several T around the
//          tile edges and at 1 and 3 threads.
//   T = 1: equal to a scalar loop in core/linear.h's single-row order, within the float32 rounding bound
//          of the exact (double) dot product, bit-identical at 1 and 3 threads and to linear_forward.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>

#include "core/linear.h"
#include "core/linear_bf16.h"
#include "core/tensor.h"
#include "test_util.h"

using namespace dsref;

namespace {
std::vector<uint16_t> to_bf16(const std::vector<float>& v) {
    std::vector<uint16_t> h(v.size());
    for (size_t i = 0; i < v.size(); i++) h[i] = f32_to_bf16(v[i]);
    return h;
}
std::vector<float> widen(const std::vector<uint16_t>& h) {
    std::vector<float> v(h.size());
    for (size_t i = 0; i < h.size(); i++) v[i] = bf16_to_f32(h[i]);
    return v;
}
bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}
}  // namespace

TEST_CASE("linear_forward_bf16, T > 1: bit-identical to linear_forward on the widened weight") {
    for (int64_t T : {2, 5, 63, 64, 65, 300}) {
        const int64_t K = 200, N = 259;  // N: two full column tiles and a partial one; K: not a multiple of 16
        const std::vector<uint16_t> w16 = to_bf16(dsref_test::randn(N * K, 7 + T));
        const std::vector<float> x = dsref_test::randn(T * K, 11 + T), w = widen(w16);
        std::vector<float> want(T * N), got(T * N);
        linear_forward(want.data(), x.data(), w.data(), T, K, N);
        for (int th : {1, 3}) {
            dsref_test::ThreadScope scope(th);
            linear_forward_bf16(got.data(), x.data(), w16.data(), T, K, N);
            INFO("T " << T << ", threads " << th);
            CHECK(same_bits(got, want));
        }
    }
}

TEST_CASE("linear_forward_bf16, T = 1: the single-row order of linear.h, the bits of linear_forward") {
    for (int64_t K : {16, 37, 2048}) {
        const int64_t N = 8 * 70 + 3;  // full groups of 8 rows and a tail of 3 rows
        const std::vector<uint16_t> w16 = to_bf16(dsref_test::randn(N * K, 3 + K));
        const std::vector<float> x = dsref_test::randn(K, 5 + K), w = widen(w16);
        std::vector<float> got(N), got3(N);
        linear_forward_bf16(got.data(), x.data(), w16.data(), 1, K, N);
        {
            dsref_test::ThreadScope scope(3);
            linear_forward_bf16(got3.data(), x.data(), w16.data(), 1, K, N);
        }
        CHECK(same_bits(got, got3));
        for (int64_t n = 0; n < N; n++) {
            // The order of linear_bf16.h, as a scalar loop: 16 lanes, pairwise, then the tail.
            float lane[16] = {};
            const int64_t K16 = K / 16 * 16;
            for (int64_t k = 0; k < K16; k++) lane[k % 16] = madd(x[k], w[n * K + k], lane[k % 16]);
            for (int h = 8; h > 0; h /= 2)
                for (int j = 0; j < h; j++) lane[j] += lane[j + h];
            float s = lane[0];
            for (int64_t k = K16; k < K; k++) s = madd(x[k], w[n * K + k], s);
            double exact = 0, mag = 0;
            for (int64_t k = 0; k < K; k++) {
                exact += (double)x[k] * w[n * K + k];
                mag += std::fabs((double)x[k] * w[n * K + k]);
            }
            INFO("K " << K << ", row " << n);
            REQUIRE(got[n] == s);
            // Any float32 summation of K products is within K·u·Σ|x·w| of the exact sum (u = 2⁻²⁴;
            // each product and each of the K - 1 additions rounds once).
            REQUIRE(std::fabs((double)got[n] - exact) <= (double)K * std::ldexp(1.0, -24) * mag);
        }
        // and linear_forward's single-row product is the same order: the same bits
        std::vector<float> ref(N);
        linear_forward(ref.data(), x.data(), w.data(), 1, K, N);
        CHECK(same_bits(got, ref));
    }
}
