// dpo.h — Direct Preference Optimization, sigmoid loss with cDPO label smoothing (DPO paper, Rafailov
// et al., arXiv 2305.18290, eq. 7 and its gradient in §4; cDPO: Mitchell 2023, "A note on DPO with
// noisy preferences"; DeepSeek LLM arXiv 2401.02954 §4, which trains its chat models with DPO after SFT;
// TRL trl/trainer/dpo_trainer.py, loss_type "sigmoid").
//
// For a pair (chosen y_w, rejected y_l) with sequence log-probs (sums over completion tokens, no
// temperature) of the policy and of the frozen reference:
//
//   Delta = (log pi(y_w) − log pi_ref(y_w)) − (log pi(y_l) − log pi_ref(y_l))
//   L     = −(1 − e)·log sigmoid(beta·Delta) − e·log sigmoid(−beta·Delta)          (e = label_smoothing)
//   dL/dDelta = beta·(sigmoid(beta·Delta) − (1 − e)),   dL/dlog pi(y_w) = dL/dDelta = −dL/dlog pi(y_l)
//
// The batch loss is the mean over the N pairs, so each gradient carries a 1/N. log sigmoid is
// evaluated as min(u, 0) − log1p(exp(−|u|)), finite for any finite u. TRL's "sigmoid" loss applied the
// cDPO smoothing up to v0.28 and ignores it since v0.29; e = 0 (default) is both.
// Reward metrics (TRL names): rewards/chosen = beta·(log pi(y_w) − log pi_ref(y_w)), rewards/rejected
// likewise, rewards/accuracies = mean[chosen > rejected] (strict), rewards/margins = mean(chosen − rejected).
#pragma once
#include <cstdint>
#include <vector>

namespace dsref {

struct DpoResult {
    double loss = 0.0;                       // mean over pairs
    std::vector<double> grad_chosen;         // [N] dL/d log pi(y_w)
    std::vector<double> grad_rejected;       // [N] dL/d log pi(y_l)
    std::vector<double> chosen_rewards;      // [N] beta·(log pi(y_w) − log pi_ref(y_w))
    std::vector<double> rejected_rewards;    // [N]
    double reward_accuracy = 0.0;            // mean[chosen_reward > rejected_reward]
    double reward_margin = 0.0;              // mean(chosen_reward − rejected_reward)
};

// All inputs [N] (N >= 1, finite). beta >= 0, label_smoothing in [0, 1].
DpoResult dpo_loss(const std::vector<double>& policy_chosen, const std::vector<double>& policy_rejected,
                   const std::vector<double>& ref_chosen, const std::vector<double>& ref_rejected, double beta,
                   double label_smoothing);

double log_sigmoid(double u);  // stable log(1 / (1 + exp(−u)))
double sigmoid(double u);      // stable 1 / (1 + exp(−u))

}  // namespace dsref
