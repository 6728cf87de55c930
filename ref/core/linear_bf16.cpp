// linear_bf16.cpp — y = x Wᵀ on bf16 weights (linear_bf16.h says which order each case sums in).
#include "core/linear_bf16.h"

#include <algorithm>
#include <vector>

#include "core/linear.h"
#include "core/tensor.h"

namespace dsref {

namespace {
constexpr int kRows = 8;  // outputs per pass over x: 8 weight streams at once keep the memory busy
}  // namespace

void gemv_bf16(float* y, const float* x, const uint16_t* w, int64_t K, int64_t N) {
    const int64_t groups = N / kRows;
    // Each output's sum is the same whichever thread computes it: any schedule gives the same bits.
#pragma omp parallel for schedule(static) if (groups > 1 && K * N >= (1 << 17))
    for (int64_t g = 0; g < groups; g++) single_row_dots<kRows>(y + g * kRows, x, w + g * kRows * K, K, bf16_to_f32);
    for (int64_t n = groups * kRows; n < N; n++) single_row_dots<1>(y + n, x, w + n * K, K, bf16_to_f32);
}

void linear_forward_bf16(float* y, const float* x, const uint16_t* w, int64_t T, int64_t K, int64_t N) {
    if (T == 1) return gemv_bf16(y, x, w, K, N);
    // The work units of linear_forward (core/linear.h for_each_unit), each widening its column tile of W first.
    const XTiles xt(x, T, K);
    for_each_unit(T, K, N, [&](int64_t i, int64_t t0, int64_t n0, int64_t nt, int64_t nn) {
        thread_local std::vector<float> wf;  // [kTileN, K]: this thread's widened column tile
        wf.resize(kTileN * K);
        const uint16_t* src = w + n0 * K;
        for (int64_t j = 0; j < nn * K; j++) wf[j] = bf16_to_f32(src[j]);
        linear_unit(y + t0 * N + n0, N, x + t0 * K, nt > 1 ? xt.tile(i) : nullptr, wf.data(), nt, K, nn);
    });
}

}  // namespace dsref
