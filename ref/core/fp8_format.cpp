// fp8_format.cpp — bit-exact decode and round-to-nearest-even encode of eXmY formats (the definitions
// are in fp8_format.h).
//
// Encode works on the exact value in double (every float32 is a double, and scaling by a power of two
// is exact), so rounding is one std::nearbyint in the default round-to-nearest-even mode:
//   normal     |x| = f·2^E with f in [1, 2):  m = rne(f·2^Y) in [2^Y, 2^(Y+1)],
//              code = ((E + bias − 1) << Y) + m. When m reaches 2^(Y+1) the carry moves into the
//              exponent field by itself, which is exactly "round up to the next binade".
//   subnormal  |x| < 2^(1−bias):  code = rne(|x| / 2^(1−bias−Y)); reaching 2^Y gives the min normal.
// Codes are ordered like the values they encode, so overflow is "code > max code".
#include "core/fp8_format.h"

#include <cmath>
#include <cstdio>
#include <limits>

namespace dsref {

const FloatFormat kFormatE4M3 = {4, 3, 7, FloatSpecials::FiniteNan};
const FloatFormat kFormatE5M2 = {5, 2, 15, FloatSpecials::Ieee};
const FloatFormat kFormatE5M6 = {5, 6, 15, FloatSpecials::Ieee};
const FloatFormat kFormatBF16 = {8, 7, 127, FloatSpecials::Ieee};

const FloatFormat& fp8_float_format(Fp8Format f) {
    return f == Fp8Format::E4M3 ? kFormatE4M3 : kFormatE5M2;
}

bool float_format_parse(const std::string& name, FloatFormat* out) {
    if (name == "e4m3") {
        *out = kFormatE4M3;
        return true;
    }
    int x = 0, y = 0;
    char tail = 0;
    if (std::sscanf(name.c_str(), "e%dm%d%c", &x, &y, &tail) != 2) return false;
    if (name != "e" + std::to_string(x) + "m" + std::to_string(y)) return false;  // no "e05m2", "e5m+2"
    if (x < 2 || x > 8 || y < 1 || y > 23) return false;
    *out = FloatFormat{x, y, (1 << (x - 1)) - 1, FloatSpecials::Ieee};
    return true;
}

std::string float_format_name(const FloatFormat& f) {
    return "e" + std::to_string(f.exp_bits) + "m" + std::to_string(f.man_bits);
}

int float_format_bits(const FloatFormat& f) {
    return 1 + f.exp_bits + f.man_bits;
}

static uint32_t sign_bit(const FloatFormat& f) {
    return 1u << (f.exp_bits + f.man_bits);
}
static uint32_t exp_all_ones(const FloatFormat& f) {
    return (1u << f.exp_bits) - 1;
}
static uint32_t man_all_ones(const FloatFormat& f) {
    return (1u << f.man_bits) - 1;
}

uint32_t float_format_max_code(const FloatFormat& f) {
    if (f.specials == FloatSpecials::Ieee)  // exponent all ones minus one, mantissa all ones
        return ((exp_all_ones(f) - 1) << f.man_bits) | man_all_ones(f);
    return (exp_all_ones(f) << f.man_bits) | (man_all_ones(f) - 1);  // S.1…1.1…10: one below NaN
}

double float_format_max(const FloatFormat& f) {
    return float_decode(float_format_max_code(f), f);
}
double float_format_min_normal(const FloatFormat& f) {
    return std::ldexp(1.0, 1 - f.bias);
}

// The NaN code with sign bit clear: FN S.1…1.1…1, IEEE quiet NaN S.1…1.10…0.
static uint32_t nan_code(const FloatFormat& f) {
    if (f.specials == FloatSpecials::FiniteNan) return (exp_all_ones(f) << f.man_bits) | man_all_ones(f);
    return (exp_all_ones(f) << f.man_bits) | (1u << (f.man_bits - 1));
}
// The +inf code (IEEE convention only).
static uint32_t inf_code(const FloatFormat& f) {
    return exp_all_ones(f) << f.man_bits;
}

double float_decode(uint32_t code, const FloatFormat& f) {
    const int Y = f.man_bits;
    const double sign = (code & sign_bit(f)) ? -1.0 : 1.0;
    const uint32_t e = (code >> Y) & exp_all_ones(f);  // biased exponent field
    const uint32_t m = code & man_all_ones(f);         // mantissa field
    if (e == exp_all_ones(f)) {
        const double nan =
            std::copysign(std::numeric_limits<double>::quiet_NaN(), sign);  // keeps the sign bit
        if (f.specials == FloatSpecials::Ieee)
            return m == 0 ? sign * std::numeric_limits<double>::infinity() : nan;
        if (m == man_all_ones(f)) return nan;
        // FN: the other all-ones-exponent codes are ordinary normal numbers (E4M3: 256 … 448).
    }
    if (e == 0) return sign * std::ldexp((double)m, 1 - f.bias - Y);             // m·2^(1-bias-Y)
    return sign * std::ldexp(1.0 + std::ldexp((double)m, -Y), (int)e - f.bias);  // (1 + m/2^Y)·2^(e-bias)
}

// LAB(fp8_encode) task: round x to the nearest value of format f (ties to even) and return its code; NaN, inf, overflow
// LAB(fp8_encode) and subnormals as fp8_format.h says.
// LAB(fp8_encode) hint: frexp gives the exponent; nearbyint on ldexp(fraction, Y + 1) rounds to even; a carry bumps the exponent.
uint32_t float_encode(float x, const FloatFormat& f, Fp8Overflow overflow) {
    // LAB(fp8_encode): begin
    const int Y = f.man_bits;
    const uint32_t sign = std::signbit(x) ? sign_bit(f) : 0;
    if (std::isnan(x)) return sign | nan_code(f);

    const uint32_t max_code = float_format_max_code(f);
    // What a value above the largest finite one becomes.
    uint32_t overflow_code = max_code;
    if (overflow == Fp8Overflow::Nan)
        overflow_code = (f.specials == FloatSpecials::Ieee) ? inf_code(f) : nan_code(f);
    if (std::isinf(x)) return sign | overflow_code;

    const double a = std::fabs((double)x);
    uint64_t code;  // magnitude code; 64 bits because a huge x gives a large (overflowing) exponent field
    if (a < float_format_min_normal(f)) {
        // Subnormal grid: spacing 2^(1-bias-Y). Rounding up to 2^Y lands on the min normal's code.
        code = (uint64_t)std::nearbyint(std::ldexp(a, Y - (1 - f.bias)));
    } else {
        int ex;
        const double fr = std::frexp(a, &ex);  // a = fr·2^ex, fr in [0.5, 1)
        const int E = ex - 1;                  // a = (2·fr)·2^E, 2·fr in [1, 2)
        const uint64_t m = (uint64_t)std::nearbyint(std::ldexp(fr, Y + 1));  // in [2^Y, 2^(Y+1)]
        code = ((uint64_t)(E + f.bias - 1) << Y) + m;                        // a carry bumps the exponent
    }
    if (code > max_code) return sign | overflow_code;
    return sign | (uint32_t)code;
    // LAB(fp8_encode): end
}

float float_round(float x, const FloatFormat& f, Fp8Overflow overflow) {
    return (float)float_decode(float_encode(x, f, overflow), f);
}

// ---- FP8 -----------------------------------------------------------------------------------------------

float fp8_decode(uint8_t code, Fp8Format f) {
    // Written out for the two FP8 formats (the tests check it against float_decode and hand rules).
    const int mbits = (f == Fp8Format::E4M3) ? 3 : 2;
    const int ebits = 7 - mbits;
    const int bias = (1 << (ebits - 1)) - 1;  // 7 or 15
    const float sign = (code & 0x80) ? -1.0f : 1.0f;
    const int e = (code >> mbits) & ((1 << ebits) - 1);
    const int m = code & ((1 << mbits) - 1);
    const int emax = (1 << ebits) - 1;
    const float nan = std::copysign(std::numeric_limits<float>::quiet_NaN(), sign);  // NaN keeps its sign bit
    if (f == Fp8Format::E4M3) {
        if (e == emax && m == 7) return nan;  // S.1111.111
    } else if (e == emax) {
        return m == 0 ? sign * std::numeric_limits<float>::infinity() : nan;
    }
    if (e == 0) return sign * std::ldexp((float)m, 1 - bias - mbits);  // subnormal m·2^(1-bias-mbits)
    return sign * std::ldexp(1.0f + (float)m / (float)(1 << mbits), e - bias);
}

uint8_t fp8_encode(float x, Fp8Format f, Fp8Overflow overflow) {
    return (uint8_t)float_encode(x, fp8_float_format(f), overflow);
}

}  // namespace dsref
