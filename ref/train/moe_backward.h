// moe_backward.h — the DeepSeekMoE layer (router, routed experts, shared experts) and its balance
// loss, forward and backward, for training (DeepSeek-V3 report §2.1.2 eqs 12–16 and 17–20; V2 report
// §2.2.3; the official inference/model.py Gate / MoE; the routing rules are moe/moe_gate.h's).
//
//   z = x W_gateᵀ [T, E],  s = sigmoid(z) (V3) or softmax(z) (V2),  u = s + b (noaux_tc) or s
//   idx = top-K of u (with the group limit of moe/moe_gate.h)        ← a DECISION, not differentiated
//   g_k = c · s_{idx_k} / Σ_j s_{idx_j}  (normalized)  or  c · s_{idx_k}  (c = routed_scaling_factor)
//   y = Σ_k g_k · Expert_{idx_k}(x) + Shared(x)
//
// Which gradients flow (the choice every MoE trainer makes, and the official code's autograd would
// make): the selection idx is piecewise constant in z, so it has no gradient; the router learns
// only through the combine weights g (dg_k = dy · Expert_{idx_k}(x), then through the normalization
// and the sigmoid/softmax into z and W_gate) and through the balance loss. The bias b is used only for
// selection, so it gets NO gradient: it moves by the aux-loss-free update (moe/moe_balance.h,
// aux_free_bias_update) after each step. Experts see only their routed tokens, each scaled by g_k.
//
// Balance loss (one sequence; V3 eqs 17–20, V2's expert-level loss with s' = s since softmax already
// sums to 1): L = α Σ_i f_i P_i, P_i = (1/T) Σ_t s'_{i,t}, s' = s / Σ_j s_j. f (the routed fraction)
// is a count and constant; dL/ds_{j,t} = (α/T)(f_j − Σ_i f_i s'_{i,t}) / Σ_i s_{i,t}.
//
// V2's device-level and communication balance losses (V2 report §2.2.3, eqs 26–28 and 29–31; the
// forward formulas are moe/moe_balance.h's v2_device_balance_loss / v2_comm_balance_loss), one
// sequence, s = the softmax affinities (not renormalized), D devices holding E/D consecutive experts
// each (device d(i) = i / (E/D)), P_i = (1/T) Σ_t s_{i,t}, P'_d = Σ_{i∈d} P_i:
//   L_DevBal  = α2 Σ_d f'_d P'_d,   f'_d  = (1/|d|) Σ_{i∈d} f_i                         (eqs 26–28)
//   L_CommBal = α3 Σ_d f''_d P'_d,  f''_d = D/(M·T) · #{t : token t is routed to d}      (eqs 29–31)
// f' and f'' are counts of the routing decision, constant like f, so the gradients are
//   dL_DevBal/ds_{j,t} = α2 f'_{d(j)} / T,   dL_CommBal/ds_{j,t} = α3 f''_{d(j)} / T.
#pragma once
#include <cstdint>
#include <vector>

#include "moe/moe_gate.h"
#include "train/dense_backward.h"

namespace dsref {

// The layer's weights (float32 or double), in the HF names' order. Shared experts are one SwiGLU MLP
// of width I_s = n_shared_experts · I (nullptr when there are none).
template <class F> struct MoeTrainWeights {
    const F* w_router = nullptr;                   // [E, d]  mlp.gate.weight
    const float* bias = nullptr;                   // [E]     e_score_correction_bias (nullptr: none)
    std::vector<const F*> w_gate, w_up, w_down;    // E × [I, d], [I, d], [d, I]
    const F *s_gate = nullptr, *s_up = nullptr, *s_down = nullptr;  // [I_s, d], [I_s, d], [d, I_s]
    int64_t I = 0, I_s = 0;
};
template <class F> struct MoeTrainGrads {               // accumulated (+=), same shapes as MoeTrainWeights
    F* w_router = nullptr;
    std::vector<F*> w_gate, w_up, w_down;
    F *s_gate = nullptr, *s_up = nullptr, *s_down = nullptr;
};
template <class F> struct MoeTrainCache {
    std::vector<F> s;                  // [T, E] affinities
    std::vector<int32_t> idx;          // [T, K] routing decision
    std::vector<F> w;                  // [T, K] combine weights
    std::vector<std::vector<int64_t>> rows;  // per expert: the (t·K + k) slots routed to it, ascending
    std::vector<std::vector<F>> ex_in, ex_out;  // per expert: gathered inputs [n_e, d], outputs [n_e, d]
    std::vector<MlpCache<F>> ex_cache;
    MlpCache<F> shared;
};

// y: [T, d] out · x: [T, d] · g: the gate rules (E, K, groups, scoring, normalization)
template <class F>
void moe_fwd(F* y, MoeTrainCache<F>& c, const F* x, const MoeTrainWeights<F>& w, const MoeGateConfig& g, int64_t T,
             int64_t d);
// dx: [T, d] out · grads += · dy: [T, d] · ds_extra: [T, E] extra gradient on s (the balance loss'),
// or nullptr
template <class F>
void moe_bwd(F* dx, MoeTrainGrads<F>& gr, const F* dy, const F* ds_extra, const MoeTrainCache<F>& c, const F* x,
             const MoeTrainWeights<F>& w, const MoeGateConfig& g, int64_t T, int64_t d);

// The balance loss of one sequence; returns L and writes ds: [T, E] (+=) · s: [T, E] · idx: [T, K]
template <class F>
double balance_loss_fwd_bwd(F* ds, const F* s, const int32_t* idx, int64_t T, int64_t E, int64_t K, double alpha);

// V2's device-level loss L_DevBal of one sequence (above); returns it and adds dL/ds into ds: [T, E]
// (nullptr: the loss only) · s: [T, E] · idx: [T, K] · D devices, E % D == 0 (else an error)
template <class F>
double device_balance_loss_fwd_bwd(F* ds, const F* s, const int32_t* idx, int64_t T, int64_t E, int64_t K, int64_t D,
                                   double alpha2);
// V2's communication loss L_CommBal of one sequence (above), as device_balance_loss_fwd_bwd · M: the
// device limit of the routing, in [1, D]
template <class F>
double comm_balance_loss_fwd_bwd(F* ds, const F* s, const int32_t* idx, int64_t T, int64_t E, int64_t K, int64_t D,
                                 int64_t M, double alpha3);

// The weights of the balance losses a MoE layer trains with. `alpha` is V3's sequence-wise α (or V2's
// expert-level α1: the same loss on softmax affinities); alpha_device (α2) and alpha_comm (α3) are V2's
// device-level and communication losses over D devices with the device limit M (the gate's n_group and
// topk_group). Built implicitly from a double, which sets `alpha` alone (the V3 recipe).
struct BalanceLossWeights {
    double alpha = 0, alpha_device = 0, alpha_comm = 0;
    int64_t D = 1, M = 1;
    BalanceLossWeights(double a = 0) : alpha(a) {}  // implicit on purpose: a bare α is the V3 recipe
    bool any() const { return alpha > 0 || alpha_device > 0 || alpha_comm > 0; }
};
// The weighted sum of the three losses of one sequence (each term only when its weight is > 0); adds
// their gradient into ds: [T, E] (nullptr: the loss only)
template <class F>
double balance_losses_fwd_bwd(F* ds, const F* s, const int32_t* idx, int64_t T, int64_t E, int64_t K,
                              const BalanceLossWeights& w);

}  // namespace dsref
