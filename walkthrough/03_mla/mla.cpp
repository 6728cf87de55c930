// walkthrough/03_mla/mla.cpp — from MHA to GQA to MLA, with numbers (DeepSeek-V2 report §2.1,
// V3 report §2.1.1; the code under study is ref/model/mla.{h,cpp}, with RoPE in ref/core/rope.h).
//
// What this program shows, in order:
//   1. the KV cache per token of DeepSeek-V3's shape under MHA, GQA, MQA and MLA (a computed table);
//   2. low-rank KV compression: every head's key is W_UK[h]·c, so the keys of all heads together have
//      rank ≤ d_c (singular values of a real layer's stacked keys);
//   3. why RoPE must be decoupled: a rotated key cannot be absorbed into the query, a separate
//      rotated part can;
//   4. the absorption trick: ref/model/mla's naive and absorbed paths print the same output, from caches of
//      very different sizes, on a prefill and on token-by-token decode;
//   5. the price: bytes read and FLOPs per decoded token for the two paths (why absorbed wins when
//      reading memory is the bottleneck).
//
//   make build/walkthrough/03_mla/mla && build/walkthrough/03_mla/mla
#include <Eigen/Dense>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "core/rope.h"
#include "model/mla.h"

using namespace dsref;
using MatRM = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

