// linear_bf16.cpp — y = x Wᵀ on bf16 weights (linear_bf16.h says which order each case sums in).
#include "core/linear_bf16.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "core/linear.h"

namespace dsref {

namespace {

inline float bf16_value(uint16_t h) {  // exact: bf16 is the top half of a float32
    const uint32_t u = (uint32_t)h << 16;
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
}

constexpr int kLanes = 16;  // one AVX-512 register of float32
constexpr int kRows = 8;    // outputs per pass over x: 8 weight streams at once keep the memory busy

// y[r] = Σ_k x[k] w[r, k] for R consecutive rows of w, in the order of linear_bf16.h.
// y: [R] · x: [K] · w: [R, K]
template <int R>
void dot_rows(float* y, const float* x, const uint16_t* w, int64_t K) {
    float acc[R][kLanes] = {};
    const int64_t K16 = K / kLanes * kLanes;
    for (int64_t k = 0; k < K16; k += kLanes)
        for (int r = 0; r < R; r++) {
            const uint16_t* wr = w + r * K + k;
            for (int j = 0; j < kLanes; j++) acc[r][j] = madd(x[k + j], bf16_value(wr[j]), acc[r][j]);
        }
    for (int r = 0; r < R; r++) {
        for (int h = kLanes / 2; h > 0; h /= 2)
            for (int j = 0; j < h; j++) acc[r][j] += acc[r][j + h];
        float s = acc[r][0];
        for (int64_t k = K16; k < K; k++) s = madd(x[k], bf16_value(w[r * K + k]), s);
        y[r] = s;
    }
}
}  // namespace

void gemv_bf16(float* y, const float* x, const uint16_t* w, int64_t K, int64_t N) {
    const int64_t groups = N / kRows;
    // Each output's sum is the same whichever thread computes it: any schedule gives the same bits.
#pragma omp parallel for schedule(static) if (groups > 1 && K * N >= (1 << 17))
    for (int64_t g = 0; g < groups; g++) dot_rows<kRows>(y + g * kRows, x, w + g * kRows * K, K);
    for (int64_t n = groups * kRows; n < N; n++) dot_rows<1>(y + n, x, w + n * K, K);
}

void linear_forward_bf16(float* y, const float* x, const uint16_t* w, int64_t T, int64_t K, int64_t N) {
    if (T == 1) return gemv_bf16(y, x, w, K, N);
    // The work units of linear_forward (core/linear.cpp), each widening its column tile of W first.
    const int64_t tiles_t = (T + kTileT - 1) / kTileT, tiles_n = (N + kTileN - 1) / kTileN;
    const XTiles xt(x, T, K);
#pragma omp parallel if (tiles_t * tiles_n > 1 && T * K * N >= (1 << 17))
    {
        std::vector<float> wf(kTileN * K);  // [kTileN, K]: this thread's widened column tile
#pragma omp for schedule(dynamic)
        for (int64_t unit = 0; unit < tiles_t * tiles_n; unit++) {
            const int64_t i = unit / tiles_n, t0 = i * kTileT, n0 = (unit % tiles_n) * kTileN;
            const int64_t nt = std::min(kTileT, T - t0), nn = std::min(kTileN, N - n0);
            const uint16_t* src = w + n0 * K;
            for (int64_t j = 0; j < nn * K; j++) wf[j] = bf16_value(src[j]);
            linear_unit(y + t0 * N + n0, N, x + t0 * K, nt > 1 ? xt.tile(i) : nullptr, wf.data(), nt, K, nn);
        }
    }
}

}  // namespace dsref
