// grpo.cpp — GRPO per-token loss, aggregation and hand-written gradient (the formulas are in
// grpo.h).
#include "rl/grpo.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace dsref {

static const char* const kLossTypeNames[] = {"grpo", "bnpo", "dr_grpo", "dapo", "seq-mean-token-sum",
                                             "seq-mean-token-sum-norm"};

const char* loss_type_name(LossType t) { return kLossTypeNames[(int)t]; }

LossType loss_type_from_name(const std::string& s) {
    for (int k = 0; k < 6; k++)
        if (s == kLossTypeNames[k]) return (LossType)k;
    usage_fail("loss_type='", s, "' must be one of grpo|bnpo|dr_grpo|dapo|seq-mean-token-sum|seq-mean-token-sum-norm");
}

static double eps_high_of(const GrpoConfig& cfg) { return cfg.epsilon_high ? *cfg.epsilon_high : cfg.epsilon; }

void grpo_check_config(const GrpoConfig& cfg) {
    auto nonneg = [](const char* name, double v) {
        if (!std::isfinite(v) || v < 0.0) usage_fail(name, " must be a finite number >= 0, got ", v);
    };
    nonneg("epsilon", cfg.epsilon);
    nonneg("epsilon_high", eps_high_of(cfg));
    nonneg("beta", cfg.beta);
    nonneg("loss_scale_factor", cfg.loss_scale_factor);
    nonneg("num_items_in_batch", cfg.num_items_in_batch);
    if (cfg.delta && (!std::isfinite(*cfg.delta) || *cfg.delta <= 0.0))
        usage_fail("delta must be a finite number > 0 (or unset), got ", *cfg.delta);
    if (cfg.max_completion_length < 0) usage_fail("max_completion_length must be >= 1, got ", cfg.max_completion_length);
    if (cfg.grad_accum_steps < 1) usage_fail("grad_accum_steps must be >= 1, got ", cfg.grad_accum_steps);
}

// LAB(grpo_loss) task: l = -min(r A, clip(r, 1 - eps, 1 + eps_high) A) with r = exp(log_ratio) (and min(r, delta) when set),
// LAB(grpo_loss) its derivative dl/dlog_ratio, and the clip flags (grpo.h).
// LAB(grpo_loss) hint: A = 0 gives exactly 0; on a tie torch.min sends half of the gradient to each side.
SurrogateTerm clipped_surrogate(double log_ratio, double A, const GrpoConfig& cfg) {
    // LAB(grpo_loss): begin
    const double lo = 1.0 - cfg.epsilon, hi = 1.0 + eps_high_of(cfg);
    const double r = std::exp(log_ratio);  // dr/d(log_ratio) = r
    double c1 = r, dc1 = r;
    if (cfg.delta && r > *cfg.delta) {  // min(c1, delta): constant above delta
        c1 = *cfg.delta;
        dc1 = 0.0;
    }
    const double c2 = r < lo ? lo : (r > hi ? hi : r);  // clamp of the un-clamped ratio
    const double dc2 = (r >= lo && r <= hi) ? r : 0.0;  // clamp passes gradient on [lo, hi]
    SurrogateTerm s;
    s.ratio = c1;
    s.clipped_low = c1 < lo && A < 0.0;
    s.clipped_high = c1 > hi && A > 0.0;
    if (A == 0.0) {  // exactly 0, even for an infinite ratio (TRL: 0·inf = NaN)
        s.loss = 0.0;
        s.dloss_dlogratio = 0.0;
        return s;
    }
    const double a = c1 * A, b = c2 * A;  // l = −min(a, b)
    if (a < b) {
        s.loss = -a;
        s.dloss_dlogratio = -A * dc1;
    } else if (b < a) {
        s.loss = -b;
        s.dloss_dlogratio = -A * dc2;
    } else {  // tie: torch.min sends half of the gradient to each side
        s.loss = -a;
        s.dloss_dlogratio = -A * 0.5 * (dc1 + dc2);
    }
    return s;
    // LAB(grpo_loss): end
}

