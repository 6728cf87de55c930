// grpo_walkthrough.cpp — chapter 06: GRPO, DPO and R1's rule-based rewards, number by number.
//
// What this program teaches (README.md in this folder explains each part):
//   1. the group baseline: advantages of one prompt's G completions (TRL, verl, Dr. GRPO, population std)
//   2. the clipped surrogate per token: ratio, clip, loss and dl/dx
//   3. the k3 KL estimator: always >= 0, unbiased, lower variance than k1
//   4. the aggregation variants (grpo, bnpo, dr_grpo, dapo, verl's seq-mean-token-sum[-norm]) on one batch
//   5. variants: clip-higher, two-sided clip (delta), Dr. GRPO, on-policy, GSPO (sequence-level ratio)
//   6. log-probs from logits with temperature, and the gradient through log-softmax
//   7. process supervision (DeepSeekMath §4.1.3)
//   8. DPO (DeepSeek LLM §4)
//   9. R1-Zero's rule-based rewards on sample completions
//
// Run: make walkthrough   (or build/walkthrough/06_grpo/grpo_walkthrough). Every number it prints is
// computed by the ref/ library; the same figures are pinned by tests/test_grpo.cpp (its worked example).
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "rl/advantages.h"
#include "rl/dpo.h"
#include "rl/grpo.h"
#include "rl/logprob.h"
#include "rl/rewards.h"

using namespace dsref;

// The worked example of tests/test_grpo.cpp: one prompt, G = 4 completions of 3, 2, 4 and 1 tokens,
// padded to T = 4; L_max = 5.
static const int64_t B = 4, T = 4;
static const double kPad = -7.0;  // junk in padded slots: the mask must make it irrelevant
static const std::vector<double> X = {-1.0, -0.5, -2.0, kPad, -0.7, -1.5, kPad, kPad,
                                      -0.3, -1.2, -0.9, -2.5, -0.2, kPad, kPad, kPad};
static const std::vector<double> X_OLD = {-1.2, -0.5, -1.9, kPad, -0.4, -1.5, kPad, kPad,
                                          -0.35, -1.0, -0.9, -2.6, -0.5, kPad, kPad, kPad};
static const std::vector<double> X_REF = {-1.1, -0.6, -2.0, kPad, -0.8, -1.4, kPad, kPad,
                                          -0.3, -1.3, -1.0, -2.4, -0.25, kPad, kPad, kPad};
static const std::vector<double> MASK = {1, 1, 1, 0, 1, 1, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0};
static const std::vector<double> REWARDS = {1.0, 0.0, 0.5, 0.0};

static void heading(const char* s) { std::printf("\n==== %s ====\n", s); }

static std::vector<double> broadcast(const std::vector<double>& A) {
    std::vector<double> At(B * T);
    for (int64_t k = 0; k < B * T; k++) At[k] = A[k / T];
    return At;
}

static GrpoConfig cfg_of(LossType t, double beta) {
    GrpoConfig c;
    c.loss_type = t;
    c.beta = beta;
    c.max_completion_length = 5;
    c.loss_scale_factor = 5.0;
    return c;
}

static void print_rows(const char* label, const std::vector<double>& v) {
    std::printf("  %-10s", label);
    for (int64_t i = 0; i < B; i++) {
        std::printf(" |");
        for (int64_t t = 0; t < T; t++)
            if (MASK[i * T + t] != 0.0) std::printf(" %+.10f", v[i * T + t]);
    }
    std::printf("\n");
}

