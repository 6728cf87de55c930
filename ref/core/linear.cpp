// linear.cpp — tiled, thread-count-independent y = x Wᵀ on Eigen.
#include "core/linear.h"

#include <Eigen/Dense>

namespace dsref {

using MatRM = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Stride = Eigen::OuterStride<>;

void linear_forward(float* y, const float* x, const float* w, int64_t T, int64_t K, int64_t N) {
    // Work units: up to kTileGroup consecutive full kTileT-row tiles (or the partial last tile alone)
    // × one kTileN-column tile. See linear.h for why grouping full tiles changes no bit.
    const int64_t full = T / kTileT, groups = (full + kTileGroup - 1) / kTileGroup;
    const int64_t blocks_t = groups + (T % kTileT ? 1 : 0), tiles_n = (N + kTileN - 1) / kTileN;
    // Units are independent, so any assignment of units to threads gives the same bits; a single
    // unit, or too little work to pay for waking a thread, runs without a parallel region.
#pragma omp parallel for schedule(dynamic) if (blocks_t * tiles_n > 1 && T * K * N >= (1 << 17))
    for (int64_t unit = 0; unit < blocks_t * tiles_n; unit++) {
        const int64_t b = unit / tiles_n, n0 = (unit % tiles_n) * kTileN;
        const int64_t t0 = b < groups ? b * kTileGroup * kTileT : full * kTileT;  // the partial tile last
        const int64_t nt = b < groups ? std::min(kTileGroup * kTileT, full * kTileT - t0) : T - t0;
        const int64_t nn = std::min(kTileN, N - n0);
        Eigen::Map<const MatRM, 0, Stride> X(x + t0 * K, nt, K, Stride(K));   // [nt, K]
        Eigen::Map<const MatRM, 0, Stride> W(w + n0 * K, nn, K, Stride(K));   // [nn, K]
        Eigen::Map<MatRM, 0, Stride> Y(y + t0 * N + n0, nt, nn, Stride(N));    // [nt, nn]
        Y.noalias() = X * W.transpose();
    }
}

}  // namespace dsref
