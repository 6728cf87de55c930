// test_fp8_quant.cpp — covers ref/fp8/fp8_quant.h / ref/fp8/fp8_quant.cpp and the fp8_quant_act,
// fp8_quant_weight and fp8_dequant ops: the rule of DeepSeek-V3's act_quant recomputed here group by
// group, zero rows, rows below the amax clamp, K and N not multiples of 128, ue8m0 scales, the
// dequantization error bound, bit-exact round trips of representable values, bad input, and a golden
// cross-check against an independent numpy implementation (data/fp8/make_fp8_golden.py).
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/fp8_format.h"
#include "fp8/fp8_quant.h"
#include "io/safetensors.h"
#include "ops/op_registry.h"
#include "lab_expect.h"
#include "test_util.h"

using namespace dsref;

namespace {

OpAttrs attrs(std::map<std::string, std::string> kv) {
    return OpAttrs(std::move(kv));
}

uint8_t e4m3(float v) {
    return fp8_encode(v, Fp8Format::E4M3, Fp8Overflow::Saturate);
}

// The scale the rule gives for a group, computed here from the written rule (fp8_quant.h).
float rule_scale(float amax, bool ue8m0) {
    float s = std::max(amax, 1e-4f) / 448.0f;
    if (ue8m0) {  // the smallest power of two >= s, by doubling from below (no frexp)
        float p = std::ldexp(1.0f, -40);
        while (p < s) p *= 2.0f;
        s = p;
    }
    return s;
}

// Wide-range test rows: N(0,1) scaled by 10^u, u uniform in [-6, 3], so groups land on both sides of the
// clamp.
std::vector<float> wide_values(size_t n, uint64_t seed) {
    std::vector<float> v = dsref_test::randn(n, seed);
    std::mt19937_64 g(seed + 1);
    std::uniform_real_distribution<float> u(-6.0f, 3.0f);
    for (size_t i = 0; i < n; i += 128) {
        const float mag = std::pow(10.0f, u(g));
        for (size_t j = i; j < std::min(n, i + 128); j++) v[j] *= mag;
    }
    return v;
}

}  // namespace

TEST_CASE("ue8m0_round_up and the scale rule", "[fp8][quant]") {
    CHECK(ue8m0_round_up(1.0f) == 1.0f);
    CHECK(ue8m0_round_up(0.25f) == 0.25f);
    CHECK(ue8m0_round_up(3.0f) == 4.0f);
    CHECK(ue8m0_round_up(0.75f) == 1.0f);
    CHECK(ue8m0_round_up(std::nextafter(1.0f, 2.0f)) == 2.0f);  // log2 would round this to exactly 0
    CHECK(ue8m0_round_up(std::nextafter(1.0f, 0.0f)) == 1.0f);
    CHECK(ue8m0_round_up(std::ldexp(1.0f, -140)) == std::ldexp(1.0f, -140));  // float32 subnormal
    CHECK(ue8m0_round_up(std::ldexp(3.0f, -140)) == std::ldexp(1.0f, -138));
    CHECK_THROWS_AS(ue8m0_round_up(0.0f), Error);
    CHECK_THROWS_AS(ue8m0_round_up(-1.0f), Error);
    CHECK_THROWS_AS(ue8m0_round_up(INFINITY), Error);
    CHECK(fp8_scale_from_amax(448.0f, Fp8ScaleFmt::Fp32) == 1.0f);
    CHECK(fp8_scale_from_amax(0.0f, Fp8ScaleFmt::Fp32) == 1e-4f / 448.0f);
    CHECK(fp8_scale_from_amax(5e-5f, Fp8ScaleFmt::Fp32) == 1e-4f / 448.0f);
    CHECK(fp8_scale_from_amax(0.0f, Fp8ScaleFmt::Ue8m0) == std::ldexp(1.0f, -22));  // 2.23e-7 → 2^-22
    for (float a : {1e-4f, 0.5f, 3.0f, 448.0f, 1000.0f, 12345.678f})
        for (bool ue : {false, true})
            CHECK(fp8_scale_from_amax(a, ue ? Fp8ScaleFmt::Ue8m0 : Fp8ScaleFmt::Fp32) == rule_scale(a, ue));
}

