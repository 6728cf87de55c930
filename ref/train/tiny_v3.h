// tiny_v3.h — a whole DeepSeek-V3-shaped network for training, built from this folder's forward and
// backward pieces: embedding → L × [RMSNorm → MLA (naive) → +, RMSNorm → dense MLP (the first
// `first_dense` layers) or DeepSeekMoE → +] → RMSNorm → lm_head → cross-entropy (+ the balance losses
// of every MoE layer: α · the V3 sequence-wise loss, and V2's device-level and communication losses
// with α2, α3; train/moe_backward.h, BalanceLossWeights). The structure is the official Block /
// Transformer (DeepSeek-V3 inference/model.py) and transformers' DeepseekV3ForCausalLM; tensors carry
// their HF names (model.layers.{i}.self_attn.kv_b_proj.weight, ...), so a checkpoint of them is the HF
// layout. With the V2 gate rules (softmax, greedy / group_limited_greedy, no bias) and q_proj in place
// of the query compression (mla.d_q = 0) it is DeepseekV2ForCausalLM (V2 report §2.1–2.2).
// With n_mtp = 1 the MTP module (layer L, train/mtp_backward.h) adds λ · its loss (V3 report §2.2).
//
// One sequence of T tokens per call (positions 0..T−1). Gradients are accumulated (+=) into `grads`,
// keyed by the same names; the bias e_score_correction_bias (a tensor only under the noaux_tc rule, as
// io/checkpoint_layout.cpp) has none (train/moe_backward.h).
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "moe/moe_gate.h"
#include "train/mla_backward.h"
#include "train/moe_backward.h"

namespace dsref {

struct TinyV3Config {
    int64_t V = 0, d = 0, L = 0, first_dense = 1, I_dense = 0, I_moe = 0, n_shared = 1;
    MlaTrainDims mla;                 // mla.d must equal d
    MoeGateConfig gate;          // E, K, groups, sigmoid / noaux_tc rules
    double eps = 1e-6;           // rms_norm_eps
    bool tie = false;            // tie_word_embeddings
    int64_t n_mtp = 0;           // num_nextn_predict_layers: 0, or 1 (the MTP module as layer L)
};

template <class F> using ParamMap = std::map<std::string, std::vector<F>>;

// whether the MoE layers have the selection bias mlp.gate.e_score_correction_bias (the noaux_tc rule)
bool has_bias(const TinyV3Config& c);

// every parameter's HF name and shape
std::map<std::string, std::vector<int64_t>> tiny_v3_shapes(const TinyV3Config& c);

struct TinyV3Losses {
    double ce = 0, aux = 0, mtp = 0;         // aux: the weighted balance losses, summed · mtp: L_MTP,
                                             // unweighted (0 unless mtp_lambda > 0)
    std::vector<std::vector<int64_t>> load;  // per MoE layer (the MTP layer last): tokens per expert [E]
};

// ids, targets: [T] · grads: nullptr for the loss only · aux: the balance losses' weights (a double: α
// of the sequence-wise loss alone) ·
// mtp_lambda: λ of the MTP loss (needs n_mtp = 1; 0 leaves the MTP module out)
template <class F>
TinyV3Losses tiny_v3_step(const TinyV3Config& c, const ParamMap<F>& p, ParamMap<F>* grads, const int32_t* ids,
                          const int32_t* targets, int64_t T, const BalanceLossWeights& aux, double mtp_lambda = 0.0);

// A batch of rows: row b reads ids[b], targets[b] (each [T]). Each row's gradient goes into its own
// buffer, the rows run in parallel over the OpenMP threads, and `grads` gets their sum in row order
// b = 0, 1, ..., B−1 (not divided by B), so the result is bit-identical at any thread count. Returns the
// rows' losses in row order. grads: nullptr for the losses only (the eval loss).
template <class F>
std::vector<TinyV3Losses> tiny_v3_batch(const TinyV3Config& c, const ParamMap<F>& p, ParamMap<F>* grads,
                                        const std::vector<const int32_t*>& ids,
                                        const std::vector<const int32_t*>& targets, int64_t T, const BalanceLossWeights& aux,
                                        double mtp_lambda = 0.0);

// The same network with any loss of the logits in place of the cross-entropy (the GRPO objective of
// post/policy_grad.h): `loss_head` gets logits [T, V] and returns its loss; when `dlogits` [T, V] is
// not nullptr it writes dLoss/dlogits there, which is then back-propagated. TinyV3Losses::ce holds
// that loss. tiny_v3_step is this with the mean cross-entropy over `targets` as the head.
template <class F> using TinyV3Head = std::function<double(const F* logits, F* dlogits, int64_t T, int64_t V)>;
template <class F>
TinyV3Losses tiny_v3_step_head(const TinyV3Config& c, const ParamMap<F>& p, ParamMap<F>* grads, const int32_t* ids,
                               int64_t T, const BalanceLossWeights& aux, const TinyV3Head<F>& loss_head,
                               const int32_t* targets = nullptr, double mtp_lambda = 0.0);

}  // namespace dsref
