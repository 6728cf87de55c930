// r1zero.cpp — chapter 09: the mini R1-Zero loop, one piece at a time (README.md in this folder).
//
//   1. the task and its rule-based reward: problems, the worked <think> trace SFT teaches, and how
//      completions score (right, wrong, no \boxed{}, cut off)
//   2. one group: G completions of a prompt, their rewards and the group-relative advantages
//   3. GRPO on one group, on a tiny random policy: the probability of the rewarded completion rises,
//      the others fall, while β·k3 to the frozen reference grows — with every loss_type
//   4. where the real run is: `make r1zero` and the curves of this folder's r1zero_curves.svg
//
// Run: make walkthrough (or build/walkthrough/09_r1zero/r1zero). Every number it prints is computed by
// ref/ (rl/arith_task.h, rl/advantages.h, post/policy_grad.h, train/adamw.h); the same step is pinned
// against `dsref op grpo_loss` and finite differences by tests/test_rl_loop.cpp.
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "core/rope.h"
#include "post/policy_grad.h"
#include "rl/advantages.h"
#include "rl/arith_task.h"
#include "train/adamw.h"

using namespace dsref;

static void heading(const char* s) { std::printf("\n==== %s ====\n", s); }

// A tiny V3 (dense layer, then a MoE layer) over a byte vocabulary of 16 symbols, random weights.
static TinyV3Config tiny() {
    TinyV3Config c;
    c.V = 16;
    c.d = 16;
    c.L = 2;
    c.first_dense = 1;
    c.I_dense = 24;
    c.I_moe = 8;
    c.n_shared = 1;
    c.mla.d = 16;
    c.mla.H = 2;
    c.mla.d_q = 8;
    c.mla.d_c = 8;
    c.mla.d_n = 4;
    c.mla.d_r = 4;
    c.mla.d_v = 4;
    c.mla.scale = 1.0 / std::sqrt(8.0);
    c.mla.inv_freq = rope_inv_freq(4, 10000.0, RopeScaling{});
    c.gate.E = 4;
    c.gate.K = 2;
    c.gate.scoring = MoeScoring::Sigmoid;
    c.gate.topk_method = MoeTopk::NoauxTc;
    c.gate.norm_topk_prob = true;
    c.gate.routed_scaling_factor = 1.0;
    return c;
}

static ParamMap<float> random_weights(const TinyV3Config& c, uint64_t seed) {
    std::mt19937_64 g(seed);
    std::normal_distribution<double> n(0.0, 1.0);
    ParamMap<float> p;
    for (const auto& [name, shape] : tiny_v3_shapes(c)) {
        int64_t size = 1;
        for (int64_t s : shape) size *= s;
        auto& v = p[name];
        v.resize(size);
        const bool norm = name.find("norm") != std::string::npos, bias = name.find("bias") != std::string::npos;
        for (auto& x : v) x = (float)(bias ? 0.0 : norm ? 1.0 : 0.3 * n(g));
    }
    return p;
}

// mean log-prob per token of each row: [B]
static std::vector<double> row_means(const std::vector<double>& x, const PolicyBatch& b) {
    std::vector<double> m(b.B, 0.0);
    for (int64_t i = 0; i < b.B; i++) {
        double n = 0;
        for (int64_t t = 0; t < b.T; t++) m[i] += x[i * b.T + t] * b.mask[i * b.T + t], n += b.mask[i * b.T + t];
        m[i] /= n;
    }
    return m;
}

