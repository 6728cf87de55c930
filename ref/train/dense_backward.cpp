// dense_backward.cpp — linear, embedding, RMSNorm and SwiGLU MLP, forward and backward (dense_backward.h).
#include "train/dense_backward.h"

#include <Eigen/Dense>
#include <cmath>

namespace dsref {

template <class F> using RowMat = Eigen::Matrix<F, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class F> using MapM = Eigen::Map<RowMat<F>>;
template <class F> using CMapM = Eigen::Map<const RowMat<F>>;

template <class F> void lin_fwd(F* y, const F* x, const F* w, int64_t T, int64_t K, int64_t N) {
    MapM<F>(y, T, N).noalias() = CMapM<F>(x, T, K) * CMapM<F>(w, N, K).transpose();
}

// LAB(linear_backward) task: for y = x W^T, write dx = dy W (skipped when dx is nullptr) and ADD dy^T x into dw.
// LAB(linear_backward) hint: Map the row-major buffers as Eigen matrices (lin_fwd above); .noalias() = for dx, += for dw.
template <class F>
void lin_bwd(F* dx, F* dw, const F* dy, const F* x, const F* w, int64_t T, int64_t K, int64_t N) {
    // LAB(linear_backward): begin
    if (dx) MapM<F>(dx, T, K).noalias() = CMapM<F>(dy, T, N) * CMapM<F>(w, N, K);
    if (dw) MapM<F>(dw, N, K).noalias() += CMapM<F>(dy, T, N).transpose() * CMapM<F>(x, T, K);
    // LAB(linear_backward): end
}

template <class F> void embed_fwd(F* y, const F* table, const int32_t* ids, int64_t T, int64_t d) {
    for (int64_t t = 0; t < T; t++)
        for (int64_t i = 0; i < d; i++) y[t * d + i] = table[(int64_t)ids[t] * d + i];
}

// LAB(linear_backward) task: the embedding lookup's backward: row ids[t] of dtable accumulates dy[t].
// LAB(linear_backward) hint: a repeated id adds up; loop in token order so the sum's order is fixed.
template <class F> void embed_bwd(F* dtable, const F* dy, const int32_t* ids, int64_t T, int64_t d) {
    // LAB(linear_backward): begin
    for (int64_t t = 0; t < T; t++)  // in token order: a repeated id sums in a fixed order
        for (int64_t i = 0; i < d; i++) dtable[(int64_t)ids[t] * d + i] += dy[t * d + i];
    // LAB(linear_backward): end
}

template <class F> void rms_fwd(F* y, F* rstd, const F* x, const F* w, int64_t T, int64_t d, double eps) {
    for (int64_t t = 0; t < T; t++) {
        const F* xr = x + t * d;
        double ss = 0.0;
        for (int64_t i = 0; i < d; i++) ss += (double)xr[i] * (double)xr[i];
        const double r = 1.0 / std::sqrt(ss / (double)d + eps);
        rstd[t] = (F)r;
        for (int64_t i = 0; i < d; i++) y[t * d + i] = (F)((double)w[i] * ((double)xr[i] * r));
    }
}

// LAB(rmsnorm_backward) task: dx = r (w * dy) - r^3 / d * x * sum_j w_j dy_j x_j per row, and dw += dy * x * r (dense_backward.h).
// LAB(rmsnorm_backward) hint: r is the forward's saved rstd[t]; accumulate the row's dot product in double first.
template <class F>
void rms_bwd(F* dx, F* dw, const F* dy, const F* x, const F* w, const F* rstd, int64_t T, int64_t d) {
    // LAB(rmsnorm_backward): begin
    for (int64_t t = 0; t < T; t++) {
        const F* xr = x + t * d;
        const F* g = dy + t * d;
        const double r = (double)rstd[t];
        double dot = 0.0;  // Σ_j w_j dy_j x_j
        for (int64_t i = 0; i < d; i++) dot += (double)w[i] * (double)g[i] * (double)xr[i];
        for (int64_t i = 0; i < d; i++) {
            dx[t * d + i] = (F)(r * (double)w[i] * (double)g[i] - r * r * r / (double)d * (double)xr[i] * dot);
            dw[i] += (F)((double)g[i] * (double)xr[i] * r);
        }
    }
    // LAB(rmsnorm_backward): end
}

template <class F>
void mlp_fwd(F* y, MlpCache<F>& c, const F* x, const F* w_gate, const F* w_up, const F* w_down, int64_t T,
             int64_t d, int64_t I) {
    c.g.assign(T * I, F(0));
    c.u.assign(T * I, F(0));
    c.h.assign(T * I, F(0));
    lin_fwd(c.g.data(), x, w_gate, T, d, I);
    lin_fwd(c.u.data(), x, w_up, T, d, I);
    for (int64_t i = 0; i < T * I; i++) {
        const double g = (double)c.g[i];
        c.h[i] = (F)(g / (1.0 + std::exp(-g)) * (double)c.u[i]);
    }
    lin_fwd(y, c.h.data(), w_down, T, I, d);
}

// LAB(mlp_backward) task: back through y = (silu(g) * u) W_d^T, g = x W_g^T, u = x W_u^T: the three weight gradients (+=) and dx.
// LAB(mlp_backward) hint: lin_bwd for each product; silu'(g) = sigmoid(g) (1 + g (1 - sigmoid(g))); dx sums the gate and up paths.
template <class F>
void mlp_bwd(F* dx, F* dw_gate, F* dw_up, F* dw_down, const F* dy, const MlpCache<F>& c, const F* x,
             const F* w_gate, const F* w_up, const F* w_down, int64_t T, int64_t d, int64_t I) {
    // LAB(mlp_backward): begin
    std::vector<F> dh(T * I), dg(T * I), du(T * I), dx2(T * d);
    lin_bwd(dh.data(), dw_down, dy, c.h.data(), w_down, T, I, d);
    for (int64_t i = 0; i < T * I; i++) {
        const double g = (double)c.g[i], sg = 1.0 / (1.0 + std::exp(-g));
        du[i] = (F)((double)dh[i] * g * sg);
        dg[i] = (F)((double)dh[i] * (double)c.u[i] * sg * (1.0 + g * (1.0 - sg)));
    }
    lin_bwd(dx, dw_gate, dg.data(), x, w_gate, T, d, I);
    lin_bwd(dx2.data(), dw_up, du.data(), x, w_up, T, d, I);
    if (dx)
        for (int64_t i = 0; i < T * d; i++) dx[i] += dx2[i];
    // LAB(mlp_backward): end
}

#define DSREF_DENSE(F)                                                                                        \
    template void lin_fwd<F>(F*, const F*, const F*, int64_t, int64_t, int64_t);                              \
    template void lin_bwd<F>(F*, F*, const F*, const F*, const F*, int64_t, int64_t, int64_t);                \
    template void embed_fwd<F>(F*, const F*, const int32_t*, int64_t, int64_t);                               \
    template void embed_bwd<F>(F*, const F*, const int32_t*, int64_t, int64_t);                               \
    template void rms_fwd<F>(F*, F*, const F*, const F*, int64_t, int64_t, double);                           \
    template void rms_bwd<F>(F*, F*, const F*, const F*, const F*, const F*, int64_t, int64_t);               \
    template void mlp_fwd<F>(F*, MlpCache<F>&, const F*, const F*, const F*, const F*, int64_t, int64_t,      \
                             int64_t);                                                                        \
    template void mlp_bwd<F>(F*, F*, F*, F*, const F*, const MlpCache<F>&, const F*, const F*, const F*,      \
                             const F*, int64_t, int64_t, int64_t);
DSREF_DENSE(float)
DSREF_DENSE(double)

}  // namespace dsref
