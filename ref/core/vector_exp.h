// vector_exp.h — e^x of many values at once, in double, through glibc's vector math library (libmvec).
//
// SwiGLU's SiLU (core/swiglu.h) and the attention softmax (model/mla.cpp) take one exponential per
// value; as one libm call each they were a tenth of a V3-shaped prefill (make bench-speed, model A,
// perf). libmvec evaluates the same function 8 doubles at a time (_ZGVeN8v_exp, AVX-512) or 4
// (_ZGVdN4v_exp, AVX2); a build for neither calls std::exp.
//
// Each value's result depends on that value alone: the last, partial vector is padded and computed by
// the same vector call, never one value at a time, so a value gets the same bits wherever it sits in
// the array and at any thread count.
//
// Accuracy: libm's exp and libmvec's are both within about one unit in the last place of double, far
// below the float32 rounding that follows. tests/test_vector_exp.cpp checks that the float32 results
// (SiLU, and e^x rounded to float) equal those of std::exp in double in all but a few values per
// hundred thousand, and are never more than one float32 ulp apart. Measured here on 4 194 304 random
// values: every SiLU value equal; 2696 values of e^x rounded to float differ from glibc's expf, and in
// each of those this one is the nearer to the exact value (it rounds the double result once).
#pragma once
#include <cstdint>

namespace dsref {

// y[i] = e^x[i] in double; y may be x. y, x: [n]
void exp_f64(double* y, const double* x, int64_t n);

// p[i] = e^p[i] computed in double and rounded once to float32, in place. p: [n]
void exp_rounded(float* p, int64_t n);

}  // namespace dsref