static void part1_advantages(std::vector<double>* A_trl) {
    heading("1. The group baseline: advantages (DeepSeekMath §4.1.2; R1 §2.2.1, eq. 3)");
    const MeanStd s = nan_mean_std(REWARDS.data(), 4, true);
    std::printf("rewards r = [1, 0, 0.5, 0]   mean = %.3f   sample std = %.17g   population std = %.15g\n", s.mean,
                s.std, nan_mean_std(REWARDS.data(), 4, false).std);
    struct Variant {
        const char* name;
        RewardScale scale;
        double eps;
        bool unbiased;
    };
    const Variant vs[] = {{"TRL group (std + 1e-4)", RewardScale::Group, 1e-4, true},
                          {"verl (std + 1e-6)", RewardScale::Group, 1e-6, true},
                          {"none (Dr. GRPO: r - mean)", RewardScale::None, 0.0, true},
                          {"population std + 1e-4 (don't)", RewardScale::Group, 1e-4, false}};
    for (const Variant& v : vs) {
        AdvantageConfig c;
        c.scale = v.scale;
        c.epsilon = v.eps;
        c.unbiased_std = v.unbiased;
        const std::vector<double> A = group_advantages(REWARDS, c);
        std::printf("  %-30s A = [%.16f, %.16f, %.16f, %.16f]\n", v.name, A[0], A[1], A[2], A[3]);
        if (v.eps == 1e-4 && v.unbiased && v.scale == RewardScale::Group) *A_trl = A;
    }
    AdvantageConfig c;
    const std::vector<double> tenths = {0.1, 0.1, 0.1};
    const std::vector<double> eq = group_advantages(tenths, c);
    const MeanStd n = nan_mean_std(tenths.data(), 3, true);
    std::printf("  equal rewards [0.1, 0.1, 0.1]: mean = %.17g, std = %.3g in double\n", n.mean, n.std);
    std::printf("    -> A = [%g, %g, %g] here (never NaN); the naive (r - mean)/std would give %.3f\n", eq[0], eq[1],
                eq[2], (0.1 - n.mean) / n.std);
}

static void part2_tokens(const std::vector<double>& A) {
    heading("2. The clipped surrogate per token (DeepSeekMath §4.1.1, eq. 3), eps = 0.2, beta = 0.04");
    std::vector<double> r(B * T), k3(B * T), l(B * T), dl(B * T);
    GrpoConfig c = cfg_of(LossType::Grpo, 0.04);
    for (int64_t k = 0; k < B * T; k++) {
        if (MASK[k] == 0.0) continue;
        const SurrogateTerm s = clipped_surrogate(X[k] - X_OLD[k], A[k / T], c);
        const KlTerm kl = kl_estimate(KlEstimator::K3, X[k], X_REF[k]);
        r[k] = s.ratio;
        k3[k] = kl.value;
        l[k] = s.loss;
        dl[k] = s.dloss_dlogratio + 0.04 * kl.dvalue_dx;
        if (s.clipped_low || s.clipped_high)
            std::printf("  token [%lld, %lld]: r = %.10f, A = %+.4f -> clipped %s, no policy gradient\n",
                        (long long)(k / T), (long long)(k % T), r[k], A[k / T], s.clipped_high ? "high" : "low");
    }
    std::printf("  token [3, 0]: r = %.10f > 1.2 but A < 0: NOT clipped (the min keeps the worse branch)\n", r[12]);
    std::printf("  rows are completions 0..3, active tokens only:\n");
    print_rows("ratio r", r);
    print_rows("k3", k3);
    print_rows("l (beta=0)", l);
    print_rows("dl/dx", dl);
}