// LAB(grpo_loss) task: the k1, k2, k3 estimators of KL(pi || pi_ref) at the sampled token and their derivatives in x.
// LAB(grpo_loss) hint: k3 = expm1(-d) + d avoids the cancellation near d = 0.
KlTerm kl_estimate(KlEstimator kind, double x, double x_ref) {
    // LAB(grpo_loss): begin
    const double d = x - x_ref;  // log(pi_theta / pi_ref) at the sampled token
    switch (kind) {
        case KlEstimator::K1: return {d, 1.0};
        case KlEstimator::K2: return {0.5 * d * d, d};
        case KlEstimator::K3: break;
    }
    // k3 = pi_ref/pi − log(pi_ref/pi) − 1 = expm1(−d) + d (expm1 avoids the cancellation near d = 0)
    return {std::expm1(-d) + d, -std::expm1(-d)};
    // LAB(grpo_loss): end
}

std::vector<double> grpo_weights(const std::vector<double>& mask, int64_t B, int64_t T, const GrpoConfig& cfg) {
    std::vector<double> n(B, 0.0);  // active tokens per row
    double N = 0.0;                 // active tokens in the micro-batch
    int64_t nonempty = 0;
    for (int64_t i = 0; i < B; i++) {
        for (int64_t t = 0; t < T; t++) n[i] += mask.empty() ? 1.0 : mask[i * T + t];
        N += n[i];
        if (n[i] > 0.0) nonempty++;
    }
    const double L_max = cfg.max_completion_length > 0 ? (double)cfg.max_completion_length : (double)T;
    const double S = cfg.loss_scale_factor > 0.0 ? cfg.loss_scale_factor : L_max;
    const double GA = (double)cfg.grad_accum_steps;
    std::vector<double> w(B * T, 0.0);
    for (int64_t i = 0; i < B; i++)
        for (int64_t t = 0; t < T; t++) {
            const double m = mask.empty() ? 1.0 : mask[i * T + t];
            double wt = 0.0;
            switch (cfg.loss_type) {
                case LossType::Grpo: wt = m / ((double)B * std::fmax(n[i], 1.0)) / GA; break;
                case LossType::Bnpo: wt = m / std::fmax(N, 1.0) / GA; break;
                case LossType::DrGrpo: wt = m / ((double)B * L_max) / GA; break;
                case LossType::Dapo:
                    wt = m / std::fmax(cfg.num_items_in_batch > 0.0 ? cfg.num_items_in_batch : N, 1.0);
                    break;
                case LossType::SeqMeanTokenSum: wt = m / (double)std::max<int64_t>(nonempty, 1) / GA; break;
                case LossType::SeqMeanTokenSumNorm: wt = m / S / GA; break;
            }
            w[i * T + t] = wt;
        }
    return w;
}

// Refuses a non-finite value at an active position of a [B, T] input.
static void check_finite_active(const std::vector<double>& v, const std::vector<double>& mask, int64_t B, int64_t T,
                                const char* name) {
    if (v.empty()) return;
    if ((int64_t)v.size() != B * T) fail(name, ": expected ", B * T, " values ([", B, ", ", T, "]), got ", v.size());
    for (int64_t k = 0; k < B * T; k++)
        if ((mask.empty() || mask[k] != 0.0) && !std::isfinite(v[k]))
            fail(name, ": value ", v[k], " at [", k / T, ", ", k % T, "] is not finite");
}

