// attention_backward.cpp — causal GQA attention, forward and backward (attention_backward.h).
#include "train/attention_backward.h"

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>

namespace dsref {

// One head's rows inside the [T, heads, width] buffers: a T × width row-major view with row stride
// heads · width (Eigen::OuterStride), so the products run on the buffers in place.
template <class F> using HeadMap = Eigen::Map<Eigen::Matrix<F, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>, 0,
                                              Eigen::OuterStride<>>;
template <class F> using CHeadMap = Eigen::Map<const Eigen::Matrix<F, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>,
                                               0, Eigen::OuterStride<>>;
template <class F> using Sq = Eigen::Matrix<F, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

template <class F>
void attn_fwd(F* o, std::vector<F>& P, const F* q, const F* k, const F* v, int64_t T, int64_t H, int64_t H_kv,
              int64_t d, int64_t d_v, double scale) {
    P.assign(H * T * T, F(0));
    Sq<F> s(T, T);
    std::vector<double> e(T);
    for (int64_t h = 0; h < H; h++) {
        const int64_t g = h * H_kv / H;
        const CHeadMap<F> qh(q + h * d, T, d, Eigen::OuterStride<>(H * d));
        const CHeadMap<F> kg(k + g * d, T, d, Eigen::OuterStride<>(H_kv * d));
        const CHeadMap<F> vg(v + g * d_v, T, d_v, Eigen::OuterStride<>(H_kv * d_v));
        s.noalias() = qh * kg.transpose();  // s[t, u] = q[t] · k[u]; only u ≤ t is used
        Eigen::Map<Sq<F>> ph(P.data() + h * T * T, T, T);
        for (int64_t t = 0; t < T; t++) {  // softmax over u ≤ t in double, after the row max
            double mx = -INFINITY;
            for (int64_t u = 0; u <= t; u++) mx = std::max(mx, scale * (double)s(t, u));
            double z = 0.0;
            for (int64_t u = 0; u <= t; u++) z += (e[u] = std::exp(scale * (double)s(t, u) - mx));
            for (int64_t u = 0; u <= t; u++) ph(t, u) = (F)(e[u] / z);
        }
        HeadMap<F>(o + h * d_v, T, d_v, Eigen::OuterStride<>(H * d_v)).noalias() = ph * vg;  // o = P v
    }
}

// LAB(attention_backward) task: from dout and the saved probabilities P, write dq, dk, dv of causal GQA attention
// LAB(attention_backward) (attention_backward.h): dv += P^T dout, dP = dout v^T, dS = P * (dP - rowsum(P * dP)), dq = scale dS k, dk = scale dS^T q.
// LAB(attention_backward) hint: head h reads kv group h * H_kv / H, so the group's dk and dv sum over its heads
// LAB(attention_backward) (heads in order); Map each head's rows with an OuterStride as attn_fwd does; P is zero above the diagonal.
template <class F>
void attn_bwd(F* dq, F* dk, F* dv, const F* dout, const std::vector<F>& P, const F* q, const F* k, const F* v,
              int64_t T, int64_t H, int64_t H_kv, int64_t d, int64_t d_v, double scale) {
    // LAB(attention_backward): begin
    std::fill(dk, dk + T * H_kv * d, F(0));
    std::fill(dv, dv + T * H_kv * d_v, F(0));
    Sq<F> dp(T, T), ds(T, T);
    for (int64_t h = 0; h < H; h++) {
        const int64_t grp = h * H_kv / H;
        const CHeadMap<F> qh(q + h * d, T, d, Eigen::OuterStride<>(H * d));
        const CHeadMap<F> kg(k + grp * d, T, d, Eigen::OuterStride<>(H_kv * d));
        const CHeadMap<F> vg(v + grp * d_v, T, d_v, Eigen::OuterStride<>(H_kv * d_v));
        const CHeadMap<F> go(dout + h * d_v, T, d_v, Eigen::OuterStride<>(H * d_v));
        const Eigen::Map<const Sq<F>> ph(P.data() + h * T * T, T, T);
        dp.noalias() = go * vg.transpose();                                              // dP = dO vᵀ
        HeadMap<F>(dv + grp * d_v, T, d_v, Eigen::OuterStride<>(H_kv * d_v)).noalias() += ph.transpose() * go;
        for (int64_t t = 0; t < T; t++) {  // dS = scale · P ⊙ (dP − Σ_u P dP), the row sum in double
            double rs = 0.0;
            for (int64_t u = 0; u <= t; u++) rs += (double)ph(t, u) * (double)dp(t, u);
            for (int64_t u = 0; u < T; u++)
                ds(t, u) = u <= t ? (F)(scale * (double)ph(t, u) * ((double)dp(t, u) - rs)) : F(0);
        }
        HeadMap<F>(dq + h * d, T, d, Eigen::OuterStride<>(H * d)).noalias() = ds * kg;            // dq = dS k
        HeadMap<F>(dk + grp * d, T, d, Eigen::OuterStride<>(H_kv * d)).noalias() += ds.transpose() * qh;  // dk += dSᵀ q
    }
    // LAB(attention_backward): end
}

#define DSREF_ATTN(F)                                                                                         \
    template void attn_fwd<F>(F*, std::vector<F>&, const F*, const F*, const F*, int64_t, int64_t, int64_t,   \
                              int64_t, int64_t, double);                                                      \
    template void attn_bwd<F>(F*, F*, F*, const F*, const std::vector<F>&, const F*, const F*, const F*,      \
                              int64_t, int64_t, int64_t, int64_t, int64_t, double);
DSREF_ATTN(float)
DSREF_ATTN(double)

}  // namespace dsref
