// bench_experts.cpp — `make bench`, the routed experts alone: the SwiGLU experts (core/swiglu.h) of a
// V3-shaped MoE layer at an uneven routing, by tokens per expert, on one thread.
//
// Shapes: make bench-speed's model B (data/bench/bench_speed.sh): d 1024, 64 experts of 256. The routing is
// the one model B's random checkpoint gives its prompt of T = 512 tokens, top-6, in its three MoE layers
// (`dsref forward --dump`, topk_idx.1-3, expert loads sorted): 3072 rows per layer, 1 to 247 per expert;
// 187 of the 192 experts see a row, 84 of them fewer than 32. Each expert's weights are its own (64 × 3 MB
// of float32 per layer, out of cache, as in the model). The last row runs the same 3 × 3072 rows as
// 3 × 48 experts of 64 rows: what an even routing would give on the same weights. Best of 5 runs. Timings
// are indicative on a shared machine.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <vector>

#include "core/swiglu.h"

using namespace dsref;
using Clock = std::chrono::steady_clock;

namespace {

// Rows per expert in model B's three MoE layers (sorted; experts with no row omitted).
const std::vector<std::vector<int>> kLoads = {
    {2,  2,  3,  7,  9,  12, 12, 13, 13, 14, 18, 19, 20, 21, 21, 21, 22, 22, 23, 24,  25,  25,  27,  27,  29,  31,
     31, 33, 33, 33, 34, 39, 39, 42, 44, 45, 45, 48, 49, 54, 56, 57, 59, 60, 60, 61,  61,  64,  65,  66,  71,  72,
     77, 87, 89, 109, 114, 133, 138, 177, 179, 186},
    {1,  2,  3,  3,  3,  5,  5,  5,  5,  5,  5,  6,  10, 12, 14, 14,  14,  17,  22,  23,  23,  24,  25, 25, 26, 28,
     28, 30, 30, 30, 32, 32, 33, 35, 36, 39, 40, 43, 45, 46, 47, 51,  51,  52,  53,  54,  66,  69,  71, 74, 75, 76,
     78, 88, 91, 103, 104, 111, 128, 130, 136, 145, 154, 241},
    {1,  2,  3,  3,  3,  3,  3,  4,  4,  4,  4,  7,  8,  8,  10, 10,  11,  12,  15,  16,  16,  21,  26, 27, 28, 30,
     31, 32, 35, 36, 37, 37, 38, 43, 43, 45, 49, 54, 60, 60, 64, 66,  67,  68,  72,  74,  81,  85,  87, 88, 91, 92,
     94, 96, 111, 127, 137, 141, 152, 153, 247}};

constexpr int64_t kD = 1024, kI = 256, kE = 64;
constexpr int kBuckets = 7;
const char* const kBucketName[kBuckets] = {"1-7", "8-15", "16-31", "32-47", "48-63", "64-99", "100-247"};
int bucket(int n) { return n < 8 ? 0 : n < 16 ? 1 : n < 32 ? 2 : n < 48 ? 3 : n < 64 ? 4 : n < 100 ? 5 : 6; }

struct Times {
    double total = 0, s[kBuckets] = {}, flops[kBuckets] = {};
};

// One pass over the layers' experts (expert e of a layer reads weights e), timed per expert.
Times run(const std::vector<std::vector<int>>& loads, const std::vector<float>& w, const std::vector<float>& x,
          std::vector<float>& y) {
    Times t;
    const Clock::time_point t0 = Clock::now();
    for (const std::vector<int>& layer : loads) {
        int64_t o = 0;
        for (size_t e = 0; e < layer.size(); e++) {
            const float* we = w.data() + 3 * (int64_t)e * kI * kD;  // gate [I, d], up [I, d], down [d, I]
            const Clock::time_point a = Clock::now();
            swiglu_forward(y.data() + o * kD, x.data() + o * kD, we, we + kI * kD, we + 2 * kI * kD, layer[e], kD, kI);
            const int b = bucket(layer[e]);
            t.s[b] += std::chrono::duration<double>(Clock::now() - a).count();
            t.flops[b] += 2.0 * 3 * layer[e] * kD * kI;
            o += layer[e];
        }
    }
    t.total = std::chrono::duration<double>(Clock::now() - t0).count();
    return t;
}

Times best_of_5(const std::vector<std::vector<int>>& loads, const std::vector<float>& w, const std::vector<float>& x,
                std::vector<float>& y) {
    run(loads, w, x, y);  // warm-up
    Times best;
    best.total = 1e30;
    for (int i = 0; i < 5; i++) {
        const Times t = run(loads, w, x, y);
        if (t.total < best.total) best = t;
    }
    return best;
}

}  // namespace

int main() {
    omp_set_num_threads(1);
    std::mt19937 g(1);
    std::uniform_real_distribution<float> u(-0.05f, 0.05f);
    std::vector<float> w(3 * kE * kI * kD), x(3072 * kD), y(3072 * kD);
    for (float& v : w) v = u(g);
    for (float& v : x) v = u(g);

    const Times t = best_of_5(kLoads, w, x, y);
    double flops = 0;
    for (double f : t.flops) flops += f;
    std::printf("== routed experts (SwiGLU, d 1024, 64 experts of 256, weights out of cache) at model B's routing "
                "(3 MoE layers of 3072 rows), 1 thread\n");
    std::printf("%-16s %8s %10s %10s\n", "rows per expert", "experts", "ms", "GFLOP/s");
    for (int b = 0; b < kBuckets; b++) {
        int n = 0;
        for (const std::vector<int>& l : kLoads)
            for (int r : l) n += bucket(r) == b;
        std::printf("%-16s %8d %10.1f %10.1f\n", kBucketName[b], n, t.s[b] * 1e3, t.flops[b] / t.s[b] / 1e9);
    }
    size_t used = 0;
    for (const std::vector<int>& l : kLoads) used += l.size();
    std::printf("%-16s %8zu %10.1f %10.1f\n", "all (as routed)", used, t.total * 1e3, flops / t.total / 1e9);

    const std::vector<std::vector<int>> even(3, std::vector<int>(48, 64));  // the same rows, 64 per expert
    const Times e = best_of_5(even, w, x, y);
    std::printf("%-16s %8d %10.1f %10.1f\n", "even, 64 each", 3 * 48, e.total * 1e3, flops / e.total / 1e9);
    return 0;
}
