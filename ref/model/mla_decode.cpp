// mla_decode.cpp — absorbed MLA decode over a latent cache, in double (the math: mla_decode.h).
#include "model/mla_decode.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace dsref {

void mla_decode_latent(float* o_lat, const float* q_lat, const float* q_pe, const float* kv,
                       const std::vector<int64_t>& seq_start, int64_t H, int64_t d_c, int64_t d_r, double scale) {
    const int64_t B = (int64_t)seq_start.size() - 1, dk = d_c + d_r;
    if (B < 0) fail("mla_decode_latent: seq_start needs B + 1 entries");
    for (int64_t b = 0; b < B; b++)
        if (seq_start[b + 1] - seq_start[b] < 1) fail("mla_decode_latent: sequence ", b, " has no key");
#pragma omp parallel for schedule(static) collapse(2)
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++) {
            const int64_t s0 = seq_start[b], S = seq_start[b + 1] - s0;
            const float* qc = q_lat + (b * H + h) * d_c;
            const float* qr = q_pe + (b * H + h) * d_r;
            std::vector<double> score(S);  // [S]
            double m = -INFINITY;
            for (int64_t s = 0; s < S; s++) {
                const float* k = kv + (s0 + s) * dk;
                double dot = 0;
                for (int64_t c = 0; c < d_c; c++) dot += (double)qc[c] * k[c];
                for (int64_t r = 0; r < d_r; r++) dot += (double)qr[r] * k[d_c + r];
                score[s] = scale * dot;
                m = std::max(m, score[s]);
            }
            double l = 0;
            for (int64_t s = 0; s < S; s++) l += (score[s] = std::exp(score[s] - m));
            std::vector<double> o(d_c, 0.0);  // [d_c]
            for (int64_t s = 0; s < S; s++) {
                const float* k = kv + (s0 + s) * dk;
                for (int64_t c = 0; c < d_c; c++) o[c] += score[s] * k[c];
            }
            for (int64_t c = 0; c < d_c; c++) o_lat[(b * H + h) * d_c + c] = (float)(o[c] / l);
        }
}

}  // namespace dsref
