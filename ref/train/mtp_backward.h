// mtp_backward.h — DeepSeek-V3's multi-token prediction module at depth 1 for training: forward, loss
// and hand-written backward (V3 report §2.2, eqs 21–25). The module is decoder layer L of the
// checkpoint (model.layers.{L}.*: embed_tokens, enorm, hnorm, eh_proj, one decoder block whose FFN is
// DeepSeekMoE, shared_head.norm, shared_head.head), as model/mtp.h runs it for inference:
//   x_i  = eh_proj · [enorm(Emb(t_{i+1})) ; hnorm(h_i)]      i = 0..T-2 (embedding first)
//   h'   = Block_L(x)                                       causal over positions 0..T-2
//   L_MTP = CE(shared_head.head · RMSNorm(h'), t_{i+2})     mean over the T−1 positions     (eq. 24)
// and the training loss adds λ · L_MTP (eq. 25, D = 1). h is the main model's final hidden state AFTER
// model.norm (the pinned choice of model/mtp.h), so the MTP gradient reaches the main model through it.
//
// The decoder block here is the same computation as one layer of train/tiny_v3.cpp (RMSNorm → MLA
// (naive) → +, RMSNorm → DeepSeekMoE → +), written once more for layer L's names.
#pragma once
#include <cstdint>
#include <vector>

#include "train/tiny_v3.h"

namespace dsref {

struct MtpLosses {
    double ce = 0, aux = 0;          // L_MTP (unweighted) · the layer's weighted balance losses
    std::vector<int64_t> load;       // tokens routed to each expert [E]
};

// p, grads: as tiny_v3_step (grads nullptr: loss only) · hf: [T, d] the main model's normed final hidden
// state · dhf: [T, d] += λ · ∂L_MTP/∂hf (ignored without grads) · ids, targets: [T] the row's inputs and
// targets (targets[i] = t_{i+1}) · lambda: λ · aux: the MTP layer's balance-loss weights
template <class F>
MtpLosses mtp_fwd_bwd(const TinyV3Config& c, const ParamMap<F>& p, ParamMap<F>* grads, const F* hf, F* dhf,
                      const int32_t* ids, const int32_t* targets, int64_t T, double lambda,
                      const BalanceLossWeights& aux);

}  // namespace dsref
