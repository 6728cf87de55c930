// layernorm.cpp — LayerNorm forward (the formula and precision are in layernorm.h).
#include "core/layernorm.h"

#include <cmath>

namespace dsref {

void layernorm_forward(float* y, const float* x, const float* w, const float* b, int64_t T, int64_t d, float eps) {
#pragma omp parallel for schedule(static) if (T * d >= (1 << 16))
    for (int64_t t = 0; t < T; t++) {
        const float* xt = x + t * d;
        float* yt = y + t * d;
        double mu = 0.0;
        for (int64_t i = 0; i < d; i++) mu += xt[i];
        mu /= (double)d;
        double var = 0.0;
        for (int64_t i = 0; i < d; i++) var += ((double)xt[i] - mu) * ((double)xt[i] - mu);
        const double inv = 1.0 / std::sqrt(var / (double)d + (double)eps);
        for (int64_t i = 0; i < d; i++) yt[i] = (float)(((double)xt[i] - mu) * inv * w[i] + b[i]);
    }
}

}  // namespace dsref
