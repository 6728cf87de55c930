// test_attention.cpp — covers ref/core/attention.cpp and ref/core/linear.cpp: a hand-checked case, GQA with
// H_kv = H equals MHA, GQA equals MHA with repeated KV heads, causality, and thread-count identity.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cmath>

#include "core/attention.h"
#include "core/linear.h"
#include "lab_expect.h"
#include "test_util.h"

using namespace dsref;

TEST_CASE("attention over two keys matches the hand computation", "[ref][attention]") {
    // q = [1, 0], keys [1, 0] and [0, 1], scale 1: weights softmax(1, 0) = (e, 1)/(e + 1).
    const float q[2] = {1, 0}, k[4] = {1, 0, 0, 1}, v[4] = {10, 0, 0, 10};
    float o[2];
    attention_forward(o, q, k, v, 1, 2, 1, 1, 2, 2, 1.0f, false, 0);
    const double e = std::exp(1.0);
    CHECK(o[0] == Approx(10 * e / (e + 1)).epsilon(1e-6));
    CHECK(o[1] == Approx(10 / (e + 1)).epsilon(1e-6));
    // Causal at position 0: only the first key is visible.
    attention_forward(o, q, k, v, 1, 2, 1, 1, 2, 2, 1.0f, true, 0);
    CHECK(o[0] == Approx(10).epsilon(1e-7));
    CHECK(o[1] == 0.0f);
}

TEST_CASE("GQA equals MHA with each KV head repeated for its query heads", "[ref][attention]") {
    const int64_t T = 9, H = 6, d = 8, dv = 5;
    for (int64_t Hkv : {1, 2, 3, 6}) {
        std::vector<float> q = dsref_test::randn(T * H * d, 1), k = dsref_test::randn(T * Hkv * d, 2),
                           v = dsref_test::randn(T * Hkv * dv, 3);
        std::vector<float> kr(T * H * d), vr(T * H * dv);  // repeat_kv: head h gets KV head h·H_kv/H
        for (int64_t s = 0; s < T; s++)
            for (int64_t h = 0; h < H; h++) {
                const int64_t g = h * Hkv / H;
                for (int64_t i = 0; i < d; i++) kr[(s * H + h) * d + i] = k[(s * Hkv + g) * d + i];
                for (int64_t i = 0; i < dv; i++) vr[(s * H + h) * dv + i] = v[(s * Hkv + g) * dv + i];
            }
        std::vector<float> o1(T * H * dv), o2(T * H * dv);
        attention_forward(o1.data(), q.data(), k.data(), v.data(), T, T, H, Hkv, d, dv, 0.3f, true, 0);
        attention_forward(o2.data(), q.data(), kr.data(), vr.data(), T, T, H, H, d, dv, 0.3f, true, 0);
        INFO("H_kv " << Hkv);  // the same numbers in the same order: exactly equal
        dsref_test::check_elements("GQA output o [T, H, d_v] against MHA with repeated KV heads", o1, o2, 0,
                                   "query head h attends with KV head h * H_kv / H");
    }
}

TEST_CASE("causal attention: changing key t leaves earlier rows unchanged; decode rows match prefill", "[ref][attention]") {
    const int64_t T = 7, H = 2, d = 4;
    std::vector<float> q = dsref_test::randn(T * H * d, 4), k = dsref_test::randn(T * H * d, 5), v = dsref_test::randn(T * H * d, 6);
    std::vector<float> o(T * H * d), o2(T * H * d);
    attention_forward(o.data(), q.data(), k.data(), v.data(), T, T, H, H, d, d, 0.5f, true, 0);
    k[4 * H * d] += 1.0f;
    v[4 * H * d + 1] += 1.0f;
    attention_forward(o2.data(), q.data(), k.data(), v.data(), T, T, H, H, d, d, 0.5f, true, 0);
    for (int64_t i = 0; i < 4 * H * d; i++) CHECK(o[i] == o2[i]);
    CHECK(dsref_test::max_abs_diff(o, o2) > 1e-3);
    // The last row alone, as a decode step against the full cache (pos0 = T-1), equals prefill's last row.
    std::vector<float> last(H * d);
    attention_forward(last.data(), q.data() + (T - 1) * H * d, k.data(), v.data(), 1, T, H, H, d, d, 0.5f, true, T - 1);
    for (int64_t i = 0; i < H * d; i++) CHECK(last[i] == o2[(T - 1) * H * d + i]);
}

