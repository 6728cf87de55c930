// v4_attention.cpp — DeepSeek-V4 attention for one layer (equations in v4_attention.h).
#include "model/v4_attention.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/linear.h"
#include "core/rmsnorm.h"
#include "core/rope.h"

namespace dsref {

size_t V4LayerCache::bytes() const {
    const size_t n = kv.size() + ckv.size() + index_k.size() + comp.prev_a.size() + comp.prev_z.size() +
                     comp.cur_a.size() + comp.cur_z.size() + index_comp.prev_a.size() + index_comp.prev_z.size() +
                     index_comp.cur_a.size() + index_comp.cur_z.size();
    return n * sizeof(float);
}

// RoPE (interleaved) on d_r dims, with cos/sin times `scale`: the rotation, then the d_r dims times scale
// (scale 1 is rope_forward itself, bit for bit). Arguments as rope_forward's.
static void v4_rope(float* x, int64_t T, int64_t N, int64_t dr, int64_t row_stride, int64_t vec_stride,
                    const int64_t* pos, const std::vector<double>& inv_freq, double scale) {
    rope_forward(x, T, N, dr, row_stride, vec_stride, pos, inv_freq, RopeLayout::Interleaved);
    if (scale == 1.0) return;
    const float a = (float)scale;
    for (int64_t t = 0; t < T; ++t)
        for (int64_t n = 0; n < N; ++n)
            for (int64_t j = 0; j < dr; ++j) x[t * row_stride + n * vec_stride + j] *= a;
}

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

void v4_compressor_step(std::vector<float>& entries, V4CompressorState& st, const float* x, int64_t T, int64_t pos0,
                        int64_t d, int64_t m, int64_t dc, int64_t dr, const V4CompressorWeights& w, double eps,
                        const std::vector<double>& inv_freq, double rope_scale) {
    if (m <= 0) fail("v4 compressor: ratio ", m, " must be positive");
    const bool overlap = m == 4;
    const int64_t c = overlap ? 2 : 1, W = c * dc;
    if ((int64_t)st.cur_a.size() != ((pos0 % m) * W))
        fail("v4 compressor: the state holds ", st.cur_a.size() / W, " rows of the incomplete group, position ", pos0,
             " needs ", pos0 % m);
    std::vector<float> a((size_t)(T * W)), z((size_t)(T * W));
    linear_forward(a.data(), x, w.wkv, T, d, W);
    linear_forward(z.data(), x, w.wgate, T, d, W);
    for (int64_t t = 0; t < T; ++t)  // float32 add, as official
        for (int64_t i = 0; i < W; ++i) z[t * W + i] += w.ape[((pos0 + t) % m) * W + i];
    const int64_t n0 = (int64_t)entries.size() / dc;
    std::vector<int64_t> pos;
    for (int64_t t = 0; t < T; ++t) {
        st.cur_a.insert(st.cur_a.end(), a.begin() + t * W, a.begin() + (t + 1) * W);
        st.cur_z.insert(st.cur_z.end(), z.begin() + t * W, z.begin() + (t + 1) * W);
        if ((int64_t)st.cur_a.size() < m * W) continue;
        const int64_t g = (pos0 + t) / m;  // the group this token completes
        const bool prev = overlap && !st.prev_a.empty();
        const size_t e0 = entries.size();
        entries.resize(e0 + (size_t)dc);
        for (int64_t i = 0; i < dc; ++i) {
            // slots pooled into dimension i: (prev group's first d_c dims), this group's last d_c dims
            double mx = -INFINITY;
            const int64_t col = overlap ? dc + i : i;
            if (prev)
                for (int64_t r = 0; r < m; ++r) mx = std::max(mx, (double)st.prev_z[r * W + i]);
            for (int64_t r = 0; r < m; ++r) mx = std::max(mx, (double)st.cur_z[r * W + col]);
            double den = 0, num = 0;
            if (prev)
                for (int64_t r = 0; r < m; ++r) {
                    const double e = std::exp((double)st.prev_z[r * W + i] - mx);
                    den += e, num += e * st.prev_a[r * W + i];
                }
            for (int64_t r = 0; r < m; ++r) {
                const double e = std::exp((double)st.cur_z[r * W + col] - mx);
                den += e, num += e * st.cur_a[r * W + col];
            }
            entries[e0 + (size_t)i] = (float)(num / den);
        }
        pos.push_back(g * m);
        if (overlap) st.prev_a.swap(st.cur_a), st.prev_z.swap(st.cur_z);
        st.cur_a.clear(), st.cur_z.clear();
    }
    const int64_t n = (int64_t)pos.size();
    if (n == 0) return;
    float* e = entries.data() + n0 * dc;
    rmsnorm_forward(e, e, w.norm, n, dc, (float)eps);
    v4_rope(e + (dc - dr), n, 1, dr, dc, dc, pos.data(), inv_freq, rope_scale);
}

std::vector<float> v4_compress(const float* x, int64_t T, const V4AttnDims& D, const V4AttnWeights& w,
                               const std::vector<double>& inv_freq) {
    std::vector<float> out;
    V4CompressorState st;
    v4_compressor_step(out, st, x, T, 0, D.d, D.ratio, D.d_h, D.d_r, {w.c_wkv, w.c_wgate, w.c_ape, w.c_norm}, D.eps,
                       inv_freq, D.rope_scale);
    return out;
}

// The CSA indexer's selection for T queries at pos0.. (equations in the header). Appends the indexer's
// new compressed keys to cache.index_k (before scoring, as the official Indexer.forward does).
static void v4_indexer_step(V4AttnOut& r, const float* x, const float* qr, int64_t T, int64_t pos0, const V4AttnDims& D,
                            const V4AttnWeights& w, const std::vector<double>& inv_freq, V4LayerCache& cache) {
    const int64_t m = D.ratio, nI = D.n_I, dI = D.d_I, dr = D.d_r;
    if (nI <= 0 || dI < dr || D.topk <= 0)
        fail("v4 indexer: index_n_heads ", nI, ", index_head_dim ", dI, " (≥ qk_rope_head_dim ", dr, "), index_topk ",
             D.topk, " must be positive");
    std::vector<int64_t> pos((size_t)T);
    for (int64_t t = 0; t < T; ++t) pos[t] = pos0 + t;
    std::vector<float> q((size_t)(T * nI * dI)), wt((size_t)(T * nI));
    linear_forward(q.data(), qr, w.i_wq_b, T, D.q_lora, nI * dI);
    v4_rope(q.data() + (dI - dr), T, nI, dr, nI * dI, dI, pos.data(), inv_freq, D.rope_scale);
    v4_compressor_step(cache.index_k, cache.index_comp, x, T, pos0, D.d, m, dI, dr, w.i_comp, D.eps, inv_freq,
                       D.rope_scale);
    linear_forward(wt.data(), x, w.i_weights_proj, T, D.d, nI);
    const double ws = 1.0 / std::sqrt((double)dI) / std::sqrt((double)nI);
    const int64_t nc = (int64_t)cache.index_k.size() / dI, kk = std::min(D.topk, (pos0 + T) / m);
    r.kk = kk;
    r.index_scores.assign((size_t)(T * nc), -INFINITY);
    r.index_topk.assign((size_t)(T * kk), -1);
    r.index_margin.assign((size_t)T, INFINITY);
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < T; ++t) {
        const int64_t nv = (pos0 + t + 1) / m;  // visible entries
        float* row = r.index_scores.data() + t * nc;
        for (int64_t j = 0; j < nv; ++j) {
            double s = 0;
            for (int64_t h = 0; h < nI; ++h) {
                const float* qh = q.data() + (t * nI + h) * dI;
                const float* k = cache.index_k.data() + j * dI;
                double dot = 0;
                for (int64_t i = 0; i < dI; ++i) dot += (double)qh[i] * k[i];
                s += (double)wt[t * nI + h] * ws * std::max(dot, 0.0);
            }
            row[j] = (float)s;
        }
        std::vector<int32_t> idx((size_t)nv);
        for (int64_t j = 0; j < nv; ++j) idx[j] = (int32_t)j;
        // best first; equal scores: the lower entry first (torch.topk leaves ties unspecified)
        auto better = [row](int32_t a, int32_t b) { return row[a] > row[b] || (row[a] == row[b] && a < b); };
        const int64_t kt = std::min(kk, nv), n = std::min(nv, kt + 1);
        std::partial_sort(idx.begin(), idx.begin() + n, idx.end(), better);
        std::copy(idx.begin(), idx.begin() + kt, r.index_topk.begin() + t * kk);
        if (nv > kt && kt > 0) r.index_margin[t] = row[idx[kt - 1]] - row[idx[kt]];
    }
}

