// expert_parallel.h — the MoE layer split over P ranks by expert (expert parallelism, DeepSeek-V3 report
// §3.4 "Inference and Deployment": EP with redundant experts; the dispatch/combine structure of moe.h).
// The algorithm is written once here, with no communication library: the MPI twin on the CPU
// (tests/ep/test_ep_mpi.cpp) and the NCCL version on GPUs (cuda/ep_nccl.cu) call these steps and move
// the buffers with their own all-to-all. tests/test_expert_parallel.cpp runs all ranks in one process.
//
// Per rank r (holding tokens [tok_begin[r], tok_begin[r+1]) of the batch, and the physical expert slots
// [r·S, (r+1)·S) with S = R/P):
//   1. gate      routing of the local tokens (moe_gate_forward), local counts [E] per logical expert
//   2. counts    all-gather of the counts → all_counts [P, E]                        (exchange #1)
//   3. plan      for every local (t, k): its global position j among the rows of expert e = idx[t, k]
//                (rows of lower ranks first, then local token order), its replica
//                replicas[e][(j / kTileT) mod cnt_e], the rank holding that slot; rows grouped by
//                destination rank → send_counts [P], the send buffer order
//   4. dispatch  all-to-all of send_counts (exchange #2), then all-to-all-v of the rows x[t] and their
//                slot ids (exchange #3)
//   5. experts   received rows sorted stably by slot (so each slot's rows are in global order), one
//                SwiGLU of the slot's logical expert over each slot's block, results put back in
//                receive order
//   6. combine   all-to-all-v back (the reverse counts, exchange #4); y[t] = Σ_k g[t,k]·row(t,k) + shared
//                in the fixed k order of moe_combine
//
// Bit-identical to the single-process moe_forward, by construction (tests check it, and `make test-ep`
// over MPI with 1, 2, 4 ranks):
//   - token shards are whole kTileT-row tiles (linear.h), so the gate's logits and the shared expert on a
//     shard are the same tiles as in the full batch;
//   - an expert with several replicas gets its global row list cut into kTileT-row chunks, chunk c going to
//     replica c mod cnt: each replica's block is then a sequence of whole tiles of the single-process
//     block (only the very last chunk is partial, and it is last on its replica too), and linear_forward's
//     result for a tile depends only on the tile's rows;
//   - the combine is moe_combine itself, reading the returned rows.
// This replica rule is a pinned choice (ref/README.md): real systems pick a replica per token by
// locality or hashing; the chunk rule balances the same way at tile granularity and keeps the bits.
#pragma once
#include <cstdint>
#include <vector>

#include "core/swiglu.h"
#include "moe/eplb.h"
#include "moe/moe.h"

