// eplb.h — the expert-parallel load balancer: given each expert's measured load, decide which experts
// get extra copies ("redundant experts", DeepSeek-V3 report §3.4) and on which GPU every copy lives.
// Written from the public description of deepseek-ai/EPLB and checked against its published example
// (tests/test_eplb.cpp); no code is taken from it.
//
// Words: a LOGICAL expert is one of the model's E experts; a PHYSICAL expert is one replica placed on a
// GPU. R = num_replicas physical slots are spread evenly over num_gpus GPUs (R / num_gpus each);
// GPUs are grouped into num_nodes nodes; the E experts form num_groups groups of consecutive ids (the
// gate's n_group, whose group-limited routing keeps a token's experts on few nodes).
//
// Two building blocks:
//   balanced packing   n weighted items into P packs of exactly n/P items: items in decreasing weight
//                      (ties: lower index first) each go to the lightest pack that still has room
//                      (ties: lower pack index).
//   replication        start with one replica per expert; R − E times, give one more replica to the
//                      expert with the largest load per replica, load_i / cnt_i (ties: lower index).
//
// Hierarchical policy (when num_groups % num_nodes == 0):
//   1. pack the groups onto nodes by group load (Σ of their experts' loads), num_groups/num_nodes each,
//      so that nodes get similar load and a group's experts stay on one node;
//   2. inside each node, replicate its E/num_nodes experts into R/num_nodes physical experts;
//   3. inside each node, pack those physical experts onto its GPUs by load per replica
//      (load_i / cnt_i), R/num_gpus per GPU.
// Global policy (otherwise, or when asked): the same with one group and one node — replicate over all
// experts, then pack onto all GPUs.
//
// Outputs per layer: phy2log [R] (the logical expert in each physical slot, slots of GPU g are
// [g·R/num_gpus, (g+1)·R/num_gpus)), logcnt [E] (replicas per expert), phy_rank [R] (which replica of
// its expert a slot is), and log2phy [E, max_cnt] (the slots of each expert by replica rank, padded
// with −1; max_cnt is the largest logcnt over all layers).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace dsref {

enum class EplbPolicy { Auto, Hierarchical, Global };
EplbPolicy parse_eplb_policy(const std::string& s);  // "auto" | "hierarchical" | "global"

struct EplbPlan {
    int64_t layers = 0, E = 0, R = 0, max_cnt = 0;
    bool hierarchical = false;       // which policy ran
    std::vector<int32_t> phy2log;    // [layers, R]
    std::vector<int32_t> phy_rank;   // [layers, R]
    std::vector<int32_t> logcnt;     // [layers, E]
    std::vector<int32_t> log2phy;    // [layers, E, max_cnt], −1 padded
};

// weight: [layers, E] non-negative loads (finite). Throws Error naming the parameter when the sizes
// do not divide as the policy needs.
EplbPlan eplb_rebalance(const double* weight, int64_t layers, int64_t E, int64_t num_replicas, int64_t num_groups,
                        int64_t num_nodes, int64_t num_gpus, EplbPolicy policy = EplbPolicy::Auto);

// The building blocks, for tests and the walkthrough.
// pack, rank: [n] out (the pack of each item and its position inside the pack) · w: [n] · n % P == 0
void eplb_balanced_packing(int32_t* pack, int32_t* rank, const double* w, int64_t n, int64_t P);
// phy2log, phy_rank: [R] out · cnt: [n] out · w: [n] · R >= n. Slot j < n holds expert j.
void eplb_replicate(int32_t* phy2log, int32_t* phy_rank, int32_t* cnt, const double* w, int64_t n, int64_t R);

}  // namespace dsref
