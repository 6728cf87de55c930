// generate.cpp — cached generation (prefill, then one token at a time).
#include "model/generate.h"

#include <chrono>

#include "core/error.h"

namespace dsref {

GenerateResult generate(Model& model, const std::vector<int32_t>& prompt, int64_t max_new, const SamplingParams& sp,
                        bool stop_at_eos) {
    if (prompt.empty()) usage_fail("generate: the prompt needs at least one token");
    if (max_new < 0) usage_fail("--max-new must be >= 0");
    const int64_t V = model.config().vocab_size;
    const int64_t eos = model.config().eos_token_id;
    Sampler sampler(sp);
    GenerateResult r;
    if (max_new == 0) return r;
    KVCache cache;
    using Clock = std::chrono::steady_clock;
    const Clock::time_point t0 = Clock::now();
    std::vector<float> logits = model.forward(prompt, cache, nullptr, /*last_only=*/true);
    const Clock::time_point t1 = Clock::now();
    r.prefill_s = std::chrono::duration<double>(t1 - t0).count();
    for (int64_t n = 0; n < max_new; n++) {
        const int32_t next = sampler.sample(logits.data(), V);
        r.tokens.push_back(next);
        r.logits.insert(r.logits.end(), logits.begin(), logits.end());
        if ((stop_at_eos && next == eos) || n + 1 == max_new) break;
        logits = model.forward({next}, cache, nullptr, true);
        r.decode_s = std::chrono::duration<double>(Clock::now() - t1).count();
    }
    return r;
}

}  // namespace dsref
