// adamw.h — the optimizer side of training: AdamW, global-norm gradient clipping and the learning-rate
// schedules.
//
// AdamW (Loshchilov & Hutter 2019, "Decoupled Weight Decay Regularization", Alg. 2), exactly as
// torch.optim.AdamW (amsgrad off) computes it, step k = 1, 2, ...:
//   p ← p · (1 − lr·wd)                                   decoupled decay, before the moment update
//   m ← β1 m + (1 − β1) g,   v ← β2 v + (1 − β2) g²
//   p ← p − (lr / (1 − β1^k)) · m / ( √v / √(1 − β2^k) + eps )
// Weight decay applies to every parameter of rank ≥ 2 (matrices, embeddings) and never to a vector
// (norm weights, biases): the caller passes wd = 0 for those (adamw_decays).
//
// Clipping as torch.nn.utils.clip_grad_norm_: n = ‖all gradients‖₂ (one global norm, summed in
// double), coef = min(1, C / (n + 1e-6)), every gradient × coef; returns n (the value logged as
// grad_norm, before clipping).
//
// Schedules (step k = 0-based, N steps, W warmup steps): every schedule starts with the linear warmup
// lr·(k+1)/W for k < W; then
//   constant  lr
//   cosine    lr · (f + (1 − f) · ½(1 + cos(π (k − W)/(N − W))))      f = --min-lr-frac
//   deepseek  lr until 80 % of N, 0.316·lr until 90 %, 0.1·lr after    (DeepSeek LLM paper §2.3:
//             the multi-step schedule, ×0.316 after 80 % and ×0.1 after 90 % of the tokens)
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace dsref {

struct AdamWConfig {
    double lr = 1e-3, beta1 = 0.9, beta2 = 0.95, eps = 1e-8, weight_decay = 0.1;
};

// One tensor's AdamW state; m and v start at 0.
template <class F> struct AdamWState {
    std::vector<F> m, v;
};

// true when a tensor of this shape gets weight decay (rank ≥ 2)
bool adamw_decays(const std::vector<int64_t>& shape);

// One AdamW step for one tensor. p: [n] in/out · g: [n] · step: k ≥ 1 (the step counter after this
// step, as torch's state["step"]) · lr: this step's learning rate · wd: this tensor's weight decay
template <class F>
void adamw_step(F* p, const F* g, AdamWState<F>& s, int64_t n, int64_t step, double lr, double wd,
                const AdamWConfig& c);

// Global-norm clipping over all tensors; returns the norm before clipping. C ≤ 0: no clipping.
// grads: the gradient tensors, each [sizes[i]], scaled in place
template <class F> double clip_grad_norm(const std::vector<F*>& grads, const std::vector<int64_t>& sizes, double C);

enum class LrSchedule { Constant, Cosine, DeepSeek };
LrSchedule parse_lr_schedule(const std::string& s);  // "constant" | "cosine" | "deepseek"; else fail()
// the learning rate of 0-based step k of N, warmup W
double lr_at(LrSchedule s, double lr, int64_t k, int64_t N, int64_t W, double min_lr_frac);

}  // namespace dsref
