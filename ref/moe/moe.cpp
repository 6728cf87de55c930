// moe.cpp — DeepSeekMoE layer: gate, explicit dispatch/combine over the routed experts, shared expert
// (the math and precision are in moe.h).
#include "moe/moe.h"

#include <algorithm>
#include <exception>

#include "core/error.h"
#include "core/scratch.h"
#include "core/swiglu.h"

namespace dsref {

static void check_size(const std::vector<float>& v, int64_t n, const std::string& name) {
    if ((int64_t)v.size() != n) fail("moe: weight '", name, "' has ", v.size(), " elements, expected ", n);
}

void moe_weights_check(const MoeWeights& w, const MoeGateConfig& g, bool experts) {
    const int64_t E = g.E, d = w.d, I = w.I;
    if (d < 1 || I < 1) fail("moe: hidden_size and moe_intermediate_size must be >= 1, got ", d, " and ", I);
    if (w.I_shared < 0) fail("moe: the shared expert width must be >= 0, got ", w.I_shared);
    check_size(w.gate, E * d, "gate.weight");
    if (!experts) {
        if (!w.w_gate.empty() || !w.w_up.empty() || !w.w_down.empty())
            fail("moe: streamed experts, but the weights hold ", w.w_gate.size(), " routed experts");
    } else if ((int64_t)w.w_gate.size() != E || (int64_t)w.w_up.size() != E || (int64_t)w.w_down.size() != E)
        fail("moe: expected ", E, " routed experts, got ", w.w_gate.size());
    for (int64_t e = 0; experts && e < E; e++) {
        const std::string p = "experts." + std::to_string(e) + ".";
        check_size(w.w_gate[e], I * d, p + "gate_proj.weight");
        check_size(w.w_up[e], I * d, p + "up_proj.weight");
        check_size(w.w_down[e], d * I, p + "down_proj.weight");
    }
    check_size(w.shared_gate, w.I_shared * d, "shared_experts.gate_proj.weight");
    check_size(w.shared_up, w.I_shared * d, "shared_experts.up_proj.weight");
    check_size(w.shared_down, d * w.I_shared, "shared_experts.down_proj.weight");
    moe_gate_check(g, w.bias.empty() ? -1 : (int64_t)w.bias.size());
}

// LAB(moe_layer) task: from the counts, the dispatch plan (moe.h): offsets = the exclusive prefix sum of counts [E + 1],
// LAB(moe_layer) slot_token[slot] = the token in that slot, token_slot[t * K + k] = the slot of (t, k); inside each expert's
// LAB(moe_layer) block the slots are in (t, k) row-major order.
// LAB(moe_layer) hint: keep a next-free-slot cursor per expert, starting at its offset.
MoeDispatch moe_dispatch_plan(const int32_t* topk_idx, int64_t T, int64_t K, int64_t E) {
    MoeDispatch p;
    p.T = T;
    p.K = K;
    p.E = E;
    p.counts.assign(E, 0);
    for (int64_t j = 0; j < T * K; j++) {  // 1. count
        if (topk_idx[j] < 0 || topk_idx[j] >= E)
            fail("moe dispatch: topk_idx[", j / K, ", ", j % K, "] = ", topk_idx[j], " is outside [0, ", E, ")");
        p.counts[topk_idx[j]]++;
    }
    // LAB(moe_layer): begin
    p.offsets.assign(E + 1, 0);  // 2. exclusive prefix sum
    for (int64_t e = 0; e < E; e++) p.offsets[e + 1] = p.offsets[e] + p.counts[e];
    p.slot_token.resize(T * K);  // 3. slots, in (t, k) row-major order inside each expert block
    p.token_slot.resize(T * K);
    std::vector<int64_t> fill(p.offsets.begin(), p.offsets.end() - 1);  // [E] next free slot
    for (int64_t t = 0; t < T; t++)
        for (int64_t k = 0; k < K; k++) {
            const int64_t slot = fill[topk_idx[t * K + k]]++;
            p.slot_token[slot] = t;
            p.token_slot[t * K + k] = slot;
        }
    // LAB(moe_layer): end
    return p;
}

void moe_permute(float* xs, const float* x, const MoeDispatch& p, int64_t d) {
#pragma omp parallel for schedule(static) if (p.T * p.K * d >= kMoeParallelMin)
    for (int64_t slot = 0; slot < p.T * p.K; slot++)
        std::copy(x + p.slot_token[slot] * d, x + (p.slot_token[slot] + 1) * d, xs + slot * d);
}

void moe_experts_forward(float* ys, const float* xs, const MoeDispatch& p, const MoeWeights& w) {
    // One expert per work unit. An expert's block is computed by the same calls whichever thread runs
    // it (the parallel regions inside linear_forward are nested here, so they run on that one thread;
    // they are tile-deterministic anyway).
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t e = 0; e < p.E; e++) {
        const int64_t n = p.counts[e], o = p.offsets[e];
        if (n == 0) continue;
        swiglu_forward(ys + o * w.d, xs + o * w.d, w.w_gate[e].data(), w.w_up[e].data(), w.w_down[e].data(), n, w.d,
                       w.I);
    }
}

