// sampling.h — choosing the next token from logits, and generation with the KV cache.
//
//   temperature = 0   greedy: the argmax, the lowest id on ties
//   temperature > 0   p = softmax(logits / temperature) in double; with top_p < 1 keep the smallest
//                     set of most-probable tokens (ties by lower id) whose mass reaches top_p
//                     (nucleus sampling, Holtzman et al. 2019), renormalize, draw one.
// The draw uses a seeded 64-bit generator (splitmix64) and its own u ∈ [0,1) = (r >> 11)·2⁻⁵³, so a
// seed gives the same tokens on every platform and thread count.
#pragma once
#include <cstdint>
#include <vector>

#include "model.h"

namespace dsref {

struct SamplingParams {
    double temperature = 0.0;
    double top_p = 1.0;
    uint64_t seed = 0;
};

class Sampler {
public:
    explicit Sampler(SamplingParams p);
    int32_t sample(const float* logits, int64_t V);  // logits: [V]

private:
    SamplingParams p_;
    uint64_t state_;
    double uniform();
};

int32_t argmax_lowest(const float* x, int64_t n);  // x: [n]; NaN is never chosen

struct GenerateResult {
    std::vector<int32_t> tokens;  // the new ids only
    std::vector<float> logits;    // [n_new, V]: the logits each new token was chosen from
};

// Prefills `prompt`, then decodes one token at a time from the cache until `max_new` tokens (or the
// eos token, when stop_at_eos and the config has one).
GenerateResult generate(Model& model, const std::vector<int32_t>& prompt, int64_t max_new, const SamplingParams& sp,
                        bool stop_at_eos);

}  // namespace dsref
