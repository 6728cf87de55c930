// trace.cpp — the named-intermediate recorder.
#include "core/trace.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdio>

#include "core/error.h"

namespace dsref {

void Trace::record(const std::string& name, const Shape& shape, const float* data) {
    if (wants(name)) kept_[name] = Tensor::from_f32(shape, data);
}

void Trace::record(const std::string& name, Tensor t) {
    if (wants(name)) kept_[name] = std::move(t);
}

void FiniteGuard::check(const std::string& name, const float* data, int64_t rows, int64_t cols) {
    if (warned_) return;  // allowed, and already reported at an earlier point
    const int64_t n = rows * cols;
    int64_t bad = -1;
    constexpr int64_t kBlock = 4096;  // a block is scanned without a branch (vectorized), then searched if needed
    for (int64_t k0 = 0; k0 < n && bad < 0; k0 += kBlock) {
        const int64_t k1 = std::min(n, k0 + kBlock);
        bool all_finite = true;
        for (int64_t k = k0; k < k1; k++) all_finite &= std::fabs(data[k]) <= FLT_MAX;  // false for NaN and ±Inf
        for (int64_t k = k0; !all_finite && k < k1; k++)
            if (!std::isfinite(data[k])) {
                bad = k;
                break;
            }
    }
    if (bad < 0) return;
    const float v = data[bad];
    char what[160];
    std::snprintf(what, sizeof what, "forward: %s is the first trace point holding a non-finite value: %s at row (token) %lld, column %lld",
                  name.c_str(), std::isnan(v) ? "NaN" : (v > 0 ? "+Inf" : "-Inf"), (long long)(bad / cols), (long long)(bad % cols));
    if (!allow_) fail(what, " (--allow-nonfinite writes the outputs anyway)");
    warned_ = true;
    std::fprintf(stderr, "dsref: warning: %s; continuing (--allow-nonfinite)\n", what);
}

}  // namespace dsref
