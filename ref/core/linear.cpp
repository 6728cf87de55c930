// linear.cpp — y = x Wᵀ in fixed tiles; each output one float32 chain over k (linear.h).
#include "core/linear.h"

#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <vector>

// Built without AVX-512 (PORTABLE=1), GCC warns that passing these vector types by value changes the
// ABI; they only pass between this file's own inlined functions, so no ABI boundary is crossed.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

namespace dsref {

namespace {
// 16 floats: the values of one k for 16 consecutive rows of x (GCC/Clang vector extension: element-wise
// arithmetic, compiled to one AVX-512 register or two AVX2 ones); 8 floats for a tile's last few rows.
typedef float Vec16 __attribute__((vector_size(64)));
typedef float Vec8 __attribute__((vector_size(32)));
constexpr int64_t kLanes = 16;
constexpr int kRowsW = 8;  // rows of W per register block: 8 × 2 accumulators + 2 rows of x
constexpr int64_t kRowsX = 8;  // the smallest block of rows of x (block_rows); a tile's rows are padded to a multiple

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

#if defined(__AVX512F__) && defined(__AVX512DQ__)
// Stores the transpose of an 8 × 16 block: a[r] holds column r for 16 rows t; row t (a[0][t] ... a[7][t],
// 8 consecutive floats) goes to y + t·ldy, for the first n rows. Data movement only: no bit changes.
inline void store_transposed_8x16(float* y, int64_t ldy, const Vec16* a, int64_t n) {
    // within each 128-bit lane L (rows 4L .. 4L+3): pairs of columns interleaved ...
    const __m512 t0 = _mm512_unpacklo_ps(a[0], a[1]), t1 = _mm512_unpackhi_ps(a[0], a[1]);
    const __m512 t2 = _mm512_unpacklo_ps(a[2], a[3]), t3 = _mm512_unpackhi_ps(a[2], a[3]);
    const __m512 t4 = _mm512_unpacklo_ps(a[4], a[5]), t5 = _mm512_unpackhi_ps(a[4], a[5]);
    const __m512 t6 = _mm512_unpacklo_ps(a[6], a[7]), t7 = _mm512_unpackhi_ps(a[6], a[7]);
    // ... then u[j] = columns 0-3 and v[j] = columns 4-7 of row 4L + j, in lane L
    const __m512 u[4] = {_mm512_shuffle_ps(t0, t2, 0x44), _mm512_shuffle_ps(t0, t2, 0xEE),
                         _mm512_shuffle_ps(t1, t3, 0x44), _mm512_shuffle_ps(t1, t3, 0xEE)};
    const __m512 v[4] = {_mm512_shuffle_ps(t4, t6, 0x44), _mm512_shuffle_ps(t4, t6, 0xEE),
                         _mm512_shuffle_ps(t5, t7, 0x44), _mm512_shuffle_ps(t5, t7, 0xEE)};
    // rows j and 4 + j: lanes 0 and 1 of u[j] and v[j]; rows 8 + j and 12 + j: lanes 2 and 3
    const __m512i lo = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23);
    const __m512i hi = _mm512_setr_epi32(8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31);
    for (int j = 0; j < 4; j++) {
        const __m512 p = _mm512_permutex2var_ps(u[j], lo, v[j]), q = _mm512_permutex2var_ps(u[j], hi, v[j]);
        if (j < n) _mm256_storeu_ps(y + j * ldy, _mm512_castps512_ps256(p));
        if (4 + j < n) _mm256_storeu_ps(y + (4 + j) * ldy, _mm512_extractf32x8_ps(p, 1));
        if (8 + j < n) _mm256_storeu_ps(y + (8 + j) * ldy, _mm512_castps512_ps256(q));
        if (12 + j < n) _mm256_storeu_ps(y + (12 + j) * ldy, _mm512_extractf32x8_ps(q, 1));
    }
}
#endif

#if defined(__AVX512F__)
// GCC 12 reports the intrinsics' own _mm512_undefined_ps as uninitialized once this is inlined (the
// false positive the Makefile notes at CXXFLAGS).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
// The transpose of a 16 × 16 block: row j of y (16 floats at y + j·ldy) = column j of x (x: 16 rows of
// 16 floats at x + i·ldx). Data movement only; neither needs to be aligned.
inline void transpose_16x16(float* y, int64_t ldy, const float* x, int64_t ldx) {
    __m512 r[16], t[16];
    for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_ps(x + i * ldx);
    for (int i = 0; i < 16; i += 2) {  // per 128-bit lane L: rows i, i + 1 interleaved, columns 4L, 4L + 1 ...
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);  // ... and columns 4L + 2, 4L + 3
    }
    for (int g = 0; g < 4; g++) {  // u: rows 4g .. 4g + 3 of column 4L + c in lane L
        const __m512 *a = t + 4 * g, *b = t + 4 * g + 2;
        r[4 * g + 0] = _mm512_shuffle_ps(a[0], b[0], 0x44);
        r[4 * g + 1] = _mm512_shuffle_ps(a[0], b[0], 0xEE);
        r[4 * g + 2] = _mm512_shuffle_ps(a[1], b[1], 0x44);
        r[4 * g + 3] = _mm512_shuffle_ps(a[1], b[1], 0xEE);
    }
    for (int c = 0; c < 4; c++) {  // column 4L + c gathers lane L of the four row groups
        const __m512 lo0 = _mm512_shuffle_f32x4(r[c], r[4 + c], 0x44), lo1 = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0x44);
        const __m512 hi0 = _mm512_shuffle_f32x4(r[c], r[4 + c], 0xEE), hi1 = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0xEE);
        _mm512_storeu_ps(y + (0 + c) * ldy, _mm512_shuffle_f32x4(lo0, lo1, 0x88));
        _mm512_storeu_ps(y + (4 + c) * ldy, _mm512_shuffle_f32x4(lo0, lo1, 0xDD));
        _mm512_storeu_ps(y + (8 + c) * ldy, _mm512_shuffle_f32x4(hi0, hi1, 0x88));
        _mm512_storeu_ps(y + (12 + c) * ldy, _mm512_shuffle_f32x4(hi0, hi1, 0xDD));
    }
}
#pragma GCC diagnostic pop
#endif

