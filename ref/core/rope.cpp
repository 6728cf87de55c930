// rope.cpp — RoPE in both pairings, YaRN frequencies and mscale (the formulas are in rope.h).
#include "core/rope.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace dsref {

const char* rope_scaling_name(RopeScalingType t) {
    switch (t) {
        case RopeScalingType::None: return "none";
        case RopeScalingType::Yarn: return "yarn";
        case RopeScalingType::Llama3: return "llama3";
    }
    return "?";
}

// LAB(yarn) task: the (fractional) dimension whose wavelength makes `rotations` turns over L0 positions (rope.h, YaRN).
// LAB(yarn) hint: solve L0 / (2 pi theta^(2j / d_r)) = rotations for j.
static double yarn_correction_dim(double rotations, int64_t d_r, double theta, int64_t L0) {
    // LAB(yarn): begin
    return (double)d_r * std::log((double)L0 / (rotations * 2.0 * M_PI)) / (2.0 * std::log(theta));
    // LAB(yarn): end
}

// LAB(yarn) task: YaRN's ramp [low, high]: low from beta_fast rounded down, high from beta_slow rounded up, clamped to [0, d_r - 1].
// LAB(yarn) hint: official inference/model.py find_correction_range.
YarnRange yarn_range(int64_t d_r, double theta, const RopeScaling& s) {
    // LAB(yarn): begin
    double low = std::floor(yarn_correction_dim(s.beta_fast, d_r, theta, s.original_max_position_embeddings));
    double high = std::ceil(yarn_correction_dim(s.beta_slow, d_r, theta, s.original_max_position_embeddings));
    low = std::max(low, 0.0);
    high = std::min(high, (double)(d_r - 1));
    return {low, high};
    // LAB(yarn): end
}

// LAB(yarn) task: the YaRN attention temperature 0.1 * m * ln(factor) + 1, exactly 1 when factor <= 1.
double yarn_get_mscale(double factor, double m) {
    // LAB(yarn): begin
    if (factor <= 1.0) return 1.0;
    return 0.1 * m * std::log(factor) + 1.0;
    // LAB(yarn): end
}

double yarn_softmax_scale(int64_t qk_head_dim, const RopeScaling& s) {
    double scale = 1.0 / std::sqrt((double)qk_head_dim);
    if (s.is_yarn()) {
        const double m = yarn_get_mscale(s.factor, s.mscale_all_dim);
        scale *= m * m;
    }
    return scale;
}

std::vector<double> rope_inv_freq(int64_t d_r, double theta, const RopeScaling& s) {
    if (d_r <= 0 || d_r % 2) fail("rope: dimension must be positive and even, got ", d_r);
    const int64_t P = d_r / 2;
    std::vector<double> f(P);
    for (int64_t j = 0; j < P; j++) f[j] = std::pow(theta, -2.0 * (double)j / (double)d_r);
    if (s.type == RopeScalingType::Llama3) {
        const double L0 = (double)s.original_max_position_embeddings, l = s.low_freq_factor, h = s.high_freq_factor;
        for (int64_t j = 0; j < P; j++) {
            const double wavelen = 2.0 * M_PI / f[j];
            if (wavelen < L0 / h) continue;  // high frequency: kept
            if (wavelen > L0 / l) {          // low frequency: interpolated
                f[j] /= s.factor;
                continue;
            }
            const double a = (L0 / wavelen - l) / (h - l);  // the smooth band in between
            f[j] = (1.0 - a) * f[j] / s.factor + a * f[j];
        }
        return f;
    }
    if (!s.is_yarn()) return f;
    YarnRange r = yarn_range(d_r, theta, s);
    double high = r.high;
    if (high == r.low) high += 0.001;
    for (int64_t j = 0; j < P; j++) {
        const double ramp = std::min(1.0, std::max(0.0, ((double)j - r.low) / (high - r.low)));
        f[j] = (f[j] / s.factor) * ramp + f[j] * (1.0 - ramp);
    }
    return f;
}

// LAB(rope) task: rotate pair j of every vector by the angle positions[t] * inv_freq[j] (rope.h), in place.
// LAB(rope) hint: Interleaved pairs (2j, 2j+1), Half pairs (j, j + P); compute cos/sin once per row in double.
void rope_forward(float* x, int64_t T, int64_t N, int64_t d_r, int64_t row_stride, int64_t vec_stride,
                  const int64_t* positions, const std::vector<double>& inv_freq, RopeLayout layout) {
    const int64_t P = d_r / 2;
    if ((int64_t)inv_freq.size() != P) fail("rope: ", inv_freq.size(), " frequencies for dimension ", d_r);
    // LAB(rope): begin
#pragma omp parallel for schedule(static) if (T * N * d_r >= (1 << 14))  // rows are independent
    for (int64_t t = 0; t < T; t++) {
        std::vector<float> c(P), s(P);
        for (int64_t j = 0; j < P; j++) {
            const double phi = (double)positions[t] * inv_freq[j];
            c[j] = (float)std::cos(phi);
            s[j] = (float)std::sin(phi);
        }
        for (int64_t n = 0; n < N; n++) {
            float* v = x + t * row_stride + n * vec_stride;
            for (int64_t j = 0; j < P; j++) {
                // the pair (a, b) is the complex number a + i·b, multiplied by e^{iφ_j}
                const int64_t ia = (layout == RopeLayout::Interleaved) ? 2 * j : j;
                const int64_t ib = (layout == RopeLayout::Interleaved) ? 2 * j + 1 : j + P;
                const float a = v[ia], b = v[ib];
                v[ia] = a * c[j] - b * s[j];
                v[ib] = a * s[j] + b * c[j];
            }
        }
    }
    // LAB(rope): end
}

}  // namespace dsref
