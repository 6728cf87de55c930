// fp8_quant.cpp — 1×128 / 128×128 FP8 quantization and dequantization (V3 report §3.3.2;
// DeepSeek-V3 inference/kernel.py act_quant and weight_dequant).
// Plain loops; OpenMP over rows (activations) or block rows (weights) only. Rule in fp8_quant.h.
#include "fp8/fp8_quant.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/fp8_format.h"

namespace dsref {

float ue8m0_round_up(float s) {
    if (!(s > 0.0f) || !std::isfinite(s))
        fail("ue8m0_round_up: scale ", s, " is not a finite positive number");
    int e;
    const float fr = std::frexp(s, &e);           // s = fr·2^e, fr in [0.5, 1)
    return fr == 0.5f ? s : std::ldexp(1.0f, e);  // already a power of two, else the next one up
}

float fp8_scale_from_amax(float amax, Fp8ScaleFmt fmt) {
    const float s = std::max(amax, kFp8AmaxFloor) / kFp8E4M3Max;
    return fmt == Fp8ScaleFmt::Ue8m0 ? ue8m0_round_up(s) : s;
}

// The E4M3 code of one element of a group whose scale is s (float32 division, then RNE, saturating).
static uint8_t quant_one(float x, float s) {
    return fp8_encode(x / s, Fp8Format::E4M3, Fp8Overflow::Saturate);
}

static float checked_abs(float v, const char* what, int64_t r, int64_t c) {
    if (!std::isfinite(v))
        fail(what, "[", r, ", ", c, "] = ", v, " is not finite; FP8 quantization needs finite inputs");
    return std::fabs(v);
}

// LAB(fp8_quant) task: 1x128 activation quantization: per row and group of 128, s = fp8_scale_from_amax(amax), q = E4M3(x / s).
// LAB(fp8_quant) hint: the last group may be shorter than 128; quant_one does the float32 division and the saturating RNE.
void fp8_quant_act(uint8_t* q, float* scale, const float* x, int64_t M, int64_t K, Fp8ScaleFmt fmt) {
    const int64_t KB = fp8_num_blocks(K);
    // Validate first (an exception must not leave an OpenMP region).
    for (int64_t m = 0; m < M; m++)
        for (int64_t k = 0; k < K; k++) checked_abs(x[m * K + k], "fp8_quant_act: x", m, k);
    // LAB(fp8_quant): begin
#pragma omp parallel for schedule(static)
    for (int64_t m = 0; m < M; m++) {
        for (int64_t kb = 0; kb < KB; kb++) {
            const int64_t k0 = kb * kFp8Block, k1 = std::min(K, k0 + kFp8Block);  // group [k0, k1)
            float amax = 0.0f;
            for (int64_t k = k0; k < k1; k++) amax = std::max(amax, std::fabs(x[m * K + k]));
            const float s = fp8_scale_from_amax(amax, fmt);
            scale[m * KB + kb] = s;
            for (int64_t k = k0; k < k1; k++) q[m * K + k] = quant_one(x[m * K + k], s);
        }
    }
    // LAB(fp8_quant): end
}

void fp8_quant_weight(uint8_t* q, float* scale_inv, const float* w, int64_t N, int64_t K, Fp8ScaleFmt fmt) {
    const int64_t NB = fp8_num_blocks(N), KB = fp8_num_blocks(K);
    for (int64_t n = 0; n < N; n++)
        for (int64_t k = 0; k < K; k++) checked_abs(w[n * K + k], "fp8_quant_weight: w", n, k);
#pragma omp parallel for schedule(static)
    for (int64_t nb = 0; nb < NB; nb++) {
        const int64_t n0 = nb * kFp8Block, n1 = std::min(N, n0 + kFp8Block);  // block rows [n0, n1)
        for (int64_t kb = 0; kb < KB; kb++) {
            const int64_t k0 = kb * kFp8Block, k1 = std::min(K, k0 + kFp8Block);  // block cols [k0, k1)
            float amax = 0.0f;  // over the block's real elements only
            for (int64_t n = n0; n < n1; n++)
                for (int64_t k = k0; k < k1; k++) amax = std::max(amax, std::fabs(w[n * K + k]));
            const float s = fp8_scale_from_amax(amax, fmt);
            scale_inv[nb * KB + kb] = s;
            for (int64_t n = n0; n < n1; n++)
                for (int64_t k = k0; k < k1; k++) q[n * K + k] = quant_one(w[n * K + k], s);
        }
    }
}

// The NaN policy of fp8_quant.h: refuses the two E4M3 NaN codes and scales that are not finite.
// q: [R, K] codes in blocks of br × bc (br = 1 for activation groups)
static void check_codes(const uint8_t* q, int64_t R, int64_t K, int64_t br, int64_t bc, const char* what) {
    for (int64_t r = 0; r < R; r++) {
        const uint8_t* row = q + r * K;
        unsigned nan_seen = 0;  // a branch-free scan of the row (it vectorizes); the search below only on a hit
        for (int64_t k = 0; k < K; k++) nan_seen |= (unsigned)((row[k] & 0x7F) == 0x7F);
        if (!nan_seen) continue;
        for (int64_t k = 0; k < K; k++)
            if ((row[k] & 0x7F) == 0x7F) {
                if (br > 1) fail(what, ": q[", r, ", ", k, "] (block [", r / br, ", ", k / bc, "]) is the E4M3 NaN code");
                fail(what, ": q[", r, ", ", k, "] is the E4M3 NaN code");
            }
    }
}
// s: [rows, cols] scales
static void check_scales(const float* s, int64_t rows, int64_t cols, const char* what) {
    for (int64_t i = 0; i < rows * cols; i++)
        if (!std::isfinite(s[i])) fail(what, ": scale [", i / cols, ", ", i % cols, "] = ", s[i], " is not finite");
}

void fp8_dequant_act(float* y, const uint8_t* q, const float* scale, int64_t M, int64_t K) {
    const int64_t KB = fp8_num_blocks(K);
    check_codes(q, M, K, 1, kFp8Block, "fp8_dequant_act");
    check_scales(scale, M, KB, "fp8_dequant_act");
#pragma omp parallel for schedule(static)
    for (int64_t m = 0; m < M; m++)
        for (int64_t k = 0; k < K; k++)
            y[m * K + k] = fp8_decode(q[m * K + k], Fp8Format::E4M3) * scale[m * KB + k / kFp8Block];
}

void fp8_dequant_weight(float* y, const uint8_t* q, const float* scale_inv, int64_t N, int64_t K, int64_t br,
                        int64_t bc) {
    if (br < 1 || bc < 1) fail("fp8_dequant_weight: block sizes must be >= 1, got ", br, " x ", bc);
    const int64_t NB = (N + br - 1) / br, KB = (K + bc - 1) / bc;
    check_codes(q, N, K, br, bc, "fp8_dequant_weight");
    check_scales(scale_inv, NB, KB, "fp8_dequant_weight");
    float decoded[256];  // every E4M3 code's value, so the loop below is a table lookup
    for (int code = 0; code < 256; code++) decoded[code] = fp8_decode((uint8_t)code, Fp8Format::E4M3);
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; n++) {
        const uint8_t* qn = q + n * K;
        const float* sn = scale_inv + (n / br) * KB;  // this row's block scales
        float* yn = y + n * K;
        for (int64_t kb = 0; kb < KB; kb++) {  // one block of bc columns at a time, its scale hoisted
            const float s = sn[kb];
            const int64_t k1 = std::min(K, (kb + 1) * bc);
            for (int64_t k = kb * bc; k < k1; k++) yn[k] = decoded[qn[k]] * s;
        }
    }
}

float fp8_quant_per_tensor(uint8_t* q, const float* x, int64_t n, Fp8ScaleFmt fmt) {
    float amax = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        if (!std::isfinite(x[i])) fail("fp8_quant_per_tensor: x[", i, "] = ", x[i], " is not finite");
        amax = std::max(amax, std::fabs(x[i]));
    }
    const float s = fp8_scale_from_amax(amax, fmt);
    for (int64_t i = 0; i < n; i++) q[i] = quant_one(x[i], s);
    return s;
}

}  // namespace dsref
