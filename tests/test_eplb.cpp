// test_eplb.cpp — covers ref/moe/eplb.cpp and the `eplb` op: the public deepseek-ai/EPLB example reproduced
// exactly, the two building blocks on hand examples, structural invariants of every plan (hierarchical
// and global, many random sizes), and bad parameters.
#include <catch2/catch.hpp>
#include <random>

#include "core/error.h"
#include "moe/eplb.h"
#include "ops/op_registry.h"
#include "test_util.h"

using namespace dsref;

namespace {
// The example published with deepseek-ai/EPLB: 2 layers × 12 experts, 16 replicas, 4 groups,
// 2 nodes, 8 GPUs (2 physical experts per GPU).
const std::vector<double> kLoads = {90, 132, 40, 61, 104, 165, 39, 4, 73, 56, 183, 86,
                                    20, 107, 104, 64, 19, 197, 187, 157, 172, 86, 16, 27};
const std::vector<int32_t> kPhy2log = {5, 6, 5, 7, 8, 4, 3, 4, 10, 9, 10, 2, 0, 1, 11, 1,
                                       7, 10, 6, 8, 6, 11, 8, 9, 2, 4, 5, 1, 5, 0, 3, 1};

// Every plan must be a consistent placement, whatever the policy.
void check_plan(const EplbPlan& p, const double* w, int64_t groups, int64_t nodes) {
    for (int64_t l = 0; l < p.layers; l++) {
        int64_t total = 0;
        for (int64_t e = 0; e < p.E; e++) {
            const int32_t cnt = p.logcnt[l * p.E + e];
            CHECK(cnt >= 1);  // every expert keeps at least one copy
            total += cnt;
            for (int64_t r = 0; r < p.max_cnt; r++) {  // log2phy lists exactly cnt slots, then −1
                const int32_t slot = p.log2phy[(l * p.E + e) * p.max_cnt + r];
                if (r < cnt) {
                    REQUIRE(slot >= 0);
                    REQUIRE(slot < p.R);
                    CHECK(p.phy2log[l * p.R + slot] == e);
                    CHECK(p.phy_rank[l * p.R + slot] == r);
                } else {
                    CHECK(slot == -1);
                }
            }
        }
        CHECK(total == p.R);
        // A heavier expert never has fewer replicas than a lighter one.
        for (int64_t a = 0; a < p.E; a++)
            for (int64_t b = 0; b < p.E; b++)
                if (p.hierarchical == false && w[l * p.E + a] > w[l * p.E + b])
                    CHECK(p.logcnt[l * p.E + a] >= p.logcnt[l * p.E + b]);
        // Hierarchical: every group's experts and all their replicas sit on one node
        // (slots [n·R/nodes, (n+1)·R/nodes) are node n's).
        if (p.hierarchical)
            for (int64_t a = 0; a < p.R; a++)
                for (int64_t b = 0; b < p.R; b++) {
                    const int64_t ga = p.phy2log[l * p.R + a] / (p.E / groups), gb = p.phy2log[l * p.R + b] / (p.E / groups);
                    if (ga == gb) CHECK(a / (p.R / nodes) == b / (p.R / nodes));
                }
    }
}
}  // namespace

TEST_CASE("EPLB reproduces the public example (hierarchical: 4 groups, 2 nodes, 8 GPUs)", "[ref][eplb]") {
    const EplbPlan p = eplb_rebalance(kLoads.data(), 2, 12, 16, 4, 2, 8);
    CHECK(p.hierarchical);
    CHECK(p.phy2log == kPhy2log);
    // Layer 0: experts 1, 4, 5, 10 are replicated (the heaviest per replica); layer 1: 5, 6, 8, 1.
    CHECK(std::vector<int32_t>(p.logcnt.begin(), p.logcnt.begin() + 12) ==
          std::vector<int32_t>{1, 2, 1, 1, 2, 2, 1, 1, 1, 1, 2, 1});
    CHECK(std::vector<int32_t>(p.logcnt.begin() + 12, p.logcnt.end()) ==
          std::vector<int32_t>{1, 2, 1, 1, 1, 2, 2, 1, 2, 1, 1, 1});
    CHECK(p.max_cnt == 2);
    // log2phy of layer 0, expert 5: slots 0 and 2 (phy2log[0] = phy2log[2] = 5); expert 0: slot 12, −1.
    CHECK(p.log2phy[(0 * 12 + 5) * 2 + 0] == 0);
    CHECK(p.log2phy[(0 * 12 + 5) * 2 + 1] == 2);
    CHECK(p.log2phy[(0 * 12 + 0) * 2 + 0] == 12);
    CHECK(p.log2phy[(0 * 12 + 0) * 2 + 1] == -1);
    check_plan(p, kLoads.data(), 4, 2);
}

TEST_CASE("the same example through the eplb op", "[ref][eplb]") {
    std::vector<float> w(kLoads.begin(), kLoads.end());
    const TensorMap in{{"weight", Tensor::from_f32({2, 12}, w)}};
    const OpAttrs a({{"num_replicas", "16"}, {"num_groups", "4"}, {"num_nodes", "2"}, {"num_gpus", "8"}});
    const TensorMap out = run_op("eplb", in, a);
    CHECK(out.at("phy2log").shape == Shape{2, 16});
    CHECK(out.at("log2phy").shape == Shape{2, 12, 2});
    CHECK(out.at("logcnt").shape == Shape{2, 12});
    const Tensor& p = out.at("phy2log");
    CHECK(std::vector<int32_t>(p.i32(), p.i32() + 32) == kPhy2log);
    CHECK_THROWS_AS(run_op("eplb", in, OpAttrs({{"num_replicas", "16"}, {"num_groups", "4"}, {"num_nodes", "2"}})),
                    UsageError);  // num_gpus is required
    OpAttrs bad_policy = a;
    bad_policy.set("policy", "random");
    CHECK_THROWS_AS(run_op("eplb", in, bad_policy), UsageError);
}

