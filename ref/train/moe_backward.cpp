// moe_backward.cpp — the DeepSeekMoE layer forward and backward (moe_backward.h).
#include "train/moe_backward.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace dsref {

namespace {
bool normalizes(const MoeGateConfig& g) {  // the weight rules of moe/moe_gate.h
    if (g.topk_method == MoeTopk::NoauxTc) return g.norm_topk_prob;
    return g.K > 1 && g.norm_topk_prob;
}
// noaux_tc scales after normalizing; the V2 rules scale only when they do not normalize
double weight_scale(const MoeGateConfig& g) {
    if (g.topk_method == MoeTopk::NoauxTc) return g.routed_scaling_factor;
    return normalizes(g) ? 1.0 : g.routed_scaling_factor;
}
}  // namespace

template <class F>
void moe_fwd(F* y, MoeTrainCache<F>& c, const F* x, const MoeTrainWeights<F>& w, const MoeGateConfig& g, int64_t T,
             int64_t d) {
    const int64_t E = g.E, K = g.K;
    std::vector<F> z(T * E);
    lin_fwd(z.data(), x, w.w_router, T, d, E);
    c.s.assign(T * E, F(0));
    c.idx.assign(T * K, 0);
    c.w.assign(T * K, F(0));
    const bool groups = g.topk_method != MoeTopk::Greedy && g.n_group > 1;
    const GroupScore gscore = g.topk_method == MoeTopk::NoauxTc ? GroupScore::Top2Sum : GroupScore::Max;
    std::vector<float> u(E);
    for (int64_t t = 0; t < T; t++) {
        F* s = c.s.data() + t * E;
        const F* zr = z.data() + t * E;
        if (g.scoring == MoeScoring::Sigmoid) {
            for (int64_t i = 0; i < E; i++) s[i] = (F)(1.0 / (1.0 + std::exp(-(double)zr[i])));
        } else {
            const double mx = (double)*std::max_element(zr, zr + E);
            double sum = 0;
            for (int64_t i = 0; i < E; i++) sum += std::exp((double)zr[i] - mx);
            for (int64_t i = 0; i < E; i++) s[i] = (F)(std::exp((double)zr[i] - mx) / sum);
        }
        // the selection runs in float32, as moe/moe_gate.cpp's (a double check perturbs z by ~1e-6,
        // far inside the routing margins of the test fixtures)
        for (int64_t i = 0; i < E; i++)
            u[i] = (float)s[i] + ((g.topk_method == MoeTopk::NoauxTc && w.bias) ? w.bias[i] : 0.0f);
        float margin = 0;
        moe_select_topk(c.idx.data() + t * K, &margin, u.data(), E, groups ? g.n_group : 1, g.topk_group, K,
                        gscore);
        double sum = 0;
        for (int64_t k = 0; k < K; k++) sum += (double)s[c.idx[t * K + k]];
        for (int64_t k = 0; k < K; k++) {
            const double sk = (double)s[c.idx[t * K + k]];
            c.w[t * K + k] = (F)((normalizes(g) ? sk / sum : sk) * weight_scale(g));
        }
    }
    std::fill(y, y + T * d, F(0));
    c.rows.assign(E, {});
    for (int64_t t = 0; t < T; t++)
        for (int64_t k = 0; k < K; k++) c.rows[c.idx[t * K + k]].push_back(t * K + k);
    c.ex_in.assign(E, {});
    c.ex_out.assign(E, {});
    c.ex_cache.assign(E, {});
    for (int64_t e = 0; e < E; e++) {  // ascending expert id: a fixed summation order into y
        const int64_t n = (int64_t)c.rows[e].size();
        if (n == 0) continue;
        c.ex_in[e].resize(n * d);
        c.ex_out[e].resize(n * d);
        for (int64_t r = 0; r < n; r++)
            std::copy(x + (c.rows[e][r] / K) * d, x + (c.rows[e][r] / K + 1) * d, c.ex_in[e].data() + r * d);
        mlp_fwd(c.ex_out[e].data(), c.ex_cache[e], c.ex_in[e].data(), w.w_gate[e], w.w_up[e], w.w_down[e], n, d,
                w.I);
        for (int64_t r = 0; r < n; r++) {
            const int64_t slot = c.rows[e][r], t = slot / K;
            for (int64_t i = 0; i < d; i++) y[t * d + i] += c.w[slot] * c.ex_out[e][r * d + i];
        }
    }
    if (w.s_gate) {
        std::vector<F> ys(T * d);
        mlp_fwd(ys.data(), c.shared, x, w.s_gate, w.s_up, w.s_down, T, d, w.I_s);
        for (int64_t i = 0; i < T * d; i++) y[i] += ys[i];
    }
}

