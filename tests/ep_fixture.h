// ep_fixture.h — a small DeepSeek-V3-style MoE layer with random weights and a skewed router, shared by
// the expert-parallel tests (tests/test_expert_parallel.cpp in one process, tests/ep/test_ep_mpi.cpp over
// MPI, cuda/test_ep_nccl.cu over NCCL), so all check the same layer against the single-process moe_forward.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "moe/eplb.h"
#include "moe/expert_parallel.h"
#include "moe/moe.h"
#include "moe_fixtures.h"

namespace dsref_test {

// A counter-based N(0,1)-ish draw (sum of 4 uniforms, centred and scaled): deterministic on every rank.
inline float ep_rand(uint64_t seed, uint64_t i) {
    double s = 0;
    for (uint64_t j = 0; j < 4; j++) {
        uint64_t z = seed * 0x9E3779B97F4A7C15ull + i * 4 + j + 1;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        s += (double)(z >> 11) * (1.0 / 9007199254740992.0);
    }
    return (float)((s - 2.0) * std::sqrt(3.0));
}
inline std::vector<float> ep_randv(int64_t n, uint64_t seed, float scale) {
    std::vector<float> v(n);
    for (int64_t i = 0; i < n; i++) v[i] = scale * ep_rand(seed, (uint64_t)i);
    return v;
}

// E = 16 experts in 4 groups (2 kept), top-4, d = 48, I = 32, one shared expert of width 64. Gate rows
// of experts 0–3 are scaled up so that they take most of the load (EPLB then replicates them).
struct EpLayer {
    dsref::MoeGateConfig g = v3_gate(16, 4, 4, 2);
    dsref::MoeWeights w;
};
inline EpLayer ep_layer() {
    EpLayer L;
    const int64_t E = L.g.E, d = 48, I = 32;
    L.w.d = d;
    L.w.I = I;
    L.w.I_shared = 64;
    L.w.gate = ep_randv(E * d, 1, 0.3f);
    for (int64_t e = 0; e < 4; e++)
        for (int64_t c = 0; c < d; c++) L.w.gate[e * d + c] *= 3.0f;
    L.w.bias = ep_randv(E, 2, 0.1f);
    for (int64_t e = 0; e < E; e++) {
        L.w.w_gate.push_back(ep_randv(I * d, 100 + e, 0.2f));
        L.w.w_up.push_back(ep_randv(I * d, 200 + e, 0.2f));
        L.w.w_down.push_back(ep_randv(d * I, 300 + e, 0.2f));
    }
    L.w.shared_gate = ep_randv(64 * d, 3, 0.2f);
    L.w.shared_up = ep_randv(64 * d, 4, 0.2f);
    L.w.shared_down = ep_randv(d * 64, 5, 0.2f);
    return L;
}
inline std::vector<float> ep_tokens(int64_t T, int64_t d, uint64_t seed) {
    return ep_randv(T * d, 1000 + seed, 1.0f);
}

// The placement a test runs with: `redundant` = EPLB's (R = 24 slots for 16 experts, loads measured by
// the single-process layer on the same batch), else one expert per slot.
inline dsref::EpPlacement ep_test_placement(const std::vector<int64_t>& load, int64_t E, int64_t P, bool redundant) {
    if (!redundant) return dsref::ep_placement_plain(E, P);
    std::vector<double> wl(load.begin(), load.end());
    const dsref::EplbPlan plan = dsref::eplb_rebalance(wl.data(), 1, E, 24, 4, 1, P);
    return dsref::ep_placement_from_eplb(plan, 0, P);
}

// The cases every multi-rank twin runs (MPI: tests/ep/test_ep_mpi.cpp; NCCL: cuda/test_ep_nccl.cu): batches
// of 1, 130 and 600 tokens (a rank's shard may be empty), each with one expert per slot and with EPLB's
// redundant experts. This rank runs ep_moe_forward on its shard over `comm` and the single-process
// moe_forward on the whole batch; report(T, redundant, same, Tr) gets whether its shard of the output is
// bit-identical. The ranks must all make the same calls (every collective is entered by each rank).
template <typename Comm, typename Report>
void ep_run_cases(int rank, int P, Comm& comm, Report report) {
    const EpLayer L = ep_layer();
    const int64_t d = L.w.d;
    for (int64_t T : {1, 130, 600}) {
        const std::vector<float> x = ep_tokens(T, d, (uint64_t)T);
        std::vector<float> y_ref(T * d);
        std::vector<int64_t> load;
        dsref::moe_forward(y_ref.data(), x.data(), T, L.g, L.w, &load);
        const std::vector<int64_t> b = dsref::ep_token_shards(T, P);
        const int64_t Tr = b[rank + 1] - b[rank];
        for (bool redundant : {false, true}) {
            const dsref::EpPlacement pl = ep_test_placement(load, L.g.E, P, redundant);
            std::vector<float> y(Tr * d);
            dsref::ep_moe_forward(y.data(), x.data() + b[rank] * d, Tr, L.g, L.w, pl, rank, comm);
            const bool same = Tr == 0 || std::memcmp(y.data(), y_ref.data() + b[rank] * d, y.size() * sizeof(float)) == 0;
            report(T, redundant, same, Tr);
        }
    }
}

}  // namespace dsref_test
