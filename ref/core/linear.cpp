// linear.cpp — y = x Wᵀ in fixed tiles; each output one float32 chain over k (linear.h).
#include "core/linear.h"

#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace dsref {

namespace {
// 16 floats: the values of one k for 16 consecutive rows of x (GCC/Clang vector extension: element-wise
// arithmetic, compiled to one AVX-512 register or two AVX2 ones); 8 floats for a tile's last few rows.
typedef float Vec16 __attribute__((vector_size(64)));
typedef float Vec8 __attribute__((vector_size(32)));
constexpr int64_t kLanes = 16;
constexpr int kRowsW = 8;  // rows of W per register block: 8 × 2 accumulators + 2 rows of x

// c + a·s in every lane, rounded as madd() (linear.h) rounds: the order promise covers the roundings, so
// the fused multiply-add is spelled out instead of left to the compiler's contraction (GCC fused one block
// size and not another).
inline Vec16 madd_lanes(Vec16 a, float s, Vec16 c) {
#if defined(__AVX512F__)
    return _mm512_fmadd_ps(a, _mm512_set1_ps(s), c);
#else
    for (int j = 0; j < 16; j++) c[j] = madd(a[j], s, c[j]);
    return c;
#endif
}
inline Vec8 madd_lanes(Vec8 a, float s, Vec8 c) {
#if defined(__AVX2__) && defined(__FMA__)
    return _mm256_fmadd_ps(a, _mm256_set1_ps(s), c);
#else
    for (int j = 0; j < 8; j++) c[j] = madd(a[j], s, c[j]);
    return c;
#endif
}

// y[t, r] = Σ_k xt[k, t] w[r, k] for V vectors of rows t and R rows r, one chain in increasing k each.
// yb: [R, V·lanes] out · xt: [K, ldx] (the tile's x transposed, V·lanes columns from here) · w: [R, K]
template <class Vec, int R, int V>
void block(float* yb, const float* xt, int64_t ldx, const float* w, int64_t K) {
    constexpr int L = sizeof(Vec) / sizeof(float);
    Vec acc[V][R];
    for (int v = 0; v < V; v++)
        for (int r = 0; r < R; r++) acc[v][r] = Vec{};
    const float* wk = w;  // w[r, k] = wk[r·K] at step k
    for (int64_t k = 0; k < K; k++, wk++) {
        Vec xv[V];
        for (int v = 0; v < V; v++) xv[v] = *reinterpret_cast<const Vec*>(xt + k * ldx + v * L);
        for (int r = 0; r < R; r++) {
            const float s = wk[r * K];
            for (int v = 0; v < V; v++) acc[v][r] = madd_lanes(xv[v], s, acc[v][r]);
        }
    }
    for (int r = 0; r < R; r++)
        for (int v = 0; v < V; v++) *reinterpret_cast<Vec*>(yb + (r * V + v) * L) = acc[v][r];
}

// The block of `rows` rows of x (32, 16 or 8) at R rows of W. yb: [R, rows]
template <int R>
void block_rows(float* yb, int64_t rows, const float* xt, int64_t ldx, const float* w, int64_t K) {
    if (rows == 32) return block<Vec16, R, 2>(yb, xt, ldx, w, K);
    if (rows == 16) return block<Vec16, R, 1>(yb, xt, ldx, w, K);
    block<Vec8, R, 1>(yb, xt, ldx, w, K);
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
        for (int64_t t0 = 0; t0 < nt; t0 += kLanes) {  // 16 rows at a time: each k fills one 64-byte line
            const int64_t t1 = std::min(nt, t0 + kLanes);
            const float* xr = x + i * kTileT * K;
            for (int64_t k = 0; k < K; k++)
                for (int64_t t = t0; t < t1; t++) xt[k * kTileT + t] = xr[t * K + k];
        }
    }
}

void linear_unit(float* y, int64_t ldy, const float* x, const float* xt, const float* w, int64_t nt, int64_t K,
                 int64_t nn) {
    if (nt == 1) return gemv_rows(y, x, w, K, nn);
    alignas(64) float yb[kRowsW * 2 * kLanes];  // [rows of W, up to 32 rows of x]
    for (int64_t n0 = 0; n0 < nn; n0 += kRowsW) {
        const int64_t nr = std::min<int64_t>(kRowsW, nn - n0);
        const int R = nr == kRowsW ? kRowsW : 1;  // the last columns of a tile one W row at a time
        // Blocks of 32 rows of x, then 16, then 8: at most 7 padding rows (zeros, not stored) per tile.
        for (int64_t t0 = 0; t0 < nt;) {
            const int64_t left = nt - t0, rows = left >= 32 ? 32 : left > 8 ? 16 : 8;
            const int64_t tv = std::min(rows, left);  // rows of x stored from this block
            for (int64_t r0 = 0; r0 < nr; r0 += R) {
                const float* wr = w + (n0 + r0) * K;
                if (R == kRowsW)
                    block_rows<kRowsW>(yb, rows, xt + t0, kTileT, wr, K);
                else
                    block_rows<1>(yb, rows, xt + t0, kTileT, wr, K);
                for (int64_t t = 0; t < tv; t++)  // each row of y gets R consecutive values
                    for (int r = 0; r < R; r++) y[(t0 + t) * ldy + n0 + r0 + r] = yb[r * rows + t];
            }
            t0 += rows;
        }
    }
}

void linear_forward(float* y, const float* x, const float* w, int64_t T, int64_t K, int64_t N) {
    linear_forward(y, x, XTiles(x, T, K), w, T, K, N);
}

void linear_forward(float* y, const float* x, const XTiles& xt, const float* w, int64_t T, int64_t K, int64_t N) {
    const int64_t tiles_t = (T + kTileT - 1) / kTileT, tiles_n = (N + kTileN - 1) / kTileN;
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
