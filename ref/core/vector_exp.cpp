// vector_exp.cpp — e^x through libmvec, a padded last vector (vector_exp.h).
#include "core/vector_exp.h"

#include <immintrin.h>

#include <cmath>

// glibc's vector math library (libmvec, linked with -lmvec): the vector-ABI names of exp.
#if defined(__AVX512F__)
extern "C" __m512d _ZGVeN8v_exp(__m512d);
#elif defined(__AVX2__)
extern "C" __m256d _ZGVdN4v_exp(__m256d);
#endif

namespace dsref {

namespace {
#if defined(__AVX512F__)
constexpr int kW = 8;  // doubles per vector call
inline void exp_vec(double* y, const double* x) { _mm512_storeu_pd(y, _ZGVeN8v_exp(_mm512_loadu_pd(x))); }
#elif defined(__AVX2__)
constexpr int kW = 4;
inline void exp_vec(double* y, const double* x) { _mm256_storeu_pd(y, _ZGVdN4v_exp(_mm256_loadu_pd(x))); }
#else
constexpr int kW = 1;
inline void exp_vec(double* y, const double* x) { y[0] = std::exp(x[0]); }
#endif
}  // namespace

void exp_f64(double* y, const double* x, int64_t n) {
    int64_t i = 0;
    for (; i + kW <= n; i += kW) exp_vec(y + i, x + i);
    if (i == n) return;
    double pad[kW] = {}, out[kW];  // the last values, padded with zeros (e^0 = 1, discarded)
    for (int64_t j = i; j < n; j++) pad[j - i] = x[j];
    exp_vec(out, pad);
    for (int64_t j = i; j < n; j++) y[j] = out[j - i];
}

void exp_rounded(float* p, int64_t n) {
    constexpr int64_t kBlock = 64;
    double d[kBlock];
    for (int64_t b = 0; b < n; b += kBlock) {
        const int64_t m = n - b < kBlock ? n - b : kBlock;
        for (int64_t j = 0; j < m; j++) d[j] = (double)p[b + j];
        exp_f64(d, d, m);
        for (int64_t j = 0; j < m; j++) p[b + j] = (float)d[j];
    }
}

}  // namespace dsref