static void part3_k3() {
    heading("3. The k3 KL estimator (DeepSeekMath §4.1.1, eq. 4; Schulman 2020)");
    const KlTerm k1 = kl_estimate(KlEstimator::K1, -1.0, -1.1), k2 = kl_estimate(KlEstimator::K2, -1.0, -1.1),
                 k3 = kl_estimate(KlEstimator::K3, -1.0, -1.1);
    std::printf("  one token, x = -1.0, x_ref = -1.1:  k1 = %.17g  k2 = %.17g  k3 = %.17g\n", k1.value, k2.value, k3.value);
    std::printf("  d/dx:                               k1 = %.17g  k2 = %.17g  k3 = %.17g\n", k1.dvalue_dx,
                k2.dvalue_dx, k3.dvalue_dx);
    // Expectations under pi over a 4-token vocabulary: E[k1] = E[k3] = KL(pi || ref); k3 >= 0 always.
    const double z_pi[4] = {2.0, 0.5, -1.0, 0.0}, z_ref[4] = {1.5, 1.0, -0.5, 0.0};
    double lp[4], lr[4];
    log_softmax_row(lp, z_pi, 4, 1.0);
    log_softmax_row(lr, z_ref, 4, 1.0);
    double kl = 0, e1 = 0, e3 = 0, v1 = 0, v3 = 0, min1 = 1e300, min3 = 1e300;
    for (int j = 0; j < 4; j++) {
        const double p = std::exp(lp[j]);
        const double a = kl_estimate(KlEstimator::K1, lp[j], lr[j]).value, b = kl_estimate(KlEstimator::K3, lp[j], lr[j]).value;
        kl += p * (lp[j] - lr[j]);
        e1 += p * a;
        e3 += p * b;
        min1 = std::fmin(min1, a);
        min3 = std::fmin(min3, b);
    }
    for (int j = 0; j < 4; j++) {
        const double p = std::exp(lp[j]);
        v1 += p * std::pow(kl_estimate(KlEstimator::K1, lp[j], lr[j]).value - e1, 2);
        v3 += p * std::pow(kl_estimate(KlEstimator::K3, lp[j], lr[j]).value - e3, 2);
    }
    std::printf("  pi = softmax[2, 0.5, -1, 0], ref = softmax[1.5, 1, -0.5, 0]:  KL(pi||ref) = %.12f\n", kl);
    std::printf("    E_pi[k1] = %.12f  (var %.6f, min sample %+.6f: can be negative)\n", e1, v1, min1);
    std::printf("    E_pi[k3] = %.12f  (var %.6f, min sample %+.6f: never negative)\n", e3, v3, min3);
}

static void part4_aggregation(const std::vector<double>& A) {
    heading("4. Aggregation variants on the same per-token losses (TRL loss_type, verl loss_agg_mode)");
    const std::vector<double> At = broadcast(A);
    const LossType types[] = {LossType::Grpo, LossType::Bnpo, LossType::Dapo, LossType::DrGrpo,
                              LossType::SeqMeanTokenSum, LossType::SeqMeanTokenSumNorm};
    std::printf("  %-26s %18s %18s   weight of token [3,0]\n", "loss_type", "beta = 0", "beta = 0.04");
    for (LossType t : types) {
        const GrpoResult r0 = grpo_loss(X, X_OLD, X_REF, At, MASK, B, T, cfg_of(t, 0.0));
        const GrpoResult r4 = grpo_loss(X, X_OLD, X_REF, At, MASK, B, T, cfg_of(t, 0.04));
        std::printf("  %-26s %+18.12f %+18.12f   %.6f\n", loss_type_name(t), r0.loss, r4.loss, r4.weights[12]);
    }
    AdvantageConfig verl;
    verl.epsilon = 1e-6;
    const std::vector<double> Av = broadcast(group_advantages(REWARDS, verl));
    std::printf("  verl's own A (std + 1e-6): token-mean %+.12f, seq-mean-token-mean %+.12f (beta 0)\n",
                grpo_loss(X, X_OLD, X_REF, Av, MASK, B, T, cfg_of(LossType::Bnpo, 0.0)).loss,
                grpo_loss(X, X_OLD, X_REF, Av, MASK, B, T, cfg_of(LossType::Grpo, 0.0)).loss);
    const GrpoResult g = grpo_loss(X, X_OLD, X_REF, At, MASK, B, T, cfg_of(LossType::Grpo, 0.04));
    std::printf("  metrics: clip_ratio low %.1f high %.1f region %.1f (10 active tokens), kl %.12f\n", g.clip_ratio_low,
                g.clip_ratio_high, g.clip_ratio_region, g.kl);
    std::printf("  dLoss/dx, beta = 0.04:\n");
    for (LossType t : {LossType::Grpo, LossType::Bnpo, LossType::DrGrpo})
        print_rows(loss_type_name(t), grpo_loss(X, X_OLD, X_REF, At, MASK, B, T, cfg_of(t, 0.04)).grad_logps);
}

