// loss_backward.cpp — cross-entropy and its logit gradient (loss_backward.h).
#include "train/loss_backward.h"

#include <algorithm>
#include <cmath>

namespace dsref {

template <class F> double xent_fwd_bwd(F* dz, const F* z, const int32_t* y, int64_t N, int64_t V, double scale) {
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
}

template double xent_fwd_bwd<float>(float*, const float*, const int32_t*, int64_t, int64_t, double);
template double xent_fwd_bwd<double>(double*, const double*, const int32_t*, int64_t, int64_t, double);

}  // namespace dsref