// A hint to bring the line of p + i floats into L2 (it may lie past the end of the array: a prefetch
// never faults, and the address is formed as an integer, not as a pointer out of bounds).
inline void prefetch_l2(const float* p, int64_t i) {
    _mm_prefetch(reinterpret_cast<const char*>(reinterpret_cast<uintptr_t>(p) + uintptr_t(i) * sizeof(float)), _MM_HINT_T1);
}

// y[t, r] = Σ_k xt[k, t] w[r, k] for the rows t of V 16-lane vectors and, if H, one 8-lane vector after
// them (V·16 + H·8 rows of x), and R rows r of W; one chain in increasing k each. Each broadcast value of
// W meets every row of the block, so one pass over W serves up to 48 rows. The first tv rows are stored.
// y: [tv, ldy] out, R columns from here · xt: [K, ldx] (the tile's x transposed, from this block's first
// row) · w: [R, ldw], its first K columns
template <int R, int V, bool H>
void block(float* y, int64_t ldy, int64_t tv, const float* xt, int64_t ldx, const float* w, int64_t K, int64_t ldw) {
    constexpr int V1 = V > 0 ? V : 1, R8 = H ? R : 1;  // (no zero-length arrays)
    Vec16 acc[V1][R];
    Vec8 acc8[R8];  // only with H: otherwise GCC kept the unused array on the stack and zeroed it per call
    // (unrolled here: as a loop GCC turned these zeros into a memset of the array on the stack)
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) {
#pragma GCC unroll 4
        for (int v = 0; v < V; v++) acc[v][r] = Vec16{};
        if constexpr (H) acc8[r] = Vec8{};
    }
    const float* wk = w;  // w[r, k] = wk[r·ldw] at step k
    for (int64_t k = 0; k < K; k++, wk++) {
        if (R == kRowsW && k % kLanes == 0)  // the next R rows of W, one 64-byte line each per 16 steps
            for (int r = 0; r < R; r++) prefetch_l2(wk, (R + r) * ldw);
        const float* xk = xt + k * ldx;
        Vec16 xv[V1];
        for (int v = 0; v < V; v++) xv[v] = *reinterpret_cast<const Vec16*>(xk + v * kLanes);
        Vec8 x8{};
        if constexpr (H) x8 = *reinterpret_cast<const Vec8*>(xk + V * kLanes);
        for (int r = 0; r < R; r++) {
            const float s = wk[r * ldw];
            for (int v = 0; v < V; v++) acc[v][r] = madd_lanes(xv[v], s, acc[v][r]);
            if constexpr (H) acc8[r] = madd_lanes(x8, s, acc8[r]);
        }
    }
    int64_t t = 0;