static void part5_variants(const std::vector<double>& A) {
    heading("5. Variants: clip-higher, delta, Dr. GRPO, on-policy, GSPO");
    const std::vector<double> At = broadcast(A);
    GrpoConfig c = cfg_of(LossType::Grpo, 0.0);
    c.epsilon_high = 0.28;
    std::printf("  clip-higher eps_high = 0.28:  grpo %+.12f", grpo_loss(X, X_OLD, X_REF, At, MASK, B, T, c).loss);
    c.loss_type = LossType::Dapo;
    std::printf("   dapo %+.12f\n", grpo_loss(X, X_OLD, X_REF, At, MASK, B, T, c).loss);
    c = cfg_of(LossType::Grpo, 0.0);
    c.delta = 1.3;
    const GrpoResult d = grpo_loss(X, X_OLD, X_REF, At, MASK, B, T, c);
    std::printf("  two-sided clip delta = 1.3:   grpo %+.12f   (token [3,0] gradient now %g)\n", d.loss, d.grad_logps[12]);
    AdvantageConfig none;
    none.scale = RewardScale::None;
    std::printf("  Dr. GRPO (A = r - mean, dr_grpo): %+.12f\n",
                grpo_loss(X, X_OLD, X_REF, broadcast(group_advantages(REWARDS, none)), MASK, B, T,
                          cfg_of(LossType::DrGrpo, 0.0)).loss);
    const GrpoResult on = grpo_loss(X, {}, X_REF, At, MASK, B, T, cfg_of(LossType::Grpo, 0.04));
    std::printf("  on-policy (x_old = x), beta 0.04: %+.12f  (surrogate part = -mean(A) = 0; the rest is KL)\n", on.loss);
    print_rows("grad", on.grad_logps);
    c = cfg_of(LossType::Grpo, 0.0);
    c.is_level = IsLevel::Sequence;
    const GrpoResult s = grpo_loss(X, X_OLD, X_REF, At, MASK, B, T, c);
    std::printf("  GSPO sequence ratios s_i = [%.15f, %.16f, %.16f, %.16f]\n", s.ratio[0], s.ratio[4], s.ratio[8],
                s.ratio[12]);
    std::printf("  GSPO loss %+.12f, per-row gradient (same on every token) %+.10f %+.10f %+.10f %+.10f\n", s.loss,
                s.grad_logps[0], s.grad_logps[4], s.grad_logps[8], s.grad_logps[12]);
}

static void part6_logits() {
    heading("6. Log-probs from logits with temperature (ref/rl/logprob.h)");
    const float z[4] = {2.0f, 0.5f, -1.0f, 0.0f};
    const double zd[4] = {2.0, 0.5, -1.0, 0.0};
    const int32_t y = 0;
    std::vector<double> x, g;
    logprobs_forward(x, z, &y, {}, 1, 1, 4, 0.7);
    logprobs_backward(g, {1.0}, z, &y, {}, 1, 1, 4, 0.7);
    double lp[4], dH[4];
    log_softmax_row(lp, zd, 4, 0.7);
    const double H = entropy_from_logits(zd, 4, 0.7, dH);
    std::printf("  z = [2, 0.5, -1, 0], T = 0.7, sampled y = 0\n");
    std::printf("  p      = [%.10f, %.10f, %.10f, %.10f]\n", std::exp(lp[0]), std::exp(lp[1]), std::exp(lp[2]), std::exp(lp[3]));
    std::printf("  x      = %.12f\n", x[0]);
    std::printf("  dx/dz  = [%+.10f, %+.10f, %+.10f, %+.10f]   = (1/T)(onehot - p)\n", g[0], g[1], g[2], g[3]);
    std::printf("  H      = %.12f,  dH/dz = [%+.10f, %+.10f, %+.10f, %+.10f]\n", H, dH[0], dH[1], dH[2], dH[3]);
}

