// loss_backward.cpp — cross-entropy and its logit gradient (loss_backward.h).
#include "train/loss_backward.h"

#include <algorithm>
#include <cmath>

namespace dsref {

// LAB(cross_entropy) task: the mean over rows of logsumexp(z[n]) - z[n, y[n]], and (when dz is not nullptr)
// LAB(cross_entropy) its gradient dz[n, v] = scale * (softmax(z[n])[v] - [v == y[n]]) / N (loss_backward.h).
// LAB(cross_entropy) hint: subtract the row maximum before exp; accumulate in double.
template <class F> double xent_fwd_bwd(F* dz, const F* z, const int32_t* y, int64_t N, int64_t V, double scale) {
    // LAB(cross_entropy): begin
    double total = 0.0;
    for (int64_t n = 0; n < N; n++) {
        const F* zr = z + n * V;
        double mx = -INFINITY;
        for (int64_t v = 0; v < V; v++) mx = std::max(mx, (double)zr[v]);
        double s = 0.0;
        for (int64_t v = 0; v < V; v++) s += std::exp((double)zr[v] - mx);
        const double lse = mx + std::log(s);
        total += lse - (double)zr[y[n]];
        if (dz)
            for (int64_t v = 0; v < V; v++)
                dz[n * V + v] = (F)(scale * (std::exp((double)zr[v] - lse) - (v == y[n] ? 1.0 : 0.0)) / (double)N);
    }
    return total / (double)N;
    // LAB(cross_entropy): end
}

template double xent_fwd_bwd<float>(float*, const float*, const int32_t*, int64_t, int64_t, double);
template double xent_fwd_bwd<double>(double*, const double*, const int32_t*, int64_t, int64_t, double);

}  // namespace dsref