TEST_CASE("activation quantization follows the rule group by group (K = 300, zero and below-clamp rows)",
          "[fp8][quant]") {
    const int64_t M = 5, K = 300, KB = 3;  // groups [0,128), [128,256), [256,300)
    REQUIRE(fp8_num_blocks(K) == KB);
    std::vector<float> x = dsref_test::randn(M * K, 11);
    for (int64_t k = 0; k < K; k++) x[0 * K + k] = 0.0f;      // row 0: all zeros
    for (int64_t k = 0; k < K; k++) x[1 * K + k] *= 2e-5f;    // row 1: amax ≈ 6e-5, below the 1e-4 clamp
    for (int64_t k = 0; k < K; k++) x[2 * K + k] *= 1000.0f;  // row 2: large values
    x[3 * K + 290] = -77.0f;                                  // row 3: the edge group's amax is negative
    for (bool ue : {false, true}) {
        INFO("ue8m0 " << ue);
        std::vector<uint8_t> q(M * K);
        std::vector<float> s(M * KB);
        fp8_quant_act(q.data(), s.data(), x.data(), M, K, ue ? Fp8ScaleFmt::Ue8m0 : Fp8ScaleFmt::Fp32);
        for (int64_t m = 0; m < M; m++)
            for (int64_t kb = 0; kb < KB; kb++) {
                const int64_t k0 = kb * 128, k1 = std::min(K, k0 + 128);
                float amax = 0;
                int64_t k_amax = k0;
                for (int64_t k = k0; k < k1; k++)
                    if (std::fabs(x[m * K + k]) > amax) amax = std::fabs(x[m * K + k]), k_amax = k;
                const float want_s = rule_scale(amax, ue);
                INFO("row " << m << " group " << kb);
                REQUIRE(s[m * KB + kb] == want_s);
                for (int64_t k = k0; k < k1; k++)  // a float32 division, then RNE with saturation
                    REQUIRE(q[m * K + k] ==
                            fp8_encode(x[m * K + k] / want_s, Fp8Format::E4M3, Fp8Overflow::Saturate));
                if (!ue && amax >= 1e-4f)  // the amax element lands exactly on ±448
                    CHECK((q[m * K + k_amax] & 0x7F) == 0x7E);
            }
        for (int64_t k = 0; k < K; k++) CHECK(q[0 * K + k] == 0x00);   // zeros stay +0
        CHECK(s[0] == (ue ? std::ldexp(1.0f, -22) : 1e-4f / 448.0f));  // the clamp's scale
        for (int64_t k = 0; k < K; k++)
            CHECK((q[1 * K + k] & 0x7F) < 0x7E);  // below the clamp: never reaches 448
    }
}

TEST_CASE("quantization divides by the scale (a float32 division, not a multiply by 1/s)", "[fp8][quant]") {
    // Values x next to s · (an E4M3 midpoint) for which e4m3(x / s) and e4m3(x · fl(1/s)) differ; the group's
    // amax (1000) fixes s. Without such values no test could tell the two apart.
    const float amax = 1000.0f, s = amax / 448.0f, r = 1.0f / s;
    std::vector<float> x(128, 0.0f);
    x[0] = amax;
    int64_t n = 1;
    for (uint32_t c = 0; c + 1 < 0x7F; c++) {
        const float mid =
            0.5f * (fp8_decode((uint8_t)c, Fp8Format::E4M3) + fp8_decode((uint8_t)(c + 1), Fp8Format::E4M3));
        const float x0 = mid * s;
        for (float v : {x0, std::nextafter(x0, INFINITY), std::nextafter(x0, 0.0f)})
            if (n < 128 && e4m3(v / s) != e4m3(v * r)) x[n++] = v;
    }
    REQUIRE(n > 5);  // found some (15 for this s)
    std::vector<uint8_t> q(128);
    float scale;
    fp8_quant_act(q.data(), &scale, x.data(), 1, 128, Fp8ScaleFmt::Fp32);
    REQUIRE(scale == s);
    for (int64_t i = 1; i < n; i++) {
        CHECK(q[i] == e4m3(x[i] / s));
        CHECK(q[i] != e4m3(x[i] * r));
    }
}

