// test_fp8_format.cpp — covers ref/core/fp8_format.h / ref/core/fp8_format.cpp (E4M3FN, E5M2, generic eXmY: E5M6, BF16) and the
// fp8_cast op of ref/ops/ops_fp8.cpp: every code decoded against rules written here with integer arithmetic,
// encode∘decode round trips, inputs chosen to break RNE (every midpoint and one float32 ulp either side,
// subnormals, overflow in both modes, ±0, NaN, ±inf), and a golden cross-check against ml_dtypes
// (data/fp8/make_fp8_golden.py) over every BF16 bit pattern and random float32 values, through run_op
// and through the `dsref op` command line.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "core/error.h"
#include "core/fp8_format.h"
#include "core/tensor.h"
#include "io/safetensors.h"
#include "ops/op_registry.h"
#include "test_util.h"

using namespace dsref;

namespace {

const float kInf = std::numeric_limits<float>::infinity();
const float kNaN = std::numeric_limits<float>::quiet_NaN();

// ---- hand-written decode rules -----------------------------------------------------------------------
// The value of a code as (integer n) · 2^-shift, built from the definitions in fp8_format.h with integer
// shifts only: subnormal (e = 0) n = m; normal n = (2^Y + m) << (e - 1). Specials are handled by the caller.
double hand_value(uint32_t code, int X, int Y, int bias) {
    const uint32_t e = (code >> Y) & ((1u << X) - 1), m = code & ((1u << Y) - 1);
    const int shift = bias - 1 + Y;  // the subnormal spacing is 2^-(bias - 1 + Y)
    const uint64_t n = (e == 0) ? m : ((uint64_t)((1u << Y) + m) << (e - 1));
    const double v = std::ldexp((double)n, -shift);
    return (code >> (X + Y)) & 1 ? -v : v;
}

// Op attributes from key/value pairs (a helper: OpAttrs({{"k", "v"}}) is ambiguous for one pair).
OpAttrs attrs(std::map<std::string, std::string> kv) {
    return OpAttrs(std::move(kv));
}

// Equal values with equal sign bits; NaN matches NaN of the same sign.
bool same_float(double a, double b) {
    return std::signbit(a) == std::signbit(b) && ((std::isnan(a) && std::isnan(b)) || a == b);
}
// A NaN carrying the sign bit of `code` (decode keeps it, as ml_dtypes does).
double signed_nan(uint32_t code, uint32_t sign_bit) {
    return std::copysign(NAN, (code & sign_bit) ? -1.0 : 1.0);
}

// Largest finite code with the sign bit clear, written out per format.
uint32_t max_code_of(const FloatFormat& f) {
    return f.specials == FloatSpecials::FiniteNan
               ? ((1u << (f.exp_bits + f.man_bits)) - 2)
               : ((((1u << f.exp_bits) - 2) << f.man_bits) | ((1u << f.man_bits) - 1));
}

// Runs fp8_cast on float32 values; returns the codes (U8 or I32 bits, widened to uint32) and y.
void run_cast(const std::vector<float>& x, const std::string& format, const std::string& overflow,
              std::vector<uint32_t>* codes, std::vector<float>* y) {
    TensorMap in{{"x", Tensor::from_f32({(int64_t)x.size()}, x)}};
    TensorMap out = run_op("fp8_cast", in, attrs({{"format", format}, {"overflow", overflow}}));
    const Tensor& bits = out.at("bits");
    codes->resize(x.size());
    for (size_t i = 0; i < x.size(); i++) {
        if (bits.dtype == DType::U8)
            (*codes)[i] = bits.u8()[i];
        else
            std::memcpy(&(*codes)[i], bits.u8() + 4 * i, 4);
    }
    *y = out.at("y").to_f32();
}

}  // namespace

