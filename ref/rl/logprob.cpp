// logprob.cpp — log_softmax(z/T)[y] per token and its backward pass (the formulas are in logprob.h).
#include "rl/logprob.h"

#include <cmath>
#include <limits>

#include "core/error.h"

namespace dsref {

// Validation runs serially before the parallel loops: an exception must not leave an OpenMP region.
static void check_logits_and_tokens(const float* logits, const int32_t* tokens, const std::vector<double>& mask,
                                    int64_t B, int64_t T, int64_t V, double temperature) {
    if (!(temperature > 0.0) || !std::isfinite(temperature))
        usage_fail("temperature must be a finite number > 0, got ", temperature);
    if (V < 1) fail("logits: vocabulary size V must be >= 1, got ", V);
    if (!mask.empty() && (int64_t)mask.size() != B * T) fail("mask: expected ", B * T, " values, got ", mask.size());
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < T; t++) {
            const float* z = logits + (b * T + t) * V;
            for (int64_t j = 0; j < V; j++)
                if (std::isnan(z[j]) || z[j] == std::numeric_limits<float>::infinity())
                    fail("logits: ", std::isnan(z[j]) ? "NaN" : "+inf", " at [", b, ", ", t, ", ", j,
                         "] (the loss would be NaN)");
            if (!mask.empty() && mask[b * T + t] == 0.0) continue;  // padding: token id not used
            const int32_t y = tokens[b * T + t];
            if (y < 0 || y >= V) fail("tokens: id ", y, " at [", b, ", ", t, "] is outside [0, V = ", V, ")");
            if (z[y] == -std::numeric_limits<float>::infinity())
                fail("logits: the sampled token ", y, " at [", b, ", ", t,
                     "] has logit -inf (probability 0, log-prob -inf)");
        }
}

// logsumexp_j(z_j / T) of one float row, split as m + log_s with m = max_j z_j / T, so that callers
// form (z_y/T − m) − log_s: with huge logits m + log_s would round log_s away.
struct RowLse {
    double m;
    double log_s;
};
static RowLse row_lse(const float* z, int64_t V, double temperature) {
    double m = -std::numeric_limits<double>::infinity();
    for (int64_t j = 0; j < V; j++) m = std::fmax(m, (double)z[j] / temperature);
    double s = 0.0;
    for (int64_t j = 0; j < V; j++) s += std::exp((double)z[j] / temperature - m);
    return {m, std::log(s)};
}

void logprobs_forward(std::vector<double>& logps, const float* logits, const int32_t* tokens,
                      const std::vector<double>& mask, int64_t B, int64_t T, int64_t V, double temperature) {
    check_logits_and_tokens(logits, tokens, mask, B, T, V, temperature);
    logps.assign(B * T, 0.0);
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < B * T; n++) {
        if (!mask.empty() && mask[n] == 0.0) continue;
        const float* z = logits + n * V;  // [V]
        const RowLse lse = row_lse(z, V, temperature);
        logps[n] = ((double)z[tokens[n]] / temperature - lse.m) - lse.log_s;
    }
}

void logprobs_backward(std::vector<double>& grad_logits, const std::vector<double>& grad_logps,
                       const float* logits, const int32_t* tokens, const std::vector<double>& mask, int64_t B,
                       int64_t T, int64_t V, double temperature) {
    check_logits_and_tokens(logits, tokens, mask, B, T, V, temperature);
    if ((int64_t)grad_logps.size() != B * T) fail("grad_logps: expected ", B * T, " values, got ", grad_logps.size());
    grad_logits.assign(B * T * V, 0.0);
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < B * T; n++) {
        if (!mask.empty() && mask[n] == 0.0) continue;
        const double g = grad_logps[n];
        if (g == 0.0) continue;
        const float* z = logits + n * V;  // [V]
        double* gz = grad_logits.data() + n * V;
        const RowLse lse = row_lse(z, V, temperature);
        // dx/dz_j = (1/T)(1[j = y] − p_j),  p_j = exp((z_j/T − m) − log_s)
        for (int64_t j = 0; j < V; j++)
            gz[j] = -(g / temperature) * std::exp(((double)z[j] / temperature - lse.m) - lse.log_s);
        gz[tokens[n]] += g / temperature;
    }
}

void log_softmax_row(double* logp, const double* z, int64_t V, double temperature) {
    double m = -std::numeric_limits<double>::infinity();
    for (int64_t j = 0; j < V; j++) m = std::fmax(m, z[j] / temperature);
    double s = 0.0;
    for (int64_t j = 0; j < V; j++) s += std::exp(z[j] / temperature - m);
    const double log_s = std::log(s);
    for (int64_t j = 0; j < V; j++) logp[j] = (z[j] / temperature - m) - log_s;
}

double entropy_from_logits(const double* z, int64_t V, double temperature, double* grad_z) {
    std::vector<double> logp(V);
    log_softmax_row(logp.data(), z, V, temperature);
    double H = 0.0;  // −Σ p log p; entries with p = 0 contribute 0 (limit of p log p)
    for (int64_t j = 0; j < V; j++)
        if (std::isfinite(logp[j])) H -= std::exp(logp[j]) * logp[j];
    if (grad_z)  // dH/dz_j = −(p_j/T)(log p_j + H)
        for (int64_t j = 0; j < V; j++)
            grad_z[j] = std::isfinite(logp[j]) ? -(std::exp(logp[j]) / temperature) * (logp[j] + H) : 0.0;
    return H;
}

}  // namespace dsref
