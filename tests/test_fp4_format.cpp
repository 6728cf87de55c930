// test_fp4_format.cpp — covers ref/core/fp4_format.h (E2M1, UE8M0) and ref/fp8/fp4_dequant.h (the FP4 expert
// dequantizer): every code decoded against rules written here, RNE encode at every midpoint, and the
// golden file of data/fp8/make_fp4_golden.py (ml_dtypes float4_e2m1fn / float8_e8m0fnu, and the
// FP4_TABLE dequantization of DeepSeek-V4 inference/convert.py) compared bit for bit.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/fp4_format.h"
#include "core/tensor.h"
#include "fp8/fp4_dequant.h"
#include "io/safetensors.h"
#include "test_util.h"

using namespace dsref;

namespace {
uint32_t bits(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
}
}  // namespace

TEST_CASE("e2m1: the 16 codes by the format's definition", "[fp4]") {
    // s.ee.m, bias 1: e = 0 → m/2; e ≥ 1 → (2 + m)/2 · 2^(e-1), written here as (2 + m) << (e - 1) halves.
    for (uint32_t c = 0; c < 16; ++c) {
        const uint32_t e = (c >> 1) & 3, m = c & 1;
        const double halves = e == 0 ? m : (double)((2 + m) << (e - 1));
        const double v = (c & 8) ? -halves / 2 : halves / 2;
        CHECK(e2m1_decode((uint8_t)c) == (float)v);
        CHECK(std::signbit(e2m1_decode((uint8_t)c)) == ((c & 8) != 0));
    }
    CHECK(e2m1_decode(7) == 6.0f);
    CHECK(e2m1_decode(0xF7) == 6.0f);  // only the low nibble is read
}

TEST_CASE("e2m1: encode is RNE and saturates", "[fp4]") {
    CHECK(e2m1_encode(0.25f) == 0);   // tie 0 / 0.5 → even code 0
    CHECK(e2m1_encode(0.75f) == 2);   // tie 0.5 / 1 → 1 (code 2)
    CHECK(e2m1_encode(1.25f) == 2);   // tie 1 / 1.5 → 1
    CHECK(e2m1_encode(1.75f) == 4);   // tie 1.5 / 2 → 2
    CHECK(e2m1_encode(2.5f) == 4);    // tie 2 / 3 → 2
    CHECK(e2m1_encode(3.5f) == 6);    // tie 3 / 4 → 4
    CHECK(e2m1_encode(5.0f) == 6);    // tie 4 / 6 → 4
    CHECK(e2m1_encode(5.01f) == 7);
    CHECK(e2m1_encode(1e30f) == 7);
    CHECK(e2m1_encode(-INFINITY) == 15);
    CHECK(e2m1_encode(-0.0f) == 8);
    for (uint8_t c = 0; c < 16; ++c) CHECK(e2m1_encode(e2m1_decode(c)) == c);
    CHECK_THROWS_AS(e2m1_encode(NAN), Error);
}

TEST_CASE("ue8m0: decode, encode of powers of two, NaN code", "[fp4]") {
    for (int c = 0; c < 255; ++c) {
        CHECK(ue8m0_decode((uint8_t)c) == (float)std::ldexp(1.0, c - 127));
        CHECK(ue8m0_encode(ue8m0_decode((uint8_t)c)) == c);
    }
    CHECK(std::isnan(ue8m0_decode(0xFF)));
    CHECK_THROWS_AS(ue8m0_encode(3.0f), Error);
    CHECK_THROWS_AS(ue8m0_encode(0.0f), Error);
}

TEST_CASE("fp4: golden against ml_dtypes and the convert.py dequantization", "[fp4][golden]") {
    const TensorMap g = read_safetensors("data/fp8/fp4_cast.safetensors");
    const auto& codes = g.at("e2m1_codes");
    const auto& vals = g.at("e2m1_values");
    for (int64_t i = 0; i < 16; ++i) CHECK(bits(e2m1_decode(codes.u8()[i])) == bits(vals.f32()[i]));
    const auto& uc = g.at("ue8m0_codes");
    const auto& uv = g.at("ue8m0_values");
    for (int64_t i = 0; i < 255; ++i) CHECK(bits(ue8m0_decode(uc.u8()[i])) == bits(uv.f32()[i]));
    const auto& ein = g.at("enc_in");
    const auto& ecode = g.at("enc_code");
    REQUIRE(ein.numel() > 40);
    int64_t bad = 0;
    for (int64_t i = 0; i < ein.numel(); ++i) bad += e2m1_encode(ein.f32()[i]) != ecode.u8()[i];
    CHECK(bad == 0);

    const auto& packed = g.at("dq_packed");
    const auto& scale = g.at("dq_scale");
    const auto& out = g.at("dq_out");
    const int64_t N = out.dim(0), K = out.dim(1);
    const std::vector<float> w = fp4_dequantize(packed.u8(), scale.u8(), N, K, "dq");
    int64_t diff = 0;
    // Every product is exact in float32, so values are equal with no tolerance. Compared as values, not
    // bits: convert.py's FP4_TABLE decodes code 0x8 as +0, ml_dtypes and dsref as −0 (same value).
    for (int64_t i = 0; i < N * K; ++i) diff += w[(size_t)i] != out.f32()[i];
    CHECK(diff == 0);
}

TEST_CASE("fp4: quantize then dequantize, and bad input", "[fp4]") {
    const int64_t N = 3, K = 64;
    std::vector<float> w = dsref_test::randn((size_t)(N * K), 7);
    std::vector<uint8_t> packed((size_t)(N * K / 2)), scale((size_t)(N * K / 32));
    fp4_quantize(w.data(), N, K, packed.data(), scale.data());
    const std::vector<float> back = fp4_dequantize(packed.data(), scale.data(), N, K, "w");
    for (int64_t n = 0; n < N; ++n)
        for (int64_t b = 0; b < K / 32; ++b) {
            const float s = ue8m0_decode(scale[(size_t)(n * 2 + b)]);
            for (int64_t k = b * 32; k < b * 32 + 32; ++k) {
                const size_t i = (size_t)(n * K + k);
                // s ≥ amax/6, so |w/s| ≤ 6 never saturates; RNE error ≤ half the code spacing, which is at most
                // 1 (between 4 and 6): |back − w| ≤ s.
                CHECK(std::fabs(back[i] - w[i]) <= s);
                CHECK(std::fabs(w[i]) / s <= 6.0f);
            }
        }
    scale[0] = 0xFF;
    CHECK_THROWS_WITH(fp4_dequantize(packed.data(), scale.data(), N, K, "layers.3.ffn.experts.0.w1"),
                      Catch::Contains("layers.3.ffn.experts.0.w1") && Catch::Contains("0xFF"));
    CHECK_THROWS_WITH(fp4_dequantize(packed.data(), scale.data(), N, 48, "x"), Catch::Contains("multiple of 32"));
}