TEST_CASE("quantization: ue8m0 scales are powers of two, never below the fp32 scale, and codes never NaN",
          "[fp8][quant]") {
    const int64_t M = 7, K = 1000, KB = fp8_num_blocks(K);
    const std::vector<float> x = wide_values(M * K, 21);
    std::vector<uint8_t> q32(M * K), q8(M * K);
    std::vector<float> s32(M * KB), s8(M * KB);
    fp8_quant_act(q32.data(), s32.data(), x.data(), M, K, Fp8ScaleFmt::Fp32);
    fp8_quant_act(q8.data(), s8.data(), x.data(), M, K, Fp8ScaleFmt::Ue8m0);
    for (int64_t i = 0; i < M * KB; i++) {
        int e;
        CHECK(std::frexp(s8[i], &e) == 0.5f);  // a power of two
        CHECK(s8[i] >= s32[i]);
        CHECK(s8[i] < 2.0f * s32[i]);
    }
    for (int64_t i = 0; i < M * K; i++) {
        CHECK((q32[i] & 0x7F) != 0x7F);
        CHECK((q8[i] & 0x7F) != 0x7F);
    }
}

TEST_CASE("dequant(quant(x)) is within half an E4M3 step of x", "[fp8][quant]") {
    // E4M3 keeps 3 mantissa bits: in the normal range (|x/s| >= 2^-6) the rounding error is at most
    // 2^-4 · |x|; in the subnormal range at most half the spacing, 2^-10 · s. The float32 division and
    // multiply add at most 2 ulp (2^-23 relative), covered by the extra 1e-6 · |x|.
    const int64_t M = 6, K = 700, KB = fp8_num_blocks(K);
    const std::vector<float> x = wide_values(M * K, 31);
    for (Fp8ScaleFmt fmt : {Fp8ScaleFmt::Fp32, Fp8ScaleFmt::Ue8m0}) {
        std::vector<uint8_t> q(M * K);
        std::vector<float> s(M * KB), y(M * K);
        fp8_quant_act(q.data(), s.data(), x.data(), M, K, fmt);
        fp8_dequant_act(y.data(), q.data(), s.data(), M, K);
        double worst = 0;  // error / bound, must stay <= 1
        for (int64_t m = 0; m < M; m++)
            for (int64_t k = 0; k < K; k++) {
                const double xv = x[m * K + k], sv = s[m * KB + k / 128];
                const double bound =
                    std::ldexp(std::fabs(xv), -4) + std::ldexp(sv, -10) + 1e-6 * std::fabs(xv);
                worst = std::max(worst, std::fabs(y[m * K + k] - xv) / bound);
            }
        CHECK(worst <= 1.0);
        CHECK(worst >
              0.5);  // the bound is tight: some element uses most of it (a bound that cannot fail is no test)
    }
}

