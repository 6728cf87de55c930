// hyper_connection.cpp — mHC mixing (the equations are in hyper_connection.h).
#include "core/hyper_connection.h"

#include <cmath>

#include "core/linear.h"

namespace dsref {

static double sigmoid(double z) {
    return 1.0 / (1.0 + std::exp(-z));
}

void hc_mixes(float* mixes, const float* x, const float* fn, int64_t T, int64_t d, int64_t M, const HcParams& p) {
    const int64_t nd = p.n * d;
    linear_forward(mixes, x, fn, T, nd, M);
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < T; ++t) {
        double ss = 0.0;
        for (int64_t i = 0; i < nd; ++i) ss += (double)x[t * nd + i] * x[t * nd + i];
        const double r = 1.0 / std::sqrt(ss / (double)nd + p.norm_eps);
        for (int64_t m = 0; m < M; ++m) mixes[t * M + m] = (float)(mixes[t * M + m] * r);
    }
}

void hc_split_sinkhorn(float* pre, float* post, float* comb, const float* mixes, const float* scale,
                       const float* base, int64_t T, const HcParams& p) {
    const int64_t n = p.n, M = (2 + n) * n;
    const double eps = p.hc_eps;
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < T; ++t) {
        const float* m = mixes + t * M;
        for (int64_t i = 0; i < n; ++i) {
            pre[t * n + i] = (float)(sigmoid((double)m[i] * scale[0] + base[i]) + eps);
            post[t * n + i] = (float)(2.0 * sigmoid((double)m[n + i] * scale[1] + base[n + i]));
        }
        std::vector<double> c((size_t)(n * n));
        for (int64_t j = 0; j < n; ++j) {  // row softmax + eps
            double mx = -INFINITY;
            for (int64_t k = 0; k < n; ++k) {
                c[j * n + k] = (double)m[2 * n + j * n + k] * scale[2] + base[2 * n + j * n + k];
                mx = std::fmax(mx, c[j * n + k]);
            }
            double s = 0.0;
            for (int64_t k = 0; k < n; ++k) s += (c[j * n + k] = std::exp(c[j * n + k] - mx));
            for (int64_t k = 0; k < n; ++k) c[j * n + k] = c[j * n + k] / s + eps;
        }
        auto cols = [&]() {
            for (int64_t k = 0; k < n; ++k) {
                double s = 0.0;
                for (int64_t j = 0; j < n; ++j) s += c[j * n + k];
                for (int64_t j = 0; j < n; ++j) c[j * n + k] /= (s + eps);
            }
        };
        cols();
        for (int64_t it = 0; it + 1 < p.iters; ++it) {
            for (int64_t j = 0; j < n; ++j) {
                double s = 0.0;
                for (int64_t k = 0; k < n; ++k) s += c[j * n + k];
                for (int64_t k = 0; k < n; ++k) c[j * n + k] /= (s + eps);
            }
            cols();
        }
        for (int64_t i = 0; i < n * n; ++i) comb[t * n * n + i] = (float)c[(size_t)i];
    }
}

void hc_pre(float* y, float* pre, float* post, float* comb, const float* x, const float* fn, const float* scale,
            const float* base, int64_t T, int64_t d, const HcParams& p) {
    const int64_t n = p.n, M = (2 + n) * n;
    std::vector<float> mixes((size_t)(T * M));
    hc_mixes(mixes.data(), x, fn, T, d, M, p);
    hc_split_sinkhorn(pre, post, comb, mixes.data(), scale, base, T, p);
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < T; ++t)
        for (int64_t i = 0; i < d; ++i) {
            double s = 0.0;
            for (int64_t h = 0; h < n; ++h) s += (double)pre[t * n + h] * x[(t * n + h) * d + i];
            y[t * d + i] = (float)s;
        }
}

void hc_post(float* out, const float* f, const float* residual, const float* post, const float* comb, int64_t T,
             int64_t d, const HcParams& p) {
    const int64_t n = p.n;
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < T; ++t)
        for (int64_t k = 0; k < n; ++k)
            for (int64_t i = 0; i < d; ++i) {
                double s = (double)post[t * n + k] * f[t * d + i];
                for (int64_t j = 0; j < n; ++j) s += (double)comb[(t * n + j) * n + k] * residual[(t * n + j) * d + i];
                out[(t * n + k) * d + i] = (float)s;
            }
}

void hc_head(float* y, const float* x, const float* fn, const float* scale, const float* base, int64_t T,
             int64_t d, const HcParams& p) {
    const int64_t n = p.n;
    std::vector<float> mixes((size_t)(T * n));
    hc_mixes(mixes.data(), x, fn, T, d, n, p);
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < T; ++t) {
        std::vector<double> w((size_t)n);
        for (int64_t h = 0; h < n; ++h) w[h] = sigmoid((double)mixes[t * n + h] * scale[0] + base[h]) + p.hc_eps;
        for (int64_t i = 0; i < d; ++i) {
            double s = 0.0;
            for (int64_t h = 0; h < n; ++h) s += w[h] * x[(t * n + h) * d + i];
            y[t * d + i] = (float)s;
        }
    }
}

}  // namespace dsref
