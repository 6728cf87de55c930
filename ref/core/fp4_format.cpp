// fp4_format.cpp — E2M1 and UE8M0 decode/encode (definitions in fp4_format.h).
//
// E2M1 encode works on |x| with the 8 non-negative values v[0..7] = 0, .5, 1, 1.5, 2, 3, 4, 6: pick the
// nearest; at an exact midpoint pick the even code (the one whose mantissa bit is 0). Codes are ordered
// like their values, so this is round-to-nearest-even on the format.
#include "core/fp4_format.h"

#include <cmath>
#include <limits>

#include "core/error.h"

namespace dsref {

float e2m1_decode(uint8_t code) {
    const uint32_t e = (code >> 1) & 3u, m = code & 1u;
    const float mag = e == 0 ? 0.5f * (float)m : std::ldexp(1.0f + 0.5f * (float)m, (int)e - 1);
    return (code & 8u) ? -mag : mag;
}

uint8_t e2m1_encode(float x) {
    if (std::isnan(x)) fail("e2m1_encode: NaN has no E2M1 code");
    const uint8_t sign = std::signbit(x) ? 8 : 0;
    const double a = std::fabs((double)x);
    uint8_t best = 0;
    for (uint8_t c = 1; c < 8; ++c) {
        const double lo = e2m1_decode((uint8_t)(c - 1)), hi = e2m1_decode(c);
        if (a > hi) { best = c; continue; }
        const double mid = 0.5 * (lo + hi);
        if (a > mid || (a == mid && (c & 1u) == 0)) best = c; else best = (uint8_t)(c - 1);
        return (uint8_t)(sign | best);
    }
    return (uint8_t)(sign | 7);  // |x| > 6 or inf: saturate
}

float ue8m0_decode(uint8_t code) {
    if (code == 0xFF) return std::numeric_limits<float>::quiet_NaN();
    return std::ldexp(1.0f, (int)code - 127);
}

uint8_t ue8m0_encode(float pow2) {
    int k = 0;
    const float f = std::frexp(pow2, &k);  // pow2 = f · 2^k, f in [0.5, 1)
    if (!(pow2 > 0.0f) || std::isinf(pow2) || f != 0.5f || k - 1 < -127 || k - 1 > 127)
        fail("ue8m0_encode: ", pow2, " is not a power of two in [2^-127, 2^127]");
    return (uint8_t)(k - 1 + 127);
}

}  // namespace dsref