TEST_CASE("E4M3FN: all 256 codes decode as the hand-written rules say", "[fp8][format]") {
    for (uint32_t c = 0; c < 256; c++) {
        INFO("code " << c);
        const bool is_nan = (c & 0x7F) == 0x7F;  // S.1111.111 only; no infinities
        const double want = is_nan ? signed_nan(c, 0x80) : hand_value(c, 4, 3, 7);
        CHECK(same_float(fp8_decode((uint8_t)c, Fp8Format::E4M3), want));
        CHECK(same_float(float_decode(c, kFormatE4M3), want));
        if (!is_nan) CHECK(std::isfinite(fp8_decode((uint8_t)c, Fp8Format::E4M3)));
    }
    // Known encodings, derived by hand from the definitions.
    CHECK(fp8_decode(0x38, Fp8Format::E4M3) == 1.0f);
    CHECK(fp8_decode(0x30, Fp8Format::E4M3) == 0.5f);
    CHECK(fp8_decode(0x40, Fp8Format::E4M3) == 2.0f);
    CHECK(fp8_decode(0x7E, Fp8Format::E4M3) == 448.0f);
    CHECK(fp8_decode(0xFE, Fp8Format::E4M3) == -448.0f);
    CHECK(fp8_decode(0x01, Fp8Format::E4M3) == 0.001953125f);  // 2^-9, min subnormal
    CHECK(fp8_decode(0x07, Fp8Format::E4M3) == 0.013671875f);  // max subnormal
    CHECK(fp8_decode(0x08, Fp8Format::E4M3) == 0.015625f);     // 2^-6, min normal
    CHECK(fp8_decode(0x78, Fp8Format::E4M3) == 256.0f);        // all-ones exponent is a normal binade
    CHECK(fp8_decode(0x7D, Fp8Format::E4M3) == 416.0f);
    CHECK(std::signbit(fp8_decode(0x80, Fp8Format::E4M3)));
    CHECK(float_format_max(kFormatE4M3) == 448.0);
    // Codes 0..0x7E are strictly increasing (encode's overflow test relies on it).
    for (uint32_t c = 0; c < 0x7E; c++)
        CHECK(fp8_decode((uint8_t)c, Fp8Format::E4M3) < fp8_decode((uint8_t)(c + 1), Fp8Format::E4M3));
}

TEST_CASE("E5M2: all 256 codes decode as the hand-written rules say", "[fp8][format]") {
    for (uint32_t c = 0; c < 256; c++) {
        INFO("code " << c);
        const uint32_t e = (c >> 2) & 31, m = c & 3;
        double want;
        if (e == 31)
            want = (m == 0) ? ((c & 0x80) ? -INFINITY : INFINITY) : signed_nan(c, 0x80);
        else
            want = hand_value(c, 5, 2, 15);
        CHECK(same_float(fp8_decode((uint8_t)c, Fp8Format::E5M2), want));
        CHECK(same_float(float_decode(c, kFormatE5M2), want));
    }
    CHECK(fp8_decode(0x3C, Fp8Format::E5M2) == 1.0f);
    CHECK(fp8_decode(0x7B, Fp8Format::E5M2) == 57344.0f);
    CHECK(fp8_decode(0x7C, Fp8Format::E5M2) == kInf);
    CHECK(fp8_decode(0xFC, Fp8Format::E5M2) == -kInf);
    CHECK(fp8_decode(0x01, Fp8Format::E5M2) == std::ldexp(1.0f, -16));
    CHECK(fp8_decode(0x04, Fp8Format::E5M2) == std::ldexp(1.0f, -14));
    for (uint32_t c : {0x7Du, 0x7Eu, 0x7Fu, 0xFDu, 0xFEu, 0xFFu})
        CHECK(std::isnan(fp8_decode((uint8_t)c, Fp8Format::E5M2)));
    CHECK(float_format_max(kFormatE5M2) == 57344.0);
}

TEST_CASE("E5M6 (all 4096 codes) and BF16 = E8M7 (all 65536 codes) decode correctly", "[fp8][format]") {
    for (uint32_t c = 0; c < 4096; c++) {
        const uint32_t e = (c >> 6) & 31, m = c & 63;
        double want;
        if (e == 31)
            want = (m == 0) ? ((c & 0x800) ? -INFINITY : INFINITY)
                            : signed_nan(c, 0x800);  // IEEE convention (fp8.h)
        else
            want = hand_value(c, 5, 6, 15);
        if (!same_float(float_decode(c, kFormatE5M6), want)) FAIL("E5M6 code " << c);
    }
    CHECK(float_format_max(kFormatE5M6) == 65024.0);
    CHECK(float_decode(1, kFormatE5M6) == std::ldexp(1.0, -20));
    // BF16 against tensor.h's bit-shift conversion (an independent implementation).
    for (uint32_t c = 0; c < 65536; c++)
        if (!same_float(float_decode(c, kFormatBF16), bf16_to_f32((uint16_t)c))) FAIL("BF16 code " << c);
}

