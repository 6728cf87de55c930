// eplb.cpp — expert-parallel load balancer: replication and balanced packing, hierarchical and global.
#include "moe/eplb.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"

namespace dsref {

EplbPolicy parse_eplb_policy(const std::string& s) {
    if (s == "auto") return EplbPolicy::Auto;
    if (s == "hierarchical") return EplbPolicy::Hierarchical;
    if (s == "global") return EplbPolicy::Global;
    fail("eplb: policy '", s, "' is not one of auto | hierarchical | global");
}

void eplb_balanced_packing(int32_t* pack, int32_t* rank, const double* w, int64_t n, int64_t P) {
    if (P < 1 || n % P != 0) fail("eplb: ", n, " items cannot be packed evenly into ", P, " packs");
    const int64_t per = n / P;
    std::vector<int64_t> order(n);  // items, heaviest first, ties to the lower index
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return w[a] > w[b]; });
    std::vector<double> load(P, 0.0);  // [P]
    std::vector<int64_t> items(P, 0);  // [P]
    for (int64_t i : order) {
        int64_t best = -1;  // the lightest pack with room, ties to the lower pack index
        for (int64_t p = 0; p < P; p++)
            if (items[p] < per && (best < 0 || load[p] < load[best])) best = p;
        pack[i] = (int32_t)best;
        rank[i] = (int32_t)items[best];
        items[best]++;
        load[best] += w[i];
    }
}

void eplb_replicate(int32_t* phy2log, int32_t* phy_rank, int32_t* cnt, const double* w, int64_t n, int64_t R) {
    if (R < n) fail("eplb: ", R, " physical slots cannot hold ", n, " experts");
    for (int64_t j = 0; j < n; j++) {
        phy2log[j] = (int32_t)j;
        phy_rank[j] = 0;
        cnt[j] = 1;
    }
    for (int64_t j = n; j < R; j++) {
        int64_t best = 0;  // the largest load per replica, ties to the lower index
        for (int64_t i = 1; i < n; i++)
            if (w[i] / cnt[i] > w[best] / cnt[best]) best = i;
        phy2log[j] = (int32_t)best;
        phy_rank[j] = cnt[best];
        cnt[best]++;
    }
}

// One layer of the hierarchical policy (the global policy is G = N = 1).
// w: [E] · phy2log, phy_rank: [R] out · logcnt: [E] out
static void rebalance_layer(const double* w, int64_t E, int64_t R, int64_t G, int64_t N, int64_t gpus,
                            int32_t* phy2log, int32_t* phy_rank, int32_t* logcnt) {
    const int64_t group_size = E / G, groups_per_node = G / N, E_node = E / N, R_node = R / N;
    const int64_t gpus_per_node = gpus / N, R_gpu = R / gpus;

    // 1. groups → nodes. A "node-major" expert order mlog lists node 0's experts, then node 1's...
    std::vector<double> group_load(G, 0.0);
    for (int64_t e = 0; e < E; e++) group_load[e / group_size] += w[e];
    std::vector<int32_t> gpack(G), grank(G);
    eplb_balanced_packing(gpack.data(), grank.data(), group_load.data(), G, N);
    std::vector<int64_t> log2mlog(E), mlog2log(E);
    for (int64_t e = 0; e < E; e++) {
        const int64_t g = e / group_size;
        log2mlog[e] = (gpack[g] * groups_per_node + grank[g]) * group_size + e % group_size;
        mlog2log[log2mlog[e]] = e;
    }

    std::vector<int32_t> mlogcnt(E);  // replicas per expert, in mlog order
    for (int64_t node = 0; node < N; node++) {
        // 2. replicate the node's experts into its R_node slots
        std::vector<double> wn(E_node);  // [E_node] loads of this node's experts
        for (int64_t j = 0; j < E_node; j++) wn[j] = w[mlog2log[node * E_node + j]];
        std::vector<int32_t> p2m(R_node), prank(R_node);
        eplb_replicate(p2m.data(), prank.data(), mlogcnt.data() + node * E_node, wn.data(), E_node, R_node);

        // 3. pack the node's physical experts onto its GPUs by load per replica
        std::vector<double> wp(R_node);  // [R_node]
        for (int64_t j = 0; j < R_node; j++) wp[j] = wn[p2m[j]] / mlogcnt[node * E_node + p2m[j]];
        std::vector<int32_t> pack(R_node), rank(R_node);
        eplb_balanced_packing(pack.data(), rank.data(), wp.data(), R_node, gpus_per_node);
        for (int64_t j = 0; j < R_node; j++) {
            const int64_t slot = node * R_node + pack[j] * R_gpu + rank[j];  // GPU-major physical slot
            phy2log[slot] = (int32_t)mlog2log[node * E_node + p2m[j]];
            phy_rank[slot] = prank[j];
        }
    }
    for (int64_t e = 0; e < E; e++) logcnt[e] = mlogcnt[log2mlog[e]];
}

