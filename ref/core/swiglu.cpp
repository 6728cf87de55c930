// swiglu.cpp — the SwiGLU feed-forward kernel (the formula is in swiglu.h).
#include "core/swiglu.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/linear.h"
#include "core/scratch.h"
#include "core/vector_exp.h"

namespace dsref {

// In double, rounded once: g / (1 + e^−g) · u. Blocks of kGateBlock values: the exponentials first
// (core/vector_exp.h), then the divisions and products, which the compiler vectorizes.
constexpr int64_t kGateBlock = 64;

void swiglu_gate(float* g, const float* u, int64_t n) {
#pragma omp parallel for schedule(static) if (n >= (1 << 14))
    for (int64_t b = 0; b < n; b += kGateBlock) {
        const int64_t m = std::min(kGateBlock, n - b);
        double e[kGateBlock];  // e^−g of the block
        for (int64_t j = 0; j < m; j++) e[j] = -(double)g[b + j];
        exp_f64(e, e, m);
        for (int64_t j = 0; j < m; j++) g[b + j] = (float)((double)g[b + j] / (1.0 + e[j]) * u[b + j]);
    }
}

void swiglu_forward(float* y, const float* x, const float* w_gate, const float* w_up, const float* w_down,
                    int64_t T, int64_t d, int64_t I) {
    Scratch g(T * I), u(T * I);  // [T, I] each, written by the products
    const XTiles xt(x, T, d);  // gate and up read the same x
    linear_forward(g.data(), x, xt, w_gate, T, d, I);
    linear_forward(u.data(), x, xt, w_up, T, d, I);
    swiglu_gate(g.data(), u.data(), T * I);
    linear_forward(y, g.data(), w_down, T, I, d);
}

}  // namespace dsref

namespace dsref {

void swiglu_gate_clamped(float* g, const float* u, int64_t n, float limit) {
    if (!(limit > 0.0f)) {
        swiglu_gate(g, u, n);
        return;
    }
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        const double gi = std::fmin((double)g[i], (double)limit);
        const double ui = std::fmax(std::fmin((double)u[i], (double)limit), -(double)limit);
        g[i] = (float)(gi / (1.0 + std::exp(-gi)) * ui);
    }
}

void swiglu_forward_clamped(float* y, const float* x, const float* w_gate, const float* w_up, const float* w_down,
                            int64_t T, int64_t d, int64_t I, float limit) {
    Scratch g(T * I), u(T * I);  // [T, I] each, written by the products
    const XTiles xt(x, T, d);  // gate and up read the same x
    linear_forward(g.data(), x, xt, w_gate, T, d, I);
    linear_forward(u.data(), x, xt, w_up, T, d, I);
    swiglu_gate_clamped(g.data(), u.data(), T * I, limit);
    linear_forward(y, g.data(), w_down, T, I, d);
}

}  // namespace dsref