static void part7_process() {
    heading("7. Process supervision (DeepSeekMath §4.1.3)");
    const std::vector<std::vector<StepReward>> steps = {{{1, 0.9}, {3, 0.2}}, {{0, 0.5}, {2, 0.1}}};
    const std::vector<std::vector<double>> n = process_normalized_rewards(steps);
    const std::vector<std::vector<double>> A = process_advantages(steps, {5, 3});
    std::printf("  output 0: 5 tokens, steps end at tokens 2, 4 (1-based), rewards 0.9, 0.2 -> normalized %+.10f %+.10f\n",
                n[0][0], n[0][1]);
    std::printf("  output 1: 3 tokens, steps end at tokens 1, 3, rewards 0.5, 0.1          -> normalized %+.10f %+.10f\n",
                n[1][0], n[1][1]);
    std::printf("  A_t output 0 = [%+.10f, %+.10f, %+.10f, %+.10f, %+.10f]\n", A[0][0], A[0][1], A[0][2], A[0][3], A[0][4]);
    std::printf("  A_t output 1 = [%+.10f, %+.10f, %+.10f]\n", A[1][0], A[1][1], A[1][2]);
}

static void part8_dpo() {
    heading("8. DPO (DeepSeek LLM §4; DPO paper eq. 7)");
    for (double ls : {0.0, 0.1}) {
        const DpoResult r = dpo_loss({-12.5}, {-14.0}, {-13.0}, {-13.5}, 0.1, ls);
        std::printf("  beta 0.1, label_smoothing %.1f: Delta = 1, L = %.12f, dL/dlogpi(y_w) = %+.12f, dL/dlogpi(y_l) = %+.12f\n",
                    ls, r.loss, r.grad_chosen[0], r.grad_rejected[0]);
        if (ls == 0.0)
            std::printf("    rewards/chosen %+.3f  rewards/rejected %+.3f  margin %.3f  accuracy %.0f\n",
                        r.chosen_rewards[0], r.rejected_rewards[0], r.reward_margin, r.reward_accuracy);
    }
}

static void part9_rewards() {
    heading("9. R1-Zero's rule-based rewards on sample completions (R1 §2.2.2, Table 1)");
    struct Sample {
        const char* label;
        std::string text;
    };
    const Sample samples[] = {
        {"well formed", "<think>\n2 + 2: add the units.\n</think>\n<answer>\n\\boxed{4}\n</answer>"},
        {"R1-Zero style", "<think> two plus two is four </think> <answer> 4 </answer>"},
        {"prefilled <think>", "2 + 2 is 4.\n</think>\n<answer>\n4\n</answer>"},
        {"first box wins", "<think>\nTry \\boxed{\\frac{8}{2}} then \\boxed{5}.\n</think>\n<answer>\n5\n</answer>"},
        {"mixed language", "<think>\n我们 add 2 and 2.\n</think>\n<answer>\n4.0\n</answer>"},
        {"no tags", "The answer is 4."},
    };
    // DeepSeek-R1 Table 1, byte for byte, with the question in place of "prompt".
    const std::string question = "What is 2 + 2?";
    std::printf("  R1-Zero template:\n    A conversation between User and Assistant. The user asks a question, and the "
                "Assistant solves it. The assistant first thinks about the reasoning process in the mind and then "
                "provides the user with the answer. The reasoning process and answer are enclosed within <think> "
                "</think> and <answer> </answer> tags, respectively, i.e., <think> reasoning process here </think> "
                "<answer> answer here </answer>. User: %s. Assistant:\n", question.c_str());
    std::printf("  truth = \"4\"\n");
    std::printf("  %-20s %8s %9s %12s %9s %14s\n", "completion", "accuracy", "format_r1", "think_format", "tag_count",
                "language(latin)");
    for (const Sample& s : samples)
        std::printf("  %-20s %8.2f %9.2f %12.2f %9.2f %14.4f\n", s.label, accuracy_reward(s.text, "4"),
                    format_r1_reward(s.text), think_format_reward(s.text), tag_count_reward(s.text),
                    language_reward(s.text, Script::Latin));
}

int main() {
    std::printf("GRPO walkthrough: one prompt, G = 4 completions (the worked example of tests/test_grpo.cpp)\n");
    std::vector<double> A;
    part1_advantages(&A);
    part2_tokens(A);
    part3_k3();
    part4_aggregation(A);
    part5_variants(A);
    part6_logits();
    part7_process();
    part8_dpo();
    part9_rewards();
    return 0;
}