EplbPlan eplb_rebalance(const double* weight, int64_t layers, int64_t E, int64_t num_replicas, int64_t num_groups,
                        int64_t num_nodes, int64_t num_gpus, EplbPolicy policy) {
    if (layers < 1 || E < 1) fail("eplb: weight must be [layers >= 1, E >= 1], got [", layers, ", ", E, "]");
    if (num_groups < 1 || num_nodes < 1 || num_gpus < 1)
        fail("eplb: num_groups, num_nodes and num_gpus must be >= 1");
    if (num_replicas < E) fail("eplb: num_replicas = ", num_replicas, " is smaller than the ", E, " experts");
    if (num_replicas % num_gpus != 0)
        fail("eplb: num_replicas = ", num_replicas, " is not divisible by num_gpus = ", num_gpus);
    for (int64_t j = 0; j < layers * E; j++)
        if (!std::isfinite(weight[j]) || weight[j] < 0)
            fail("eplb: weight[", j / E, ", ", j % E, "] = ", weight[j], " is not a finite non-negative load");
    const bool hier = policy == EplbPolicy::Hierarchical || (policy == EplbPolicy::Auto && num_groups % num_nodes == 0);
    const int64_t G = hier ? num_groups : 1, N = hier ? num_nodes : 1;
    if (hier) {
        if (E % num_groups != 0) fail("eplb: ", E, " experts are not divisible into num_groups = ", num_groups);
        if (num_groups % num_nodes != 0)
            fail("eplb: the hierarchical policy needs num_groups (", num_groups, ") divisible by num_nodes (", num_nodes, ")");
        if (num_gpus % num_nodes != 0)
            fail("eplb: num_gpus = ", num_gpus, " is not divisible by num_nodes = ", num_nodes);
    }

    EplbPlan plan;
    plan.layers = layers;
    plan.E = E;
    plan.R = num_replicas;
    plan.hierarchical = hier;
    plan.phy2log.resize(layers * num_replicas);
    plan.phy_rank.resize(layers * num_replicas);
    plan.logcnt.resize(layers * E);
    // Layers are independent; each is one work unit, so the result does not depend on the thread count.
    // (A layer costs about R·E operations; small problems stay on one thread.)
#pragma omp parallel for schedule(dynamic, 1) if (layers * num_replicas * E >= (1 << 16))
    for (int64_t l = 0; l < layers; l++)
        rebalance_layer(weight + l * E, E, num_replicas, G, N, num_gpus, plan.phy2log.data() + l * num_replicas,
                        plan.phy_rank.data() + l * num_replicas, plan.logcnt.data() + l * E);

    plan.max_cnt = *std::max_element(plan.logcnt.begin(), plan.logcnt.end());
    plan.log2phy.assign(layers * E * plan.max_cnt, -1);
    for (int64_t l = 0; l < layers; l++)
        for (int64_t j = 0; j < num_replicas; j++) {
            const int64_t e = plan.phy2log[l * num_replicas + j], r = plan.phy_rank[l * num_replicas + j];
            plan.log2phy[(l * E + e) * plan.max_cnt + r] = (int32_t)j;
        }
    return plan;
}

}  // namespace dsref
