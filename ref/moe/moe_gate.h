// moe_gate.h — the DeepSeekMoE router: which experts each token goes to, and with what weight
// (DeepSeek-V2 report §2.2.1 eqs 21–22, §2.2.2; DeepSeek-V3 report §2.1.2 eqs 13–16; DeepSeek-V3
// inference/model.py Gate.forward; transformers modeling_deepseek_v3.py DeepseekV3TopkRouter; the V2
// hub remote code, deepseek-ai/DeepSeek-V2 modeling_deepseek.py MoEGate.forward). This header is where
// the routing choices are pinned: the mask value, the weight rules and the tie order.
//
// For one token x [d] and E routed experts (all in float32, see "precision" below):
//
//   1. logits     z = W_gate · x                                  W_gate [E, d], no bias term
//   2. scores     s = softmax(z) over ALL E experts   (V2, V2-Lite: scoring_func = softmax)
//                 s = sigmoid(z)                      (V3, R1:      scoring_func = sigmoid)
//                 s = sqrt(softplus(z))               (V4:          scoring_func = sqrtsoftplus;
//                                                      DeepSeek-V4 inference/model.py Gate.forward,
//                                                      softplus(z) = ln(1 + e^z), evaluated in double)
//   3. selection  u = s + b for noaux_tc (b = e_score_correction_bias [E]), u = s otherwise.
//                 The bias only CHOOSES experts; it never enters a weight.
//   4. groups     the E experts are n_group groups of E/n_group consecutive ids. A group scores as
//                 max_{i∈g} u_i                       (group_limited_greedy, V2)
//                 sum of the top-2 u_i of the group   (noaux_tc, V3)
//                 The topk_group best groups are kept; every expert of another group gets
//                 u = −inf, as in the official Gate.forward and today's DeepseekV3TopkRouter (older
//                 transformers releases and the older hub remote code used 0.0: with a negative bias
//                 an unmasked u can be < 0, and 0.0 then picks an expert of a dropped group; the
//                 golden case data/moe/v3_negbias.safetensors tells the two apart). For V2's softmax
//                 scores (s > 0) the two masks agree. greedy (V2-Lite) ignores groups, as the V2
//                 remote code does. The group-limited top-K is the V2 report's device-limited routing
//                 (§2.2.2: at most M = topk_group devices per token) and the V3 report's node-limited
//                 routing (§2.1.2: nodes ranked by the sum of their top K_r/M affinities, here top-2).
//   5. top-K      the K = num_experts_per_tok experts with the largest masked u.
//   6. weights    g_k = s_{idx_k} (the UNBIASED score), then
//                 noaux_tc (V3 rule, official Gate.forward / DeepseekV3TopkRouter; V3 eq. 13):
//                     if norm_topk_prob: g_k /= Σ_j g_j (over the K selected, also at K = 1)
//                     g_k *= routed_scaling_factor                      (after normalizing)
//                 greedy, group_limited_greedy (V2 rule, remote-code MoEGate.forward; V2 eq. 21):
//                     if K > 1 and norm_topk_prob: g_k /= Σ_j g_j       (and NO scaling)
//                     else:                         g_k *= routed_scaling_factor
//                 The two rules agree on every released checkpoint (V3: normalize then ×2.5;
//                 V2: ×16, V2-Lite: ×1, both without normalization) and differ only on made-up
//                 configs; the rule follows topk_method because each method ships with exactly one
//                 of the two codes (the official code ties normalization to score_func == "sigmoid"
//                 and ignores the flag; it agrees too). The official code adds no 1e-20 to the
//                 denominator (transformers does), and neither do we unless norm_eps says so: with
//                 norm_eps > 0 the divisor is Σ_j g_j + norm_eps (DeepSeek-V4 under --compat hf:
//                 transformers' DeepseekV4TopKRouter / DeepseekV4HashRouter add 1e-20), and a zero sum
//                 gives zero weights instead of an error.
//
// Output order: topk_idx is sorted by the masked selection score u, descending, ties to the lower
// expert id (every reference calls torch.topk, whose order on ties is unspecified, so dsref pins one
// and reports near-ties through the margin below); topk_weight is in the same order. Group ties also go
// to the lower group id.
//
// Precision: logits come from linear_forward in float32 (HF computes the router in fp32, the official
// code in bf16; e_score_correction_bias is float32 in both). sigmoid and exp are evaluated in double
// and rounded once to float; the softmax denominator and the normalization sum Σ_j g_j are
// accumulated in double. u = s + b and the top-2 group sums are float32
// adds, as in the fp32 references. Everything stored is float32.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace dsref {

