// moe.h — the DeepSeekMoE feed-forward layer (DeepSeekMoE paper, Dai et al. 2024, arXiv 2401.06066,
// §3; V2 report §2.2.1 eq. 20; V3 report §2.1.2 eq. 12; DeepSeek-V3 inference/model.py MoE.forward):
//
//   MoE(x) = Σ_{k<K} g_k · Expert_{idx_k}(x)  +  Shared(x)        (the residual is added outside)
//
// where (idx, g) come from the gate (moe_gate.h), every routed expert is a SwiGLU of width
// moe_intermediate_size, and Shared is ONE SwiGLU of width n_shared_experts · moe_intermediate_size,
// always active and added with weight 1 (routed_scaling_factor never touches it).
//
// The routed part is computed with an explicit dispatch and combine, the structure GPU grouped-GEMM
// kernels and expert parallelism use (tests check it against a direct per-token loop):
//
//   1. count     counts[e]  = #(t, k) with idx[t, k] = e                           [E]
//   2. offsets   offsets[e] = Σ_{e' < e} counts[e']  (exclusive prefix sum)       [E + 1]
//   3. permute   xs[offsets[e] + j] = x[t_j] for the j-th (t, k) routed to e,
//                with (t, k) in row-major order, so every expert's rows are contiguous and in token order
//   4. experts   ys[block e] = SwiGLU_e(xs[block e]), one product per expert over its whole block
//   5. combine   y[t] = Σ_{k = 0..K−1} g[t, k] · ys[slot(t, k)], in that fixed k order
//
// Precision: expert products in float32 (linear_forward); the combine sum and the shared add are
// accumulated in double and rounded once. Threads: experts run in parallel, one expert per work
// unit, and each expert's result does not depend on which thread ran it, so y is bit-identical at
// any thread count.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "moe/moe_gate.h"

namespace dsref {

// One MoE layer's weights as float32 (HF names in the comments, under "model.layers.{i}.mlp.").
struct MoeWeights {
    int64_t d = 0;         // hidden_size
    int64_t I = 0;         // moe_intermediate_size, width of one routed expert
    int64_t I_shared = 0;  // n_shared_experts · moe_intermediate_size (0 = no shared expert)
    std::vector<float> gate;                           // gate.weight [E, d]
    std::vector<float> bias;                           // gate.e_score_correction_bias [E] (noaux_tc), else empty
    std::vector<std::vector<float>> w_gate, w_up;      // experts.{j}.gate_proj / up_proj.weight [E][I, d]
    std::vector<std::vector<float>> w_down;            // experts.{j}.down_proj.weight [E][d, I]
    std::vector<float> shared_gate, shared_up;         // shared_experts.gate_proj / up_proj.weight [I_shared, d]
    std::vector<float> shared_down;                    // shared_experts.down_proj.weight [d, I_shared]
};

// Throws Error naming the tensor when a weight has the wrong number of elements. experts = false:
// the routed experts are streamed (moe_forward_streamed) and w_gate/w_up/w_down must be empty.
void moe_weights_check(const MoeWeights& w, const MoeGateConfig& g, bool experts = true);

// The dispatch plan of steps 1–3, from the gate's topk_idx.
struct MoeDispatch {
    int64_t T = 0, K = 0, E = 0;
    std::vector<int64_t> counts;      // [E] tokens routed to each expert (= the expert load)
    std::vector<int64_t> offsets;     // [E + 1] first slot of each expert's block; offsets[E] = T·K
    std::vector<int64_t> slot_token;  // [T·K] the token whose row sits in each slot
    std::vector<int64_t> token_slot;  // [T, K] the slot holding (t, k)
};

// topk_idx: [T, K] expert ids in [0, E)
MoeDispatch moe_dispatch_plan(const int32_t* topk_idx, int64_t T, int64_t K, int64_t E);
// xs: [T·K, d] out · x: [T, d]
void moe_permute(float* xs, const float* x, const MoeDispatch& p, int64_t d);
// ys: [T·K, d] out · xs: [T·K, d]; every expert's SwiGLU over its contiguous block
void moe_experts_forward(float* ys, const float* xs, const MoeDispatch& p, const MoeWeights& w);
// y: [T, d] out (overwritten) · ys: [T·K, d] · topk_weight: [T, K] · shared: [T, d] added with
// weight 1 in the same double sum, or nullptr
void moe_combine(float* y, const float* ys, const float* topk_weight, const MoeDispatch& p, int64_t d,
                 const float* shared = nullptr);

// The whole layer. y: [T, d] out · x: [T, d]. Returns the routing; `expert_load` (may be null)
// receives the tokens per expert [E].
MoeRouting moe_forward(float* y, const float* x, int64_t T, const MoeGateConfig& g, const MoeWeights& w,
                       std::vector<int64_t>* expert_load = nullptr);

// Streamed experts (a checkpoint too large to hold, V3's 256 experts of 2048 × 7168): the routed
// experts' weights are not held. fetch(e, w_gate, w_up, w_down) writes expert e's three weights
// (w_gate, w_up: [I, d], w_down: [d, I]) into buffers the layer reuses, and is called only for the
// experts some token is routed to, once per forward. It may run on several threads at once (one
// expert per thread, each with its own buffers). Each expert's block is computed by the same calls
// as moe_experts_forward, so ys — and y — are bit-identical to the held-weights path.
using MoeExpertFetch = std::function<void(int64_t e, float* w_gate, float* w_up, float* w_down)>;
// Told, before the first fetch, every expert that will be fetched (ascending): a hint to queue their
// reads (a mapped checkpoint's prefetch); it changes no value.
using MoeExpertPrefetch = std::function<void(const std::vector<int64_t>& experts)>;
// ys: [T·K, d] out · xs: [T·K, d] · prefetch: nullptr for none
void moe_experts_forward_streamed(float* ys, const float* xs, const MoeDispatch& p, int64_t d, int64_t I,
                                  const MoeExpertFetch& fetch, const MoeExpertPrefetch* prefetch = nullptr);
// moe_forward with the routed experts fetched (w's expert vectors empty; gate, bias and shared held).
MoeRouting moe_forward_streamed(float* y, const float* x, int64_t T, const MoeGateConfig& g, const MoeWeights& w,
                                const MoeExpertFetch& fetch, std::vector<int64_t>* expert_load = nullptr,
                                const MoeExpertPrefetch* prefetch = nullptr);

}  // namespace dsref