TEST_CASE("encode(decode(c)) == c for every finite code, in both overflow modes", "[fp8][format]") {
    for (const FloatFormat& f : {kFormatE4M3, kFormatE5M2, kFormatE5M6, kFormatBF16}) {
        INFO(float_format_name(f));
        const uint32_t n_codes = 1u << float_format_bits(f), sign = n_codes >> 1, max_code = max_code_of(f);
        REQUIRE(float_format_max_code(f) == max_code);
        for (uint32_t c = 0; c < n_codes; c++) {
            const double v = float_decode(c, f);
            const float vf = (float)v;
            REQUIRE((std::isnan(v) || (double)vf == v));  // every value is a float32
            const uint32_t sat = float_encode(vf, f, Fp8Overflow::Saturate),
                           nan = float_encode(vf, f, Fp8Overflow::Nan);
            if (std::isfinite(v)) {
                if (sat != c || nan != c) FAIL("code " << c << " -> " << sat << " / " << nan);
            } else if (std::isinf(v)) {  // IEEE formats: inf stays inf in nan mode, saturates to ±max
                CHECK(nan == c);
                CHECK(sat == ((c & sign) | max_code));
            } else {  // NaN codes encode to the canonical NaN with their sign
                const uint32_t canon =
                    f.specials == FloatSpecials::FiniteNan
                        ? (sign - 1)
                        : ((((1u << f.exp_bits) - 1) << f.man_bits) | (1u << (f.man_bits - 1)));
                if (sat != ((c & sign) | canon) || nan != sat)
                    FAIL("NaN code " << c << " -> " << sat << " / " << nan);
            }
        }
    }
    CHECK(fp8_encode(fp8_decode(0x7C, Fp8Format::E5M2), Fp8Format::E5M2, Fp8Overflow::Nan) == 0x7C);
    CHECK(fp8_encode(fp8_decode(0xFC, Fp8Format::E5M2), Fp8Format::E5M2, Fp8Overflow::Saturate) == 0xFB);
}

TEST_CASE("encode: every midpoint ties to even, one float32 ulp either side rounds away from it",
          "[fp8][format]") {
    // For consecutive finite codes c, c+1 (positive and negative), the midpoint of their values is exact in
    // float32. This walks the whole subnormal range, the min-normal boundary, every binade and max.
    for (const FloatFormat& f : {kFormatE4M3, kFormatE5M2, kFormatE5M6, kFormatBF16}) {
        INFO(float_format_name(f));
        const uint32_t sign = 1u << (f.exp_bits + f.man_bits), max_code = max_code_of(f);
        for (uint32_t c = 0; c < max_code; c++) {
            const float lo = (float)float_decode(c, f), hi = (float)float_decode(c + 1, f);
            const float mid = (float)(0.5 * ((double)lo + (double)hi));
            REQUIRE((double)mid == 0.5 * ((double)lo + (double)hi));
            const uint32_t even = (c % 2 == 0) ? c : c + 1;
            for (int s = 0; s < 2; s++) {
                const float sg = s ? -1.0f : 1.0f;
                const uint32_t sb = s ? sign : 0;
                for (Fp8Overflow ov : {Fp8Overflow::Saturate, Fp8Overflow::Nan}) {
                    const uint32_t at = float_encode(sg * mid, f, ov);
                    const uint32_t above = float_encode(sg * std::nextafter(mid, kInf), f, ov);
                    const uint32_t below = float_encode(sg * std::nextafter(mid, 0.0f), f, ov);
                    if (at != (sb | even) || above != (sb | (c + 1)) || below != (sb | c))
                        FAIL("codes " << c << ".." << c + 1 << " sign " << s << ": " << at << " " << above
                                      << " " << below);
                }
            }
        }
    }
}

