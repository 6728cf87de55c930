// linear.cpp — y = x Wᵀ in fixed tiles; each output one float32 chain over k (linear.h).
#include "core/linear.h"

#include <algorithm>
#include <cstdint>
#include <vector>

namespace dsref {

namespace {
// 16 floats: the values of one k for 16 consecutive rows of x (GCC/Clang vector extension: element-wise
// arithmetic, compiled to one AVX-512 register or two AVX2 ones).
typedef float Vec16 __attribute__((vector_size(64)));
constexpr int64_t kLanes = 16;
constexpr int kRowsW = 8;  // rows of W per register block: 8 × 2 accumulators + 2 rows of x

// y[t, r] = Σ_k xt[k, t] w[r, k] for V·16 rows t and R rows r, one chain in increasing k each.
// yb: [R, V·16] out · xt: [K, ldx] (the tile's x transposed, V·16 columns from here) · w: [R, K]
template <int R, int V>
void block(float* yb, const float* xt, int64_t ldx, const float* w, int64_t K) {
    Vec16 acc[V][R];
    for (int v = 0; v < V; v++)
        for (int r = 0; r < R; r++) acc[v][r] = Vec16{};
    for (int64_t k = 0; k < K; k++) {
        Vec16 xv[V];
        for (int v = 0; v < V; v++) xv[v] = *reinterpret_cast<const Vec16*>(xt + k * ldx + v * kLanes);
        for (int r = 0; r < R; r++) {
            const float s = w[r * K + k];
            for (int v = 0; v < V; v++) acc[v][r] += xv[v] * s;
        }
    }
    for (int r = 0; r < R; r++)
        for (int v = 0; v < V; v++) *reinterpret_cast<Vec16*>(yb + (r * V + v) * kLanes) = acc[v][r];
}

// The single-row order of linear.h. y: [nn] out (stride 1) · x: [K] · w: [nn, K]
void gemv_rows(float* y, const float* x, const float* w, int64_t K, int64_t nn) {
    const int64_t K16 = K / kLanes * kLanes;
    for (int64_t n = 0; n < nn; n++) {
        const float* wn = w + n * K;
        float lane[kLanes] = {};
        for (int64_t k = 0; k < K16; k += kLanes)
            for (int j = 0; j < kLanes; j++) lane[j] = madd(x[k + j], wn[k + j], lane[j]);
        for (int h = kLanes / 2; h > 0; h /= 2)
            for (int j = 0; j < h; j++) lane[j] += lane[j + h];
        float s = lane[0];
        for (int64_t k = K16; k < K; k++) s = madd(x[k], wn[k], s);
        y[n] = s;
    }
}
}  // namespace

XTiles::XTiles(const float* x, int64_t T, int64_t K) {
    const int64_t tiles = (T + kTileT - 1) / kTileT;
    if (T < 2) return;  // a single row is multiplied as it is (the single-row order)
    tile_floats_ = K * kTileT;
    buf_.assign(tiles * tile_floats_ + kLanes, 0.0f);  // zeros: the padding rows of a partial tile
    base_ = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(buf_.data()) + 63) & ~uintptr_t(63));
#pragma omp parallel for schedule(static) if (tiles > 1 && T * K >= (1 << 16))
    for (int64_t i = 0; i < tiles; i++) {
        const int64_t nt = std::min(kTileT, T - i * kTileT);
        float* xt = base_ + i * tile_floats_;
        for (int64_t t = 0; t < nt; t++) {
            const float* xr = x + (i * kTileT + t) * K;
            for (int64_t k = 0; k < K; k++) xt[k * kTileT + t] = xr[k];
        }
    }
}

void linear_unit(float* y, int64_t ldy, const float* x, const float* xt, const float* w, int64_t nt, int64_t K,
                 int64_t nn) {
    if (nt == 1) return gemv_rows(y, x, w, K, nn);
    const int64_t ldx = (nt + kLanes - 1) / kLanes * kLanes;  // whole vectors of rows (the rest are padding)
    alignas(64) float yb[kRowsW * 2 * kLanes];                  // [rows of W, 32 rows of x]
    for (int64_t n0 = 0; n0 < nn; n0 += kRowsW) {
        const int64_t nr = std::min<int64_t>(kRowsW, nn - n0);
        for (int64_t t0 = 0; t0 < ldx; t0 += 2 * kLanes) {
            const int V = ldx - t0 >= 2 * kLanes ? 2 : 1;
            const int64_t tv = std::min<int64_t>(V * kLanes, nt - t0);  // rows of x stored from this block
            const int R = nr == kRowsW ? kRowsW : 1;  // the last columns of a tile one W row at a time
            for (int64_t r0 = 0; r0 < nr; r0 += R) {
                const float* wr = w + (n0 + r0) * K;
                if (R == kRowsW)
                    V == 2 ? block<kRowsW, 2>(yb, xt + t0, kTileT, wr, K) : block<kRowsW, 1>(yb, xt + t0, kTileT, wr, K);
                else
                    V == 2 ? block<1, 2>(yb, xt + t0, kTileT, wr, K) : block<1, 1>(yb, xt + t0, kTileT, wr, K);
                for (int64_t t = 0; t < tv; t++)  // each row of y gets R consecutive values
                    for (int r = 0; r < R; r++) y[(t0 + t) * ldy + n0 + r0 + r] = yb[r * V * kLanes + t];
            }
        }
    }
}

void linear_forward(float* y, const float* x, const float* w, int64_t T, int64_t K, int64_t N) {
    const int64_t tiles_t = (T + kTileT - 1) / kTileT, tiles_n = (N + kTileN - 1) / kTileN;
    const XTiles xt(x, T, K);
    // Units are independent and each output's sum is fixed (linear.h), so any assignment of units to
    // threads gives the same bits; too little work to pay for waking a thread runs without a region.
#pragma omp parallel for schedule(dynamic) if (tiles_t * tiles_n > 1 && T * K * N >= (1 << 17))
    for (int64_t unit = 0; unit < tiles_t * tiles_n; unit++) {
        const int64_t i = unit / tiles_n, t0 = i * kTileT, n0 = (unit % tiles_n) * kTileN;
        const int64_t nt = std::min(kTileT, T - t0), nn = std::min(kTileN, N - n0);
        linear_unit(y + t0 * N + n0, N, x + t0 * K, nt > 1 ? xt.tile(i) : nullptr, w + n0 * K, nt, K, nn);
    }
}

}  // namespace dsref
