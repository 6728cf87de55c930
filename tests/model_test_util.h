// model_test_util.h — helpers shared by the whole-model tests (llama, DeepSeek dense, DeepSeek MoE):
// reading a golden file's tokens, comparing against its float64 values, and cached decoding.
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

#include "io/safetensors.h"
#include "model/model.h"

namespace dsref_test {

// The `tokens` I32 tensor of an expected.safetensors file.
inline std::vector<int32_t> golden_tokens(const dsref::TensorMap& g) {
    std::vector<int64_t> t = g.at("tokens").to_i64();
    return std::vector<int32_t>(t.begin(), t.end());
}

// max |a[i] − b[i]| over the first n values; infinity unless a has exactly n values and b at least n
// (a golden file holds T = 64..96 rows, and a prefix prefill is compared with its first rows).
inline double max_diff_prefix(const std::vector<float>& a, const std::vector<double>& b, int64_t n) {
    if ((int64_t)a.size() != n || (int64_t)b.size() < n) return INFINITY;
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = std::max(m, std::fabs((double)a[i] - b[i]));
    return m;
}

// Prefills tokens[0, n_prefill), then decodes the rest one token at a time against `cache`; returns
// the logits of every row, [T, V], as a full prefill would.
inline std::vector<float> prefill_then_decode(dsref::Model& m, const std::vector<int32_t>& tokens, int64_t n_prefill,
                                              dsref::KVCache& cache) {
    std::vector<float> got = m.forward(std::vector<int32_t>(tokens.begin(), tokens.begin() + n_prefill), cache);
    for (size_t t = n_prefill; t < tokens.size(); t++) {
        const std::vector<float> row = m.forward({tokens[t]}, cache);
        got.insert(got.end(), row.begin(), row.end());
    }
    return got;
}

}  // namespace dsref_test
