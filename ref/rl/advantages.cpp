// advantages.cpp — group-relative advantages, outcome and process supervision (the rules and edge
// cases are in advantages.h).
#include "rl/advantages.h"

#include <cmath>
#include <limits>

#include "core/error.h"

namespace dsref {

MeanStd nan_mean_std(const double* v, int64_t n, bool unbiased_std) {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    double sum = 0.0;
    int64_t count = 0;
    for (int64_t i = 0; i < n; i++)
        if (!std::isnan(v[i])) {
            sum += v[i];
            count++;
        }
    if (count == 0) return {nan, nan, 0};
    const double mean = sum / (double)count;
    const int64_t dof = unbiased_std ? count - 1 : count;  // Bessel: N − 1
    if (dof < 1) return {mean, nan, count};
    double ss = 0.0;  // two-pass variance: Σ (v − mean)²
    for (int64_t i = 0; i < n; i++)
        if (!std::isnan(v[i])) ss += (v[i] - mean) * (v[i] - mean);
    return {mean, std::sqrt(ss / (double)dof), count};
}

// True when every non-NaN value equals the first one exactly.
static bool all_equal(const double* v, int64_t n) {
    const double* first = nullptr;
    for (int64_t i = 0; i < n; i++) {
        if (std::isnan(v[i])) continue;
        if (!first) first = &v[i];
        else if (v[i] != *first) return false;
    }
    return true;
}

// LAB(grpo_advantages) task: A_i = (r_i - mean(group)) / (std + epsilon), std per group or per batch (advantages.h);
// LAB(grpo_advantages) NaN rewards are unscorable: skipped by the statistics, A = 0.
// LAB(grpo_advantages) hint: nan_mean_std does the statistics; a group of equal rewards gets A = 0 exactly.
std::vector<double> group_advantages(const std::vector<double>& rewards, const AdvantageConfig& cfg) {
    const int64_t B = (int64_t)rewards.size();
    const int64_t G = cfg.group_size == 0 ? B : cfg.group_size;
    if (G < 1 || (B > 0 && B % G != 0))
        usage_fail("group_size=", cfg.group_size, " must be >= 1 and divide the batch size B = ", B);
    if (!(cfg.epsilon >= 0.0) || !std::isfinite(cfg.epsilon))
        usage_fail("adv_epsilon must be a finite number >= 0, got ", cfg.epsilon);
    for (int64_t i = 0; i < B; i++)
        if (std::isinf(rewards[i])) fail("rewards: value ", rewards[i], " at [", i, "] is not finite (NaN = unscorable is allowed)");
    // LAB(grpo_advantages): begin

    // For "batch": one std over every scorable reward of the batch (TRL: PPO-Lite).
    const MeanStd batch = nan_mean_std(rewards.data(), B, cfg.unbiased_std);

    std::vector<double> A(B, 0.0);
    for (int64_t g0 = 0; g0 < B; g0 += G) {
        const double* r = rewards.data() + g0;  // [G] the completions of one prompt
        const MeanStd grp = nan_mean_std(r, G, cfg.unbiased_std);
        if (grp.count == 0 || all_equal(r, G)) continue;  // A = 0 exactly
        const double std = cfg.scale == RewardScale::Group ? grp.std : batch.std;
        for (int64_t k = 0; k < G; k++) {
            if (std::isnan(r[k])) continue;  // unscorable: A = 0
            const double centered = r[k] - grp.mean;
            if (cfg.scale == RewardScale::None) A[g0 + k] = centered;
            else if (!std::isnan(std)) A[g0 + k] = centered / (std + cfg.epsilon);
            // else: fewer than 2 scorable rewards, no std: A stays 0 (TRL nan_to_num)
        }
    }
    return A;
    // LAB(grpo_advantages): end
}

std::vector<std::vector<double>> process_normalized_rewards(const std::vector<std::vector<StepReward>>& steps,
                                                            const ProcessConfig& cfg) {
    if (!(cfg.epsilon >= 0.0) || !std::isfinite(cfg.epsilon))
        usage_fail("process supervision epsilon must be a finite number >= 0, got ", cfg.epsilon);
    std::vector<double> R;  // every step reward of every output of the group
    for (size_t i = 0; i < steps.size(); i++)
        for (size_t j = 0; j < steps[i].size(); j++) {
            if (!std::isfinite(steps[i][j].reward))
                fail("step reward ", steps[i][j].reward, " of output ", i, " step ", j, " is not finite");
            R.push_back(steps[i][j].reward);
        }
    const MeanStd ms = nan_mean_std(R.data(), (int64_t)R.size(), cfg.unbiased_std);
    const bool degenerate = R.empty() || std::isnan(ms.std) || all_equal(R.data(), (int64_t)R.size());
    std::vector<std::vector<double>> out(steps.size());
    for (size_t i = 0; i < steps.size(); i++)
        for (const StepReward& s : steps[i])
            out[i].push_back(degenerate ? 0.0 : (s.reward - ms.mean) / (ms.std + cfg.epsilon));
    return out;
}

std::vector<std::vector<double>> process_advantages(const std::vector<std::vector<StepReward>>& steps,
                                                    const std::vector<int64_t>& lengths, const ProcessConfig& cfg) {
    if (steps.size() != lengths.size())
        fail("process_advantages: ", steps.size(), " step lists but ", lengths.size(), " lengths");
    const std::vector<std::vector<double>> norm = process_normalized_rewards(steps, cfg);
    std::vector<std::vector<double>> A(steps.size());
    for (size_t i = 0; i < steps.size(); i++) {
        if (lengths[i] < 0) fail("process_advantages: output ", i, " has negative length ", lengths[i]);
        A[i].assign(lengths[i], 0.0);
        for (size_t j = 0; j < steps[i].size(); j++) {
            const int64_t end = steps[i][j].end_token;
            if (end < 0 || end >= lengths[i])
                fail("process_advantages: output ", i, " step ", j, " ends at token ", end,
                     ", outside [0, ", lengths[i], ")");
            // A_t = Σ_{j: index(j) >= t} r~_j: step j adds its reward to every token up to its end.
            for (int64_t t = 0; t <= end; t++) A[i][t] += norm[i][j];
        }
    }
    return A;
}

}  // namespace dsref
