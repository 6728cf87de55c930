// attention_backward.cpp — causal GQA attention, forward and backward (attention_backward.h).
#include "train/attention_backward.h"

#include <algorithm>
#include <cmath>

namespace dsref {

template <class F>
void attn_fwd(F* o, std::vector<F>& P, const F* q, const F* k, const F* v, int64_t T, int64_t H, int64_t H_kv,
              int64_t d, int64_t d_v, double scale) {
    P.assign(H * T * T, F(0));
    std::vector<double> s(T);
    for (int64_t h = 0; h < H; h++) {
        const int64_t g = h * H_kv / H;
        for (int64_t t = 0; t < T; t++) {
            const F* qr = q + (t * H + h) * d;
            double mx = -INFINITY;
            for (int64_t u = 0; u <= t; u++) {
                const F* kr = k + (u * H_kv + g) * d;
                double dot = 0.0;
                for (int64_t i = 0; i < d; i++) dot += (double)qr[i] * (double)kr[i];
                s[u] = scale * dot;
                mx = std::max(mx, s[u]);
            }
            double z = 0.0;
            for (int64_t u = 0; u <= t; u++) z += (s[u] = std::exp(s[u] - mx));
            F* pr = P.data() + (h * T + t) * T;
            for (int64_t u = 0; u <= t; u++) pr[u] = (F)(s[u] / z);
            for (int64_t c = 0; c < d_v; c++) {
                double acc = 0.0;
                for (int64_t u = 0; u <= t; u++) acc += (double)pr[u] * (double)v[(u * H_kv + g) * d_v + c];
                o[(t * H + h) * d_v + c] = (F)acc;
            }
        }
    }
}

// LAB(attention_backward) task: from dout and the saved probabilities P, write dq, dk, dv of causal GQA attention
// LAB(attention_backward) (attention_backward.h): dv += P^T dout, dP = dout v^T, dS = P * (dP - rowsum(P * dP)), dq = scale dS k, dk = scale dS^T q.
// LAB(attention_backward) hint: head h reads kv group h * H_kv / H, so the group's dk and dv sum over its heads; only u <= t.
template <class F>
void attn_bwd(F* dq, F* dk, F* dv, const F* dout, const std::vector<F>& P, const F* q, const F* k, const F* v,
              int64_t T, int64_t H, int64_t H_kv, int64_t d, int64_t d_v, double scale) {
    // LAB(attention_backward): begin
    std::fill(dq, dq + T * H * d, F(0));
    std::fill(dk, dk + T * H_kv * d, F(0));
    std::fill(dv, dv + T * H_kv * d_v, F(0));
    std::vector<double> dp(T);
    for (int64_t h = 0; h < H; h++) {
        const int64_t g = h * H_kv / H;
        for (int64_t t = 0; t < T; t++) {
            const F* pr = P.data() + (h * T + t) * T;
            const F* go = dout + (t * H + h) * d_v;
            double rs = 0.0;
            for (int64_t u = 0; u <= t; u++) {
                double acc = 0.0;
                for (int64_t c = 0; c < d_v; c++) acc += (double)go[c] * (double)v[(u * H_kv + g) * d_v + c];
                dp[u] = acc;
                rs += acc * (double)pr[u];
                for (int64_t c = 0; c < d_v; c++) dv[(u * H_kv + g) * d_v + c] += (F)((double)pr[u] * (double)go[c]);
            }
            for (int64_t u = 0; u <= t; u++) {
                const double ds = scale * (double)pr[u] * (dp[u] - rs);
                for (int64_t i = 0; i < d; i++) {
                    dq[(t * H + h) * d + i] += (F)(ds * (double)k[(u * H_kv + g) * d + i]);
                    dk[(u * H_kv + g) * d + i] += (F)(ds * (double)q[(t * H + h) * d + i]);
                }
            }
        }
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
