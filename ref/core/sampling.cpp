// sampling.cpp — greedy / temperature / top-p sampling.
#include "core/sampling.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"

namespace dsref {

Sampler::Sampler(SamplingParams p) : p_(p), state_(p.seed) {
    if (!(p_.temperature >= 0)) usage_fail("--temperature must be >= 0, got ", p_.temperature);
    if (!(p_.top_p > 0 && p_.top_p <= 1)) usage_fail("--top-p must be in (0, 1], got ", p_.top_p);
}

double Sampler::uniform() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);  // splitmix64
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

int32_t argmax_lowest(const float* x, int64_t n) {
    int64_t best = -1;
    for (int64_t i = 0; i < n; i++)
        if (!std::isnan(x[i]) && (best < 0 || x[i] > x[best])) best = i;
    if (best < 0) fail("sampling: every logit is NaN");
    return (int32_t)best;
}

int32_t Sampler::sample(const float* logits, int64_t V) {
    for (int64_t i = 0; i < V; i++)
        if (std::isnan(logits[i])) fail("sampling: logit ", i, " is NaN");
    if (p_.temperature == 0.0) return argmax_lowest(logits, V);
    const double m = logits[argmax_lowest(logits, V)];
    std::vector<double> p(V);
    double z = 0.0;
    for (int64_t i = 0; i < V; i++) z += (p[i] = std::exp(((double)logits[i] - m) / p_.temperature));
    for (double& v : p) v /= z;
    std::vector<int32_t> order(V);  // most probable first, ties by lower id
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return p[a] > p[b]; });
    int64_t keep = V;
    if (p_.top_p < 1.0) {
        double mass = 0.0;
        for (keep = 0; keep < V;) {
            mass += p[order[keep++]];
            if (mass >= p_.top_p) break;
        }
    }
    double kept = 0.0;
    for (int64_t i = 0; i < keep; i++) kept += p[order[i]];
    const double u = uniform() * kept;
    double acc = 0.0;
    for (int64_t i = 0; i < keep; i++) {
        acc += p[order[i]];
        if (u < acc) return order[i];
    }
    return order[keep - 1];
}

}  // namespace dsref
