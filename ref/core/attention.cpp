// attention.cpp — causal GQA attention, one (query row, head) pair per loop iteration.
#include "core/attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"

namespace dsref {

// LAB(attention) task: o = softmax(scale * q k^T) v per (row t, head h), query head h reading KV head h * H_kv / H;
// LAB(attention) with causal, row t sees keys 0 .. pos0 + t (its position in the cache).
// LAB(attention) hint: subtract the row maximum before exp; accumulate in double; loop s over keys, then over d_v.
void attention_forward(float* o, const float* q, const float* k, const float* v, int64_t T, int64_t S,
                       int64_t H, int64_t H_kv, int64_t d, int64_t d_v, float scale, bool causal, int64_t pos0) {
    if (H_kv <= 0 || H % H_kv != 0) fail("attention: ", H, " query heads cannot share ", H_kv, " KV heads");
    if (causal && pos0 + T > S) fail("attention: queries reach position ", pos0 + T - 1, " but only ", S, " keys");
    // LAB(attention): begin
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t t = 0; t < T; t++) {
        for (int64_t h = 0; h < H; h++) {
            const int64_t g = h * H_kv / H;                     // the KV head of query head h
            const int64_t n_keys = causal ? pos0 + t + 1 : S;   // keys 0..n_keys-1 are visible
            const float* qt = q + (t * H + h) * d;
            std::vector<double> p(n_keys);
            double m = -INFINITY;
            for (int64_t s = 0; s < n_keys; s++) {
                const float* ks = k + (s * H_kv + g) * d;
                double dot = 0.0;
                for (int64_t i = 0; i < d; i++) dot += (double)qt[i] * ks[i];
                p[s] = dot * scale;
                m = std::max(m, p[s]);
            }
            double z = 0.0;
            for (int64_t s = 0; s < n_keys; s++) z += (p[s] = std::exp(p[s] - m));
            std::vector<double> acc(d_v, 0.0);  // Σ_s p[s] · v[s], one contiguous V row at a time
            for (int64_t s = 0; s < n_keys; s++) {
                const float* vs = v + (s * H_kv + g) * d_v;
                for (int64_t j = 0; j < d_v; j++) acc[j] += p[s] * vs[j];
            }
            float* ot = o + (t * H + h) * d_v;
            for (int64_t j = 0; j < d_v; j++) ot[j] = (float)(acc[j] / z);
        }
    }
    // LAB(attention): end
}

}  // namespace dsref
