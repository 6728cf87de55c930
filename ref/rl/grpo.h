// grpo.h — the GRPO loss and its analytic gradient (DeepSeekMath arXiv 2402.03300 §4.1.1, eq. 3, with
// the k3 KL estimator of eq. 4; DeepSeek-R1 arXiv 2501.12948 §2.2.1, eqs 1–2), with the loss variants
// that trainers ship: TRL trl/trainer/grpo_trainer.py, GRPOTrainer._compute_loss (loss_type, delta,
// importance_sampling_level), and verl verl/trainer/ppo/core_algos.py, agg_loss (loss_agg_mode).
//
// Per token (x = policy log-prob, the only input with a gradient; x_old, x_ref and A are constants):
//
//   c1 = exp(x − x_old)            (token level)  or  s_i = exp(Σ_t m (x − x_old) / max(Σ_t m, 1))  (GSPO)
//   c2 = clamp(c1, 1 − eps_low, 1 + eps_high)        computed from the un-clamped c1
//   c1 ← min(c1, delta)            only when delta is set (the two-sided clip of INTELLECT-2, 2025)
//   l  = −min(c1·A, c2·A) + beta·k3,   k3 = exp(x_ref − x) − (x_ref − x) − 1
//
// and Loss = Σ_{i,t} w_{i,t} l_{i,t}, where the weights w are the aggregation of `loss_type`
// (TRL _compute_loss; verl agg_loss; m = mask, n_i = Σ_t m_{i,t}, N = Σ m, GA = grad_accum_steps):
//
//   grpo                     m / (B · max(n_i, 1)) / GA   per-sequence mean, then batch mean (DeepSeekMath;
//                                                         TRL "grpo"; verl seq-mean-token-mean without
//                                                         empty rows — TRL keeps empty rows in B)
//   bnpo                     m / max(N, 1) / GA           TRL "bnpo" = verl token-mean
//   dr_grpo                  m / (B · L_max) / GA         TRL "dr_grpo", L_max = max_completion_length
//   dapo                     m / max(num_items, 1)        TRL "dapo": num_items = active tokens of the whole
//                                                         generation batch (default: this micro-batch), no /GA
//   seq-mean-token-sum       m / max(B_nonempty, 1) / GA  verl: mean over non-empty rows of Σ_t m l
//   seq-mean-token-sum-norm  m / S / GA                   verl: S = loss_scale_factor (default L_max); no /B
//
// (Dr. GRPO: Liu et al., arXiv 2503.20783; DAPO's token-level loss and clip-higher: Yu et al.,
// arXiv 2503.14476, §3.3 and §3.1; GSPO's sequence-level ratio: Zheng et al., arXiv 2507.18071.)
//
// The gradient is written by hand (checked against autograd by data/grpo/make_grpo_golden.py and
// against finite differences by tests/test_grpo.cpp): dl/dc1 and dl/dc2 are taken from the branch of
// the min that is active, a tie splits half/half like torch.min, clamp passes gradient on its closed
// interval.
// So dl/dx = −A·r where the unclipped branch is active, 0 where the ratio is clipped in the direction
// of A, and beta·(1 − exp(x_ref − x)) from the KL. At sequence level every token of row i shares
// d log s_i / dx_{i,t} = m_{i,t} / n_i.
//
// Numerics: double throughout, no clamps (TRL semantics; verl's log-ratio clamp ±20 and dual clip 3.0
// are not modelled). A log-ratio up to ~709 still gives finite results in double; beyond that exp()
// overflows and, where the overflow reaches the loss (A < 0 without delta, or beta·k3), grpo_loss
// throws an error naming the tensor and position instead of returning inf or NaN. A = 0 tokens
// contribute exactly 0 (TRL would give 0·inf = NaN for an infinite ratio).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace dsref {

enum class LossType { Grpo, Bnpo, DrGrpo, Dapo, SeqMeanTokenSum, SeqMeanTokenSumNorm };
enum class IsLevel { Token, Sequence };

LossType loss_type_from_name(const std::string& s);  // "grpo", "bnpo", ... ; UsageError otherwise
const char* loss_type_name(LossType t);

