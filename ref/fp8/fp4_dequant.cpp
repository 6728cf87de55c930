// fp4_dequant.cpp — FP4 (E2M1 + UE8M0 per 32) expert weights to float32 and back (fp4_dequant.h).
#include "fp8/fp4_dequant.h"

#include <cmath>

#include "core/error.h"
#include "core/fp4_format.h"
#include "fp8/fp8_quant.h"

namespace dsref {

std::vector<float> fp4_dequantize(const uint8_t* packed, const uint8_t* scale, int64_t N, int64_t K,
                                  const std::string& what) {
    if (K % kFp4Block != 0) fail(what, ": FP4 input dimension ", K, " is not a multiple of ", kFp4Block);
    const int64_t KB = K / kFp4Block;
    std::vector<float> out((size_t)(N * K));
    for (int64_t n = 0; n < N; ++n) {
        for (int64_t b = 0; b < KB; ++b) {
            const uint8_t sc = scale[n * KB + b];
            if (sc == 0xFF) fail(what, ": UE8M0 scale [", n, ", ", b, "] is the NaN code 0xFF");
            const float s = ue8m0_decode(sc);
            for (int64_t k = b * kFp4Block; k < (b + 1) * kFp4Block; ++k) {
                const uint8_t byte = packed[n * (K / 2) + k / 2];
                const uint8_t code = (k % 2 == 0) ? (uint8_t)(byte & 0xF) : (uint8_t)(byte >> 4);
                out[(size_t)(n * K + k)] = e2m1_decode(code) * s;
            }
        }
    }
    return out;
}

void fp4_quantize(const float* w, int64_t N, int64_t K, uint8_t* packed, uint8_t* scale) {
    if (K % kFp4Block != 0) fail("fp4_quantize: K = ", K, " is not a multiple of ", kFp4Block);
    const int64_t KB = K / kFp4Block;
    for (int64_t n = 0; n < N; ++n) {
        for (int64_t b = 0; b < KB; ++b) {
            float amax = 0.0f;
            for (int64_t k = b * kFp4Block; k < (b + 1) * kFp4Block; ++k) {
                const float v = w[n * K + k];
                if (!std::isfinite(v)) fail("fp4_quantize: element [", n, ", ", k, "] is not finite");
                amax = std::fmax(amax, std::fabs(v));
            }
            // kernel.py fp4_act_quant: amax floored at 6·2^-126, s = pow2_ceil(amax / 6).
            amax = std::fmax(amax, std::ldexp(6.0f, -126));
            const float s = ue8m0_round_up(amax / kE2m1Max);
            scale[n * KB + b] = ue8m0_encode(s);
            for (int64_t k = b * kFp4Block; k < (b + 1) * kFp4Block; k += 2) {
                const uint8_t lo = e2m1_encode(w[n * K + k] / s), hi = e2m1_encode(w[n * K + k + 1] / s);
                packed[n * (K / 2) + k / 2] = e2m1_pack(lo, hi);
            }
        }
    }
}

}  // namespace dsref
