// bench_mla.cpp — `make bench`, MLA part: decode tokens/s at context 1k and 4k, naive against absorbed
// (ref/model/mla.h, both paths), with the bytes each path caches per token.
//
// Model: one attention layer with the real DeepSeek-V2-Lite dimensions (d 2048, H 16, no q_lora,
// d_c 512, d_n 128, d_r 64, d_v 128, YaRN as shipped), random weights. It is V2-Lite scaled down to
// what the comparison needs: the embedding, the MLP and the other 26 layers cost the same on both paths.
// The cache is filled with N(0, 1) values of the exact size a prefill of S tokens leaves (decode time
// does not depend on the values), since a real 4k-token prefill takes minutes on 2 cores.
//
// Each figure is the best of 5 runs of several decode steps, at 1 thread and at all threads; timings
// are indicative (a shared 2-core machine is noisy: another busy process makes OpenMP threads wait for
// each other), compare the two paths within one run.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <vector>

#include "model/mla.h"

using namespace dsref;
using Clock = std::chrono::steady_clock;

namespace {

std::vector<float> normal(size_t n, uint64_t seed, float scale) {
    std::mt19937_64 g(seed);
    std::normal_distribution<float> dist(0.0f, scale);
    std::vector<float> v(n);
    for (float& x : v) x = dist(g);
    return v;
}

// Decodes `steps` tokens after S cached ones and returns µs per token: best of 5 runs, the cache
// trimmed back to S each time.
double time_decode(const MlaLayer& l, MlaPath path, int64_t S, int64_t steps) {
    const MlaDims& m = l.dims();
    const int64_t wa = path == MlaPath::Absorb ? m.d_c : m.H * m.d_k();
    const int64_t wb = path == MlaPath::Absorb ? m.d_r : m.H * m.d_v;
    LayerCache cache;
    cache.a = normal(S * wa, 1, 1.0f);
    cache.b = normal(S * wb, 2, 1.0f);
    const std::vector<float> x = normal(steps * m.d, 3, 1.0f);
    std::vector<float> out(m.d);
    l.forward(path, out.data(), x.data(), 1, S, cache, nullptr, 0);  // warm-up
    double best = 1e30;
    for (int rep = 0; rep < 5; rep++) {
        cache.a.resize(S * wa);
        cache.b.resize(S * wb);
        const Clock::time_point t0 = Clock::now();
        for (int64_t i = 0; i < steps; i++) l.forward(path, out.data(), x.data() + i * m.d, 1, S + i, cache, nullptr, 0);
        best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count() / steps);
    }
    return best * 1e6;
}

// Attention work per decoded token at context S: naive reads K and V of every head; absorbed reads
// [c | k_pe] once and multiplies it with all H query rows (scores over d_c + d_r, then P·c over d_c).
double attn_flop(const MlaDims& m, MlaPath p, int64_t S) {
    return p == MlaPath::Absorb ? 2.0 * S * m.H * (m.d_c + m.d_r + m.d_c) : 2.0 * S * m.H * (m.d_k() + m.d_v);
}

}  // namespace

int main() {
    MlaDims m;
    m.d = 2048, m.H = 16, m.d_q = 0, m.d_c = 512, m.d_n = 128, m.d_r = 64, m.d_v = 128;
    m.rope_scaling.type = RopeScalingType::Yarn;
    m.rope_scaling.factor = 40;
    m.rope_scaling.original_max_position_embeddings = 4096;
    m.rope_scaling.mscale = m.rope_scaling.mscale_all_dim = 0.707;
    MlaWeights w;
    w.q = normal(m.H * m.d_k() * m.d, 11, 1.0f / 45.25f);  // N(0, 1/d)
    w.kv_a = normal((m.d_c + m.d_r) * m.d, 12, 1.0f / 45.25f);
    w.kv_a_norm = std::vector<float>(m.d_c, 1.0f);
    w.kv_b = normal(m.H * (m.d_n + m.d_v) * m.d_c, 13, 1.0f / 22.63f);  // N(0, 1/d_c)
    w.o = normal(m.d * m.H * m.d_v, 14, 1.0f / 45.25f);
    const MlaLayer layer(m, std::move(w));

    const int64_t per_naive = mla_cache_values_per_token(m, MlaPath::Naive);
    const int64_t per_absorb = mla_cache_values_per_token(m, MlaPath::Absorb);
    std::printf("== MLA decode, one DeepSeek-V2-Lite attention layer (d 2048, H 16, d_c 512, d_n 128, d_r 64, d_v 128)\n");
    std::printf("cache per token per layer: naive H·(d_n+d_r) + H·d_v = %lld values (%lld B fp32, %lld B bf16); "
                "absorbed d_c + d_r = %lld values (%lld B fp32, %lld B bf16): %.1fx smaller\n",
                (long long)per_naive, (long long)per_naive * 4, (long long)per_naive * 2, (long long)per_absorb,
                (long long)per_absorb * 4, (long long)per_absorb * 2, (double)per_naive / per_absorb);
    const int max_threads = omp_get_max_threads();
    for (int threads : {1, max_threads}) {
        omp_set_num_threads(threads);
        std::printf("-- %d thread%s\n", threads, threads == 1 ? "" : "s");
        // Context 0 (an empty cache) times what does not grow with the context: the projections, which read
        // the same ~55 MB of float32 weights per token on both paths. "cache part" = time − that baseline.
        double base[2];
        for (int k = 0; k < 2; k++)
            base[k] = time_decode(layer, k == 0 ? MlaPath::Naive : MlaPath::Absorb, 0, 24);
        std::printf("context 0 (projections only): naive %.0f us/token, absorbed %.0f us/token\n", base[0], base[1]);
        std::printf("%-9s %-8s %10s %10s %16s %10s %20s %18s\n", "context", "path", "tokens/s", "us/token",
                    "cache part (us)", "cache MB", "cache part GFLOP/s", "cache part GB/s");
        for (int64_t S : {1024, 4096}) {
            double tps[2], part[2];
            for (int k = 0; k < 2; k++) {
                const MlaPath p = k == 0 ? MlaPath::Naive : MlaPath::Absorb;
                const double us = time_decode(layer, p, S, S >= 4096 ? 12 : 24);
                const double bytes = 4.0 * S * mla_cache_values_per_token(m, p);
                tps[k] = 1e6 / us;
                part[k] = us - base[k];  // noise can make it ≤ 0 on a busy machine: then no rates
                std::printf("%-9lld %-8s %10.1f %10.0f %16.0f %10.1f", (long long)S, k == 0 ? "naive" : "absorb", tps[k],
                            us, part[k], bytes / 1e6);
                if (part[k] > 0) std::printf(" %20.1f %18.1f\n", attn_flop(m, p, S) / part[k] / 1e3, bytes / part[k] / 1e3);
                else std::printf(" %20s %18s\n", "-", "-");
            }
            std::printf("context %lld: absorbed / naive = %.2fx decode speed, %.2fx on the cache part\n", (long long)S,
                        tps[1] / tps[0], part[0] / part[1]);
        }
        if (max_threads == 1) break;
    }
    omp_set_num_threads(max_threads);
    return 0;
}