TEST_CASE("encode: overflow in both modes, ±0, NaN, ±inf, tiny values", "[fp8][format]") {
    const Fp8Format E4 = Fp8Format::E4M3, E5 = Fp8Format::E5M2;
    const Fp8Overflow SAT = Fp8Overflow::Saturate, NaNm = Fp8Overflow::Nan;
    // E4M3: 464 is the midpoint of 448 (0x7E, even) and the missing 480 (0x7F): ties to 448 in both modes.
    CHECK(fp8_encode(464.0f, E4, SAT) == 0x7E);
    CHECK(fp8_encode(464.0f, E4, NaNm) == 0x7E);
    CHECK(fp8_encode(std::nextafter(464.0f, kInf), E4, SAT) == 0x7E);
    CHECK(fp8_encode(std::nextafter(464.0f, kInf), E4, NaNm) == 0x7F);  // |x| > 464 → NaN
    CHECK(fp8_encode(-std::nextafter(464.0f, kInf), E4, NaNm) == 0xFF);
    CHECK(fp8_encode(480.0f, E4, NaNm) == 0x7F);
    CHECK(fp8_encode(1e30f, E4, SAT) == 0x7E);
    CHECK(fp8_encode(-1e30f, E4, SAT) == 0xFE);
    CHECK(fp8_encode(std::numeric_limits<float>::max(), E4, NaNm) == 0x7F);
    CHECK(fp8_encode(kInf, E4, SAT) == 0x7E);
    CHECK(fp8_encode(-kInf, E4, SAT) == 0xFE);
    CHECK(fp8_encode(kInf, E4, NaNm) == 0x7F);  // E4M3FN has no infinity
    CHECK(fp8_encode(-kInf, E4, NaNm) == 0xFF);
    // E5M2: 61440 is the midpoint of 57344 (0x7B, odd) and 65536 (0x7C = inf, even).
    CHECK(fp8_encode(61440.0f, E5, NaNm) == 0x7C);
    CHECK(fp8_encode(61440.0f, E5, SAT) == 0x7B);
    CHECK(fp8_encode(std::nextafter(61440.0f, 0.0f), E5, NaNm) == 0x7B);
    CHECK(fp8_encode(-61440.0f, E5, NaNm) == 0xFC);
    CHECK(fp8_encode(kInf, E5, NaNm) == 0x7C);
    CHECK(fp8_encode(-kInf, E5, NaNm) == 0xFC);
    CHECK(fp8_encode(kInf, E5, SAT) == 0x7B);
    CHECK(fp8_encode(-kInf, E5, SAT) == 0xFB);
    // Zeros keep their sign, and so does a negative value that rounds to zero.
    for (Fp8Format f : {E4, E5})
        for (Fp8Overflow ov : {SAT, NaNm}) {
            CHECK(fp8_encode(0.0f, f, ov) == 0x00);
            CHECK(fp8_encode(-0.0f, f, ov) == 0x80);
            CHECK(fp8_encode(-std::numeric_limits<float>::denorm_min(), f, ov) == 0x80);
            CHECK(fp8_encode(std::numeric_limits<float>::denorm_min(), f, ov) == 0x00);
        }
    // Below the smallest subnormal: half of it ties to 0 (even), anything more rounds up to it.
    CHECK(fp8_encode(std::ldexp(1.0f, -10), E4, SAT) == 0x00);
    CHECK(fp8_encode(std::nextafter(std::ldexp(1.0f, -10), 1.0f), E4, SAT) == 0x01);
    CHECK(fp8_encode(3 * std::ldexp(1.0f, -11), E4, SAT) == 0x01);
    CHECK(fp8_encode(std::ldexp(1.0f, -17), E5, SAT) == 0x00);
    CHECK(fp8_encode(std::ldexp(3.0f, -17), E5, SAT) == 0x02);  // 1.5·2^-16 ties to 2·2^-16 (even)
    // The largest subnormal rounds up into the min normal: 0.0146484375 = (7.5)·2^-9 → 8·2^-9 = 2^-6.
    CHECK(fp8_encode(7.5f * std::ldexp(1.0f, -9), E4, SAT) == 0x08);
    // NaN in → canonical NaN out, keeping the sign, whatever the payload (what ml_dtypes does).
    uint32_t payloads[] = {0x7FC00000u, 0x7F800001u, 0x7FBFFFFFu, 0xFFC00000u, 0xFF800001u};
    for (uint32_t p : payloads) {
        float x;
        std::memcpy(&x, &p, 4);
        const uint8_t s = (p >> 31) ? 0x80 : 0x00;
        for (Fp8Overflow ov : {SAT, NaNm}) {
            CHECK(fp8_encode(x, E4, ov) == (s | 0x7F));
            CHECK(fp8_encode(x, E5, ov) == (s | 0x7E));
        }
        CHECK(std::isnan(float_round(x, kFormatBF16, SAT)));
    }
    // Generic formats: BF16 saturates at its max, E5M6 overflows to inf at (65024 + 65536)/2 = 65280.
    CHECK(float_encode(kInf, kFormatBF16, SAT) == 0x7F7F);
    CHECK(float_encode(std::numeric_limits<float>::max(), kFormatBF16, NaNm) == 0x7F80);
    CHECK(float_encode(65280.0f, kFormatE5M6, NaNm) == 0x7C0);
    CHECK(float_encode(65280.0f, kFormatE5M6, SAT) == 0x7BF);
    CHECK(float_encode(std::nextafter(65280.0f, 0.0f), kFormatE5M6, NaNm) == 0x7BF);
}

