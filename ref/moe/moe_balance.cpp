// moe_balance.cpp — load statistics, balance losses and the aux-loss-free bias update (the formulas
// are in moe_balance.h).
#include "moe/moe_balance.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "moe/moe_gate.h"

namespace dsref {

static void check_idx(const int32_t* topk_idx, int64_t T, int64_t K, int64_t E, const char* who) {
    if (T < 1 || K < 1 || E < 1) fail(who, ": need T, K, E >= 1, got ", T, ", ", K, ", ", E);
    for (int64_t j = 0; j < T * K; j++)
        if (topk_idx[j] < 0 || topk_idx[j] >= E)
            fail(who, ": topk_idx[", j / K, ", ", j % K, "] = ", topk_idx[j], " is outside [0, ", E, ")");
}

static void check_devices(int64_t E, int64_t D, const char* who) {
    if (D < 1 || E % D != 0) fail(who, ": ", E, " experts cannot be split evenly over D = ", D, " devices");
}

std::vector<int64_t> expert_load(const int32_t* topk_idx, int64_t T, int64_t K, int64_t E) {
    check_idx(topk_idx, T, K, E, "expert_load");
    std::vector<int64_t> c(E, 0);
    for (int64_t j = 0; j < T * K; j++) c[topk_idx[j]]++;
    return c;
}

std::vector<double> expert_fraction(const int32_t* topk_idx, int64_t T, int64_t K, int64_t E) {
    const std::vector<int64_t> c = expert_load(topk_idx, T, K, E);
    std::vector<double> f(E);
    for (int64_t i = 0; i < E; i++) f[i] = (double)E / (double)(K * T) * (double)c[i];
    return f;
}

// LAB(moe_balance) task: P_i = (1/T) sum_t s[t, i], with s renormalized per token when asked (V3 report eq. 19).
std::vector<double> mean_affinity(const float* scores, int64_t T, int64_t E, bool renormalize) {
    if (T < 1 || E < 1) fail("mean_affinity: need T, E >= 1");
    // LAB(moe_balance): begin
    std::vector<double> P(E, 0.0);
    for (int64_t t = 0; t < T; t++) {
        const float* s = scores + t * E;  // [E]
        double norm = 1.0;
        if (renormalize) {
            norm = 0;
            for (int64_t i = 0; i < E; i++) norm += s[i];
            if (!(norm > 0)) fail("mean_affinity: the affinities of token ", t, " sum to ", norm, ", cannot renormalize");
        }
        for (int64_t i = 0; i < E; i++) P[i] += s[i] / norm;
    }
    for (double& p : P) p /= (double)T;
    return P;
    // LAB(moe_balance): end
}

LoadStats load_stats(const std::vector<int64_t>& load) {
    if (load.empty()) fail("load_stats: empty load vector");
    LoadStats st;
    st.min = st.max = (double)load[0];
    double sum = 0;
    for (int64_t c : load) {
        sum += (double)c;
        st.min = std::min(st.min, (double)c);
        st.max = std::max(st.max, (double)c);
    }
    st.mean = sum / (double)load.size();
    st.max_violation = st.mean > 0 ? (st.max - st.mean) / st.mean : 0.0;
    return st;
}

static double dot(const std::vector<double>& a, const std::vector<double>& b) {
    double s = 0;
    for (size_t i = 0; i < a.size(); i++) s += a[i] * b[i];
    return s;
}

double v3_seq_aux_loss(const float* scores, const int32_t* topk_idx, int64_t T, int64_t E, int64_t K, double alpha) {
    return alpha * dot(expert_fraction(topk_idx, T, K, E), mean_affinity(scores, T, E, true));
}

// LAB(moe_balance) task: b_i += gamma * sign(mean load - load_i) (V3 report section 2.1.2, auxiliary-loss-free balancing).
// LAB(moe_balance) hint: sign(0) = 0; do the arithmetic in double and store float.
void aux_free_bias_update(float* bias, const int64_t* load, int64_t E, double gamma) {
    if (E < 1) fail("aux_free_bias_update: need E >= 1");
    // LAB(moe_balance): begin
    double mean = 0;
    for (int64_t i = 0; i < E; i++) mean += (double)load[i];
    mean /= (double)E;
    for (int64_t i = 0; i < E; i++) {
        const double diff = mean - (double)load[i];
        const double sign = diff > 0 ? 1.0 : (diff < 0 ? -1.0 : 0.0);
        bias[i] = (float)((double)bias[i] + gamma * sign);
    }
    // LAB(moe_balance): end
}

double v2_expert_balance_loss(const float* scores, const int32_t* topk_idx, int64_t T, int64_t E, int64_t K,
                              double alpha1) {
    return alpha1 * dot(expert_fraction(topk_idx, T, K, E), mean_affinity(scores, T, E, false));
}

// P'_d = Σ_{i∈d} P_i. → [D]
static std::vector<double> device_affinity(const float* scores, int64_t T, int64_t E, int64_t D) {
    const std::vector<double> P = mean_affinity(scores, T, E, false);
    std::vector<double> Pd(D, 0.0);
    for (int64_t i = 0; i < E; i++) Pd[i / (E / D)] += P[i];
    return Pd;
}

double v2_device_balance_loss(const float* scores, const int32_t* topk_idx, int64_t T, int64_t E, int64_t K,
                              int64_t D, double alpha2) {
    check_devices(E, D, "v2_device_balance_loss");
    const std::vector<double> f = expert_fraction(topk_idx, T, K, E);
    std::vector<double> fd(D, 0.0);  // f'_d = mean of f_i over the device's experts
    for (int64_t i = 0; i < E; i++) fd[i / (E / D)] += f[i] / (double)(E / D);
    return alpha2 * dot(fd, device_affinity(scores, T, E, D));
}

double v2_comm_balance_loss(const float* scores, const int32_t* topk_idx, int64_t T, int64_t E, int64_t K, int64_t D,
                            int64_t M, double alpha3) {
    check_devices(E, D, "v2_comm_balance_loss");
    check_idx(topk_idx, T, K, E, "v2_comm_balance_loss");
    if (M < 1 || M > D) fail("v2_comm_balance_loss: the device limit M = ", M, " must be in [1, D = ", D, "]");
    std::vector<double> fd(D, 0.0);  // f''_d = D/(M·T) · #tokens that send something to device d
    for (int64_t t = 0; t < T; t++) {
        std::vector<bool> sent(D, false);
        for (int64_t k = 0; k < K; k++) sent[topk_idx[t * K + k] / (E / D)] = true;
        for (int64_t dv = 0; dv < D; dv++) fd[dv] += sent[dv] ? 1.0 : 0.0;
    }
    for (double& v : fd) v *= (double)D / (double)(M * T);
    return alpha3 * dot(fd, device_affinity(scores, T, E, D));
}

void device_limited_topk(int32_t* topk_idx, const float* scores, int64_t T, int64_t E, int64_t D, int64_t M,
                         int64_t K) {
    check_devices(E, D, "device_limited_topk");
    if (M < 1 || M > D) fail("device_limited_topk: the device limit M = ", M, " must be in [1, D = ", D, "]");
    if (K < 1 || K > M * (E / D))
        fail("device_limited_topk: K = ", K, " must be in [1, ", M * (E / D), "] (the experts on M = ", M, " devices)");
    for (int64_t j = 0; j < T * E; j++)
        if (!std::isfinite(scores[j])) fail("device_limited_topk: score of token ", j / E, ", expert ", j % E, " is not finite");
    for (int64_t t = 0; t < T; t++)  // a device ranks by its best expert: the gate's group max
        moe_select_topk(topk_idx + t * K, nullptr, scores + t * E, E, D, M, K, GroupScore::Max);
}

}  // namespace dsref