TEST_CASE("values already on the E4M3 grid with a power-of-two scale round-trip bit-exactly",
          "[fp8][quant]") {
    const int64_t M = 3, K = 256, N = 130;
    std::mt19937 g(5);
    for (Fp8ScaleFmt fmt : {Fp8ScaleFmt::Fp32, Fp8ScaleFmt::Ue8m0}) {
        // Activations: every group holds ±448 once, so amax/448 = the power-of-two scale exactly.
        std::vector<uint8_t> codes(M * K);
        std::vector<float> x(M * K), scale(M * 2);
        for (int64_t m = 0; m < M; m++)
            for (int64_t kb = 0; kb < 2; kb++) {
                scale[m * 2 + kb] = std::ldexp(1.0f, (int)(g() % 20) - 15);
                for (int64_t k = kb * 128; k < kb * 128 + 128; k++) {
                    uint8_t c = (uint8_t)(g() % 256);
                    if ((c & 0x7F) == 0x7F) c = 0x00;  // no NaN codes
                    if (k == kb * 128 + 5) c = 0xFE;   // -448
                    codes[m * K + k] = c;
                    x[m * K + k] = fp8_decode(c, Fp8Format::E4M3) * scale[m * 2 + kb];
                }
            }
        std::vector<uint8_t> q(M * K);
        std::vector<float> s(M * 2), y(M * K);
        fp8_quant_act(q.data(), s.data(), x.data(), M, K, fmt);
        CHECK(s == scale);
        for (int64_t i = 0; i < M * K; i++) {
            // -0 and +0 have different codes but the same value; the row holds no other duplicates.
            if (fp8_decode(codes[i], Fp8Format::E4M3) == 0.0f)
                CHECK(fp8_decode(q[i], Fp8Format::E4M3) == 0.0f);
            else
                CHECK(q[i] == codes[i]);
        }
        fp8_dequant_act(y.data(), q.data(), s.data(), M, K);
        CHECK(y == x);
        // Weights: one 128x128 block plus a partial block row of 2, same construction.
        std::vector<float> w(N * K);
        std::vector<float> w_scale = {0.5f, 2.0f, 8.0f, 0.125f};  // [2, 2]
        for (int64_t n = 0; n < N; n++)
            for (int64_t k = 0; k < K; k++) {
                uint8_t c = (uint8_t)(g() % 126);            // positive, finite
                if (n % 128 == 1 && k % 128 == 1) c = 0x7E;  // each block holds 448
                w[n * K + k] = fp8_decode(c, Fp8Format::E4M3) * w_scale[(n / 128) * 2 + k / 128];
            }
        std::vector<uint8_t> qw(N * K);
        std::vector<float> sw(4), yw(N * K);
        fp8_quant_weight(qw.data(), sw.data(), w.data(), N, K, fmt);
        CHECK(sw == w_scale);
        fp8_dequant_weight(yw.data(), qw.data(), sw.data(), N, K);
        CHECK(yw == w);
    }
}

TEST_CASE("weight quantization: 128x128 blocks, partial edge blocks use only their real elements",
          "[fp8][quant]") {
    const int64_t N = 136, K = 300, NB = 2, KB = 3;
    std::vector<float> w = dsref_test::randn(N * K, 41, 0.02f);
    for (int64_t n = 0; n < 128; n++)
        for (int64_t k = 128; k < 256; k++) w[n * K + k] = 0.0f;  // block (0, 1) all zeros
    w[133 * K + 299] = 3.0f;                                      // the 8x44 corner block's amax
    for (bool ue : {false, true}) {
        std::vector<uint8_t> q(N * K);
        std::vector<float> s(NB * KB);
        fp8_quant_weight(q.data(), s.data(), w.data(), N, K, ue ? Fp8ScaleFmt::Ue8m0 : Fp8ScaleFmt::Fp32);
        for (int64_t nb = 0; nb < NB; nb++)
            for (int64_t kb = 0; kb < KB; kb++) {
                float amax = 0;
                for (int64_t n = nb * 128; n < std::min(N, nb * 128 + 128); n++)
                    for (int64_t k = kb * 128; k < std::min(K, kb * 128 + 128); k++)
                        amax = std::max(amax, std::fabs(w[n * K + k]));
                const float want = rule_scale(amax, ue);
                CHECK(s[nb * KB + kb] == want);
                for (int64_t n = nb * 128; n < std::min(N, nb * 128 + 128); n++)
                    for (int64_t k = kb * 128; k < std::min(K, kb * 128 + 128); k++)
                        if (q[n * K + k] !=
                            fp8_encode(w[n * K + k] / want, Fp8Format::E4M3, Fp8Overflow::Saturate))
                            FAIL("w[" << n << ", " << k << "]");
            }
        if (!ue) {
            CHECK(s[0 * KB + 1] == 1e-4f / 448.0f);  // the zero block
            CHECK(s[1 * KB + 2] == 3.0f / 448.0f);   // the corner block
            CHECK(q[133 * K + 299] == 0x7E);
        }
    }
}

