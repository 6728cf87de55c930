// rmsnorm.cpp — RMSNorm forward (the formula and precision are in rmsnorm.h).
#include "core/rmsnorm.h"

#include <algorithm>
#include <cmath>

namespace dsref {

// LAB(rmsnorm) task: y[t, i] = x[t, i] / sqrt(mean_j x[t, j]^2 + eps) * w[i] for every row t (rmsnorm.h).
// LAB(rmsnorm) hint: sum the squares in double, eps goes inside the square root, the rows are independent.
void rmsnorm_forward(float* y, const float* x, const float* w, int64_t T, int64_t d, float eps) {
    // LAB(rmsnorm): begin
    // kRows rows at a time: their sums of squares are independent chains, stepped together so that one
    // row's additions do not wait for each other (each row is still one chain in increasing i).
    constexpr int64_t kRows = 8;
#pragma omp parallel for schedule(static)
    for (int64_t t0 = 0; t0 < T; t0 += kRows) {
        const int64_t nr = std::min(kRows, T - t0);
        const float* xr[kRows];  // the rows (past the last one: the last one again, its sum unused)
        for (int64_t r = 0; r < kRows; r++) xr[r] = x + (t0 + std::min(r, nr - 1)) * d;
        double ss[kRows] = {};  // Σ x² of each row
        for (int64_t i = 0; i < d; i++)
            for (int64_t r = 0; r < kRows; r++) ss[r] += (double)xr[r][i] * xr[r][i];
        for (int64_t r = 0; r < nr; r++) {
            const double inv_rms = 1.0 / std::sqrt(ss[r] / (double)d + (double)eps);
            const float* xt = x + (t0 + r) * d;
            float* yt = y + (t0 + r) * d;
            for (int64_t i = 0; i < d; i++) yt[i] = (float)((double)xt[i] * inv_rms * w[i]);
        }
    }
    // LAB(rmsnorm): end
}

}  // namespace dsref
