// linear.cpp — tiled, thread-count-independent y = x Wᵀ on Eigen.
#include "core/linear.h"

#include <Eigen/Dense>

namespace dsref {

using MatRM = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Stride = Eigen::OuterStride<>;

void linear_forward(float* y, const float* x, const float* w, int64_t T, int64_t K, int64_t N) {
    const int64_t tiles_t = (T + kTileT - 1) / kTileT, tiles_n = (N + kTileN - 1) / kTileN;
    // Tiles are independent, so any assignment of tiles to threads gives the same bits; a single
    // tile, or too little work to pay for waking a thread, runs without a parallel region.
#pragma omp parallel for schedule(dynamic) if (tiles_t * tiles_n > 1 && T * K * N >= (1 << 17))
    for (int64_t tile = 0; tile < tiles_t * tiles_n; tile++) {
        const int64_t t0 = (tile / tiles_n) * kTileT, n0 = (tile % tiles_n) * kTileN;
        const int64_t nt = std::min(kTileT, T - t0), nn = std::min(kTileN, N - n0);
        Eigen::Map<const MatRM, 0, Stride> X(x + t0 * K, nt, K, Stride(K));   // [nt, K]
        Eigen::Map<const MatRM, 0, Stride> W(w + n0 * K, nn, K, Stride(K));   // [nn, K]
        Eigen::Map<MatRM, 0, Stride> Y(y + t0 * N + n0, nt, nn, Stride(N));    // [nt, nn]
        Y.noalias() = X * W.transpose();
    }
}

}  // namespace dsref