TEST_CASE("quantization and dequantization refuse non-finite input", "[fp8][quant]") {
    std::vector<float> x(300, 1.0f);
    std::vector<uint8_t> q(300);
    std::vector<float> s(3), y(300);
    for (float bad : {NAN, INFINITY, -INFINITY}) {
        x[200] = bad;
        CHECK_THROWS_AS(fp8_quant_act(q.data(), s.data(), x.data(), 1, 300, Fp8ScaleFmt::Fp32), Error);
        CHECK_THROWS_AS(fp8_quant_weight(q.data(), s.data(), x.data(), 1, 300, Fp8ScaleFmt::Fp32), Error);
    }
    CHECK_THROWS_WITH(fp8_quant_act(q.data(), s.data(), x.data(), 1, 300, Fp8ScaleFmt::Fp32),
                      Catch::Contains("x[0, 200]"));  // the message names the element
    x[200] = 1.0f;
    fp8_quant_act(q.data(), s.data(), x.data(), 1, 300, Fp8ScaleFmt::Fp32);
    q[7] = 0xFF;  // the E4M3 NaN code
    CHECK_THROWS_AS(fp8_dequant_act(y.data(), q.data(), s.data(), 1, 300), Error);
    q[7] = 0x38;
    s[1] = NAN;
    CHECK_THROWS_AS(fp8_dequant_act(y.data(), q.data(), s.data(), 1, 300), Error);
}

TEST_CASE("fp8_quant_act / fp8_quant_weight / fp8_dequant ops: shapes, dtypes, errors", "[fp8][op]") {
    const std::vector<float> x = dsref_test::randn(2 * 3 * 300, 51);
    TensorMap out =
        run_op("fp8_quant_act", {{"x", Tensor::from_f32({2, 3, 300}, x)}}, attrs({{"scale_fmt", "ue8m0"}}));
    const Tensor q = out.at("q");  // copies: `out` is reused below
    const Tensor s = out.at("scale");
    REQUIRE(q.dtype == DType::F8_E4M3);
    REQUIRE(q.shape == Shape{2, 3, 300});
    REQUIRE(s.dtype == DType::F32);
    REQUIRE(s.shape == Shape{2, 3, 3});
    std::vector<uint8_t> q_ref(6 * 300);
    std::vector<float> s_ref(6 * 3);
    fp8_quant_act(q_ref.data(), s_ref.data(), x.data(), 6, 300,
                  Fp8ScaleFmt::Ue8m0);  // leading dims flattened
    CHECK(std::vector<uint8_t>(q.bytes) == q_ref);
    CHECK(std::memcmp(s.bytes.data(), s_ref.data(), s_ref.size() * 4) == 0);
    // Dequant with `scale`; U8 codes are accepted too.
    TensorMap y = run_op("fp8_dequant", {{"q", q}, {"scale", s}}, OpAttrs());
    REQUIRE(y.at("y").shape == Shape{2, 3, 300});
    std::vector<float> y_ref(6 * 300);
    fp8_dequant_act(y_ref.data(), q_ref.data(), s_ref.data(), 6, 300);
    CHECK(y.at("y").to_f32() == y_ref);
    Tensor q_u8 = Tensor::from_u8(q.shape, q.bytes);
    CHECK(run_op("fp8_dequant", {{"q", q_u8}, {"scale", s}}, OpAttrs()).at("y").to_f32() == y_ref);

    // Weights with a leading expert dimension: each [N, K] slice has its own scale grid.
    const std::vector<float> w = dsref_test::randn(2 * 136 * 300, 52);
    out = run_op("fp8_quant_weight", {{"w", Tensor::from_f32({2, 136, 300}, w)}}, OpAttrs());
    REQUIRE(out.at("q").shape == Shape{2, 136, 300});
    REQUIRE(out.at("scale_inv").shape == Shape{2, 2, 3});
    std::vector<uint8_t> qw(136 * 300);
    std::vector<float> sw(6);
    fp8_quant_weight(qw.data(), sw.data(), w.data() + 136 * 300, 136, 300, Fp8ScaleFmt::Fp32);  // expert 1
    CHECK(std::vector<uint8_t>(out.at("q").bytes.begin() + 136 * 300, out.at("q").bytes.end()) == qw);
    CHECK(std::memcmp(out.at("scale_inv").bytes.data() + 6 * 4, sw.data(), 24) == 0);
    TensorMap yw = run_op("fp8_dequant", {{"q", out.at("q")}, {"scale_inv", out.at("scale_inv")}}, OpAttrs());
    REQUIRE(yw.at("y").shape == Shape{2, 136, 300});
    std::vector<float> yw_ref(136 * 300);
    fp8_dequant_weight(yw_ref.data(), qw.data(), sw.data(), 136, 300);
    CHECK(std::memcmp(yw.at("y").bytes.data() + 136 * 300 * 4, yw_ref.data(), yw_ref.size() * 4) == 0);

    // Errors.
    CHECK_THROWS_AS(
        run_op("fp8_quant_act", {{"x", Tensor::from_f32({300}, x.data())}}, attrs({{"scale_fmt", "e8m0"}})),
        UsageError);
    CHECK_THROWS_AS(run_op("fp8_quant_act", {{"x", Tensor::scalar(1.0f)}}, OpAttrs()), Error);
    CHECK_THROWS_AS(run_op("fp8_quant_weight", {{"w", Tensor::from_f32({300}, x.data())}}, OpAttrs()), Error);
    CHECK_THROWS_AS(run_op("fp8_quant_act", {{"x", Tensor::from_i32({1}, {1})}}, OpAttrs()), Error);
    CHECK_THROWS_AS(run_op("fp8_dequant", {{"q", q}}, OpAttrs()), Error);  // no scale
    CHECK_THROWS_AS(run_op("fp8_dequant", {{"q", q}, {"scale", s}, {"scale_inv", s}}, OpAttrs()),
                    Error);                                                                  // both
    CHECK_THROWS_AS(run_op("fp8_dequant", {{"q", q}, {"scale_inv", s}}, OpAttrs()), Error);  // wrong layout
    CHECK_THROWS_AS(run_op("fp8_dequant", {{"q", Tensor::from_f32({2, 3, 300}, x)}, {"scale", s}}, OpAttrs()),
                    Error);
}