// Loops over fewer elements than this run on one thread (results are the same either way).
constexpr int64_t kMoeParallelMin = 1 << 15;

enum class MoeScoring { Softmax, Sigmoid, SqrtSoftplus };
enum class MoeTopk { Greedy, GroupLimitedGreedy, NoauxTc };
enum class GroupScore { Max, Top2Sum };  // how a group is ranked (step 4)

struct MoeGateConfig {
    int64_t E = 0;                 // n_routed_experts
    int64_t K = 0;                 // num_experts_per_tok
    int64_t n_group = 1;           // G
    int64_t topk_group = 1;        // Kg
    MoeScoring scoring = MoeScoring::Softmax;
    MoeTopk topk_method = MoeTopk::Greedy;
    bool norm_topk_prob = false;
    double routed_scaling_factor = 1.0;
    double norm_eps = 0.0;         // added to Σ_j g_j before normalizing (transformers' V4 routers: 1e-20)
};

// Parse the HF strings; the error names the field and lists the accepted values.
MoeScoring parse_moe_scoring(const std::string& s);  // "softmax" | "sigmoid" | "sqrtsoftplus"
MoeTopk parse_moe_topk(const std::string& s);        // "greedy" | "group_limited_greedy" | "noaux_tc"
const char* moe_scoring_name(MoeScoring s);
const char* moe_topk_name(MoeTopk m);

// Throws Error naming the field when the gate cannot work: E < 1, K < 1, E % n_group != 0,
// topk_group outside [1, n_group], K larger than the experts the kept groups hold
// (topk_group · E/n_group), noaux_tc with groups of one expert (top-2 needs two), a bias of the wrong
// length, or a bias given to a method that does not use one. bias_len = -1 means "no bias".
void moe_gate_check(const MoeGateConfig& g, int64_t bias_len);

// The router's decisions for T tokens.
struct MoeRouting {
    int64_t T = 0, K = 0, E = 0;
    std::vector<int32_t> topk_idx;    // [T, K] expert ids, by masked selection score, descending
    std::vector<float> topk_weight;   // [T, K] combine weights, same order
    std::vector<float> scores;        // [T, E] s (unbiased affinities)
    std::vector<float> margin;        // [T] the smallest score gap that decided this token's routing:
                                      //     min(group cut gap, gaps between consecutive selected u and to the
                                      //     best unselected u); +inf when there is no such gap
};

// Routing from precomputed logits. logits: [T, E] · bias: [E] or nullptr
MoeRouting moe_route(const float* logits, const float* bias, int64_t T, const MoeGateConfig& g);

// The whole gate. x: [T, d] · w_gate: [E, d] · bias: [E] or nullptr
MoeRouting moe_gate_forward(const float* x, const float* w_gate, const float* bias, int64_t T, int64_t d,
                            const MoeGateConfig& g);

// Hash routing (DeepSeek-V4 hash-MoE layers, `mlp_layer_types: hash_moe`; DeepSeek-V4 inference/model.py
// Gate.forward with self.hash; transformers DeepseekV4HashRouter): the experts of token t are the frozen
// row tid2eid[token_ids[t]] (in the table's order), and only the weights come from the scores:
// g_k = s_{idx_k} (step 2, no bias), then step 6's noaux_tc rule (normalize if norm_topk_prob, then
// × routed_scaling_factor). margin is +inf (nothing was decided by a score).
// logits: [T, E] · tid2eid: [V, K] · token_ids: [T]. An id outside [0, V) or a table entry outside
// [0, E) is an Error naming `what` (the tensor), the row and the entry.
MoeRouting moe_route_hash(const float* logits, const int32_t* tid2eid, int64_t V, const int64_t* token_ids,
                          int64_t T, const MoeGateConfig& g, const std::string& what);

// Steps 4–5 for one token, shared with device-limited routing (moe_balance.h).
// idx: [K] out, sorted by u descending, ties to lower id · u: [E] selection scores ·
// margin: out (may be null), as MoeRouting::margin. n_group = 1 means no group limit.
// u may hold ±inf only where the caller masks; NaN is refused by the callers.
void moe_select_topk(int32_t* idx, float* margin, const float* u, int64_t E, int64_t n_group, int64_t topk_group,
                     int64_t K, GroupScore group_score);

}  // namespace dsref