GrpoResult grpo_loss(const std::vector<double>& logps, const std::vector<double>& old_logps,
                     const std::vector<double>& ref_logps, const std::vector<double>& advantages,
                     const std::vector<double>& mask, int64_t B, int64_t T, const GrpoConfig& cfg) {
    grpo_check_config(cfg);
    if (B < 1 || T < 1) fail("grpo_loss: need B >= 1 and T >= 1, got B = ", B, ", T = ", T);
    if ((int64_t)logps.size() != B * T) fail("logps: expected ", B * T, " values, got ", logps.size());
    if ((int64_t)advantages.size() != B * T)
        fail("advantages: expected ", B * T, " values ([B, T]), got ", advantages.size());
    if (!mask.empty()) {
        if ((int64_t)mask.size() != B * T) fail("mask: expected ", B * T, " values, got ", mask.size());
        for (int64_t k = 0; k < B * T; k++)
            if (mask[k] != 0.0 && mask[k] != 1.0)
                fail("mask: value ", mask[k], " at [", k / T, ", ", k % T, "] is not 0 or 1");
    }
    if (cfg.beta > 0.0 && ref_logps.empty())
        fail("grpo_loss: beta = ", cfg.beta, " > 0 needs ref_logps (or set beta=0)");
    check_finite_active(logps, mask, B, T, "logps");
    check_finite_active(old_logps, mask, B, T, "old_logps");
    check_finite_active(ref_logps, mask, B, T, "ref_logps");
    check_finite_active(advantages, mask, B, T, "advantages");
    auto active = [&](int64_t k) { return mask.empty() || mask[k] != 0.0; };
    auto log_ratio = [&](int64_t k) { return old_logps.empty() ? 0.0 : logps[k] - old_logps[k]; };

    GrpoResult res;
    res.weights = grpo_weights(mask, B, T, cfg);
    res.per_token_loss.assign(B * T, 0.0);
    res.grad_logps.assign(B * T, 0.0);
    res.ratio.assign(B * T, 0.0);
    res.kl_per_token.assign(B * T, 0.0);
    double N = 0.0, n_low = 0.0, n_high = 0.0, n_region = 0.0, kl_sum = 0.0;

    for (int64_t i = 0; i < B; i++) {
        // GSPO: one log-ratio per sequence, the masked mean of the token log-ratios.
        double n_i = 0.0, seq_log_ratio = 0.0;
        for (int64_t t = 0; t < T; t++)
            if (active(i * T + t)) {
                n_i += 1.0;
                seq_log_ratio += log_ratio(i * T + t);
            }
        seq_log_ratio /= std::fmax(n_i, 1.0);
        double seq_dloss_dlogs = 0.0;  // Σ_t w_{i,t} d l_{i,t} / d log s_i (sequence level)

        for (int64_t t = 0; t < T; t++) {
            const int64_t k = i * T + t;
            if (!active(k)) continue;
            const double lr = cfg.is_level == IsLevel::Token ? log_ratio(k) : seq_log_ratio;
            const SurrogateTerm s = clipped_surrogate(lr, advantages[k], cfg);
            double l = s.loss, dl = 0.0;  // dl: the part of dLoss/dx_{i,t} local to this token
            if (!std::isfinite(s.loss) || !std::isfinite(s.dloss_dlogratio))
                fail("grpo_loss: the clipped surrogate is not finite at [", i, ", ", t, "]: ",
                     cfg.is_level == IsLevel::Token ? "log-ratio logps - old_logps = " : "sequence log-ratio = ", lr,
                     " overflows exp() with advantage ", advantages[k],
                     " (ratios are not clamped, as in TRL; set delta to cap them)");
            if (cfg.is_level == IsLevel::Token) dl += res.weights[k] * s.dloss_dlogratio;
            else seq_dloss_dlogs += res.weights[k] * s.dloss_dlogratio;
            if (!ref_logps.empty()) {
                const KlTerm kt = kl_estimate(KlEstimator::K3, logps[k], ref_logps[k]);
                if (!std::isfinite(kt.value))
                    fail("grpo_loss: the k3 KL overflows at [", i, ", ", t, "]: ref_logps - logps = ",
                         ref_logps[k] - logps[k], " is too large for exp()");
                res.kl_per_token[k] = kt.value;
                kl_sum += kt.value;
                if (cfg.beta > 0.0) {
                    l += cfg.beta * kt.value;
                    dl += res.weights[k] * cfg.beta * kt.dvalue_dx;
                }
            }
            res.per_token_loss[k] = l;
            res.grad_logps[k] = dl;
            res.ratio[k] = s.ratio;
            res.loss += res.weights[k] * l;
            N += 1.0;
            n_low += s.clipped_low;
            n_high += s.clipped_high;
            n_region += s.clipped_low || s.clipped_high;
        }
        // d log s_i / dx_{i,t} = m_{i,t} / n_i: every active token of the row gets the same share.
        if (cfg.is_level == IsLevel::Sequence)
            for (int64_t t = 0; t < T; t++)
                if (active(i * T + t)) res.grad_logps[i * T + t] += seq_dloss_dlogs / n_i;
    }
    if (!std::isfinite(res.loss)) fail("grpo_loss: the aggregated loss overflows (", res.loss, ")");
    for (int64_t k = 0; k < B * T; k++)
        if (!std::isfinite(res.grad_logps[k]))
            fail("grpo_loss: the gradient overflows at [", k / T, ", ", k % T, "]");
    if (!std::isfinite(kl_sum)) fail("grpo_loss: the summed k3 KL overflows");
    const double denom = std::fmax(N, 1.0);
    res.clip_ratio_low = n_low / denom;
    res.clip_ratio_high = n_high / denom;
    res.clip_ratio_region = n_region / denom;
    res.kl = kl_sum / denom;
    return res;
}

}  // namespace dsref