// LAB(moe_backward) task: back through moe_fwd above: each routed expert's MLP (its rows scaled by their combine weight),
// LAB(moe_backward) the shared expert, then the router: dL/dg -> ds (normalization, scale) -> dz (sigmoid or softmax) -> dx, dW_router.
// LAB(moe_backward) hint: dL/dg_k = dy[t] . expert output; ds_extra (the balance loss) adds to ds; the selection itself has no gradient.
template <class F>
void moe_bwd(F* dx, MoeTrainGrads<F>& gr, const F* dy, const F* ds_extra, const MoeTrainCache<F>& c, const F* x,
             const MoeTrainWeights<F>& w, const MoeGateConfig& g, int64_t T, int64_t d) {
    // LAB(moe_backward): begin
    const int64_t E = g.E, K = g.K;
    std::fill(dx, dx + T * d, F(0));
    std::vector<F> dw(T * K, F(0));  // dL/dg_k
    for (int64_t e = 0; e < E; e++) {
        const int64_t n = (int64_t)c.rows[e].size();
        if (n == 0) continue;
        std::vector<F> dout(n * d), din(n * d);
        for (int64_t r = 0; r < n; r++) {
            const int64_t slot = c.rows[e][r], t = slot / K;
            double acc = 0;
            for (int64_t i = 0; i < d; i++) {
                acc += (double)dy[t * d + i] * (double)c.ex_out[e][r * d + i];
                dout[r * d + i] = c.w[slot] * dy[t * d + i];
            }
            dw[slot] = (F)acc;
        }
        mlp_bwd(din.data(), gr.w_gate[e], gr.w_up[e], gr.w_down[e], dout.data(), c.ex_cache[e], c.ex_in[e].data(),
                w.w_gate[e], w.w_up[e], w.w_down[e], n, d, w.I);
        for (int64_t r = 0; r < n; r++) {
            const int64_t t = c.rows[e][r] / K;
            for (int64_t i = 0; i < d; i++) dx[t * d + i] += din[r * d + i];
        }
    }
    if (w.s_gate) {
        std::vector<F> dxs(T * d);
        mlp_bwd(dxs.data(), gr.s_gate, gr.s_up, gr.s_down, dy, c.shared, x, w.s_gate, w.s_up, w.s_down, T, d, w.I_s);
        for (int64_t i = 0; i < T * d; i++) dx[i] += dxs[i];
    }
    // dg → ds (normalization, scale) → dz (sigmoid / softmax) → dx, dW_router
    std::vector<F> dz(T * E, F(0));
    std::vector<double> ds(E);
    const double cs = weight_scale(g);
    for (int64_t t = 0; t < T; t++) {
        const F* s = c.s.data() + t * E;
        for (int64_t i = 0; i < E; i++) ds[i] = ds_extra ? (double)ds_extra[t * E + i] : 0.0;
        if (normalizes(g)) {
            double sum = 0, dot = 0;
            for (int64_t k = 0; k < K; k++) {
                const int64_t e = c.idx[t * K + k];
                sum += (double)s[e];
                dot += (double)dw[t * K + k] * (double)s[e];
            }
            for (int64_t k = 0; k < K; k++)
                ds[c.idx[t * K + k]] += cs * ((double)dw[t * K + k] / sum - dot / (sum * sum));
        } else {
            for (int64_t k = 0; k < K; k++) ds[c.idx[t * K + k]] += cs * (double)dw[t * K + k];
        }
        if (g.scoring == MoeScoring::Sigmoid) {
            for (int64_t i = 0; i < E; i++) dz[t * E + i] = (F)(ds[i] * (double)s[i] * (1.0 - (double)s[i]));
        } else {
            double dot = 0;
            for (int64_t i = 0; i < E; i++) dot += ds[i] * (double)s[i];
            for (int64_t i = 0; i < E; i++) dz[t * E + i] = (F)((double)s[i] * (ds[i] - dot));
        }
    }
    std::vector<F> dxr(T * d);
    lin_bwd(dxr.data(), gr.w_router, dz.data(), x, w.w_router, T, d, E);
    for (int64_t i = 0; i < T * d; i++) dx[i] += dxr[i];
    // LAB(moe_backward): end
}

template <class F>
double balance_loss_fwd_bwd(F* ds, const F* s, const int32_t* idx, int64_t T, int64_t E, int64_t K, double alpha) {
    std::vector<double> f(E, 0.0), P(E, 0.0);
    for (int64_t t = 0; t < T * K; t++) f[idx[t]] += (double)E / (double)(K * T);
    for (int64_t t = 0; t < T; t++) {
        double sum = 0, fs = 0;
        for (int64_t i = 0; i < E; i++) sum += (double)s[t * E + i];
        for (int64_t i = 0; i < E; i++) {
            P[i] += (double)s[t * E + i] / sum / (double)T;
            fs += f[i] * (double)s[t * E + i] / sum;
        }
        if (ds)
            for (int64_t i = 0; i < E; i++) ds[t * E + i] += (F)(alpha / (double)T * (f[i] - fs) / sum);
    }
    double L = 0;
    for (int64_t i = 0; i < E; i++) L += f[i] * P[i];
    return alpha * L;
}

