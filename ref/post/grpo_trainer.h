// grpo_trainer.h — the GRPO loop of DeepSeekMath (arXiv 2402.03300 §4.1, Algorithm 1) as DeepSeek-R1-Zero
// runs it (R1 paper arXiv 2501.12948 §2.2): rule-based rewards, no value model, no reward model.
//
//   π_ref ← π_θ (the SFT model, frozen)
//   for step k = 0 .. steps−1:
//     P prompts (drawn from the seed), G completions each, sampled with the KV cache by model/generate.h
//       from the current policy (temperature τ, top-p; one seed per completion)
//     r_i = accuracy_i + format_i                     rl/arith_task.h → rl/rewards.h
//     A_i = (r_i − mean_group) / (std_group + eps)    rl/advantages.h, broadcast over the completion
//     x_old ← log π_θ (only for μ > 1; μ = 1 is on-policy: ratio 1, the gradient of A·r is A·∇x)
//     repeat μ times:  Loss = grpo_loss(x, x_old, x_ref, A)  (post/policy_grad.h), clip ‖∇‖, AdamW
//
// The sampler is the inference model (model/model.h, the code `dsref generate` runs), reloaded from
// the checkpoint the trainer writes after every update; the log-probs of the objective are recomputed
// by the training network (train/tiny_v3.h), as TRL recomputes them after vLLM samples. Everything runs
// in a fixed order with per-completion seeds, so the CSV is bit-identical at any thread count.
//
// Prompts: "\0" (BOS = byte 0) + the problem bytes; the vocabulary is bytes (data/train's tiny config),
// and the end-of-sequence token (byte 0) ends a completion. Bad input is refused: G < 2 (no group
// baseline), a prompt whose length + max_new exceeds the context (named by its index), a temperature
// ≤ 0. A completion the reward cannot read (no \boxed{}) scores 0 and is counted in the log.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "post/tiny_policy.h"
#include "rl/advantages.h"
#include "rl/arith_task.h"
#include "rl/grpo.h"

namespace dsref {

struct GrpoTrainOptions {
    std::string model;                 // initial checkpoint (the SFT model; also π_ref)
    std::string out;                   // output directory: the policy checkpoint (updated every step)
    std::string log;                   // CSV path ("" = none); LOG.svg next to it
    ArithTaskConfig task;
    uint64_t seed = 1;                 // the RL prompts and the sampling seeds
    uint64_t heldout_seed = 1000;      // the held-out problems (`exclude` removed; the RL prompts avoid them)
    int64_t heldout = 200;             // held-out problems, scored greedily
    std::vector<std::string> exclude;  // prompts never to evaluate on (the SFT set)
    int64_t steps = 100, prompts = 8, G = 8, max_new = 48, mu = 1, eval_every = 25;
    int64_t train_prompts = 0;         // size of the RL prompt pool; 0 = steps · prompts (each seen once)
    double temperature = 1.0, top_p = 1.0;
    GrpoConfig grpo;                   // loss_type, epsilon, epsilon_high, beta (DeepSeekMath: 0.04)
    RewardScale scale = RewardScale::Group;
    double lr = 1e-4, weight_decay = 0.0, beta1 = 0.9, beta2 = 0.99, clip = 1.0;
    bool progress = true;
};

struct EvalResult {
    double accuracy = 0, format = 0, mean_length = 0;
    int64_t no_answer = 0, truncated = 0, n = 0;
};

struct GrpoTrainSummary {
    EvalResult before, after;          // held-out greedy, at step 0 and after the last step
    double decode_tokens_per_s = 0;    // the G samples through the KV cache
    double seconds = 0;
};

// The whole run (writes out/, the CSV and the SVG); prints a progress line on stderr.
GrpoTrainSummary grpo_train(const GrpoTrainOptions& o);

// Prompt ids: BOS (0) then the bytes.
std::vector<int32_t> byte_prompt(const std::string& text);

// The checks of the header: G < 2, prompt i too long for the context, temperature.
void grpo_check_inputs(const std::vector<std::vector<int32_t>>& prompts, int64_t G, int64_t max_new,
                       int64_t context, double temperature);

// The held-out problems of a run: drawn from heldout_seed with `exclude` (the SFT set) removed. They do not
// depend on the RL seed, steps or prompts (the RL prompt pool is drawn around them), so every run with the
// same SFT set is scored on the same problems.
std::vector<ArithProblem> grpo_heldout_problems(const GrpoTrainOptions& o);

// Greedy completions of `problems` from the checkpoint in `dir`, scored by arith_score.
EvalResult arith_eval(const std::string& dir, const std::vector<ArithProblem>& problems, int64_t max_new);

}  // namespace dsref