namespace dsref {

// Which rank holds each physical expert slot, and the replicas of each logical expert.
struct EpPlacement {
    int64_t E = 0, R = 0, P = 0;                 // logical experts, physical slots, ranks (R % P == 0)
    std::vector<int32_t> phy2log;                // [R] the logical expert in each slot
    std::vector<std::vector<int32_t>> replicas;  // [E] the slots of each expert, ascending
    int64_t slots_per_rank() const { return R / P; }
    int slot_rank(int64_t slot) const { return (int)(slot / (R / P)); }
};
// No redundancy: R = E, expert e on rank e / (E/P). Throws when E % P != 0.
EpPlacement ep_placement_plain(int64_t E, int64_t P);
// From one layer of an EPLB plan (its R slots spread over P ranks; plan.R % P == 0, every expert placed).
EpPlacement ep_placement_from_eplb(const EplbPlan& plan, int64_t layer, int64_t P);

// tok_begin [P + 1]: rank r holds tokens [tok_begin[r], tok_begin[r+1]), whole kTileT tiles, the tiles
// spread as evenly as possible (the last rank may hold a partial tile; ranks may hold none).
std::vector<int64_t> ep_token_shards(int64_t T, int64_t P);

// Steps 2–3 for one rank.
struct EpDispatchPlan {
    int64_t T = 0, K = 0, P = 0;        // local tokens, top-k, ranks
    std::vector<int64_t> send_counts;   // [P] rows sent to each rank
    std::vector<int64_t> send_token;    // [Σ send_counts] local token of each row, grouped by destination
    std::vector<int32_t> send_slot;     // [Σ send_counts] the physical slot each row is for
    std::vector<int64_t> pair_pos;      // [T, K] position of (t, k) in the send buffer (and of its result)
};
// topk_idx: [T, K] of this rank · all_counts: [P, E] rows routed to each expert by each rank
EpDispatchPlan ep_dispatch_plan(const int32_t* topk_idx, int64_t T, int64_t K, const std::vector<int64_t>& all_counts,
                                int rank, const EpPlacement& pl);
// Local counts per logical expert [E] of topk_idx [T, K] (what step 2 exchanges).
std::vector<int64_t> ep_expert_counts(const int32_t* topk_idx, int64_t T, int64_t K, int64_t E);

// Step 4's packing. send: [Σ send_counts, d] out · x: [T, d] the local tokens
void ep_pack_rows(float* send, const float* x, const EpDispatchPlan& p, int64_t d);

// Step 5. ys: [n, d] out, in receive order · xs: [n, d] received rows · slots: [n] their slots (all on this
// rank) · w: the full layer's weights (only the experts of this rank's slots are read)
void ep_local_experts(float* ys, const float* xs, const int32_t* slots, int64_t n, const EpPlacement& pl,
                      const MoeWeights& w);

// Step 6. y: [T, d] out · back: [Σ send_counts, d] the results in send order · topk_weight: [T, K] ·
// shared: [T, d] or nullptr
void ep_combine(float* y, const float* back, const float* topk_weight, const EpDispatchPlan& p, int64_t d,
                const float* shared);

// The whole layer on one rank: steps 1–6 with the exchanges done by `comm`, which provides
//   comm.allgather(const int64_t* mine [n], int64_t* all [P·n], n)
//   comm.alltoall(const int64_t* send [P], int64_t* recv [P])          one count to and from each rank
//   comm.alltoallv(const float* send, const int64_t* send_rows [P], float* recv, const int64_t* recv_rows [P],
//                  int64_t row_elems)                                  rows of row_elems floats
//   comm.alltoallv_i32(...)                                            the same for int32 rows of one element
// (an MPI version in tests/ep/test_ep_mpi.cpp). y: [T, d] out · x: [T, d] this rank's tokens.
template <typename Comm>
MoeRouting ep_moe_forward(float* y, const float* x, int64_t T, const MoeGateConfig& g, const MoeWeights& w,
                          const EpPlacement& pl, int rank, Comm& comm) {
    moe_weights_check(w, g);
    const int64_t d = w.d, K = g.K, E = g.E, P = pl.P;
    MoeRouting r = moe_gate_forward(x, w.gate.data(), w.bias.empty() ? nullptr : w.bias.data(), T, d, g);  // 1
    const std::vector<int64_t> mine = ep_expert_counts(r.topk_idx.data(), T, K, E);
    std::vector<int64_t> all(P * E);
    comm.allgather(mine.data(), all.data(), E);  // 2
    const EpDispatchPlan p = ep_dispatch_plan(r.topk_idx.data(), T, K, all, rank, pl);  // 3
    std::vector<int64_t> recv_counts(P);
    comm.alltoall(p.send_counts.data(), recv_counts.data());  // 4
    int64_t n_recv = 0;
    for (int64_t c : recv_counts) n_recv += c;
    std::vector<float> send(T * K * d), recv(n_recv * d), ys(n_recv * d), back(T * K * d);
    std::vector<int32_t> recv_slot(n_recv);
    ep_pack_rows(send.data(), x, p, d);
    comm.alltoallv(send.data(), p.send_counts.data(), recv.data(), recv_counts.data(), d);
    comm.alltoallv_i32(p.send_slot.data(), p.send_counts.data(), recv_slot.data(), recv_counts.data());
    ep_local_experts(ys.data(), recv.data(), recv_slot.data(), n_recv, pl, w);  // 5
    comm.alltoallv(ys.data(), recv_counts.data(), back.data(), p.send_counts.data(), d);  // 6
    std::vector<float> shared;  // [T, d]
    if (w.I_shared > 0) {
        shared.resize(T * d);
        swiglu_forward(shared.data(), x, w.shared_gate.data(), w.shared_up.data(), w.shared_down.data(), T, d,
                       w.I_shared);
    }
    ep_combine(y, back.data(), r.topk_weight.data(), p, d, shared.empty() ? nullptr : shared.data());
    return r;
}

}  // namespace dsref