TEST_CASE("BF16 through the generic encoder equals tensor.h's f32_to_bf16 on random float32 bits",
          "[fp8][format]") {
    std::mt19937 g(7);
    for (int i = 0; i < 200000; i++) {
        const uint32_t u = (uint32_t)g();
        float x;
        std::memcpy(&x, &u, 4);
        if (std::isnan(x)) continue;  // f32_to_bf16 keeps NaN payload bits; the generic encoder canonicalizes
        const uint32_t got = float_encode(x, kFormatBF16, Fp8Overflow::Nan);
        if (got != f32_to_bf16(x)) FAIL("bits " << u << ": " << got << " vs " << f32_to_bf16(x));
    }
}

TEST_CASE("eXmY names parse to the documented formats", "[fp8][format]") {
    FloatFormat f;
    REQUIRE(float_format_parse("e4m3", &f));
    CHECK((f.exp_bits == 4 && f.man_bits == 3 && f.bias == 7 && f.specials == FloatSpecials::FiniteNan));
    REQUIRE(float_format_parse("e5m2", &f));
    CHECK((f.exp_bits == 5 && f.man_bits == 2 && f.bias == 15 && f.specials == FloatSpecials::Ieee));
    REQUIRE(float_format_parse("e5m6", &f));
    CHECK((f.bias == 15 && f.specials == FloatSpecials::Ieee && float_format_bits(f) == 12));
    REQUIRE(float_format_parse("e8m7", &f));
    CHECK((f.bias == 127 && f.specials == FloatSpecials::Ieee && float_format_bits(f) == 16));
    for (const char* bad :
         {"", "e4m3fn", "E4M3", "e9m2", "e1m3", "e4m0", "e8m24", "e05m2", "e4m3x", "fp8", "e4m-3"})
        CHECK_FALSE(float_format_parse(bad, &f));
}

TEST_CASE("fp8_cast op: shapes, dtypes and errors", "[fp8][op]") {
    const std::vector<float> x = {0.0f, 1.0f, -2.5f, 500.0f, kInf, kNaN};
    TensorMap in{{"x", Tensor::from_f32({2, 3}, x)}};
    TensorMap out = run_op("fp8_cast", in, attrs({{"format", "e4m3"}, {"overflow", "saturate"}}));
    REQUIRE(out.at("bits").dtype == DType::U8);
    REQUIRE(out.at("bits").shape == Shape{2, 3});
    REQUIRE(out.at("y").dtype == DType::F32);
    REQUIRE(out.at("y").shape == Shape{2, 3});
    const std::vector<uint8_t> want = {0x00, 0x38, 0xC2, 0x7E, 0x7E, 0x7F};  // -2.5 = -1.25·2 → 0xC2
    for (int i = 0; i < 6; i++) CHECK(out.at("bits").u8()[i] == want[i]);
    const std::vector<float> y = out.at("y").to_f32();
    CHECK(y[2] == -2.5f);
    CHECK(y[3] == 448.0f);
    CHECK(std::isnan(y[5]));
    // Formats wider than 8 bits give I32 bit patterns.
    out = run_op("fp8_cast", in, attrs({{"format", "e8m7"}, {"overflow", "nan"}}));
    REQUIRE(out.at("bits").dtype == DType::I32);
    CHECK(out.at("bits").i32()[1] == 0x3F80);
    CHECK(out.at("bits").i32()[4] == 0x7F80);
    // Any float dtype is accepted as x.
    TensorMap in_bf{{"x", Tensor::encode_f32({2}, {1.0f, 3.0f}, DType::BF16)}};
    CHECK(run_op("fp8_cast", in_bf, attrs({{"overflow", "nan"}})).at("bits").u8()[1] == 0x44);
    // Errors: overflow must be chosen, format must parse, x must be float.
    CHECK_THROWS_AS(run_op("fp8_cast", in, attrs({{"format", "e4m3"}})), UsageError);
    CHECK_THROWS_AS(run_op("fp8_cast", in, attrs({{"format", "e4m3fn"}, {"overflow", "nan"}})), UsageError);
    CHECK_THROWS_AS(run_op("fp8_cast", in, attrs({{"overflow", "clamp"}})), UsageError);
    CHECK_THROWS_AS(run_op("fp8_cast", in, attrs({{"overflow", "nan"}, {"rounding", "rne"}})), UsageError);
    TensorMap in_int{{"x", Tensor::from_i32({1}, {3})}};
    CHECK_THROWS_AS(run_op("fp8_cast", in_int, attrs({{"overflow", "nan"}})), Error);
    CHECK_THROWS_AS(run_op("fp8_cast", TensorMap{}, attrs({{"overflow", "nan"}})), Error);
}

