// linear.h — y = x Wᵀ, the one matrix product every projection uses (weights are [out, in] as in HF).
//
// The order of the sums. Every output y[t, n] = Σ_k x[t, k] w[n, k] is one float32 chain in increasing k
// (a fused multiply-add per k where the build has FMA), whatever T, N, the tiles or the threads. So a
// row of y does not depend on the other rows in the call: a prefill, the same rows in a longer prefill,
// and the rows an expert-parallel rank computes come out bit for bit alike. The one exception is a
// product of a single row (decode): it sums in 16 lanes (lane j takes k ≡ j mod 16 in increasing k), adds
// the lanes pairwise (8, 4, 2, 1) and then the K mod 16 tail, because a single chain over k cannot use
// the vector unit when there is only one row.
//
// Threads: the output is cut into fixed tiles of kTileT rows × kTileN columns, one work unit each, and a
// row tile of one row (T mod kTileT = 1) is a single-row product. The tiles do not depend on the thread
// count, so results are bit-identical for --threads 1, 2, ... (tests check it).
//
// Speed (the kernel is in linear.cpp): x is transposed once per call (XTiles), so that 16 consecutive
// rows' values of one k are one vector; W is read as it is stored, 8 rows at a time, each value
// broadcast against up to 48 rows of x, and a finished 8 × 16 block is transposed in registers into y's
// rows. W is never repacked (the repacking of W was 15-19 % of a V3-shaped prefill with Eigen's product:
// an expert sees ~50 tokens, too few to pay for it).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <vector>

#include "core/scratch.h"

