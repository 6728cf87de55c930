// sampling.h — choosing the next token from logits.
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

}  // namespace dsref