TEST_CASE("linear and attention are bit-identical at 1 and 2 threads", "[ref][threads]") {
    const int64_t T = 150, K = 96, N = 300;  // several tiles in both directions, with partial edges
    std::vector<float> x = dsref_test::randn(T * K, 1), w = dsref_test::randn(N * K, 2), y1(T * N), y2(T * N);
    {
        dsref_test::ThreadScope s(1);
        linear_forward(y1.data(), x.data(), w.data(), T, K, N);
    }
    {
        dsref_test::ThreadScope s(2);
        linear_forward(y2.data(), x.data(), w.data(), T, K, N);
    }
    CHECK(y1 == y2);
    // and the product is right: one element against a double dot product
    double ref = 0;
    for (int64_t k = 0; k < K; k++) ref += (double)x[77 * K + k] * w[201 * K + k];
    CHECK(y1[77 * N + 201] == Approx(ref).margin(1e-4));  // float accumulation over K=96 of O(1) products
}

TEST_CASE("linear: every output is one float32 chain over k, whatever the call's rows, tiles or threads", "[ref][linear]") {
    // linear.h's order: y[t, n] = (((0 + x[t,0] w[n,0]) + x[t,1] w[n,1]) + ...), one multiply-add per k,
    // rounded once where the build has FMA (madd()); a row tile of one row (T mod kTileT = 1) in the
    // single-row order, the same as
    // a call with T = 1 (what expert parallelism's shards and cached decode rely on).
    auto chain = [](const float* x, const float* w, int64_t K) {
        float s = 0.0f;
        for (int64_t k = 0; k < K; k++) s = madd(x[k], w[k], s);  // linear.h: one rounding per k with FMA
        return s;
    };
    // T: several row tiles with a partial one, whole tiles, a lone last row, and the block sizes of a
    // tile's rows (linear.cpp: 8 to 48 rows in one block, 32 and the rest above 48)
    for (int64_t T : {kTileT * 4 * 2 + 37, kTileT * 5, kTileT * 3 + 1, int64_t(2), int64_t(5), int64_t(17), int64_t(31),
                      int64_t(41), int64_t(48), int64_t(57), kTileT + 31}) {
        const int64_t K = 200, N = 2 * kTileN + 43;  // N: a partial column tile that is not a multiple of 8
        std::vector<float> x = dsref_test::randn(T * K, 11), w = dsref_test::randn(N * K, 12), y(T * N), y3(T * N);
        linear_forward(y.data(), x.data(), w.data(), T, K, N);
        {
            dsref_test::ThreadScope scope(3);
            linear_forward(y3.data(), x.data(), w.data(), T, K, N);
        }
        CHECK(y == y3);
        const bool lone_last = T % kTileT == 1;
        bool all_chain = true;
        for (int64_t t = 0; t < T - (lone_last ? 1 : 0); t++)
            for (int64_t n = 0; n < N; n++) all_chain = all_chain && y[t * N + n] == chain(&x[t * K], &w[n * K], K);
        CHECK(all_chain);
        // any 2-row slice alone gives the same bits as inside the call
        std::vector<float> part(2 * N);
        linear_forward(part.data(), x.data() + (T / 2 - 1) * K, w.data(), 2, K, N);
        CHECK(std::equal(part.begin(), part.end(), y.begin() + (T / 2 - 1) * N));
        if (lone_last) {  // the lone last row: the single-row order, as in a call of that row alone
            std::vector<float> one(N);
            linear_forward(one.data(), x.data() + (T - 1) * K, w.data(), 1, K, N);
            CHECK(std::equal(one.begin(), one.end(), y.begin() + (T - 1) * N));
        }
    }
}