TEST_CASE("fp8_quant_act / fp8_quant_weight match the independent numpy quantizer bit for bit",
          "[fp8][golden]") {
    const TensorMap g =
        read_safetensors("data/fp8/fp8_quant.safetensors");  // else: python3 data/fp8/make_fp8_golden.py
    for (const std::string fmt : {"fp32", "ue8m0"}) {
        INFO(fmt);
        TensorMap a = run_op("fp8_quant_act", {{"x", g.at("act_x")}}, attrs({{"scale_fmt", fmt}}));
        dsref_test::check_elements("act scale [T, ceil(K / 128)]", a.at("scale").to_f32(),
                                   g.at("act_scale_" + fmt).to_f32(), 0,
                                   "s = amax / 448 of each 1x128 block (amax clamped below at 1e-4; ue8m0: 2^ceil(log2))");
        dsref_test::check_elements("act q [T, K] (E4M3 codes)", a.at("q").bytes, g.at("act_q_" + fmt).bytes, 0,
                                   "q = E4M3(x / s) with s the block's scale, round to nearest even");
        CHECK(a.at("q").bytes == g.at("act_q_" + fmt).bytes);
        CHECK(a.at("scale").shape == g.at("act_scale_" + fmt).shape);
        CHECK(a.at("scale").bytes == g.at("act_scale_" + fmt).bytes);
        TensorMap w = run_op("fp8_quant_weight", {{"w", g.at("weight_w")}}, attrs({{"scale_fmt", fmt}}));
        CHECK(w.at("q").bytes == g.at("weight_q_" + fmt).bytes);
        CHECK(w.at("scale_inv").shape == g.at("weight_scale_inv_" + fmt).shape);
        CHECK(w.at("scale_inv").bytes == g.at("weight_scale_inv_" + fmt).bytes);
    }
    // The golden rows include the edge cases (a zero row, a row below the clamp, K = 300).
    const std::vector<float> s = g.at("act_scale_fp32").to_f32();
    CHECK(s[0] == 1e-4f / 448.0f);
    CHECK(s[3] == 1e-4f / 448.0f);
    CHECK(g.at("act_x").shape == Shape{7, 300});  // row 6: values that tell x / s from x · (1/s)
}