TEST_CASE("balanced packing: heaviest first into the lightest pack with room", "[ref][eplb]") {
    // Items 10, 9, 8, 2, 1, 0.5 into 2 packs of 3:
    //   10 → A (0)      9 → B (0)      8 → B (9 < 10)    2 → A (10 < 17)   1 → A (12 < 17)   0.5 → B (A full)
    const double w[6] = {10, 9, 8, 2, 1, 0.5};
    int32_t pack[6], rank[6];
    eplb_balanced_packing(pack, rank, w, 6, 2);
    CHECK(std::vector<int32_t>(pack, pack + 6) == std::vector<int32_t>{0, 1, 1, 0, 0, 1});
    CHECK(std::vector<int32_t>(rank, rank + 6) == std::vector<int32_t>{0, 0, 1, 1, 2, 2});
    CHECK_THROWS_WITH(eplb_balanced_packing(pack, rank, w, 6, 4), Catch::Contains("4 packs"));
}

TEST_CASE("replication: the next replica goes to the largest load per replica", "[ref][eplb]") {
    // Loads 100, 30, 60 into 6 slots: 100 → (50) ; 60 → (30) ; then 100/2 = 50 > 30 → 100 gets a third (33.3).
    const double w[3] = {100, 30, 60};
    int32_t p2l[6], rank[6], cnt[3];
    eplb_replicate(p2l, rank, cnt, w, 3, 6);
    CHECK(std::vector<int32_t>(p2l, p2l + 6) == std::vector<int32_t>{0, 1, 2, 0, 2, 0});
    CHECK(std::vector<int32_t>(rank, rank + 6) == std::vector<int32_t>{0, 0, 0, 1, 1, 2});
    CHECK(std::vector<int32_t>(cnt, cnt + 3) == std::vector<int32_t>{3, 1, 2});
}

TEST_CASE("global policy and random sizes give consistent plans", "[ref][eplb]") {
    // Global: the example's loads with one group and one node.
    const EplbPlan g = eplb_rebalance(kLoads.data(), 2, 12, 16, 4, 2, 8, EplbPolicy::Global);
    CHECK_FALSE(g.hierarchical);
    check_plan(g, kLoads.data(), 4, 2);
    // Auto falls back to global when groups do not divide over nodes (4 groups, 3 nodes).
    const EplbPlan fallback = eplb_rebalance(kLoads.data(), 2, 12, 18, 4, 3, 6);
    CHECK_FALSE(fallback.hierarchical);
    check_plan(fallback, kLoads.data(), 4, 3);
    // The greedy packing keeps the GPUs' loads close: no GPU exceeds the mean by more than the
    // heaviest single replica (largest-first greedy bound).
    std::mt19937_64 rng(3);
    for (int trial = 0; trial < 20; trial++) {
        const int64_t nodes = 1 + rng() % 3, gpn = 1 + rng() % 3, gpus = nodes * gpn;
        const int64_t groups = nodes * (1 + rng() % 3), E = groups * (1 + rng() % 4);
        const int64_t R = gpus * ((E + gpus - 1) / gpus + rng() % 3), L = 2;
        std::vector<double> w(L * E);
        for (double& v : w) v = (double)(rng() % 1000);
        INFO("E=" << E << " R=" << R << " groups=" << groups << " nodes=" << nodes << " gpus=" << gpus);
        for (EplbPolicy pol : {EplbPolicy::Hierarchical, EplbPolicy::Global}) {
            const EplbPlan p = eplb_rebalance(w.data(), L, E, R, groups, nodes, gpus, pol);
            check_plan(p, w.data(), groups, nodes);
            if (pol == EplbPolicy::Global)
                for (int64_t l = 0; l < L; l++) {
                    std::vector<double> gpu_load(gpus, 0.0);
                    double total = 0, heaviest = 0;
                    for (int64_t s = 0; s < R; s++) {
                        const int32_t e = p.phy2log[l * R + s];
                        const double per = w[l * E + e] / p.logcnt[l * E + e];
                        gpu_load[s / (R / gpus)] += per;
                        total += per;
                        heaviest = std::max(heaviest, per);
                    }
                    for (double gl : gpu_load) CHECK(gl <= total / gpus + heaviest + 1e-9);
                }
        }
    }
}

TEST_CASE("bad EPLB parameters are refused with clear messages", "[ref][eplb][errors]") {
    CHECK_THROWS_WITH(eplb_rebalance(kLoads.data(), 2, 12, 10, 4, 2, 2), Catch::Contains("smaller than the 12 experts"));
    CHECK_THROWS_WITH(eplb_rebalance(kLoads.data(), 2, 12, 16, 4, 2, 6), Catch::Contains("num_gpus = 6"));
    CHECK_THROWS_WITH(eplb_rebalance(kLoads.data(), 2, 12, 16, 5, 1, 8), Catch::Contains("num_groups = 5"));
    CHECK_THROWS_WITH(eplb_rebalance(kLoads.data(), 2, 12, 16, 4, 3, 8, EplbPolicy::Hierarchical),
                      Catch::Contains("divisible by num_nodes"));
    std::vector<double> neg = kLoads;
    neg[3] = -1;
    CHECK_THROWS_WITH(eplb_rebalance(neg.data(), 2, 12, 16, 4, 2, 8), Catch::Contains("weight[0, 3]"));
    CHECK_THROWS_WITH(parse_eplb_policy("best"), Catch::Contains("'best'"));
}
