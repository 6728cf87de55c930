// test_expert_parallel.cpp — expert-parallel MoE (ref/moe/expert_parallel.h) with P ranks simulated by P
// threads in one process: the same driver ep_moe_forward that the MPI twin (tests/ep/test_ep_mpi.cpp,
// `make test-ep`) runs, with an in-memory all-to-all. Every token's output must equal the single-process
// moe_forward bit for bit (expert_parallel.h says why it can), with and without EPLB's redundant experts.
#include <catch2/catch.hpp>

#include <condition_variable>
#include <cstring>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "core/linear.h"
#include "ep_fixture.h"
#include "moe/expert_parallel.h"

using namespace dsref;
using namespace dsref_test;

namespace {

// P threads meeting at barriers; each collective publishes pointers, waits, copies, waits.
struct Hub {
    int P;
    std::mutex m;
    std::condition_variable cv;
    int arrived = 0;
    int64_t generation = 0;
    std::vector<const void*> ptr;
    std::vector<const int64_t*> cnt;
    explicit Hub(int p) : P(p), ptr(p), cnt(p) {}
    void barrier() {
        std::unique_lock<std::mutex> lk(m);
        const int64_t gen = generation;
        if (++arrived == P) {
            arrived = 0;
            generation++;
            cv.notify_all();
        } else {
            cv.wait(lk, [&] { return generation != gen; });
        }
    }
};
struct ThreadComm {
    Hub* h;
    int rank;
    void allgather(const int64_t* mine, int64_t* all, int64_t n) {
        h->ptr[rank] = mine;
        h->barrier();
        for (int r = 0; r < h->P; r++) std::memcpy(all + r * n, h->ptr[r], n * sizeof(int64_t));
        h->barrier();
    }
    void alltoall(const int64_t* send, int64_t* recv) {
        h->ptr[rank] = send;
        h->barrier();
        for (int r = 0; r < h->P; r++) recv[r] = static_cast<const int64_t*>(h->ptr[r])[rank];
        h->barrier();
    }
    template <typename T>
    void alltoallv_t(const T* send, const int64_t* send_rows, T* recv, const int64_t* recv_rows, int64_t elems) {
        h->ptr[rank] = send;
        h->cnt[rank] = send_rows;
        h->barrier();
        int64_t out = 0;
        for (int r = 0; r < h->P; r++) {  // rows from rank r, placed in source-rank order
            int64_t off = 0;              // where r's rows for me start in r's send buffer
            for (int q = 0; q < rank; q++) off += h->cnt[r][q];
            // Catch2's assertion macros are not thread-safe: a mismatch is an exception, which run_ep
            // rethrows on the main thread.
            if (h->cnt[r][rank] != recv_rows[r]) throw std::runtime_error("alltoallv: row counts disagree");
            if (recv_rows[r] > 0)  // an empty buffer may be a null pointer, which memcpy may not be given
                std::memcpy(recv + out * elems, static_cast<const T*>(h->ptr[r]) + off * elems,
                            recv_rows[r] * elems * sizeof(T));
            out += recv_rows[r];
        }
        h->barrier();
    }
    void alltoallv(const float* s, const int64_t* sc, float* r, const int64_t* rc, int64_t elems) {
        alltoallv_t(s, sc, r, rc, elems);
    }
    void alltoallv_i32(const int32_t* s, const int64_t* sc, int32_t* r, const int64_t* rc) {
        alltoallv_t(s, sc, r, rc, 1);
    }
};

// Runs the layer on P threads; returns y [T, d] assembled from the shards.
std::vector<float> run_ep(const EpLayer& L, const std::vector<float>& x, int64_t T, const EpPlacement& pl) {
    const int64_t d = L.w.d, P = pl.P;
    const std::vector<int64_t> b = ep_token_shards(T, P);
    std::vector<float> y(T * d, -1.0f);
    Hub hub((int)P);
    std::vector<std::exception_ptr> err(P);
    std::vector<std::thread> th;
    for (int r = 0; r < P; r++)
        th.emplace_back([&, r] {
            try {
                ThreadComm c{&hub, r};
                const int64_t Tr = b[r + 1] - b[r];
                ep_moe_forward(y.data() + b[r] * d, x.data() + b[r] * d, Tr, L.g, L.w, pl, r, c);
            } catch (...) {
                err[r] = std::current_exception();
            }
        });
    for (auto& t : th) t.join();
    for (auto& e : err)
        if (e) std::rethrow_exception(e);
    return y;
}

}  // namespace