namespace {

std::vector<float> normal(size_t n, uint64_t seed, double scale) {
    std::mt19937_64 g(seed);
    std::normal_distribution<double> dist(0.0, scale);
    std::vector<float> v(n);
    for (float& x : v) x = (float)dist(g);
    return v;
}

// ---- 1 -------------------------------------------------------------------------------------------------
void cache_table() {
    const int64_t H = 128, d_h = 128, d_c = 512, d_r = 64, L = 61;  // DeepSeek-V3 (data/configs/deepseek_v3.json)
    std::printf("1. KV cache per token, DeepSeek-V3 shape (H %lld, d_h %lld, d_c %lld, d_r %lld, %lld layers), bf16\n",
                (long long)H, (long long)d_h, (long long)d_c, (long long)d_r, (long long)L);
    std::printf("   %-34s %10s %12s %14s %9s\n", "mechanism", "per layer", "B per layer", "B all layers", "vs MHA");
    struct Row {
        const char* name;
        int64_t values;
    };
    const Row rows[] = {{"MHA: 2·H·d_h", 2 * H * d_h},
                        {"GQA, 8 KV heads: 2·8·d_h", 2 * 8 * d_h},
                        {"MQA: 2·d_h", 2 * d_h},
                        {"MLA: d_c + d_r", d_c + d_r},
                        {"MLA decompressed (naive cache)", H * (d_h + d_r) + H * d_h}};
    for (const Row& r : rows)
        std::printf("   %-34s %10lld %12lld %14lld %8.2f%%\n", r.name, (long long)r.values, (long long)(2 * r.values),
                    (long long)(2 * r.values * L), 100.0 * r.values / (2.0 * H * d_h));
    std::printf("   MLA stores %.2f·d_h per token and layer: the cache of GQA with %.2f groups, with all %lld heads\n\n",
                (double)(d_c + d_r) / d_h, (double)(d_c + d_r) / (2.0 * d_h), (long long)H);
}

// ---- a small random MLA layer used by 2–4 ------------------------------------------------------------------
struct Small {
    MlaDims m;
    MlaWeights w;
};
Small small_layer() {
    Small s;
    MlaDims& m = s.m;
    m.d = 64, m.H = 4, m.d_q = 32, m.d_c = 12, m.d_n = 16, m.d_r = 8, m.d_v = 16;
    m.rope_scaling.type = RopeScalingType::Yarn;  // as in V3, with a short original length so positions reach the ramp
    m.rope_scaling.factor = 4;
    m.rope_scaling.original_max_position_embeddings = 32;
    m.rope_scaling.mscale = m.rope_scaling.mscale_all_dim = 1.0;
    s.w.q_a = normal(m.d_q * m.d, 1, 1 / std::sqrt(64.0));
    s.w.q_a_norm = std::vector<float>(m.d_q, 1.0f);
    s.w.q_b = normal(m.H * m.d_k() * m.d_q, 2, 1 / std::sqrt(32.0));
    s.w.kv_a = normal((m.d_c + m.d_r) * m.d, 3, 1 / std::sqrt(64.0));
    s.w.kv_a_norm = std::vector<float>(m.d_c, 1.0f);
    s.w.kv_b = normal(m.H * (m.d_n + m.d_v) * m.d_c, 4, 1 / std::sqrt(12.0));
    s.w.o = normal(m.d * m.H * m.d_v, 5, 1 / std::sqrt(64.0));
    return s;
}

// ---- 2 -------------------------------------------------------------------------------------------------
void low_rank(const Small& s) {
    const MlaDims& m = s.m;
    const int64_t T = 40;
    const MlaLayer layer(m, s.w);
    const std::vector<float> x = normal(T * m.d, 6, 1.0);
    std::vector<float> out(T * m.d);
    LayerCache cache;
    Trace trace;
    layer.forward(MlaPath::Naive, out.data(), x.data(), T, 0, cache, &trace, 0);
    // the naive cache holds K [T, H, d_n + d_r]; stack the no-RoPE parts of all heads: [T, H·d_n]
    MatRM K(T, m.H * m.d_n);
    for (int64_t t = 0; t < T; t++)
        for (int64_t h = 0; h < m.H; h++)
            for (int64_t i = 0; i < m.d_n; i++) K(t, h * m.d_n + i) = cache.a[(t * m.H + h) * m.d_k() + i];
    Eigen::JacobiSVD<MatRM> svd(K);
    const Eigen::VectorXd sv = svd.singularValues();
    std::printf("2. Low-rank KV compression. A layer with H %lld heads of d_n %lld: each token's keys of all heads are\n"
                "   %lld numbers, but all are W_UK·c for a latent c of d_c = %lld. Singular values of K [%lld tokens, %lld]:\n   ",
                (long long)m.H, (long long)m.d_n, (long long)(m.H * m.d_n), (long long)m.d_c, (long long)T,
                (long long)(m.H * m.d_n));
    for (int64_t i = 0; i < m.d_c + 4; i++) std::printf("%s%.2g", i ? " " : "", sv[i]);
    std::printf(" ... (%lld in all)", (long long)sv.size());
    int64_t rank = 0;
    for (int64_t i = 0; i < sv.size(); i++) rank += sv[i] > 1e-5 * sv[0];
    std::printf("\n   numerical rank %lld = d_c: caching c instead of K (and V) loses nothing.\n\n", (long long)rank);
}

// ---- 3 -------------------------------------------------------------------------------------------------
void decoupled_rope(const Small& s) {
    // One head h = 0: W_UK [d_n, d_c] (rows 0..d_n-1 of kv_b), a query q_nope(t) and latents c(s).
    const MlaDims& m = s.m;
    const int64_t T = 24, n = m.d_n, dc = m.d_c;
    const std::vector<double> inv_freq = rope_inv_freq(n, m.rope_theta, m.rope_scaling);
    const std::vector<float> c = normal(T * dc, 7, 1.0), q = normal(n, 8, 1.0);
    const int64_t t = T - 1;
    std::vector<int64_t> pos(T);
    for (int64_t i = 0; i < T; i++) pos[i] = i;
    // keys k(s) = W_UK c(s), and the same keys rotated to their positions: R_s W_UK c(s)
    std::vector<float> k(T * n), k_rot;
    for (int64_t i = 0; i < T; i++)
        for (int64_t a = 0; a < n; a++) {
            double acc = 0;
            for (int64_t b = 0; b < dc; b++) acc += (double)s.w.kv_b[a * dc + b] * c[i * dc + b];
            k[i * n + a] = (float)acc;
        }
    k_rot = k;
    rope_forward(k_rot.data(), T, 1, n, n, n, pos.data(), inv_freq, RopeLayout::Interleaved);
    std::vector<float> q_rot = q;
    const int64_t pt = t;
    rope_forward(q_rot.data(), 1, 1, n, n, n, &pt, inv_freq, RopeLayout::Interleaved);
    // absorbed query: q̃ = W_UKᵀ (R_t q); q̃·c(s) = (R_t q)·(W_UK c(s)) — it cannot contain R_s
    std::vector<double> q_abs(dc, 0.0), q_abs_plain(dc, 0.0);
    for (int64_t b = 0; b < dc; b++)
        for (int64_t a = 0; a < n; a++) {
            q_abs[b] += (double)s.w.kv_b[a * dc + b] * q_rot[a];
            q_abs_plain[b] += (double)s.w.kv_b[a * dc + b] * q[a];
        }
    double err_rope = 0, err_plain = 0, mag = 0;
    for (int64_t i = 0; i <= t; i++) {
        double want = 0, got = 0, want_plain = 0, got_plain = 0;
        for (int64_t a = 0; a < n; a++) want += (double)q_rot[a] * k_rot[i * n + a], want_plain += (double)q[a] * k[i * n + a];
        for (int64_t b = 0; b < dc; b++) got += q_abs[b] * c[i * dc + b], got_plain += q_abs_plain[b] * c[i * dc + b];
        err_rope = std::max(err_rope, std::fabs(want - got));
        err_plain = std::max(err_plain, std::fabs(want_plain - got_plain));
        mag = std::max(mag, std::fabs(want));
    }
    std::printf("3. Why RoPE is decoupled. Scores of one query (position %lld) against %lld keys, |score| up to %.2f:\n"
                "   RoPE on the compressed keys: (R_t q)·(R_s W_UK c) = qᵀ R_(s-t) W_UK c depends on s - t, so no fixed\n"
                "   W_UKᵀ folded into the query reproduces it:              max |error| = %.3f\n"
                "   no RoPE on that part: q·(W_UK c) = (W_UKᵀ q)·c exactly:  max |error| = %.1e\n"
                "   so MLA rotates only a separate d_r = %lld part: per-head q_pe and ONE k_pe shared by all heads,\n"
                "   cached next to c (d_c + d_r values per token), score = q_nope·k_nope + q_pe·k_pe.\n\n",
                (long long)t, (long long)(t + 1), mag, err_rope, err_plain, (long long)m.d_r);
}

// ---- 4 -------------------------------------------------------------------------------------------------
void absorption(const Small& s) {
    const MlaDims& m = s.m;
    const MlaLayer layer(m, s.w);
    const int64_t T = 40, P = 32;  // prefill P tokens, decode the other T - P one at a time
    const std::vector<float> x = normal(T * m.d, 9, 1.0);
    std::printf("4. The absorption trick (ref/model/mla.cpp). Same layer, same input, %lld tokens: prefill %lld, then decode one "
                "at a time.\n   naive: K = [W_UK c | k_pe], V = W_UV c per head, cached;  absorbed: q̃ = W_UKᵀ q_nope, "
                "attend over [c | k_pe],\n   o = W_UV (Σ P c). Softmax scale %.6f = (d_n+d_r)^-1/2·mscale² on both.\n",
                (long long)T, (long long)P, layer.softmax_scale());
    std::vector<float> out[2];
    size_t cache_floats[2];
    for (int k = 0; k < 2; k++) {
        const MlaPath path = k == 0 ? MlaPath::Naive : MlaPath::Absorb;
        out[k].assign(T * m.d, 0.0f);
        LayerCache cache;
        layer.forward(path, out[k].data(), x.data(), P, 0, cache, nullptr, 0);
        for (int64_t t = P; t < T; t++) layer.forward(path, out[k].data() + t * m.d, x.data() + t * m.d, 1, t, cache, nullptr, 0);
        cache_floats[k] = cache.a.size() + cache.b.size();
    }
    for (int k = 0; k < 2; k++) {
        std::printf("   %-8s out[last token, 0:6] =", k == 0 ? "naive" : "absorbed");
        for (int64_t i = 0; i < 6; i++) std::printf(" %+.6f", out[k][(T - 1) * m.d + i]);
        std::printf("   cache %zu floats (%zu per token)\n", cache_floats[k], cache_floats[k] / T);
    }
    double diff = 0, mag = 0;
    for (int64_t i = 0; i < T * m.d; i++)
        diff = std::max(diff, (double)std::fabs(out[0][i] - out[1][i])), mag = std::max(mag, (double)std::fabs(out[0][i]));
    std::printf("   max |naive - absorbed| over all %lld outputs = %.1e (max |out| %.2f): float rounding only.\n\n",
                (long long)(T * m.d), diff, mag);
}

// ---- 5 -------------------------------------------------------------------------------------------------
void decode_cost() {
    const double H = 128, d_n = 128, d_r = 64, d_v = 128, d_c = 512, S = 4096;  // V3, one layer, 4k context
    const double naive_bytes = 2 * S * H * (d_n + d_r + d_v), absorb_bytes = 2 * S * (d_c + d_r);
    const double naive_flop = 2 * S * H * (d_n + d_r + d_v), absorb_flop = 2 * S * H * (d_c + d_r + d_c);
    std::printf("5. The price, per decoded token and layer at context %.0f, V3 shape, bf16 cache:\n"
                "   %-9s %12s %12s %16s\n", S, "path", "cache MB", "attn MFLOP", "FLOP per byte");
    std::printf("   %-9s %12.1f %12.1f %16.1f\n", "naive", naive_bytes / 1e6, naive_flop / 1e6, naive_flop / naive_bytes);
    std::printf("   %-9s %12.1f %12.1f %16.1f\n", "absorbed", absorb_bytes / 1e6, absorb_flop / 1e6,
                absorb_flop / absorb_bytes);
    std::printf("   absorbed does %.1fx the FLOPs on %.0fx fewer bytes: each cached latent is read once and used by all\n"
                "   %.0f heads. Decode is memory-bound, so it wins once the cache outweighs the weights (make bench).\n",
                absorb_flop / naive_flop, naive_bytes / absorb_bytes, H);
}

}  // namespace

int main() {
    cache_table();
    const Small s = small_layer();
    low_rank(s);
    decoupled_rope(s);
    absorption(s);
    decode_cost();
    return 0;
}