int main() {
    heading("1. the task and its rule-based reward (R1 paper §2.2.2)");
    ArithTaskConfig task;  // operands 0..99, zero-padded to 2 digits
    const auto probs = arith_problems(task, 1, 3);
    for (const auto& p : probs) std::printf("  %s%s\n", p.prompt.c_str(), arith_completion(p).c_str());
    const ArithProblem& p0 = probs[0];
    struct Case {
        const char* what;
        std::string text;
        bool eos;
    };
    const std::vector<Case> cases = {
        {"the worked solution", arith_completion(p0), true},
        {"right answer, no <think>", "\\boxed{" + p0.answer + "}", true},
        {"wrong answer", "<think>0+0=0</think>\\boxed{1}", true},
        {"no \\boxed{} (unparsable)", "<think>" + p0.trace + "</think>" + p0.answer, true},
        {"cut off at the length limit", "<think>" + p0.trace.substr(0, 5), false},
    };
    std::printf("  prompt %s  truth %s\n", p0.prompt.c_str(), p0.answer.c_str());
    for (const Case& c : cases) {
        const ArithScore s = arith_score(c.text, p0.answer, c.eos);
        std::printf("  %-30s accuracy %.0f  format %.0f  reward %.0f%s%s\n", c.what, s.accuracy, s.format,
                    s.accuracy + s.format, s.no_answer ? "  [counted: no answer]" : "",
                    s.truncated ? "  [counted: truncated]" : "");
    }

    heading("2. one group: G = 4 completions of one prompt, A = (r - mean) / (std + 1e-4)");
    const std::vector<double> r = {2, 1, 1, 0};  // right+format, format only, format only, neither
    AdvantageConfig ac;
    ac.group_size = 4;
    const std::vector<double> A = group_advantages(r, ac);
    for (int i = 0; i < 4; i++) std::printf("  completion %d  reward %.0f  advantage %+.4f\n", i, r[i], A[i]);
    std::printf("  (a group where every completion scores the same has A = 0: no signal, no critic needed)\n");

    heading("3. GRPO on that group, through a tiny random V3 policy (DeepSeekMath §4.1.1)");
    const TinyV3Config c = tiny();
    // prompt: BOS 0 then 3 symbols; four completions of different lengths ending in EOS (0)
    const std::vector<int32_t> prompt = {0, 5, 9, 3};
    const PolicyBatch b = make_policy_batch({prompt, prompt, prompt, prompt},
                                            {{7, 7, 2, 0}, {7, 4, 0}, {1, 4, 2, 8, 0}, {12, 0}});
    std::vector<double> At(b.B * b.T);
    for (int64_t k = 0; k < b.B * b.T; k++) At[k] = A[k / b.T];
    for (const char* lt : {"grpo", "bnpo", "dr_grpo", "dapo", "seq-mean-token-sum", "seq-mean-token-sum-norm"}) {
        ParamMap<float> p = random_weights(c, 9);
        const ParamMap<float> ref = p;  // π_ref: frozen at the start
        GrpoConfig cfg;
        cfg.loss_type = loss_type_from_name(lt);
        cfg.beta = 0.04;
        AdamWConfig adam;
        std::map<std::string, AdamWState<float>> st;
        const std::vector<double> x_ref = policy_logps(c, ref, b, 1.0);
        const std::vector<double> before = row_means(x_ref, b);
        const std::vector<double> x_old = x_ref;  // μ = 4 updates on the same samples
        PolicyStep s;
        for (int it = 1; it <= 4; it++) {
            ParamMap<float> g;
            s = grpo_policy_step(c, p, &g, b, x_old, x_ref, At, cfg, 1.0);
            for (auto& [name, gv] : g) adamw_step(p[name].data(), gv.data(), st[name], (int64_t)gv.size(), it, 3e-3, 0.0, adam);
        }
        const std::vector<double> after = row_means(policy_logps(c, p, b, 1.0), b);
        std::printf("  %-24s mean log-prob per token, before -> after 4 updates:", lt);
        for (int i = 0; i < 4; i++) std::printf("  %+.3f", after[i] - before[i]);
        std::printf("   kl %.2e  clipped %.2f\n", s.grpo.kl, s.grpo.clip_ratio_region);
    }
    std::printf("  the best completion (A > 0) gains, the worst (A < 0) loses; the two A = 0 ones move only\n"
                "  through the weights they share. The clip stops a token once its ratio leaves [0.8, 1.2] in\n"
                "  the direction of A. bnpo, dr_grpo, dapo and both seq-mean-token-sum variants weight every\n"
                "  token of this batch by the same constant (1/N, 1/(B L_max), 1/B, 1/S), and AdamW is blind\n"
                "  to a constant scale: they take the same steps. grpo's 1/n_i per sequence is different.\n");

    heading("4. the whole loop");
    std::printf("  make r1zero   (init -> rl-data -> dsref train (SFT) -> dsref rl (GRPO); curves in r1zero_curves.svg)\n");
    return 0;
}