// LAB(moe_layer) task: y[t] = sum_k g[t, k] * ys[token_slot[t, k]] + shared[t] (when shared is not nullptr) (moe.h, V3 report eq. 12).
// LAB(moe_layer) hint: accumulate a row in double in the fixed order k = 0..K-1, then the shared expert, then round once.
void moe_combine(float* y, const float* ys, const float* topk_weight, const MoeDispatch& p, int64_t d,
                 const float* shared) {
    // LAB(moe_layer): begin
#pragma omp parallel for schedule(static) if (p.T * p.K * d >= kMoeParallelMin)
    for (int64_t t = 0; t < p.T; t++) {
        std::vector<double> acc(d, 0.0);  // [d]
        for (int64_t k = 0; k < p.K; k++) {  // fixed order k = 0..K-1
            const double g = topk_weight[t * p.K + k];
            const float* row = ys + p.token_slot[t * p.K + k] * d;
            for (int64_t c = 0; c < d; c++) acc[c] += g * row[c];
        }
        if (shared)
            for (int64_t c = 0; c < d; c++) acc[c] += shared[t * d + c];
        for (int64_t c = 0; c < d; c++) y[t * d + c] = (float)acc[c];
    }
    // LAB(moe_layer): end
}

void moe_experts_forward_streamed(float* ys, const float* xs, const MoeDispatch& p, int64_t d, int64_t I,
                                  const MoeExpertFetch& fetch, const MoeExpertPrefetch* prefetch) {
    std::vector<int64_t> used;  // the experts some token is routed to, in id order
    for (int64_t e = 0; e < p.E; e++)
        if (p.counts[e] > 0) used.push_back(e);
    if (prefetch && *prefetch) (*prefetch)(used);
    std::exception_ptr err;  // an exception may not leave a parallel region: the first one is rethrown
#pragma omp parallel if (used.size() > 1)
    {
        std::vector<float> buf(3 * I * d);  // this thread's w_gate, w_up [I, d] and w_down [d, I], reused
#pragma omp for schedule(dynamic, 1)
        for (size_t u = 0; u < used.size(); u++) {
            const int64_t e = used[u], n = p.counts[e], o = p.offsets[e];
            try {
                fetch(e, buf.data(), buf.data() + I * d, buf.data() + 2 * I * d);
                swiglu_forward(ys + o * d, xs + o * d, buf.data(), buf.data() + I * d, buf.data() + 2 * I * d, n, d, I);
            } catch (...) {
#pragma omp critical(dsref_moe_stream_err)
                if (!err) err = std::current_exception();
            }
        }
    }
    if (err) std::rethrow_exception(err);
}

// The layer around the routed experts: gate, dispatch, `experts` (held or streamed), shared, combine.
static MoeRouting moe_forward_impl(float* y, const float* x, int64_t T, const MoeGateConfig& g, const MoeWeights& w,
                                   const MoeExpertFetch* fetch, std::vector<int64_t>* expert_load,
                                   const MoeExpertPrefetch* prefetch) {
    moe_weights_check(w, g, fetch == nullptr);
    const int64_t d = w.d, K = g.K;
    MoeRouting r = moe_gate_forward(x, w.gate.data(), w.bias.empty() ? nullptr : w.bias.data(), T, d, g);

    const MoeDispatch p = moe_dispatch_plan(r.topk_idx.data(), T, K, g.E);
    Scratch xs(T * K * d), ys(T * K * d);  // [T·K, d] rows in expert order, and the experts' outputs (all written)
    moe_permute(xs.data(), x, p, d);
    if (fetch)
        moe_experts_forward_streamed(ys.data(), xs.data(), p, d, w.I, *fetch, prefetch);
    else
        moe_experts_forward(ys.data(), xs.data(), p, w);

    const bool has_shared = w.I_shared > 0;
    Scratch shared(has_shared ? T * d : 0);  // [T, d] the shared expert's output (written in full), added with weight 1
    if (has_shared)
        swiglu_forward(shared.data(), x, w.shared_gate.data(), w.shared_up.data(), w.shared_down.data(), T, d,
                       w.I_shared);
    moe_combine(y, ys.data(), r.topk_weight.data(), p, d, has_shared ? shared.data() : nullptr);
    if (expert_load) *expert_load = p.counts;
    return r;
}

MoeRouting moe_forward(float* y, const float* x, int64_t T, const MoeGateConfig& g, const MoeWeights& w,
                       std::vector<int64_t>* expert_load) {
    return moe_forward_impl(y, x, T, g, w, nullptr, expert_load, nullptr);
}

MoeRouting moe_forward_streamed(float* y, const float* x, int64_t T, const MoeGateConfig& g, const MoeWeights& w,
                                const MoeExpertFetch& fetch, std::vector<int64_t>* expert_load,
                                const MoeExpertPrefetch* prefetch) {
    return moe_forward_impl(y, x, T, g, w, &fetch, expert_load, prefetch);
}

}  // namespace dsref