TEST_CASE("fp8_cast is bit-identical to ml_dtypes over every BF16 pattern and random float32",
          "[fp8][golden]") {
    const std::string path = "data/fp8/fp8_cast.safetensors";
    SafetensorsFile file(path);  // throws if missing: re-run `python3 data/fp8/make_fp8_golden.py`
    bool version_ok = false;
    for (const auto& kv : file.metadata()) version_ok |= (kv.first == "version" && kv.second == "1");
    REQUIRE(version_ok);  // else re-run python3 data/fp8/make_fp8_golden.py
    const TensorMap g = read_safetensors(path);
    const std::vector<float> bf16_x = g.at("bf16_x").to_f32();  // all 65536 patterns, exact in float32
    const std::vector<float> rand_x = g.at("rand_x").to_f32();
    REQUIRE(bf16_x.size() == 65536);
    for (const std::string fmt : {"e4m3", "e5m2", "e5m6", "e8m7"})
        for (const std::string mode : {"saturate", "nan"})
            for (const std::string set : {"bf16", "rand"}) {
                const std::string key = set + "_" + fmt + "_" + mode;
                if (!g.count(key)) {
                    CHECK(set == "bf16");  // the BF16 sweep is stored for the two 8-bit formats only
                    continue;
                }
                INFO(key);
                const Tensor& want = g.at(key);
                std::vector<uint32_t> codes;
                std::vector<float> y;
                run_cast(set == "bf16" ? bf16_x : rand_x, fmt, mode, &codes, &y);
                REQUIRE((int64_t)codes.size() == want.numel());
                int64_t mismatches = 0, first = -1;
                for (size_t i = 0; i < codes.size(); i++) {
                    uint32_t w;
                    if (want.dtype == DType::U8)
                        w = want.u8()[i];
                    else {
                        uint16_t h;  // I16 holding a 12- or 16-bit pattern
                        std::memcpy(&h, want.u8() + 2 * i, 2);
                        w = h;
                    }
                    if (codes[i] != w) {
                        mismatches++;
                        if (first < 0) first = (int64_t)i;
                    }
                }
                INFO("first mismatch at " << first);
                CHECK(mismatches == 0);
            }
}

TEST_CASE("dsref op fp8_cast through the CLI: bit-identical to ml_dtypes over every BF16 pattern",
          "[fp8][golden][cli]") {
    const TensorMap g = read_safetensors("data/fp8/fp8_cast.safetensors");
    dsref_test::TempDir dir;
    write_safetensors(dir.file("in.safetensors"),
                      {{"x", Tensor::from_f32({65536}, g.at("bf16_x").to_f32())}});
    for (const std::string fmt : {"e4m3", "e5m2"})
        for (const std::string mode : {"saturate", "nan"}) {
            INFO(fmt << " " << mode);
            std::string log;
            const int rc = dsref_test::run_dsref("op fp8_cast --in " + dir.file("in.safetensors") +
                                                     " --out " + dir.file("out.safetensors") +
                                                     " --set format=" + fmt + " --set overflow=" + mode,
                                                 &log);
            INFO(log);
            REQUIRE(rc == 0);
            CHECK(read_safetensors(dir.file("out.safetensors")).at("bits").bytes ==
                  g.at("bf16_" + fmt + "_" + mode).bytes);
        }
    // A missing overflow mode is a usage error: exit code 2.
    CHECK(dsref_test::run_dsref("op fp8_cast --in " + dir.file("in.safetensors") + " --out " +
                                dir.file("o2.safetensors")) == 2);
}