namespace dsref {

constexpr int64_t kTileT = 64, kTileN = 128;

// One step of a sum, s + a·b, rounded once where the build has FMA (as the vector kernels' explicit
// multiply-adds are), so that every kernel that promises an order also promises its roundings.
inline float madd(float a, float b, float s) {
#if defined(__FMA__)
    return std::fma(a, b, s);
#else
    return s + a * b;
#endif
}

// The single-row order for R rows of W stored as Wt (float32, or bf16 words that `value` widens):
// y[r] = Σ_k x[k]·value(w[r·K + k]) in 16 lanes (lane j takes k ≡ j mod 16), the lanes added pairwise
// (8, 4, 2, 1), then the K mod 16 tail. Written once, for linear_forward's single-row tiles and for
// core/linear_bf16.h's decode pass. y: [R] out · x: [K] · w: [R, ldw], its first K columns (ldw 0: K)
template <int R, class Wt, class Value>
inline void single_row_dots(float* y, const float* x, const Wt* w, int64_t K, Value value, int64_t ldw = 0) {
    if (ldw == 0) ldw = K;
    constexpr int L = 16;
    float acc[R][L] = {};
    const int64_t K16 = K / L * L;
    for (int64_t k = 0; k < K16; k += L)
        for (int r = 0; r < R; r++)
            for (int j = 0; j < L; j++) acc[r][j] = madd(x[k + j], value(w[r * ldw + k + j]), acc[r][j]);
    for (int r = 0; r < R; r++) {
        for (int h = L / 2; h > 0; h /= 2)
            for (int j = 0; j < h; j++) acc[r][j] += acc[r][j + h];
        float s = acc[r][0];
        for (int64_t k = K16; k < K; k++) s = madd(x[k], value(w[r * ldw + k]), s);
        y[r] = s;
    }
}

// The pieces linear_forward is made of, for callers that hold W otherwise (core/linear_bf16.h widens
// a column tile of W first). XTiles holds every row tile of x transposed (row tile i: [K, kTileT], its
// rows as columns, zero-padded to a multiple of 8 rows: the blocks of linear.cpp read no further), made
// once per call and shared by all column tiles; linear_unit is the product of one work unit y[t, n],
// t < nt, n < nn, in the order above (nt = 1: the single-row order).
class XTiles {
public:
    XTiles(const float* x, int64_t T, int64_t K);  // x: [T, K]; the tiles are transposed in parallel
    const float* tile(int64_t i) const { return base_ + i * tile_floats_; }  // [K, kTileT], 64-byte aligned

private:
    AlignedScratch buf_;  // not zero-filled (only the padding rows are zeroed)
    float* base_ = nullptr;
    int64_t tile_floats_ = 0;
};
// y: [T, N] out · x: [T, K] · w: [N, K] (row-major, the HF [out, in] layout)
void linear_forward(float* y, const float* x, const float* w, int64_t T, int64_t K, int64_t N);
// The same with x's tiles made by the caller, for products that share their input (gate and up, MLA's
// q_a and kv_a): the transposition is then done once. xt: XTiles(x, T, K)
void linear_forward(float* y, const float* x, const XTiles& xt, const float* w, int64_t T, int64_t K, int64_t N);
// The same into rows ldy apart (y: [T, ldy], its first N columns), for outputs laid into a larger array
void linear_forward(float* y, int64_t ldy, const float* x, const XTiles& xt, const float* w, int64_t T, int64_t K,
                    int64_t N);

// y: [nt, ldy] out, its first nn columns · x: [nt, K] · xt: XTiles::tile of these rows (or any [K, kTileT]
// array laid out the same way, its rows past nt up to a multiple of 8 finite) · w: [nn, ldw], its first K
// columns (ldw 0: K)
void linear_unit(float* y, int64_t ldy, const float* x, const float* xt, const float* w, int64_t nt, int64_t K,
                 int64_t nn, int64_t ldw = 0);
// The same for x held transposed by the caller, nt >= 2 (the order of the sums as above):
// y: [nt, ldy] out · xt: [K, ldx], xt[k, t] = x[t, k], 64-byte aligned, ldx a multiple of 16, its columns
// past nt up to a multiple of 8 finite · w: [nn, ldw], its first K columns
void linear_unit_t(float* y, int64_t ldy, const float* xt, int64_t ldx, const float* w, int64_t ldw, int64_t nt,
                   int64_t K, int64_t nn);

// y[c, r] = x[r, c] for r < rows, c < cols: the layout XTiles makes, for callers that build it themselves
// (MLA's attention, model/mla.cpp). Data movement only. y: [cols, ldy] out · x: [rows, ldx]
void transpose_block(float* y, int64_t ldy, const float* x, int64_t ldx, int64_t rows, int64_t cols);

// y[t, n] += bias[n], after a product (qwen2's q/k/v projections). y: [T, N] · bias: [N]
inline void add_bias(float* y, const float* bias, int64_t T, int64_t N) {
    for (int64_t t = 0; t < T; t++)
        for (int64_t n = 0; n < N; n++) y[t * N + n] += bias[n];
}

// The work units of a [T, N] output, run in parallel: unit(i, t0, n0, nt, nn) for row tile i (rows t0 ..
// t0 + nt) and columns n0 .. n0 + nn. Units are independent and each output's sum is fixed, so any
// assignment of units to threads gives the same bits; too little work to pay for waking a thread
// (T·K·N below 2^17) runs without a parallel region. linear_forward and core/linear_bf16.h's product
// share it.
template <class Unit>
void for_each_unit(int64_t T, int64_t K, int64_t N, Unit unit) {
    const int64_t tiles_t = (T + kTileT - 1) / kTileT, tiles_n = (N + kTileN - 1) / kTileN;
#pragma omp parallel for schedule(dynamic) if (tiles_t * tiles_n > 1 && T * K * N >= (1 << 17))
    for (int64_t u = 0; u < tiles_t * tiles_n; u++) {
        const int64_t i = u / tiles_n, t0 = i * kTileT, n0 = (u % tiles_n) * kTileN;
        unit(i, t0, n0, T - t0 < kTileT ? T - t0 : kTileT, N - n0 < kTileN ? N - n0 : kTileN);
    }
}

}  // namespace dsref
