// expert_parallel.cpp — the communication-free steps of expert-parallel MoE (the algorithm and why it is
// bit-identical to moe_forward: expert_parallel.h).
#include "moe/expert_parallel.h"

#include <algorithm>
#include <numeric>

#include "core/error.h"
#include "core/linear.h"
#include "core/swiglu.h"

namespace dsref {

EpPlacement ep_placement_plain(int64_t E, int64_t P) {
    if (E < 1 || P < 1 || E % P != 0) fail("expert parallel: ", E, " experts cannot be split evenly over ", P, " ranks");
    EpPlacement pl;
    pl.E = E;
    pl.R = E;
    pl.P = P;
    pl.phy2log.resize(E);
    pl.replicas.assign(E, {});
    for (int64_t e = 0; e < E; e++) {
        pl.phy2log[e] = (int32_t)e;
        pl.replicas[e].push_back((int32_t)e);
    }
    return pl;
}

EpPlacement ep_placement_from_eplb(const EplbPlan& plan, int64_t layer, int64_t P) {
    if (layer < 0 || layer >= plan.layers) fail("expert parallel: EPLB plan has no layer ", layer);
    if (P < 1 || plan.R % P != 0)
        fail("expert parallel: EPLB's ", plan.R, " physical experts cannot be split evenly over ", P, " ranks");
    EpPlacement pl;
    pl.E = plan.E;
    pl.R = plan.R;
    pl.P = P;
    pl.phy2log.assign(plan.phy2log.begin() + layer * plan.R, plan.phy2log.begin() + (layer + 1) * plan.R);
    pl.replicas.assign(plan.E, {});
    for (int64_t s = 0; s < plan.R; s++) {
        const int32_t e = pl.phy2log[s];
        if (e < 0 || e >= plan.E) fail("expert parallel: EPLB slot ", s, " holds expert ", e, ", outside [0, ", plan.E, ")");
        pl.replicas[e].push_back((int32_t)s);
    }
    for (int64_t e = 0; e < plan.E; e++)
        if (pl.replicas[e].empty()) fail("expert parallel: EPLB plan places no replica of expert ", e);
    return pl;
}

std::vector<int64_t> ep_token_shards(int64_t T, int64_t P) {
    if (T < 0 || P < 1) fail("expert parallel: bad shard request T = ", T, ", ranks = ", P);
    const int64_t tiles = (T + kTileT - 1) / kTileT;
    std::vector<int64_t> b(P + 1);
    for (int64_t r = 0; r <= P; r++) b[r] = std::min(T, (r * tiles / P) * kTileT);
    return b;
}

std::vector<int64_t> ep_expert_counts(const int32_t* topk_idx, int64_t T, int64_t K, int64_t E) {
    std::vector<int64_t> c(E, 0);
    for (int64_t i = 0; i < T * K; i++) {
        if (topk_idx[i] < 0 || topk_idx[i] >= E) fail("expert parallel: topk_idx ", topk_idx[i], " outside [0, ", E, ")");
        c[topk_idx[i]]++;
    }
    return c;
}

EpDispatchPlan ep_dispatch_plan(const int32_t* topk_idx, int64_t T, int64_t K, const std::vector<int64_t>& all_counts,
                                int rank, const EpPlacement& pl) {
    const int64_t E = pl.E, P = pl.P;
    if ((int64_t)all_counts.size() != P * E)
        fail("expert parallel: all_counts has ", all_counts.size(), " entries, expected ranks·experts = ", P * E);
    if (rank < 0 || rank >= P) fail("expert parallel: rank ", rank, " outside [0, ", P, ")");
    // the first global position of this rank's rows of each expert: the rows of lower ranks come first
    std::vector<int64_t> next(E, 0);  // [E]
    for (int64_t r = 0; r < rank; r++)
        for (int64_t e = 0; e < E; e++) next[e] += all_counts[r * E + e];

    EpDispatchPlan p;
    p.T = T;
    p.K = K;
    p.P = P;
    p.send_counts.assign(P, 0);
    std::vector<int32_t> slot(T * K);  // [T, K] the replica slot of each (t, k)
    for (int64_t i = 0; i < T * K; i++) {  // row-major (t, k): local token order within each expert
        const int32_t e = topk_idx[i];
        const std::vector<int32_t>& reps = pl.replicas[e];
        const int64_t j = next[e]++;  // global position among expert e's rows
        slot[i] = reps[(j / kTileT) % (int64_t)reps.size()];
        p.send_counts[pl.slot_rank(slot[i])]++;
    }
    std::vector<int64_t> start(P + 1, 0);  // exclusive prefix sum of send_counts
    for (int64_t r = 0; r < P; r++) start[r + 1] = start[r] + p.send_counts[r];
    p.send_token.resize(T * K);
    p.send_slot.resize(T * K);
    p.pair_pos.resize(T * K);
    for (int64_t i = 0; i < T * K; i++) {
        const int64_t pos = start[pl.slot_rank(slot[i])]++;
        p.send_token[pos] = i / K;
        p.send_slot[pos] = slot[i];
        p.pair_pos[i] = pos;
    }
    return p;
}

void ep_pack_rows(float* send, const float* x, const EpDispatchPlan& p, int64_t d) {
    for (size_t i = 0; i < p.send_token.size(); i++)
        std::copy(x + p.send_token[i] * d, x + (p.send_token[i] + 1) * d, send + (int64_t)i * d);
}

void ep_local_experts(float* ys, const float* xs, const int32_t* slots, int64_t n, const EpPlacement& pl,
                      const MoeWeights& w) {
    const int64_t d = w.d;
    for (int64_t i = 0; i < n; i++)
        if (slots[i] < 0 || slots[i] >= pl.R)
            fail("expert parallel: received a row for slot ", slots[i], ", outside [0, ", pl.R, ")");
    // stable sort by slot: the rows of each slot stay in receive order = source rank order = global order
    std::vector<int64_t> order(n);  // [n] receive index of each sorted row
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return slots[a] < slots[b]; });
    std::vector<float> xb(n * d), yb(n * d);  // [n, d] rows in slot blocks, and the experts' outputs
    for (int64_t i = 0; i < n; i++) std::copy(xs + order[i] * d, xs + (order[i] + 1) * d, xb.data() + i * d);
    std::vector<int64_t> block_begin;  // start of each slot's block in the sorted order
    for (int64_t i = 0; i < n; i++)
        if (i == 0 || slots[order[i]] != slots[order[i - 1]]) block_begin.push_back(i);
    block_begin.push_back(n);
    // one slot per work unit, as moe_experts_forward: the same calls whichever thread runs them
    const int64_t blocks = (int64_t)block_begin.size() - 1;
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t b = 0; b < blocks; b++) {
        const int64_t o = block_begin[b], cnt = block_begin[b + 1] - o;
        const int32_t s = slots[order[o]];
        const int32_t e = pl.phy2log[s];
        swiglu_forward(yb.data() + o * d, xb.data() + o * d, w.w_gate[e].data(), w.w_up[e].data(), w.w_down[e].data(),
                       cnt, d, w.I);
    }
    for (int64_t i = 0; i < n; i++) std::copy(yb.data() + i * d, yb.data() + (i + 1) * d, ys + order[i] * d);
}

void ep_combine(float* y, const float* back, const float* topk_weight, const EpDispatchPlan& p, int64_t d,
                const float* shared) {
    MoeDispatch md;  // moe_combine reads only T, K and token_slot: here the position of (t, k)'s result
    md.T = p.T;
    md.K = p.K;
    md.token_slot = p.pair_pos;
    moe_combine(y, back, topk_weight, md, d, shared);
}

}  // namespace dsref
