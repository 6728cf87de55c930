// v4_attention.cpp — DeepSeek-V4 attention for one layer (equations in v4_attention.h).
#include "model/v4_attention.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/linear.h"
#include "core/rmsnorm.h"
#include "core/rope.h"

namespace dsref {

void v4_sink_attention(float* o, const float* q, const float* kv, const int64_t* idx, int64_t T, int64_t H,
                       int64_t d_h, int64_t n_idx, const float* sink, double scale) {
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < T; ++t) {
        std::vector<double> l((size_t)n_idx), acc((size_t)d_h);
        for (int64_t h = 0; h < H; ++h) {
            const float* qh = q + (t * H + h) * d_h;
            double mx = sink[h];
            for (int64_t j = 0; j < n_idx; ++j) {
                const int64_t s = idx[t * n_idx + j];
                if (s < 0) continue;
                double dot = 0;
                for (int64_t i = 0; i < d_h; ++i) dot += (double)qh[i] * kv[s * d_h + i];
                l[j] = dot * scale;
                mx = std::max(mx, l[j]);
            }
            double den = std::exp((double)sink[h] - mx);
            std::fill(acc.begin(), acc.end(), 0.0);
            for (int64_t j = 0; j < n_idx; ++j) {
                const int64_t s = idx[t * n_idx + j];
                if (s < 0) continue;
                const double e = std::exp(l[j] - mx);
                den += e;
                for (int64_t i = 0; i < d_h; ++i) acc[i] += e * kv[s * d_h + i];
            }
            for (int64_t i = 0; i < d_h; ++i) o[(t * H + h) * d_h + i] = (float)(acc[i] / den);
        }
    }
}

std::vector<float> v4_compress(const float* x, int64_t T, const V4AttnDims& D, const V4AttnWeights& w,
                               const std::vector<double>& inv_freq) {
    const int64_t m = D.ratio, dh = D.d_h, c = m == 4 ? 2 : 1, W = c * dh, n = T / m;
    std::vector<float> a((size_t)(T * W)), z((size_t)(T * W));
    linear_forward(a.data(), x, w.c_wkv, T, D.d, W);
    linear_forward(z.data(), x, w.c_wgate, T, D.d, W);
    for (int64_t t = 0; t < T; ++t)
        for (int64_t i = 0; i < W; ++i) z[t * W + i] += w.c_ape[(t % m) * W + i];  // float32 add, as official
    std::vector<float> out((size_t)(n * dh));
    for (int64_t g = 0; g < n; ++g)
        for (int64_t i = 0; i < dh; ++i) {
            // slots: (token, column) pairs pooled into dimension i of entry g
            std::vector<std::pair<int64_t, int64_t>> slots;
            if (c == 2 && g > 0)
                for (int64_t r = 0; r < m; ++r) slots.push_back({(g - 1) * m + r, i});
            for (int64_t r = 0; r < m; ++r) slots.push_back({g * m + r, (c == 2 ? dh : 0) + i});
            double mx = -INFINITY;
            for (auto& s : slots) mx = std::max(mx, (double)z[s.first * W + s.second]);
            double den = 0, num = 0;
            for (auto& s : slots) {
                const double e = std::exp((double)z[s.first * W + s.second] - mx);
                den += e;
                num += e * a[s.first * W + s.second];
            }
            out[g * dh + i] = (float)(num / den);
        }
    rmsnorm_forward(out.data(), out.data(), w.c_norm, n, dh, (float)D.eps);
    std::vector<int64_t> pos((size_t)n);
    for (int64_t g = 0; g < n; ++g) pos[g] = g * m;
    rope_forward(out.data() + (dh - D.d_r), n, 1, D.d_r, dh, dh, pos.data(), inv_freq, RopeLayout::Interleaved);
    return out;
}

