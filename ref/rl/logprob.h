// logprob.h — per-token log-probabilities from logits, with temperature, and their backward pass
// (TRL trl/trainer/grpo_trainer.py, GRPOTrainer._get_per_token_logps_and_entropies, and
// trl/trainer/utils.py, selective_log_softmax; the backward below is derived by hand).
//
//   x[b,t] = log_softmax(z[b,t,:] / T)[y[b,t]] = z_y/T − logsumexp_j(z_j/T)
//   dx/dz_j = (1/T)(1[j = y] − p_j),          p = softmax(z/T)
//   H       = −Σ_j p_j log p_j,                dH/dz_j = −(p_j/T)(log p_j + H)
//
// This is how TRL, verl and OpenRLHF turn the model's logits into the policy, old and reference
// log-probs: the same temperature that sampled the completion divides the logits of all three. The
// log-sum-exp subtracts the row maximum, so large logits never overflow. Everything is computed in
// double from float32 logits.
//
// Bad input is refused by name: a NaN or +inf logit anywhere, a sampled token outside [0, V) at an
// active position, or a sampled token whose logit is −inf (probability 0, log-prob −inf). −inf logits
// elsewhere are allowed (a top-k or vocabulary mask). Positions with mask 0 are skipped entirely: their
// token id may be anything (e.g. −100 padding), their log-prob is 0 and they receive no gradient.
#pragma once
#include <cstdint>
#include <vector>

namespace dsref {

// logps: [B, T] out · logits: [B, T, V] · tokens: [B, T] · mask: [B, T] 0/1, or empty = all active
// temperature > 0. Throws dsref::Error naming `logits` or `tokens` on bad input.
void logprobs_forward(std::vector<double>& logps, const float* logits, const int32_t* tokens,
                      const std::vector<double>& mask, int64_t B, int64_t T, int64_t V, double temperature);

// dLoss/dlogits from dLoss/dlogps: grad_logits[b,t,j] = (g[b,t]/T)(1[j = y] − p_j); 0 where mask is 0.
// grad_logits: [B, T, V] out · grad_logps: [B, T] · other arguments as in logprobs_forward
void logprobs_backward(std::vector<double>& grad_logits, const std::vector<double>& grad_logps,
                       const float* logits, const int32_t* tokens, const std::vector<double>& mask, int64_t B,
                       int64_t T, int64_t V, double temperature);

// Entropy of softmax(z/T) for one row, and optionally its gradient dH/dz.
// z: [V] · grad_z: [V] out, or nullptr
double entropy_from_logits(const double* z, int64_t V, double temperature, double* grad_z);

// log_softmax(z/T) of one row, for the walkthrough and tests. logp: [V] out · z: [V]
void log_softmax_row(double* logp, const double* z, int64_t V, double temperature);

}  // namespace dsref
