// policy_grad.cpp — completion log-probs and the GRPO gradient through the tiny V3 (policy_grad.h).
#include "post/policy_grad.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace dsref {

PolicyBatch make_policy_batch(const std::vector<std::vector<int32_t>>& prompts,
                              const std::vector<std::vector<int32_t>>& completions) {
    if (prompts.size() != completions.size())
        fail("policy batch: ", prompts.size(), " prompts but ", completions.size(), " completions");
    PolicyBatch b;
    b.B = (int64_t)prompts.size();
    for (int64_t i = 0; i < b.B; i++) {
        if (prompts[i].empty()) fail("policy batch: row ", i, " has an empty prompt");
        if (completions[i].empty()) fail("policy batch: row ", i, " has an empty completion");
        b.T = std::max(b.T, (int64_t)completions[i].size());
    }
    b.mask.assign(b.B * b.T, 0.0);
    for (int64_t i = 0; i < b.B; i++) {
        std::vector<int32_t> s = prompts[i];
        s.insert(s.end(), completions[i].begin(), completions[i].end());
        b.seqs.push_back(std::move(s));
        b.n_prompt.push_back((int64_t)prompts[i].size());
        for (size_t j = 0; j < completions[i].size(); j++) b.mask[i * b.T + (int64_t)j] = 1.0;
    }
    return b;
}

template <class F>
double token_logprob(const F* z, int64_t V, int32_t y, double tau, double g, F* dz) {
    if (y < 0 || y >= V) fail("policy: sampled token ", y, " outside the vocabulary of ", V);
    double mx = -INFINITY;
    for (int64_t j = 0; j < V; j++) mx = std::max(mx, (double)z[j] / tau);
    double s = 0.0;
    for (int64_t j = 0; j < V; j++) s += std::exp((double)z[j] / tau - mx);
    const double lse = mx + std::log(s);
    if (dz)
        for (int64_t j = 0; j < V; j++)
            dz[j] = (F)((g / tau) * ((j == y ? 1.0 : 0.0) - std::exp((double)z[j] / tau - lse)));
    return (double)z[y] / tau - lse;
}

namespace {
// Runs row i through the network; `head` sees the logits of every position and writes dz for the
// completion positions only (when grads is set).
template <class F>
void run_row(const TinyV3Config& c, const ParamMap<F>& p, ParamMap<F>* grads, const PolicyBatch& b, int64_t i,
             double tau, const double* g_row, double* x_row) {
    const std::vector<int32_t>& s = b.seqs[i];
    const int64_t n = (int64_t)s.size(), np = b.n_prompt[i];
    const TinyV3Head<F> head = [&](const F* logits, F* dlogits, int64_t T, int64_t V) {
        if (dlogits) std::fill(dlogits, dlogits + T * V, F(0));
        for (int64_t t = np - 1; t < T; t++) {
            const int64_t j = t - (np - 1);  // completion token j
            const double x = token_logprob(logits + t * V, V, s[t + 1], tau, g_row ? g_row[j] : 0.0,
                                           dlogits ? dlogits + t * V : nullptr);
            if (x_row) x_row[j] = x;
        }
        return 0.0;
    };
    tiny_v3_step_head(c, p, grads, s.data(), n - 1, 0.0, head);
}
}  // namespace

template <class F>
std::vector<double> policy_logps(const TinyV3Config& c, const ParamMap<F>& p, const PolicyBatch& b, double tau) {
    if (!(tau > 0.0)) fail("policy: temperature must be > 0, got ", tau);
    std::vector<double> x(b.B * b.T, 0.0);
    for (int64_t i = 0; i < b.B; i++) run_row<F>(c, p, nullptr, b, i, tau, nullptr, x.data() + i * b.T);
    return x;
}

template <class F>
PolicyStep grpo_policy_step(const TinyV3Config& c, const ParamMap<F>& p, ParamMap<F>* grads, const PolicyBatch& b,
                            const std::vector<double>& old_logps, const std::vector<double>& ref_logps,
                            const std::vector<double>& adv, const GrpoConfig& cfg, double tau) {
    PolicyStep r;
    r.logps = policy_logps(c, p, b, tau);
    r.grpo = grpo_loss(r.logps, old_logps, ref_logps, adv, b.mask, b.B, b.T, cfg);
    if (grads)
        for (int64_t i = 0; i < b.B; i++)
            run_row<F>(c, p, grads, b, i, tau, r.grpo.grad_logps.data() + i * b.T, nullptr);
    return r;
}

template double token_logprob<float>(const float*, int64_t, int32_t, double, double, float*);
template double token_logprob<double>(const double*, int64_t, int32_t, double, double, double*);
template std::vector<double> policy_logps<float>(const TinyV3Config&, const ParamMap<float>&, const PolicyBatch&, double);
template std::vector<double> policy_logps<double>(const TinyV3Config&, const ParamMap<double>&, const PolicyBatch&,
                                                  double);
template PolicyStep grpo_policy_step<float>(const TinyV3Config&, const ParamMap<float>&, ParamMap<float>*,
                                            const PolicyBatch&, const std::vector<double>&,
                                            const std::vector<double>&, const std::vector<double>&,
                                            const GrpoConfig&, double);
template PolicyStep grpo_policy_step<double>(const TinyV3Config&, const ParamMap<double>&, ParamMap<double>*,
                                             const PolicyBatch&, const std::vector<double>&,
                                             const std::vector<double>&, const std::vector<double>&,
                                             const GrpoConfig&, double);

}  // namespace dsref