#if defined(__AVX512F__) && defined(__AVX512DQ__)
    if constexpr (R == 8)  // the full 16-row parts: y's rows written 8 floats at a time
        for (; t < V * kLanes && t < tv; t += kLanes) store_transposed_8x16(y + t * ldy, ldy, acc[t / kLanes], tv - t);
#endif
    for (; t < tv; t++)  // each row of y gets R consecutive values
        for (int r = 0; r < R; r++) {
            if constexpr (H) y[t * ldy + r] = t < V * kLanes ? acc[t / kLanes][r][t % kLanes] : acc8[r][t - V * kLanes];
            else y[t * ldy + r] = acc[t / kLanes][r][t % kLanes];
        }
}

// The block of `rows` rows of x (8, 16, ..., 48) at R rows of W, its first tv rows stored. y: [tv, ldy]
template <int R>
void block_rows(float* y, int64_t ldy, int64_t tv, int64_t rows, const float* xt, int64_t ldx, const float* w,
                int64_t K, int64_t ldw) {
    switch (rows) {
        case 48: return block<R, 3, false>(y, ldy, tv, xt, ldx, w, K, ldw);
        case 40: return block<R, 2, true>(y, ldy, tv, xt, ldx, w, K, ldw);
        case 32: return block<R, 2, false>(y, ldy, tv, xt, ldx, w, K, ldw);
        case 24: return block<R, 1, true>(y, ldy, tv, xt, ldx, w, K, ldw);
        case 16: return block<R, 1, false>(y, ldy, tv, xt, ldx, w, K, ldw);
        default: return block<R, 0, true>(y, ldy, tv, xt, ldx, w, K, ldw);  // 8
    }
}

// The single-row order of linear.h, 8 rows of W at a time. y: [nn] out (stride 1) · x: [K] ·
// w: [nn, ldw], its first K columns
void gemv_rows(float* y, const float* x, const float* w, int64_t K, int64_t nn, int64_t ldw) {
    const auto as_is = [](float v) { return v; };
    int64_t n = 0;
    for (; n + kRowsW <= nn; n += kRowsW) single_row_dots<kRowsW>(y + n, x, w + n * ldw, K, as_is, ldw);
    for (; n < nn; n++) single_row_dots<1>(y + n, x, w + n * ldw, K, as_is, ldw);
}
}  // namespace

XTiles::XTiles(const float* x, int64_t T, int64_t K) {
    const int64_t tiles = (T + kTileT - 1) / kTileT;
    if (T < 2) return;  // a single row is multiplied as it is (the single-row order)
    tile_floats_ = K * kTileT;
    base_ = buf_.get(tiles * tile_floats_);
#pragma omp parallel for schedule(static) if (tiles > 1 && T * K >= (1 << 16))
    for (int64_t i = 0; i < tiles; i++) {
        const int64_t nt = std::min(kTileT, T - i * kTileT);
        const int64_t padded = std::min(kTileT, (nt + kRowsX - 1) / kRowsX * kRowsX);  // rows the blocks read
        float* xt = base_ + i * tile_floats_;
        transpose_block(xt, kTileT, x + i * kTileT * K, K, nt, K);
        for (int64_t k = 0; nt < padded && k < K; k++)  // zeros in the padding rows of a partial block
            std::fill(xt + k * kTileT + nt, xt + k * kTileT + padded, 0.0f);
    }
}