TEST_CASE("ep_token_shards: whole kTileT tiles, in order, covering the batch", "[ep]") {
    for (int64_t T : {0, 1, 63, 64, 65, 130, 600})
        for (int64_t P : {1, 2, 3, 4, 8}) {
            const std::vector<int64_t> b = ep_token_shards(T, P);
            REQUIRE(b.size() == (size_t)P + 1);
            CHECK(b[0] == 0);
            CHECK(b[P] == T);
            for (int64_t r = 0; r < P; r++) {
                CHECK(b[r] <= b[r + 1]);
                if (b[r] < T) CHECK(b[r] % kTileT == 0);  // a shard starts on a tile boundary
            }
        }
    // 130 tokens = 3 tiles over 4 ranks: one rank holds nothing (the driver must cope)
    CHECK(ep_token_shards(130, 4) == std::vector<int64_t>{0, 0, 64, 128, 130});
}

TEST_CASE("ep_dispatch_plan: chunks of kTileT rows of an expert go round-robin to its replicas", "[ep]") {
    // 1 rank, 1 token, K = 1 would be trivial: use 2 ranks, expert 0 with replicas in slots 0 and 2 of 4
    EpPlacement pl;
    pl.E = 2;
    pl.R = 4;
    pl.P = 2;
    pl.phy2log = {0, 1, 0, 1};
    pl.replicas = {{0, 2}, {1, 3}};
    // rank 1 has 100 rows of expert 0; rank 0 had 50 before it: global positions 50..149
    const int64_t T = 100;
    std::vector<int32_t> idx(T, 0);
    const std::vector<int64_t> all = {50, 0, 100, 0};
    const EpDispatchPlan p = ep_dispatch_plan(idx.data(), T, 1, all, 1, pl);
    // positions 50..63 → chunk 0 → slot 0 (rank 0); 64..127 → chunk 1 → slot 2 (rank 1); 128..149 → slot 0
    CHECK(p.send_counts == std::vector<int64_t>{14 + 22, 64});
    for (int64_t t = 0; t < T; t++) {
        const int64_t j = 50 + t;
        const int32_t want = (j / 64) % 2 == 0 ? 0 : 2;
        CHECK(p.send_slot[p.pair_pos[t]] == want);
        CHECK(p.send_token[p.pair_pos[t]] == t);
    }
}

TEST_CASE("expert parallel over 1, 2, 4 simulated ranks equals moe_forward bit for bit", "[ep]") {
    const EpLayer L = ep_layer();
    const int64_t d = L.w.d;
    for (int64_t T : {1, 130, 600}) {
        const std::vector<float> x = ep_tokens(T, d, (uint64_t)T);
        std::vector<float> y_ref(T * d);
        std::vector<int64_t> load;
        moe_forward(y_ref.data(), x.data(), T, L.g, L.w, &load);
        for (bool redundant : {false, true})
            for (int64_t P : {1, 2, 4}) {
                INFO("T = " << T << ", ranks = " << P << (redundant ? ", EPLB redundant experts" : ""));
                const EpPlacement pl = ep_test_placement(load, L.g.E, P, redundant);
                if (redundant) {  // the case really has replicas, and at T = 600 a replicated expert spans chunks
                    int64_t most = 0;
                    for (const auto& r : pl.replicas) most = std::max<int64_t>(most, (int64_t)r.size());
                    CHECK(most >= 2);
                }
                const std::vector<float> y = run_ep(L, x, T, pl);
                CHECK(std::memcmp(y.data(), y_ref.data(), y.size() * sizeof(float)) == 0);
            }
    }
}

TEST_CASE("expert parallel: placements refuse what they cannot split", "[ep]") {
    CHECK_THROWS_WITH(ep_placement_plain(16, 3), Catch::Contains("cannot be split evenly over 3 ranks"));
    std::vector<double> wl(16, 1.0);
    const EplbPlan plan = eplb_rebalance(wl.data(), 1, 16, 24, 4, 1, 4);
    CHECK_THROWS_WITH(ep_placement_from_eplb(plan, 0, 5), Catch::Contains("cannot be split evenly over 5 ranks"));
    CHECK_THROWS_WITH(ep_placement_from_eplb(plan, 1, 4), Catch::Contains("no layer 1"));
}
