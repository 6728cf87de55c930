// hadamard.cpp — the fast Walsh–Hadamard transform (the definition is in hadamard.h): log2(n) stages of
// butterflies (a, b) → (a + b, a − b) on pairs h apart, h = 1, 2, 4, ..., then the n^-1/2 scale.
#include "core/hadamard.h"

#include <cmath>
#include <vector>

#include "core/error.h"

namespace dsref {

void hadamard_forward(float* x, int64_t rows, int64_t n) {
    if (n <= 0 || (n & (n - 1)) != 0) fail("hadamard: the length must be a power of two, got ", n);
    const double scale = 1.0 / std::sqrt((double)n);
#pragma omp parallel for schedule(static) if (rows * n >= (1 << 16))
    for (int64_t r = 0; r < rows; r++) {
        std::vector<double> v(x + r * n, x + (r + 1) * n);
        for (int64_t h = 1; h < n; h *= 2)
            for (int64_t i = 0; i < n; i += 2 * h)
                for (int64_t j = i; j < i + h; j++) {
                    const double a = v[j], b = v[j + h];
                    v[j] = a + b;
                    v[j + h] = a - b;
                }
        for (int64_t i = 0; i < n; i++) x[r * n + i] = (float)(v[i] * scale);
    }
}

}  // namespace dsref
