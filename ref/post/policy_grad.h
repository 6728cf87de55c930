// policy_grad.h — the GRPO objective of a batch of sampled completions, and its gradient with respect
// to every weight of the tiny V3 policy (DeepSeekMath arXiv 2402.03300 §4.1.1 eq. 3; R1 paper
// arXiv 2501.12948 §2.2.1 eq. 1), through dsref's own backward passes:
//
//   x[i,t]   = log_softmax(z[i,t] / τ)[y[i,t]]      the completion's log-probs (rl/logprob.h's math)
//   Loss     = grpo_loss(x, x_old, x_ref, A, mask)   rl/grpo.h: clipped ratio, β·k3, loss_type weights
//   dLoss/dz = (g[i,t] / τ)(1[j = y] − p_j)          g = dLoss/dx from grpo_loss (rl/logprob.h)
//   dLoss/dθ = tiny_v3_step_head's backward of dLoss/dz, row by row, accumulated
//
// Row i of the batch is one sequence: prompt (n_prompt[i] ids) then its completion (m_i ids, the
// end-of-sequence token included when one was sampled). The model reads ids[0 .. n−2]; position t
// predicts ids[t+1], so completion token j is predicted at position n_prompt − 1 + j. The [B, T]
// tensors are padded to T = max m_i; mask is 1 on the m_i completion tokens of each row.
//
// The loss is separable over rows once grpo_loss has given g, so the backward runs one row at a time
// (a second forward of the row, then its backward); the gradients are accumulated in row order, which
// keeps the result bit-identical at any thread count.
#pragma once
#include <cstdint>
#include <vector>

#include "rl/grpo.h"
#include "train/tiny_v3.h"

namespace dsref {

struct PolicyBatch {
    int64_t B = 0, T = 0;                   // rows, padded completion width
    std::vector<std::vector<int32_t>> seqs; // [B] prompt + completion ids
    std::vector<int64_t> n_prompt;          // [B] prompt lengths (>= 1)
    std::vector<double> mask;               // [B, T] 1 on completion tokens
};

// Builds the batch (B, T and mask) from the rows; each row needs a prompt and at least one completion id.
PolicyBatch make_policy_batch(const std::vector<std::vector<int32_t>>& prompts,
                              const std::vector<std::vector<int32_t>>& completions);

// log_softmax(z / τ)[y] of one row, and optionally dz = (g/τ)(1[j = y] − p_j). z: [V] · dz: [V] out or nullptr
template <class F> double token_logprob(const F* z, int64_t V, int32_t y, double tau, double g, F* dz);

// x: [B, T] the completion log-probs under the weights p (0 where masked).
template <class F>
std::vector<double> policy_logps(const TinyV3Config& c, const ParamMap<F>& p, const PolicyBatch& b, double tau);

struct PolicyStep {
    GrpoResult grpo;            // loss, dLoss/dx, ratios, clip fractions, KL
    std::vector<double> logps;  // [B, T] x under the weights p
};

// The loss of grpo_loss(x, old, ref, adv, mask) with x = policy_logps(p); with `grads`, dLoss/dθ is
// added to it. old, ref: [B, T] or empty (rl/grpo.h) · adv: [B, T] per-token advantages.
template <class F>
PolicyStep grpo_policy_step(const TinyV3Config& c, const ParamMap<F>& p, ParamMap<F>* grads, const PolicyBatch& b,
                            const std::vector<double>& old_logps, const std::vector<double>& ref_logps,
                            const std::vector<double>& adv, const GrpoConfig& cfg, double tau);

}  // namespace dsref