V4AttnOut v4_attention_step(const float* x, int64_t T, const V4AttnDims& D, const V4AttnWeights& w,
                            const std::vector<double>& inv_freq, V4LayerCache& cache) {
    if (D.ratio < 0) fail("v4 attention: compress ratio ", D.ratio, " is negative");
    if (D.H % D.G != 0) fail("v4 attention: o_groups ", D.G, " does not divide num_attention_heads ", D.H);
    if (D.window <= 0) fail("v4 attention: sliding_window ", D.window, " must be positive");
    const int64_t H = D.H, dh = D.d_h, dr = D.d_r, pos0 = cache.len, S = pos0 + T;
    std::vector<int64_t> pos((size_t)T), neg((size_t)T);
    for (int64_t t = 0; t < T; ++t) pos[t] = pos0 + t, neg[t] = -(pos0 + t);

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
    v4_rope(q.data() + (dh - dr), T, H, dr, H * dh, dh, pos.data(), inv_freq, D.rope_scale);
    linear_forward(kv.data(), x, w.wkv, T, D.d, dh);
    rmsnorm_forward(kv.data(), kv.data(), w.kv_norm, T, dh, (float)D.eps);
    v4_rope(kv.data() + (dh - dr), T, 1, dr, dh, dh, pos.data(), inv_freq, D.rope_scale);

    V4AttnOut r;
    // keys: the cached window rows (positions kv0 .. pos0−1), the new rows, then the compressed entries
    const int64_t n_old = (int64_t)cache.kv.size() / dh, kv0 = pos0 - n_old;
    std::vector<float> keys = cache.kv;
    keys.insert(keys.end(), kv.begin(), kv.end());
    const int64_t n_rows = n_old + T;
    int64_t n_sel = 0;
    if (D.ratio > 0) {
        if (D.ratio == 4) v4_indexer_step(r, x, c.data(), T, pos0, D, w, inv_freq, cache);
        v4_compressor_step(cache.ckv, cache.comp, x, T, pos0, D.d, D.ratio, dh, dr,
                           {w.c_wkv, w.c_wgate, w.c_ape, w.c_norm}, D.eps, inv_freq, D.rope_scale);
        r.compressed_kv = cache.ckv;
        keys.insert(keys.end(), cache.ckv.begin(), cache.ckv.end());
        n_sel = D.ratio == 4 ? r.kk : S / D.ratio;
    }
    const int64_t n_win = std::min(D.window, S), n_idx = n_win + n_sel;
    std::vector<int64_t> idx((size_t)(T * n_idx), -1);
    for (int64_t t = 0; t < T; ++t) {
        const int64_t p = pos0 + t, lo = std::max<int64_t>(0, p - D.window + 1);
        if (lo < kv0) fail("v4 attention: the cache lost window rows (position ", lo, " < ", kv0, ")");
        for (int64_t s = lo; s <= p; ++s) idx[t * n_idx + (s - lo)] = s - kv0;
        if (D.ratio == 4) {
            for (int64_t j = 0; j < n_sel; ++j) {
                const int32_t e = r.index_topk[t * r.kk + j];
                if (e >= 0) idx[t * n_idx + n_win + j] = n_rows + e;
            }
        } else {
            for (int64_t j = 0; j < n_sel; ++j)
                if ((j + 1) * D.ratio <= p + 1) idx[t * n_idx + n_win + j] = n_rows + j;
        }
    }
    std::vector<float> o((size_t)(T * H * dh));
    v4_sink_attention(o.data(), q.data(), keys.data(), idx.data(), T, H, dh, n_idx, w.sink, 1.0 / std::sqrt((double)dh));
    r.window_attn = o;
    v4_rope(o.data() + (dh - dr), T, H, dr, H * dh, dh, neg.data(), inv_freq, D.rope_scale);

    // the cache keeps the last `window` rows
    const int64_t keep = std::min(D.window, n_rows);
    cache.kv.assign(keys.begin() + (n_rows - keep) * dh, keys.begin() + n_rows * dh);
    cache.len = S;

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

V4AttnOut v4_attention_forward(const float* x, int64_t T, const V4AttnDims& D, const V4AttnWeights& w,
                               const std::vector<double>& inv_freq) {
    V4LayerCache cache;
    return v4_attention_step(x, T, D, w, inv_freq, cache);
}

}  // namespace dsref
