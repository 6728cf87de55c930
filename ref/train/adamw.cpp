// adamw.cpp — AdamW, clipping and schedules (adamw.h).
#include "train/adamw.h"

#include <cmath>

#include "core/error.h"

namespace dsref {

bool adamw_decays(const std::vector<int64_t>& shape) { return shape.size() >= 2; }

// LAB(adamw) task: one AdamW step (torch.optim.AdamW): decay p by (1 - lr wd), update m and v, then
// LAB(adamw) p -= lr / (1 - beta1^step) * m / (sqrt(v) / sqrt(1 - beta2^step) + eps) (adamw.h).
// LAB(adamw) hint: compute in double; the moments are stored back in F.
template <class F>
void adamw_step(F* p, const F* g, AdamWState<F>& s, int64_t n, int64_t step, double lr, double wd,
                const AdamWConfig& c) {
    if (step < 1) fail("adamw: step counter ", step, " (must be ≥ 1)");
    if ((int64_t)s.m.size() != n) s.m.assign(n, F(0));
    if ((int64_t)s.v.size() != n) s.v.assign(n, F(0));
    // LAB(adamw): begin
    const double bc1 = 1.0 - std::pow(c.beta1, (double)step), bc2 = 1.0 - std::pow(c.beta2, (double)step);
    const double step_size = lr / bc1, bc2_sqrt = std::sqrt(bc2);
    for (int64_t i = 0; i < n; i++) {
        double pi = (double)p[i] * (1.0 - lr * wd);
        const double gi = (double)g[i];
        const double m = c.beta1 * (double)s.m[i] + (1.0 - c.beta1) * gi;
        const double v = c.beta2 * (double)s.v[i] + (1.0 - c.beta2) * gi * gi;
        s.m[i] = (F)m;
        s.v[i] = (F)v;
        pi -= step_size * m / (std::sqrt(v) / bc2_sqrt + c.eps);
        p[i] = (F)pi;
    }
    // LAB(adamw): end
}

// LAB(adamw) task: the global L2 norm over every gradient tensor; when C > 0 scale all by min(1, C / (norm + 1e-6)).
// LAB(adamw) hint: torch.nn.utils.clip_grad_norm_; return the norm before clipping.
template <class F>
double clip_grad_norm(const std::vector<F*>& grads, const std::vector<int64_t>& sizes, double C) {
    // LAB(adamw): begin
    double ss = 0.0;
    for (size_t t = 0; t < grads.size(); t++)
        for (int64_t i = 0; i < sizes[t]; i++) ss += (double)grads[t][i] * (double)grads[t][i];
    const double norm = std::sqrt(ss);
    if (C > 0) {
        const double coef = std::min(1.0, C / (norm + 1e-6));
        for (size_t t = 0; t < grads.size(); t++)
            for (int64_t i = 0; i < sizes[t]; i++) grads[t][i] = (F)((double)grads[t][i] * coef);
    }
    return norm;
    // LAB(adamw): end
}

LrSchedule parse_lr_schedule(const std::string& s) {
    if (s == "constant") return LrSchedule::Constant;
    if (s == "cosine") return LrSchedule::Cosine;
    if (s == "deepseek") return LrSchedule::DeepSeek;
    fail("--schedule: unknown schedule '", s, "' (constant | cosine | deepseek)");
}

// LAB(adamw) task: the learning rate of step k of N: linear warmup over W steps, then constant, cosine to min_lr_frac * lr,
// LAB(adamw) or DeepSeek's multi-step (lr until 80% of N, 0.316 lr until 90%, then 0.1 lr) (adamw.h).
// LAB(adamw) hint: warmup step k gives lr (k + 1) / W.
double lr_at(LrSchedule s, double lr, int64_t k, int64_t N, int64_t W, double min_lr_frac) {
    // LAB(adamw): begin
    if (k < W) return lr * (double)(k + 1) / (double)W;
    switch (s) {
        case LrSchedule::Constant: return lr;
        case LrSchedule::Cosine: {
            const double span = (double)std::max<int64_t>(1, N - W);
            const double x = std::min(1.0, (double)(k - W) / span);
            return lr * (min_lr_frac + (1.0 - min_lr_frac) * 0.5 * (1.0 + std::cos(M_PI * x)));
        }
        case LrSchedule::DeepSeek:
            if ((double)k < 0.8 * (double)N) return lr;
            if ((double)k < 0.9 * (double)N) return 0.316 * lr;
            return 0.1 * lr;
    }
    return lr;
    // LAB(adamw): end
}

template void adamw_step<float>(float*, const float*, AdamWState<float>&, int64_t, int64_t, double, double,
                                const AdamWConfig&);
template void adamw_step<double>(double*, const double*, AdamWState<double>&, int64_t, int64_t, double, double,
                                 const AdamWConfig&);
template double clip_grad_norm<float>(const std::vector<float*>&, const std::vector<int64_t>&, double);
template double clip_grad_norm<double>(const std::vector<double*>&, const std::vector<int64_t>&, double);

}  // namespace dsref
