// rope_backward.cpp — the rotation and its inverse (rope_backward.h).
#include "train/rope_backward.h"

#include <cmath>

namespace dsref {

// LAB(rope_backward) task: rotate each pair (a, b) of every vector by phi = position * inv_freq[j], or by -phi when inverse:
// LAB(rope_backward) the backward of a rotation is its transpose, the rotation by -phi (rope_backward.h).
// LAB(rope_backward) hint: the pairs are (2j, 2j + 1) interleaved or (j, j + P) half-split, P = d_r / 2; angles in double.
template <class F>
void rope_apply(F* x, int64_t T, int64_t N, int64_t d_r, int64_t row_stride, int64_t vec_stride,
                const int64_t* positions, const std::vector<double>& inv_freq, RopeLayout layout, bool inverse) {
    // LAB(rope_backward): begin
    const int64_t P = d_r / 2;
    for (int64_t t = 0; t < T; t++)
        for (int64_t j = 0; j < P; j++) {
            const double phi = (double)positions[t] * inv_freq[j];
            const F c = (F)std::cos(phi), s = inverse ? (F)(-std::sin(phi)) : (F)std::sin(phi);
            const int64_t ia = (layout == RopeLayout::Interleaved) ? 2 * j : j;
            const int64_t ib = (layout == RopeLayout::Interleaved) ? 2 * j + 1 : j + P;
            for (int64_t n = 0; n < N; n++) {
                F* v = x + t * row_stride + n * vec_stride;
                const F a = v[ia], b = v[ib];
                v[ia] = a * c - b * s;
                v[ib] = a * s + b * c;
            }
        }
    // LAB(rope_backward): end
}

template void rope_apply<float>(float*, int64_t, int64_t, int64_t, int64_t, int64_t, const int64_t*,
                                const std::vector<double>&, RopeLayout, bool);
template void rope_apply<double>(double*, int64_t, int64_t, int64_t, int64_t, int64_t, const int64_t*,
                                 const std::vector<double>&, RopeLayout, bool);

}  // namespace dsref
