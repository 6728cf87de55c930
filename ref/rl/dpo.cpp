// dpo.cpp — DPO sigmoid loss with cDPO label smoothing, gradients and reward metrics (the formulas are
// in dpo.h).
#include "rl/dpo.h"

#include <cmath>

#include "core/error.h"

namespace dsref {

double log_sigmoid(double u) { return std::fmin(u, 0.0) - std::log1p(std::exp(-std::fabs(u))); }

double sigmoid(double u) {
    if (u >= 0.0) return 1.0 / (1.0 + std::exp(-u));
    const double e = std::exp(u);
    return e / (1.0 + e);
}

DpoResult dpo_loss(const std::vector<double>& policy_chosen, const std::vector<double>& policy_rejected,
                   const std::vector<double>& ref_chosen, const std::vector<double>& ref_rejected, double beta,
                   double label_smoothing) {
    if (!std::isfinite(beta) || beta < 0.0) usage_fail("beta must be a finite number >= 0, got ", beta);
    if (!(label_smoothing >= 0.0 && label_smoothing <= 1.0))
        usage_fail("label_smoothing must be in [0, 1], got ", label_smoothing);
    const size_t N = policy_chosen.size();
    if (N == 0) fail("policy_chosen_logps: need at least one pair");
    const std::vector<double>* ins[4] = {&policy_chosen, &policy_rejected, &ref_chosen, &ref_rejected};
    const char* names[4] = {"policy_chosen_logps", "policy_rejected_logps", "ref_chosen_logps", "ref_rejected_logps"};
    for (int k = 0; k < 4; k++) {
        if (ins[k]->size() != N) fail(names[k], ": expected ", N, " values (one per pair), got ", ins[k]->size());
        for (size_t n = 0; n < N; n++)
            if (!std::isfinite((*ins[k])[n])) fail(names[k], ": value ", (*ins[k])[n], " at [", n, "] is not finite");
    }
    DpoResult res;
    res.grad_chosen.resize(N);
    res.grad_rejected.resize(N);
    res.chosen_rewards.resize(N);
    res.rejected_rewards.resize(N);
    const double e = label_smoothing;
    for (size_t n = 0; n < N; n++) {
        const double chosen_logratio = policy_chosen[n] - ref_chosen[n];
        const double rejected_logratio = policy_rejected[n] - ref_rejected[n];
        const double u = beta * (chosen_logratio - rejected_logratio);  // beta·Delta
        res.loss += (-(1.0 - e) * log_sigmoid(u) - e * log_sigmoid(-u)) / (double)N;
        const double dL_dDelta = beta * (sigmoid(u) - (1.0 - e)) / (double)N;
        res.grad_chosen[n] = dL_dDelta;
        res.grad_rejected[n] = -dL_dDelta;
        res.chosen_rewards[n] = beta * chosen_logratio;
        res.rejected_rewards[n] = beta * rejected_logratio;
        res.reward_accuracy += (res.chosen_rewards[n] > res.rejected_rewards[n]) / (double)N;
        res.reward_margin += (res.chosen_rewards[n] - res.rejected_rewards[n]) / (double)N;
    }
    if (!std::isfinite(res.loss)) fail("dpo_loss: the loss overflows (", res.loss, "); the log-prob differences are too large");
    return res;
}

}  // namespace dsref
