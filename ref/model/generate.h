// generate.h — generation with the KV cache: one prefill of the prompt, then one decode step per new
// token, each token chosen by core/sampling.h.
#pragma once
#include <cstdint>
#include <vector>

#include "core/sampling.h"
#include "model/model.h"

namespace dsref {

struct GenerateResult {
    std::vector<int32_t> tokens;  // the new ids only
    std::vector<float> logits;    // [n_new, V]: the logits each new token was chosen from
    double prefill_s = 0;         // wall time of the prompt's prefill
    double decode_s = 0;          // wall time of the n_new - 1 decode steps after it
};

// Prefills `prompt`, then decodes one token at a time from the cache until `max_new` tokens (or the
// eos token, when stop_at_eos and the config has one).
GenerateResult generate(Model& model, const std::vector<int32_t>& prompt, int64_t max_new, const SamplingParams& sp,
                        bool stop_at_eos);

}  // namespace dsref