// Defaults follow DeepSeekMath: loss_type grpo, beta 0.04, epsilon 0.2 (TRL's own defaults are dapo, 0.0).
struct GrpoConfig {
    LossType loss_type = LossType::Grpo;
    double epsilon = 0.2;                 // eps_low
    std::optional<double> epsilon_high;   // unset: = epsilon (DAPO clip-higher uses 0.28)
    std::optional<double> delta;          // unset: no two-sided clip
    double beta = 0.04;                   // KL coefficient (k3 in the loss)
    IsLevel is_level = IsLevel::Token;    // TRL importance_sampling_level (sequence = GSPO)
    int64_t max_completion_length = 0;    // L_max for dr_grpo; 0 = the padded width T
    double loss_scale_factor = 0.0;       // S for seq-mean-token-sum-norm; 0 = L_max
    int64_t grad_accum_steps = 1;         // GA; every loss_type except dapo divides by it
    double num_items_in_batch = 0.0;      // dapo's denominator; 0 = the active tokens given here
};

// Throws UsageError naming the field when a value is out of range.
void grpo_check_config(const GrpoConfig& cfg);

// The clipped surrogate −min(c1·A, c2·A) of one token as a function of its log-ratio.
struct SurrogateTerm {
    double loss;             // −min(c1·A, c2·A)
    double dloss_dlogratio;  // d loss / d (x − x_old); = d loss / dx at token level
    double ratio;            // c1 after the delta clamp (the ratio TRL's clip metrics use)
    bool clipped_low;        // c1 < 1 − eps_low and A < 0
    bool clipped_high;       // c1 > 1 + eps_high and A > 0
};
SurrogateTerm clipped_surrogate(double log_ratio, double A, const GrpoConfig& cfg);

// KL estimators of KL(pi_theta || pi_ref) per token (Schulman 2020, "Approximating KL Divergence";
// verl core_algos.py kl_penalty), d = x − x_ref:
// k1 = d, k2 = d²/2, k3 = exp(−d) + d − 1 (>= 0; DeepSeekMath's D). No clamps.
enum class KlEstimator { K1, K2, K3 };
struct KlTerm {
    double value;
    double dvalue_dx;  // derivative with respect to the policy log-prob x
};
KlTerm kl_estimate(KlEstimator kind, double x, double x_ref);

struct GrpoResult {
    double loss = 0.0;
    std::vector<double> per_token_loss;  // [B, T] l_{i,t} before the weights; 0 where masked
    std::vector<double> grad_logps;      // [B, T] dLoss/dx; 0 where masked
    std::vector<double> weights;         // [B, T] aggregation weights w_{i,t}
    std::vector<double> ratio;           // [B, T] c1 (delta-clamped; s_i broadcast at sequence level)
    std::vector<double> kl_per_token;    // [B, T] k3 (0 where masked or without ref_logps)
    double clip_ratio_low = 0.0;         // masked token means of the clip indicators (TRL's clip_ratio/*)
    double clip_ratio_high = 0.0;
    double clip_ratio_region = 0.0;
    double kl = 0.0;                     // Σ m·k3 / max(Σ m, 1)
};

// logps, old_logps, ref_logps, advantages, mask: [B, T] row-major.
// old_logps empty: on-policy, x_old = x (ratio 1, gradient still flows through it).
// ref_logps empty: allowed only with beta = 0 (kl is then 0).
// advantages are per token (outcome supervision broadcasts A_i to its row; process supervision does not).
// mask: 0/1 (padding and tokens after EOS are 0); empty = all active.
GrpoResult grpo_loss(const std::vector<double>& logps, const std::vector<double>& old_logps,
                     const std::vector<double>& ref_logps, const std::vector<double>& advantages,
                     const std::vector<double>& mask, int64_t B, int64_t T, const GrpoConfig& cfg);

// The aggregation weights w_{i,t} of the table above. weights: [B, T] · mask: [B, T]
std::vector<double> grpo_weights(const std::vector<double>& mask, int64_t B, int64_t T, const GrpoConfig& cfg);

}  // namespace dsref