namespace {
// f'_d (device) or f''_d (comm) of one sequence: the constant factors of moe_backward.h → [D]
std::vector<double> device_factor(const int32_t* idx, int64_t T, int64_t E, int64_t K, int64_t D, int64_t M, bool comm,
                                  const char* who) {
    if (T < 1 || K < 1 || E < 1) fail(who, ": need T, K, E >= 1, got ", T, ", ", K, ", ", E);
    if (D < 1 || E % D != 0) fail(who, ": ", E, " experts cannot be split evenly over D = ", D, " devices");
    if (comm && (M < 1 || M > D)) fail(who, ": the device limit M = ", M, " must be in [1, D = ", D, "]");
    for (int64_t j = 0; j < T * K; j++)
        if (idx[j] < 0 || idx[j] >= E)
            fail(who, ": idx[", j / K, ", ", j % K, "] = ", idx[j], " is outside [0, ", E, ")");
    const int64_t per = E / D;
    std::vector<double> fd(D, 0.0);
    if (!comm) {  // f'_d = mean over the device's experts of f_i = E/(K·T) · c_i
        for (int64_t j = 0; j < T * K; j++) fd[idx[j] / per] += (double)E / (double)(K * T) / (double)per;
        return fd;
    }
    std::vector<char> sent(D);  // f''_d = D/(M·T) · #tokens routed (at least once) to device d
    for (int64_t t = 0; t < T; t++) {
        std::fill(sent.begin(), sent.end(), 0);
        for (int64_t k = 0; k < K; k++) sent[idx[t * K + k] / per] = 1;
        for (int64_t dv = 0; dv < D; dv++)
            if (sent[dv]) fd[dv] += (double)D / (double)(M * T);
    }
    return fd;
}
// α Σ_d fd_d P'_d, and ds_{j,t} += α fd_{d(j)} / T
template <class F>
double device_loss(F* ds, const F* s, const std::vector<double>& fd, int64_t T, int64_t E, double alpha) {
    const int64_t D = (int64_t)fd.size(), per = E / D;
    double L = 0;
    for (int64_t t = 0; t < T; t++)
        for (int64_t i = 0; i < E; i++) L += fd[i / per] * (double)s[t * E + i];
    if (ds)
        for (int64_t t = 0; t < T; t++)
            for (int64_t i = 0; i < E; i++) ds[t * E + i] += (F)(alpha * fd[i / per] / (double)T);
    return alpha * L / (double)T;
}
}  // namespace

template <class F>
double device_balance_loss_fwd_bwd(F* ds, const F* s, const int32_t* idx, int64_t T, int64_t E, int64_t K, int64_t D,
                                   double alpha2) {
    const auto fd = device_factor(idx, T, E, K, D, 1, false, "device_balance_loss_fwd_bwd");
    return device_loss(ds, s, fd, T, E, alpha2);
}

template <class F>
double comm_balance_loss_fwd_bwd(F* ds, const F* s, const int32_t* idx, int64_t T, int64_t E, int64_t K, int64_t D,
                                 int64_t M, double alpha3) {
    const auto fd = device_factor(idx, T, E, K, D, M, true, "comm_balance_loss_fwd_bwd");
    return device_loss(ds, s, fd, T, E, alpha3);
}

template <class F>
double balance_losses_fwd_bwd(F* ds, const F* s, const int32_t* idx, int64_t T, int64_t E, int64_t K,
                              const BalanceLossWeights& w) {
    double L = 0;
    if (w.alpha > 0) L += balance_loss_fwd_bwd(ds, s, idx, T, E, K, w.alpha);
    if (w.alpha_device > 0) L += device_balance_loss_fwd_bwd(ds, s, idx, T, E, K, w.D, w.alpha_device);
    if (w.alpha_comm > 0) L += comm_balance_loss_fwd_bwd(ds, s, idx, T, E, K, w.D, w.M, w.alpha_comm);
    return L;
}

#define DSREF_MOE(F)                                                                                          \
    template void moe_fwd<F>(F*, MoeTrainCache<F>&, const F*, const MoeTrainWeights<F>&, const MoeGateConfig&, int64_t, \
                             int64_t);                                                                        \
    template void moe_bwd<F>(F*, MoeTrainGrads<F>&, const F*, const F*, const MoeTrainCache<F>&, const F*,              \
                             const MoeTrainWeights<F>&, const MoeGateConfig&, int64_t, int64_t);                   \
    template double balance_loss_fwd_bwd<F>(F*, const F*, const int32_t*, int64_t, int64_t, int64_t, double);      \
    template double device_balance_loss_fwd_bwd<F>(F*, const F*, const int32_t*, int64_t, int64_t, int64_t, int64_t,  \
                                                   double);                                                     \
    template double comm_balance_loss_fwd_bwd<F>(F*, const F*, const int32_t*, int64_t, int64_t, int64_t, int64_t,    \
                                                 int64_t, double);                                              \
    template double balance_losses_fwd_bwd<F>(F*, const F*, const int32_t*, int64_t, int64_t, int64_t,             \
                                              const BalanceLossWeights&);
DSREF_MOE(float)
DSREF_MOE(double)

}  // namespace dsref