void transpose_block(float* y, int64_t ldy, const float* x, int64_t ldx, int64_t rows, int64_t cols) {
    int64_t r0 = 0;
#if defined(__AVX512F__)
    for (; r0 + kLanes <= rows; r0 += kLanes) {  // 16 rows at a time: 16 × 16 blocks through registers
        int64_t c0 = 0;
        for (; c0 + kLanes <= cols; c0 += kLanes) transpose_16x16(y + c0 * ldy + r0, ldy, x + r0 * ldx + c0, ldx);
        for (int64_t c = c0; c < cols; c++)
            for (int64_t r = r0; r < r0 + kLanes; r++) y[c * ldy + r] = x[r * ldx + c];
    }
#endif
    for (int64_t c = 0; r0 < rows && c < cols; c++)
        for (int64_t r = r0; r < rows; r++) y[c * ldy + r] = x[r * ldx + c];
}

void linear_unit(float* y, int64_t ldy, const float* x, const float* xt, const float* w, int64_t nt, int64_t K,
                 int64_t nn, int64_t ldw) {
    if (ldw == 0) ldw = K;
    if (nt == 1) return gemv_rows(y, x, w, K, nn, ldw);
    linear_unit_t(y, ldy, xt, kTileT, w, ldw, nt, K, nn);
}

void linear_unit_t(float* y, int64_t ldy, const float* xt, int64_t ldx, const float* w, int64_t ldw, int64_t nt,
                   int64_t K, int64_t nn) {
    for (int64_t n0 = 0; n0 < nn; n0 += kRowsW) {
        const int64_t nr = std::min<int64_t>(kRowsW, nn - n0);
        const int R = nr == kRowsW ? kRowsW : 1;  // the last columns of a tile one W row at a time
        // The rows of x in one block of up to 48 rows rounded up to a multiple of 8, or 32 and the rest
        // (more than 48 rows): at most 7 padding rows (zeros, not stored) per tile.
        for (int64_t t0 = 0; t0 < nt;) {
            const int64_t left = nt - t0, rows = left > 48 ? 32 : (left + kRowsX - 1) / kRowsX * kRowsX;
            const int64_t tv = std::min(rows, left);  // rows of x stored from this block
            for (int64_t r0 = 0; r0 < nr; r0 += R) {
                const float* wr = w + (n0 + r0) * ldw;
                float* yt = y + t0 * ldy + n0 + r0;
                if (R == kRowsW)
                    block_rows<kRowsW>(yt, ldy, tv, rows, xt + t0, ldx, wr, K, ldw);
                else
                    block_rows<1>(yt, ldy, tv, rows, xt + t0, ldx, wr, K, ldw);
            }
            t0 += rows;
        }
    }
}

void linear_forward(float* y, const float* x, const float* w, int64_t T, int64_t K, int64_t N) {
    linear_forward(y, x, XTiles(x, T, K), w, T, K, N);
}

void linear_forward(float* y, const float* x, const XTiles& xt, const float* w, int64_t T, int64_t K, int64_t N) {
    linear_forward(y, N, x, xt, w, T, K, N);
}

void linear_forward(float* y, int64_t ldy, const float* x, const XTiles& xt, const float* w, int64_t T, int64_t K,
                    int64_t N) {
    for_each_unit(T, K, N, [&](int64_t i, int64_t t0, int64_t n0, int64_t nt, int64_t nn) {
        linear_unit(y + t0 * ldy + n0, ldy, x + t0 * K, nt > 1 ? xt.tile(i) : nullptr, w + n0 * K, nt, K, nn);
    });
}

}  // namespace dsref
