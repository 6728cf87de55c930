// moe_balance.h — how DeepSeekMoE keeps its experts evenly loaded during training (DeepSeek-V2 report
// §2.2.2–2.2.3; DeepSeek-V3 report §2.1.2, §4.2).
// None of this changes inference; it is here so the training-time math can be checked and taught.
//
// Notation for one sequence of T tokens, E routed experts, K selected per token, s_{i,t} the gate's
// affinities and 1[t→i] = 1 when token t's routing selected expert i (the actual decision):
//
//   load          c_i = Σ_t 1[t→i]                                  (tokens per expert)
//   fraction      f_i = E / (K·T) · c_i                             (1 for every expert when balanced)
//
// V3 (DeepSeek-V3 report §2.1.2, eqs 16–20):
//   aux-loss-free bias  b_i += γ · sign(c̄ − c_i)  after each step (c̄ = mean load; sign(0) = 0):
//                       an overloaded expert's selection score drops, an idle one's rises.
//   sequence-wise loss  L_Bal = α Σ_i f_i P_i,  P_i = (1/T) Σ_t s'_{i,t},  s'_{i,t} = s_{i,t} / Σ_j s_{j,t}
//                       (sigmoid affinities renormalized over ALL experts; the indicator in f is the
//                       experts actually selected — the report writes TopK of raw s, but training
//                       code uses the routing decision, which differs once the bias is non-zero).
//
// V2 (DeepSeek-V2 report §2.2.3), s = softmax affinities, D devices holding E/D consecutive experts:
//   expert-level   L_ExpBal  = α1 Σ_i f_i P_i,        P_i = (1/T) Σ_t s_{i,t}
//   device-level   L_DevBal  = α2 Σ_d f'_d P'_d,      f'_d = mean_{i∈d} f_i,  P'_d = Σ_{i∈d} P_i
//   communication  L_CommBal = α3 Σ_d f''_d P''_d,    f''_d = D/(M·T) · #{t : t sends a token to d},
//                                                       P''_d = Σ_{i∈d} P_i
//   device-limited routing: each token may use at most M devices (those with the highest single
//   affinity), then its top-K inside them — exactly the group_limited_greedy gate with
//   n_group = D, topk_group = M (V2: D = 8, M = 3).
//
// Sums are in double.
#pragma once
#include <cstdint>
#include <vector>

namespace dsref {

// c_i. topk_idx: [T, K] → [E]
std::vector<int64_t> expert_load(const int32_t* topk_idx, int64_t T, int64_t K, int64_t E);

// f_i = E/(K·T) · c_i. topk_idx: [T, K] → [E]
std::vector<double> expert_fraction(const int32_t* topk_idx, int64_t T, int64_t K, int64_t E);

// P_i = (1/T) Σ_t s_{i,t}, optionally with s renormalized per token over all experts (V3's s').
// scores: [T, E] → [E]
std::vector<double> mean_affinity(const float* scores, int64_t T, int64_t E, bool renormalize);

// Summary of a load vector: MaxVio = (max − mean) / mean is the imbalance measure of the
// aux-loss-free paper (Wang et al. 2024, "Auxiliary-Loss-Free Load Balancing ...").
struct LoadStats {
    double mean = 0, min = 0, max = 0, max_violation = 0;
};
LoadStats load_stats(const std::vector<int64_t>& load);

// V3 sequence-wise loss. scores: [T, E] sigmoid affinities · topk_idx: [T, K]
double v3_seq_aux_loss(const float* scores, const int32_t* topk_idx, int64_t T, int64_t E, int64_t K, double alpha);

// b_i += γ·sign(mean(load) − load_i). bias: [E] in/out · load: [E]
void aux_free_bias_update(float* bias, const int64_t* load, int64_t E, double gamma);

// V2 losses. scores: [T, E] softmax affinities · topk_idx: [T, K] · D devices (E % D == 0) · M the
// device limit used by the communication loss.
double v2_expert_balance_loss(const float* scores, const int32_t* topk_idx, int64_t T, int64_t E, int64_t K,
                              double alpha1);
double v2_device_balance_loss(const float* scores, const int32_t* topk_idx, int64_t T, int64_t E, int64_t K,
                              int64_t D, double alpha2);
double v2_comm_balance_loss(const float* scores, const int32_t* topk_idx, int64_t T, int64_t E, int64_t K, int64_t D,
                            int64_t M, double alpha3);

// Device-limited routing. topk_idx: [T, K] out, by score descending, ties to the lower id ·
// scores: [T, E] · the experts of device d are [d·E/D, (d+1)·E/D).
void device_limited_topk(int32_t* topk_idx, const float* scores, int64_t T, int64_t E, int64_t D, int64_t M,
                         int64_t K);

}  // namespace dsref