V4AttnOut v4_attention_forward(const float* x, int64_t T, const V4AttnDims& D, const V4AttnWeights& w,
                               const std::vector<double>& inv_freq) {
    if (D.ratio == 4) fail("v4 attention: compressed sparse attention (ratio 4) needs the indexer, not modelled yet");
    if (D.ratio < 0) fail("v4 attention: compress ratio ", D.ratio, " is negative");
    if (D.H % D.G != 0) fail("v4 attention: o_groups ", D.G, " does not divide num_attention_heads ", D.H);
    const int64_t H = D.H, dh = D.d_h, dr = D.d_r;
    std::vector<int64_t> pos((size_t)T), neg((size_t)T);
    for (int64_t t = 0; t < T; ++t) pos[t] = t, neg[t] = -t;

    std::vector<float> c((size_t)(T * D.q_lora)), q((size_t)(T * H * dh)), kv((size_t)(T * dh));
    linear_forward(c.data(), x, w.wq_a, T, D.d, D.q_lora);
    rmsnorm_forward(c.data(), c.data(), w.q_norm, T, D.q_lora, (float)D.eps);
    linear_forward(q.data(), c.data(), w.wq_b, T, D.q_lora, H * dh);
    for (int64_t r = 0; r < T * H; ++r) {  // per-head weightless RMSNorm
        double ss = 0;
        for (int64_t i = 0; i < dh; ++i) ss += (double)q[r * dh + i] * q[r * dh + i];
        const double inv = 1.0 / std::sqrt(ss / (double)dh + D.eps);
        for (int64_t i = 0; i < dh; ++i) q[r * dh + i] = (float)(q[r * dh + i] * inv);
    }
    rope_forward(q.data() + (dh - dr), T, H, dr, H * dh, dh, pos.data(), inv_freq, RopeLayout::Interleaved);
    linear_forward(kv.data(), x, w.wkv, T, D.d, dh);
    rmsnorm_forward(kv.data(), kv.data(), w.kv_norm, T, dh, (float)D.eps);
    rope_forward(kv.data() + (dh - dr), T, 1, dr, dh, dh, pos.data(), inv_freq, RopeLayout::Interleaved);

    V4AttnOut r;
    int64_t n_c = 0;
    std::vector<float> keys = kv;  // [T + n_c, d_h]: window rows, then compressed entries
    if (D.ratio > 0) {
        r.compressed_kv = v4_compress(x, T, D, w, inv_freq);
        n_c = T / D.ratio;
        keys.insert(keys.end(), r.compressed_kv.begin(), r.compressed_kv.end());
    }
    const int64_t n_win = std::min(D.window, T), n_idx = n_win + n_c;
    std::vector<int64_t> idx((size_t)(T * n_idx), -1);
    for (int64_t t = 0; t < T; ++t) {
        const int64_t lo = std::max<int64_t>(0, t - D.window + 1);
        for (int64_t s = lo; s <= t; ++s) idx[t * n_idx + (s - lo)] = s;
        for (int64_t j = 0; j < n_c; ++j)
            if ((j + 1) * D.ratio <= t + 1) idx[t * n_idx + n_win + j] = T + j;
    }
    std::vector<float> o((size_t)(T * H * dh));
    v4_sink_attention(o.data(), q.data(), keys.data(), idx.data(), T, H, dh, n_idx, w.sink, 1.0 / std::sqrt((double)dh));
    r.window_attn = o;
    rope_forward(o.data() + (dh - dr), T, H, dr, H * dh, dh, neg.data(), inv_freq, RopeLayout::Interleaved);

    const int64_t G = D.G, R = D.R, gi = H * dh / G;
    std::vector<float> oa((size_t)(T * G * R)), tmp((size_t)(T * R)), og((size_t)(T * gi));
    for (int64_t g = 0; g < G; ++g) {
        for (int64_t t = 0; t < T; ++t)
            std::copy(o.begin() + t * H * dh + g * gi, o.begin() + t * H * dh + (g + 1) * gi, og.begin() + t * gi);
        linear_forward(tmp.data(), og.data(), w.wo_a + g * R * gi, T, gi, R);
        for (int64_t t = 0; t < T; ++t) std::copy(tmp.begin() + t * R, tmp.begin() + (t + 1) * R, oa.begin() + t * G * R + g * R);
    }
    r.out.resize((size_t)(T * D.d));
    linear_forward(r.out.data(), oa.data(), w.wo_b, T, G * R, D.d);
    return r;
}

}  // namespace dsref
