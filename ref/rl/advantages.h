// advantages.h — group-relative advantages for GRPO (DeepSeekMath arXiv 2402.03300 §4.1.2–4.1.3;
// DeepSeek-R1 arXiv 2501.12948 §2.2.1 eq. 3; TRL trl/trainer/grpo_trainer.py,
// GRPOTrainer._generate_and_score_completions; verl verl/trainer/ppo/core_algos.py,
// compute_grpo_outcome_advantage). This header is where the std, eps and edge-case choices are pinned.
//
// Outcome supervision: the B rewards form B/G groups of G consecutive completions of one prompt.
//
//   scale = group:  A_i = (r_i − mean_g) / (std_g + eps)     (TRL default; DeepSeekMath)
//   scale = batch:  A_i = (r_i − mean_g) / (std_batch + eps) (TRL "batch", PPO-Lite: mean per group,
//                                                             one std over the whole batch)
//   scale = none:   A_i =  r_i − mean_g                       (Dr. GRPO, arXiv 2503.20783: no division)
//
// std is the *sample* std (Bessel, N − 1) like torch.std; eps = 1e-4 is TRL's (verl uses 1e-6, which
// is the same formula with eps = 1e-6). The paper names neither. The population std is available for
// comparison only.
//
// Edge cases (TRL's behaviour, which dsref follows except where said):
//   * a NaN reward means "unscorable" (TRL: every reward function returned None): it is left out of
//     the mean and the std and its advantage is 0; ±inf rewards are refused;
//   * a group (or, for "batch", the batch) with fewer than 2 scorable rewards has no std: A = 0
//     (TRL's nan_to_num); under "none" a lone reward gets r − r = 0;
//   * a group whose scorable rewards are all equal gets exactly 0, never NaN and never the O(1e-13)
//     rounding noise of (r − mean) that TRL's division by (0 + 1e-4) leaves.
//
// Process supervision (§4.1.3): every step j of output i has a reward r_i^(j) that ends at token
// index(j). All step rewards R of the G outputs are normalized together, r~ = (r − mean R) / (std R + eps),
// and a token's advantage is the sum of the normalized rewards of the steps ending at or after it;
// tokens after the last step get 0. The paper divides by std(R) alone, so eps defaults to 0 there.
#pragma once
#include <cstdint>
#include <vector>

namespace dsref {

enum class RewardScale { Group, Batch, None };

struct AdvantageConfig {
    int64_t group_size = 0;             // G; 0 means one group holding the whole batch
    RewardScale scale = RewardScale::Group;
    double epsilon = 1e-4;              // added to the std (TRL 1e-4, verl 1e-6)
    bool unbiased_std = true;           // sample std (N − 1), as every library does
};

// advantages: [B] · rewards: [B] (NaN = unscorable). B must be a multiple of group_size.
std::vector<double> group_advantages(const std::vector<double>& rewards, const AdvantageConfig& cfg);

// Mean and std of the non-NaN values (std NaN when fewer than 2, or 1 for the population std).
struct MeanStd {
    double mean;
    double std;
    int64_t count;
};
MeanStd nan_mean_std(const double* v, int64_t n, bool unbiased_std);

// One step of one output: its last token (0-based, within the output) and its reward.
struct StepReward {
    int64_t end_token;
    double reward;
};

struct ProcessConfig {
    double epsilon = 0.0;     // the paper's (r − mean)/std; a positive value mirrors the outcome case
    bool unbiased_std = true;
};

// Per-token advantages of the G outputs of one prompt. steps[i]: the steps of output i (any order);
// lengths[i]: its number of tokens. Returns one row of lengths[i] advantages per output.
std::vector<std::vector<double>> process_advantages(const std::vector<std::vector<StepReward>>& steps,
                                                    const std::vector<int64_t>& lengths,
                                                    const ProcessConfig& cfg = ProcessConfig());

// The step rewards normalized by (r − mean R) / (std R + eps), in the same layout as `steps`.
std::vector<std::vector<double>> process_normalized_rewards(const std::vector<std::vector<StepReward>>& steps,
                                                            const ProcessConfig& cfg = ProcessConfig());

}  // namespace dsref
