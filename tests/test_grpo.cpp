// test_grpo.cpp — GRPO advantages, loss, gradients and the grpo_loss op (ref/rl/advantages.h, ref/rl/grpo.h,
// ref/ops/ops_rl.cpp) against the golden numbers of the worked example below, finite differences,
// identities and the edge cases of ref/rl/advantages.h and ref/rl/grpo.h.
//
// The worked example's figures were computed independently of dsref, in double precision, by plain
// analytic Python cross-checked with torch autograd, and are copied here as printed (10–17 digits);
// walkthrough/06_grpo/README.md follows the same batch number by number.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <iomanip>
#include <random>
#include <sstream>

#include <catch2/catch.hpp>

#include "core/error.h"
#include "ops/op_registry.h"
#include "rl/advantages.h"
#include "rl/grpo.h"
#include "rl/logprob.h"
#include "test_util.h"

using namespace dsref;

// ---- helpers -----------------------------------------------------------------------------------------------


// Checks the active entries of a [B, T] tensor against rows of printed figures.
static void check_rows(const std::vector<double>& v, int64_t T, const std::vector<std::vector<const char*>>& rows) {
    for (size_t i = 0; i < rows.size(); i++)
        for (size_t t = 0; t < rows[i].size(); t++) {
            INFO("row " << i << " token " << t);
            CHECK_PRINTED(v[i * T + t], rows[i][t]);
        }
}

// The worked example: one prompt, G = B = 4, padded width T = 4, L_max = 5.
struct Example {
    int64_t B = 4, T = 4;
    std::vector<double> x, x_old, x_ref, mask, rewards;
    explicit Example(double junk = -7.0) {
        const std::vector<std::vector<double>> X = {{-1.0, -0.5, -2.0}, {-0.7, -1.5}, {-0.3, -1.2, -0.9, -2.5}, {-0.2}};
        const std::vector<std::vector<double>> O = {{-1.2, -0.5, -1.9}, {-0.4, -1.5}, {-0.35, -1.0, -0.9, -2.6}, {-0.5}};
        const std::vector<std::vector<double>> R = {{-1.1, -0.6, -2.0}, {-0.8, -1.4}, {-0.3, -1.3, -1.0, -2.4}, {-0.25}};
        x.assign(B * T, junk);
        x_old.assign(B * T, junk);
        x_ref.assign(B * T, junk);
        mask.assign(B * T, 0.0);
        for (int64_t i = 0; i < B; i++)
            for (size_t t = 0; t < X[i].size(); t++) {
                x[i * T + t] = X[i][t];
                x_old[i * T + t] = O[i][t];
                x_ref[i * T + t] = R[i][t];
                mask[i * T + t] = 1.0;
            }
        rewards = {1.0, 0.0, 0.5, 0.0};
    }
    std::vector<double> token_adv(const AdvantageConfig& acfg = AdvantageConfig()) const {
        const std::vector<double> A = group_advantages(rewards, acfg);
        std::vector<double> At(B * T);
        for (int64_t k = 0; k < B * T; k++) At[k] = A[k / T];
        return At;
    }
    GrpoResult run(GrpoConfig cfg, const AdvantageConfig& acfg = AdvantageConfig()) const {
        if (cfg.max_completion_length == 0) cfg.max_completion_length = 5;
        return grpo_loss(x, x_old, x_ref, token_adv(acfg), mask, B, T, cfg);
    }
};

static GrpoConfig config(LossType type, double beta) {
    GrpoConfig c;
    c.loss_type = type;
    c.beta = beta;
    return c;
}

static Tensor f32(const Shape& s, const std::vector<double>& v) {
    return Tensor::from_f32(s, std::vector<float>(v.begin(), v.end()));
}

static double scalar(const TensorMap& m, const std::string& name) { return m.at(name).to_f64().at(0); }

// ---- the worked example: advantages ---------------------------------------------------------------------------

TEST_CASE("advantages: the worked example's golden numbers", "[grpo][golden]") {
    const Example ex;
    const MeanStd s = nan_mean_std(ex.rewards.data(), 4, true);
    CHECK_PRINTED(s.mean, "0.375");
    CHECK_PRINTED(s.std, "0.47871355387816905");
    CHECK_PRINTED(nan_mean_std(ex.rewards.data(), 4, false).std, "0.414578098794425");

    AdvantageConfig trl;  // group, sample std, + 1e-4
    std::vector<double> A = group_advantages(ex.rewards, trl);
    CHECK_PRINTED(A[0], "1.3053097493539774");
    CHECK_PRINTED(A[1], "-0.7831858496123865");
    CHECK_PRINTED(A[2], "0.2610619498707955");
    CHECK_PRINTED(A[3], "-0.7831858496123865");

    AdvantageConfig verl;
    verl.epsilon = 1e-6;
    A = group_advantages(ex.rewards, verl);
    CHECK_PRINTED(A[0], "1.3055796924007037");
    CHECK_PRINTED(A[1], "-0.7833478154404222");
    CHECK_PRINTED(A[2], "0.26111593848014075");
    CHECK_PRINTED(A[3], "-0.7833478154404222");

    AdvantageConfig none;
    none.scale = RewardScale::None;
    A = group_advantages(ex.rewards, none);
    CHECK_PRINTED(A[0], "0.625");
    CHECK_PRINTED(A[1], "-0.375");
    CHECK_PRINTED(A[2], "0.125");
    CHECK_PRINTED(A[3], "-0.375");

    AdvantageConfig pop;
    pop.unbiased_std = false;
    A = group_advantages(ex.rewards, pop);
    CHECK_PRINTED(A[0], "1.507193174216421");
    CHECK_PRINTED(A[1], "-0.9043159045298527");
    CHECK_PRINTED(A[2], "0.3014386348432842");
    CHECK_PRINTED(A[3], "-0.9043159045298527");
}

// ---- the worked example: per-token quantities -----------------------------------------------------------------

TEST_CASE("per-token ratio, k3, loss and dl/dx of the worked example", "[grpo][golden]") {
    const Example ex;
    const std::vector<double> A = ex.token_adv();
    GrpoConfig cfg = config(LossType::Grpo, 0.04);
    std::vector<double> ratio(16), k3(16), l0(16), dldx(16);
    for (int64_t k = 0; k < 16; k++) {
        if (ex.mask[k] == 0.0) continue;
        const SurrogateTerm s = clipped_surrogate(ex.x[k] - ex.x_old[k], A[k], cfg);
        const KlTerm kl = kl_estimate(KlEstimator::K3, ex.x[k], ex.x_ref[k]);
        ratio[k] = s.ratio;
        k3[k] = kl.value;
        l0[k] = s.loss;
        dldx[k] = s.dloss_dlogratio + 0.04 * kl.dvalue_dx;
    }
    check_rows(ratio, 4, {{"1.2214027582", "1.0", "0.9048374180"}, {"0.7408182207", "1.0"},
                          {"1.0512710964", "0.8187307531", "1.0", "1.1051709181"}, {"1.3498588076"}});
    check_rows(k3, 4, {{"4.8374180360e-3", "4.8374180360e-3", "0"}, {"4.8374180360e-3", "5.1709180756e-3"},
                       {"0", "4.8374180360e-3", "4.8374180360e-3", "5.1709180756e-3"}, {"1.2294245007e-3"}});
    check_rows(l0, 4, {{"-1.5663716992", "-1.3053097494", "-1.1810931033"}, {"0.6265486797", "0.7831858496"},
                       {"-0.2744468823", "-0.2137394468", "-0.2610619499", "-0.2885180748"}, {"1.0571903171"}});
    check_rows(dldx, 4, {{"0.0038065033", "-1.3015032461", "-1.1810931033"}, {"0.0038065033", "0.7789790129"},
                         {"-0.2744468823", "-0.2099329435", "-0.2572554466", "-0.2927249115"}, {"1.0591411401"}});
    // The per_token_loss the full loss reports is the same l, plus beta·k3.
    const GrpoResult r = ex.run(cfg);
    for (int64_t k = 0; k < 16; k++) CHECK(std::fabs(r.per_token_loss[k] - (l0[k] + 0.04 * k3[k])) < 1e-15);
}

// ---- the worked example: losses and metrics -------------------------------------------------------------------

TEST_CASE("loss under each aggregation, on the worked example", "[grpo][golden]") {
    const Example ex;
    struct Row {
        LossType type;
        const char* beta0;
        const char* beta004;
    };
    const Row rows[] = {
        {LossType::Grpo, "0.037922785659", "0.038054485424"},
        {LossType::Bnpo, "-0.262361605932", "-0.262218572528"},
        {LossType::Dapo, "-0.262361605932", "-0.262218572528"},
        {LossType::DrGrpo, "-0.131180802966", "-0.131109286264"},
        {LossType::SeqMeanTokenSum, "-0.655904014829", "-0.655546431321"},
        {LossType::SeqMeanTokenSumNorm, "-0.524723211863", "-0.524437145056"},
    };
    for (const Row& row : rows) {
        INFO(loss_type_name(row.type));
        GrpoConfig c0 = config(row.type, 0.0), c4 = config(row.type, 0.04);
        c0.loss_scale_factor = c4.loss_scale_factor = 5.0;
        CHECK_PRINTED(ex.run(c0).loss, row.beta0);
        CHECK_PRINTED(ex.run(c4).loss, row.beta004);
    }
    AdvantageConfig verl;
    verl.epsilon = 1e-6;
    CHECK_PRINTED(ex.run(config(LossType::Bnpo, 0.0), verl).loss, "-0.262415863315");
    CHECK_PRINTED(ex.run(config(LossType::Grpo, 0.0), verl).loss, "0.037930628236");
    CHECK_PRINTED(ex.run(config(LossType::Bnpo, 0.04), verl).loss, "-0.262272829911");
    CHECK_PRINTED(ex.run(config(LossType::Grpo, 0.04), verl).loss, "0.038062328001");

    for (double beta : {0.0, 0.04}) {
        const GrpoResult r = ex.run(config(LossType::Grpo, beta));
        CHECK_PRINTED(r.clip_ratio_low, "0.1");
        CHECK_PRINTED(r.clip_ratio_high, "0.1");
        CHECK_PRINTED(r.clip_ratio_region, "0.2");
        CHECK_PRINTED(r.kl, "0.003575835083");
    }
}

// ---- the worked example: gradients ----------------------------------------------------------------------------

TEST_CASE("dLoss/dx under grpo, bnpo/dapo, dr_grpo, on the worked example", "[grpo][golden]") {
    const Example ex;
    check_rows(ex.run(config(LossType::Grpo, 0.04)).grad_logps, 4,
               {{"0.0003172086", "-0.1084586038", "-0.0984244253"}, {"0.0004758129", "0.0973723766"},
                {"-0.0171529301", "-0.0131208090", "-0.0160784654", "-0.0182953070"}, {"0.2647852850"}});
    const std::vector<std::vector<const char*>> bnpo = {
        {"0.0003806503", "-0.1301503246", "-0.1181093103"}, {"0.0003806503", "0.0778979013"},
        {"-0.0274446882", "-0.0209932944", "-0.0257255447", "-0.0292724912"}, {"0.1059141140"}};
    check_rows(ex.run(config(LossType::Bnpo, 0.04)).grad_logps, 4, bnpo);
    check_rows(ex.run(config(LossType::Dapo, 0.04)).grad_logps, 4, bnpo);
    check_rows(ex.run(config(LossType::DrGrpo, 0.04)).grad_logps, 4,
               {{"0.0001903252", "-0.0650751623", "-0.0590546552"}, {"0.0001903252", "0.0389489506"},
                {"-0.0137223441", "-0.0104966472", "-0.0128627723", "-0.0146362456"}, {"0.0529570570"}});
    check_rows(ex.run(config(LossType::Grpo, 0.0)).grad_logps, 4,
               {{"0", "-0.1087758124", "-0.0984244253"}, {"0", "0.0978982312"},
                {"-0.0171529301", "-0.0133587154", "-0.0163163719", "-0.0180323797"}, {"0.2642975793"}});
    // Masked positions get exactly zero.
    const GrpoResult r = ex.run(config(LossType::Grpo, 0.04));
    for (int64_t k = 0; k < 16; k++)
        if (ex.mask[k] == 0.0) CHECK(r.grad_logps[k] == 0.0);
}

// ---- the worked example: variants -----------------------------------------------------------------------------

TEST_CASE("variants: clip-higher, delta, Dr. GRPO, on-policy, GSPO, on the worked example", "[grpo][golden]") {
    const Example ex;
    GrpoConfig c = config(LossType::Grpo, 0.0);
    c.epsilon_high = 0.28;
    CHECK_PRINTED(ex.run(c).loss, "0.035594683252");
    c.loss_type = LossType::Dapo;
    CHECK_PRINTED(ex.run(c).loss, "-0.265155328821");

    c = config(LossType::Grpo, 0.0);
    c.delta = 1.3;
    GrpoResult r = ex.run(c);
    CHECK_PRINTED(r.loss, "0.028160607516");
    CHECK(r.grad_logps[12] == 0.0);  // seq3: r = 1.3499 > delta with A < 0

    AdvantageConfig none;
    none.scale = RewardScale::None;
    CHECK_PRINTED(ex.run(config(LossType::DrGrpo, 0.0), none).loss, "-0.062811146469");

    // On-policy: x_old := x (here: old_logps absent), beta 0.04.
    r = grpo_loss(ex.x, {}, ex.x_ref, ex.token_adv(), ex.mask, 4, 4, config(LossType::Grpo, 0.04));
    CHECK_PRINTED(r.loss, "0.000131699765");
    check_rows(r.grad_logps, 4,
               {{"-0.1084586038", "-0.1084586038", "-0.1087758124"}, {"0.0983740441", "0.0973723766"},
                {"-0.0163163719", "-0.0160784654", "-0.0160784654", "-0.0165792992"}, {"0.1962841682"}});
    // Same with old_logps given and equal to logps.
    const GrpoResult r2 = grpo_loss(ex.x, ex.x, ex.x_ref, ex.token_adv(), ex.mask, 4, 4, config(LossType::Grpo, 0.04));
    CHECK(r2.loss == r.loss);

    c = config(LossType::Grpo, 0.0);
    c.is_level = IsLevel::Sequence;
    r = ex.run(c);
    CHECK_PRINTED(r.ratio[0], "1.033895113513574");
    CHECK_PRINTED(r.ratio[4], "0.8607079764250578");
    CHECK_PRINTED(r.ratio[8], "0.9875778004938814");
    CHECK_PRINTED(r.ratio[12], "1.3498588075760032");
    CHECK_PRINTED(r.loss, "0.030978066782");
    check_rows(r.grad_logps, 4,
               {{"-0.1124627810", "-0.1124627810", "-0.1124627810"}, {"0.0842617885", "0.0842617885"},
                {"-0.0161136866", "-0.0161136866", "-0.0161136866", "-0.0161136866"}, {"0.2642975793"}});
}

TEST_CASE("grpo_loss op on the worked example with float32 inputs: the float32 figure", "[grpo][golden][op]") {
    const Example ex;
    TensorMap in;
    in["logps"] = f32({4, 4}, ex.x);
    in["old_logps"] = f32({4, 4}, ex.x_old);
    in["ref_logps"] = f32({4, 4}, ex.x_ref);
    in["rewards"] = f32({4}, ex.rewards);
    in["mask"] = f32({4, 4}, ex.mask);
    OpAttrs a;
    a.set("max_completion_length", "5");
    const TensorMap out = run_op("grpo_loss", in, a);  // defaults: grpo, beta 0.04, epsilon 0.2, group
    // The worked example's float32 run printed 0.038054496; float32 inputs with double compute land within 1e-6
    // relative of it (the input rounding moves the loss by ~3e-7 relative).
    CHECK(std::fabs(scalar(out, "loss") - 0.038054496) <= 1e-6 * 0.038054496);
    CHECK(std::fabs(scalar(out, "loss") - 0.038054485424) <= 1e-6 * 0.038054485424);
    CHECK(out.at("loss").rank() == 0);
    CHECK(out.at("loss").dtype == DType::F32);
    // Every documented output is there, with its shape.
    CHECK(out.at("advantages").shape == Shape{4});
    CHECK(out.at("per_token_loss").shape == Shape{4, 4});
    CHECK(out.at("grad_logps").shape == Shape{4, 4});
    CHECK(out.count("grad_logits") == 0);  // only with logits
    CHECK(std::fabs(scalar(out, "clip_ratio_low") - 0.1) < 1e-7);  // float32 output of 0.1
    CHECK(std::fabs(scalar(out, "clip_ratio_region") - 0.2) < 1e-7);
    CHECK(std::fabs(scalar(out, "kl") - 0.003575835083) < 1e-6 * 0.0036);
    CHECK(std::fabs(out.at("grad_logps").to_f64()[12] - 0.2647852850) < 1e-6 * 0.265);
}

// ---- KL estimators and process supervision --------------------------------------------------------------------

TEST_CASE("KL estimators k1, k2, k3 and their derivatives: golden figures", "[grpo][golden]") {
    const KlTerm k1 = kl_estimate(KlEstimator::K1, -1.0, -1.1);
    const KlTerm k2 = kl_estimate(KlEstimator::K2, -1.0, -1.1);
    const KlTerm k3 = kl_estimate(KlEstimator::K3, -1.0, -1.1);
    CHECK_PRINTED(k1.value, "0.1");
    CHECK_PRINTED(k2.value, "0.005");
    CHECK_PRINTED(k3.value, "0.004837418035959606");
    CHECK_PRINTED(k1.dvalue_dx, "1");
    CHECK_PRINTED(k2.dvalue_dx, "0.1");
    CHECK_PRINTED(k3.dvalue_dx, "0.09516258196404048");
    // k3 >= 0 everywhere and its derivative matches finite differences.
    std::mt19937_64 rng(7);
    std::uniform_real_distribution<double> u(-5.0, 5.0);
    for (int n = 0; n < 200; n++) {
        const double x = u(rng), xr = u(rng), h = 1e-6;
        const KlTerm k = kl_estimate(KlEstimator::K3, x, xr);
        CHECK(k.value >= 0.0);
        const double fd = (kl_estimate(KlEstimator::K3, x + h, xr).value - kl_estimate(KlEstimator::K3, x - h, xr).value) / (2 * h);
        CHECK(std::fabs(fd - k.dvalue_dx) < 1e-6 * std::max(1.0, std::fabs(fd)));  // FD error ~h²·k''' + 1e-16·k/h
    }
}

TEST_CASE("process supervision: golden figures (DeepSeekMath §4.1.3)", "[grpo][golden]") {
    const std::vector<std::vector<StepReward>> steps = {{{1, 0.9}, {3, 0.2}}, {{0, 0.5}, {2, 0.1}}};
    const std::vector<int64_t> lengths = {5, 3};
    const std::vector<std::vector<double>> norm = process_normalized_rewards(steps);
    CHECK_PRINTED(norm[0][0], "1.3216558529");
    CHECK_PRINTED(norm[0][1], "-0.6260475093");
    CHECK_PRINTED(norm[1][0], "0.2086825031");
    CHECK_PRINTED(norm[1][1], "-0.9042908467");
    std::vector<double> R = {0.9, 0.2, 0.5, 0.1};
    const MeanStd ms = nan_mean_std(R.data(), 4, true);
    CHECK_PRINTED(ms.mean, "0.425");
    CHECK_PRINTED(ms.std, "0.35939764421413045");
    std::vector<std::vector<double>> A = process_advantages(steps, lengths);
    const char* a0[] = {"0.6956083436", "0.6956083436", "-0.6260475093", "-0.6260475093", "0"};
    const char* a1[] = {"-0.6956083436", "-0.9042908467", "-0.9042908467"};
    for (int t = 0; t < 5; t++) CHECK_PRINTED(A[0][t], a0[t]);
    for (int t = 0; t < 3; t++) CHECK_PRINTED(A[1][t], a1[t]);
    ProcessConfig pop;
    pop.unbiased_std = false;
    A = process_advantages(steps, lengths, pop);
    const char* p0[] = {"0.8032193289", "0.8032193289", "-0.7228973960", "-0.7228973960", "0"};
    for (int t = 0; t < 5; t++) CHECK_PRINTED(A[0][t], p0[t]);
    // Bad step positions are refused.
    CHECK_THROWS_AS(process_advantages({{{5, 1.0}}}, {5}), Error);
}

// ---- finite differences ---------------------------------------------------------------------------------------

// A random batch whose ratios all sit >= 1e-3 away from the kinks 1 − eps, 1 + eps_high and delta.
struct RandomBatch {
    int64_t B, T;
    std::vector<double> x, x_old, x_ref, A, mask;
};

static bool away_from_kinks(double log_ratio, const GrpoConfig& c) {
    const double r = std::exp(log_ratio);
    const double eh = c.epsilon_high ? *c.epsilon_high : c.epsilon;
    double d = std::min(std::fabs(r - (1 - c.epsilon)), std::fabs(r - (1 + eh)));
    if (c.delta) d = std::min(d, std::fabs(r - *c.delta));
    return d > 1e-3;
}

static RandomBatch random_batch(std::mt19937_64& rng, const GrpoConfig& c, int64_t G, int64_t groups, int64_t T) {
    RandomBatch rb;
    rb.B = G * groups;
    rb.T = T;
    std::uniform_real_distribution<double> u(0.0, 1.0);
    std::normal_distribution<double> n01(0.0, 1.0);
    const int64_t BT = rb.B * T;
    rb.mask.assign(BT, 0.0);
    for (int64_t i = 0; i < rb.B; i++) {
        const int64_t len = 1 + (int64_t)(u(rng) * T);  // 1..T active tokens, then padding
        for (int64_t t = 0; t < std::min(len, T); t++) rb.mask[i * T + t] = 1.0;
    }
    std::vector<double> rewards(rb.B);
    for (int64_t g = 0; g < rb.B; g += G)  // 0, 0.5, 1: ties happen, but no group is all-equal (A = 0)
        do {
            for (int64_t k = 0; k < G; k++) rewards[g + k] = std::floor(u(rng) * 3.0) / 2.0;
        } while (*std::min_element(rewards.begin() + g, rewards.begin() + g + G) ==
                 *std::max_element(rewards.begin() + g, rewards.begin() + g + G));
    AdvantageConfig acfg;
    acfg.group_size = G;
    const std::vector<double> A = group_advantages(rewards, acfg);
    rb.A.resize(BT);
    for (int64_t k = 0; k < BT; k++) rb.A[k] = A[k / T];
    for (int attempt = 0;; attempt++) {
        REQUIRE(attempt < 1000);
        rb.x.resize(BT);
        rb.x_old.resize(BT);
        rb.x_ref.resize(BT);
        for (int64_t k = 0; k < BT; k++) {
            rb.x[k] = -0.1 - 2.0 * u(rng);
            rb.x_old[k] = rb.x[k] + 0.3 * n01(rng);  // ratios spread over roughly [0.5, 2]
            rb.x_ref[k] = rb.x[k] + 0.3 * n01(rng);
        }
        bool ok = true;
        for (int64_t i = 0; i < rb.B; i++) {
            double n = 0, s = 0;
            for (int64_t t = 0; t < T; t++)
                if (rb.mask[i * T + t] != 0.0) {
                    n += 1;
                    s += rb.x[i * T + t] - rb.x_old[i * T + t];
                    if (c.is_level == IsLevel::Token) ok = ok && away_from_kinks(rb.x[i * T + t] - rb.x_old[i * T + t], c);
                }
            if (c.is_level == IsLevel::Sequence) ok = ok && away_from_kinks(s / std::max(n, 1.0), c);
        }
        if (ok) return rb;
    }
}

TEST_CASE("dLoss/dlogps matches central differences for every loss_type and IS level", "[grpo][fd]") {
    std::mt19937_64 rng(1234);
    const LossType types[] = {LossType::Grpo, LossType::Bnpo, LossType::DrGrpo, LossType::Dapo,
                              LossType::SeqMeanTokenSum, LossType::SeqMeanTokenSumNorm};
    int checked = 0;
    for (LossType type : types)
        for (IsLevel level : {IsLevel::Token, IsLevel::Sequence})
            for (int variant = 0; variant < 4; variant++) {
                GrpoConfig c = config(type, variant % 2 ? 0.04 : 0.0);  // with and without KL
                c.is_level = level;
                if (variant >= 2) {                                     // clip-higher and two-sided clip
                    c.epsilon_high = 0.28;
                    c.delta = 1.5;
                }
                c.max_completion_length = 7;
                c.loss_scale_factor = 3.0;
                const RandomBatch rb = random_batch(rng, c, 3, 2, 5);
                const GrpoResult r = grpo_loss(rb.x, rb.x_old, rb.x_ref, rb.A, rb.mask, rb.B, rb.T, c);
                INFO(loss_type_name(type) << (level == IsLevel::Token ? " token" : " sequence") << " variant " << variant);
                double max_grad = 0.0;
                for (int64_t k = 0; k < rb.B * rb.T; k++) {
                    const double h = 1e-6;
                    std::vector<double> xp = rb.x, xm = rb.x;
                    xp[k] += h;
                    xm[k] -= h;
                    const double fd = (grpo_loss(xp, rb.x_old, rb.x_ref, rb.A, rb.mask, rb.B, rb.T, c).loss -
                                       grpo_loss(xm, rb.x_old, rb.x_ref, rb.A, rb.mask, rb.B, rb.T, c).loss) / (2 * h);
                    // Central differences in double with h = 1e-6: truncation ~h²·f''' ~ 1e-12 and rounding
                    // ~1e-16·|loss|/h ~ 1e-10, so 1e-8 is far above the noise and far below a wrong term.
                    CHECK(std::fabs(fd - r.grad_logps[k]) < 1e-8);
                    max_grad = std::max(max_grad, std::fabs(r.grad_logps[k]));
                    checked++;
                }
                CHECK(max_grad > 1e-3);  // the check is not vacuous
            }
    CHECK(checked == 6 * 2 * 4 * 30);
}

TEST_CASE("dLoss/dlogits matches central differences through log-softmax at T = 0.7", "[grpo][fd]") {
    // The analytic path: logps from float32 logits, grpo_loss, logprobs_backward. The FD path perturbs
    // the logits in double and recomputes log_softmax_row in double (the logits are float-exact).
    std::mt19937_64 rng(99);
    std::normal_distribution<double> n01(0.0, 1.0);
    const int64_t B = 4, T = 3, V = 5;
    const double temp = 0.7;
    std::vector<float> z(B * T * V);
    for (float& v : z) v = (float)(1.5 * n01(rng));
    std::vector<int32_t> tok(B * T);
    for (int32_t& y : tok) y = (int32_t)(rng() % V);
    std::vector<double> mask = {1, 1, 1, 1, 1, 0, 1, 0, 0, 1, 1, 1};
    tok[5] = -100;  // padding ids are never read
    std::vector<double> rewards = {1.0, 0.0, 0.5, 0.0};
    AdvantageConfig acfg;
    acfg.group_size = 2;
    const std::vector<double> A1 = group_advantages(rewards, acfg);
    std::vector<double> A(B * T);
    for (int64_t k = 0; k < B * T; k++) A[k] = A1[k / T];
    std::vector<double> x_old(B * T), x_ref(B * T);
    for (int64_t k = 0; k < B * T; k++) {
        x_old[k] = -1.0 + 0.2 * n01(rng);
        x_ref[k] = -1.0 + 0.2 * n01(rng);
    }
    for (LossType type : {LossType::Grpo, LossType::Dapo})
        for (IsLevel level : {IsLevel::Token, IsLevel::Sequence}) {
            GrpoConfig c = config(type, 0.04);
            c.is_level = level;
            c.epsilon = 10.0;  // no clipping anywhere: every logit gets gradient and no kink is near
            auto loss_of = [&](const std::vector<double>& zd) {
                std::vector<double> x(B * T, 0.0), row(V);
                for (int64_t n = 0; n < B * T; n++)
                    if (mask[n] != 0.0) {
                        log_softmax_row(row.data(), zd.data() + n * V, V, temp);
                        x[n] = row[tok[n]];
                    }
                return grpo_loss(x, x_old, x_ref, A, mask, B, T, c).loss;
            };
            std::vector<double> x;
            logprobs_forward(x, z.data(), tok.data(), mask, B, T, V, temp);
            const GrpoResult r = grpo_loss(x, x_old, x_ref, A, mask, B, T, c);
            std::vector<double> gz;
            logprobs_backward(gz, r.grad_logps, z.data(), tok.data(), mask, B, T, V, temp);
            std::vector<double> zd(z.begin(), z.end());
            for (int64_t k = 0; k < B * T * V; k++) {
                const double h = 1e-6;
                std::vector<double> zp = zd, zm = zd;
                zp[k] += h;
                zm[k] -= h;
                const double fd = (loss_of(zp) - loss_of(zm)) / (2 * h);
                CHECK(std::fabs(fd - gz[k]) < 1e-8);  // as above: FD noise ~1e-10
                if (mask[k / V] == 0.0) CHECK(gz[k] == 0.0);
            }
        }
}

// ---- identities ----------------------------------------------------------------------------------------------

TEST_CASE("advantages sum to zero per group, for every scaling and several sizes", "[grpo][identity]") {
    std::mt19937_64 rng(5);
    std::uniform_real_distribution<double> u(-2.0, 3.0);
    for (int64_t G : {2, 3, 8, 16})
        for (RewardScale s : {RewardScale::Group, RewardScale::Batch, RewardScale::None})
            for (int rep = 0; rep < 5; rep++) {
                const int64_t B = G * 3;
                std::vector<double> r(B);
                for (double& v : r) v = rep == 0 ? std::floor(u(rng)) : u(rng);  // rep 0: integer ties
                if (rep == 1) r[1] = std::nan("");                               // an unscorable row
                AdvantageConfig cfg;
                cfg.group_size = G;
                cfg.scale = s;
                const std::vector<double> A = group_advantages(r, cfg);
                for (int64_t g = 0; g < B; g += G) {
                    double sum = 0.0, mx = 0.0;
                    for (int64_t k = 0; k < G; k++) {
                        CHECK(std::isfinite(A[g + k]));
                        sum += A[g + k];
                        mx = std::max(mx, std::fabs(A[g + k]));
                    }
                    CHECK(std::fabs(sum) <= 1e-12 * std::max(1.0, mx) * G);  // rounding of G terms
                }
                if (rep == 1) CHECK(A[1] == 0.0);
            }
}

TEST_CASE("on-policy with beta = 0, the grpo loss is -mean(A)", "[grpo][identity]") {
    std::mt19937_64 rng(11);
    GrpoConfig c = config(LossType::Grpo, 0.0);
    for (int rep = 0; rep < 5; rep++) {
        RandomBatch rb = random_batch(rng, c, 4, 2, 6);
        // Outcome advantages sum to zero per group, so the loss is (numerically) 0.
        GrpoResult r = grpo_loss(rb.x, {}, {}, rb.A, rb.mask, rb.B, rb.T, c);
        double meanA = 0.0;
        for (int64_t i = 0; i < rb.B; i++) meanA += rb.A[i * rb.T] / (double)rb.B;
        CHECK(std::fabs(r.loss - (-meanA)) < 1e-15);
        // Per-token (process-supervision-like) advantages: -(1/B) Σ_i mean_t A_{i,t}, not zero.
        std::uniform_real_distribution<double> u(-1.0, 1.0);
        for (double& a : rb.A) a = u(rng);
        r = grpo_loss(rb.x, {}, {}, rb.A, rb.mask, rb.B, rb.T, c);
        double expect = 0.0;
        for (int64_t i = 0; i < rb.B; i++) {
            double s = 0, n = 0;
            for (int64_t t = 0; t < rb.T; t++)
                if (rb.mask[i * rb.T + t] != 0.0) {
                    s += rb.A[i * rb.T + t];
                    n += 1;
                }
            expect -= s / n / (double)rb.B;
        }
        CHECK(std::fabs(expect) > 1e-3);
        CHECK(std::fabs(r.loss - expect) < 1e-14);
    }
}

TEST_CASE("dapo == bnpo on one micro-batch; across micro-batches dapo is the global token mean", "[grpo][identity]") {
    std::mt19937_64 rng(21);
    for (IsLevel level : {IsLevel::Token, IsLevel::Sequence}) {
        GrpoConfig bn = config(LossType::Bnpo, 0.04), da = config(LossType::Dapo, 0.04);
        bn.is_level = da.is_level = level;
        const RandomBatch rb = random_batch(rng, bn, 4, 2, 6);
        const GrpoResult rbn = grpo_loss(rb.x, rb.x_old, rb.x_ref, rb.A, rb.mask, rb.B, rb.T, bn);
        const GrpoResult rda = grpo_loss(rb.x, rb.x_old, rb.x_ref, rb.A, rb.mask, rb.B, rb.T, da);
        CHECK(rbn.loss == rda.loss);
        CHECK(rbn.grad_logps == rda.grad_logps);

        // Split the batch into two micro-batches of 4 rows (GA = 2).
        const int64_t half = rb.B / 2 * rb.T;
        auto part = [&](const std::vector<double>& v, int p) {
            return std::vector<double>(v.begin() + p * half, v.begin() + (p + 1) * half);
        };
        double N = 0.0;
        for (double m : rb.mask) N += m;
        GrpoConfig da2 = da, bn2 = bn;
        da2.num_items_in_batch = N;
        bn2.grad_accum_steps = 2;
        double dapo_sum = 0.0, bnpo_sum = 0.0;
        for (int p = 0; p < 2; p++) {
            dapo_sum += grpo_loss(part(rb.x, p), part(rb.x_old, p), part(rb.x_ref, p), part(rb.A, p), part(rb.mask, p),
                                  rb.B / 2, rb.T, da2).loss;
            bnpo_sum += grpo_loss(part(rb.x, p), part(rb.x_old, p), part(rb.x_ref, p), part(rb.A, p), part(rb.mask, p),
                                  rb.B / 2, rb.T, bn2).loss;
        }
        CHECK(std::fabs(dapo_sum - rda.loss) < 1e-14);  // dapo over micro-batches = one global token mean
        double n0 = 0.0;
        for (int64_t k = 0; k < half; k++) n0 += rb.mask[k];
        if (n0 != N - n0) CHECK(std::fabs(bnpo_sum - rbn.loss) > 1e-6);  // bnpo is a mean of local means
    }
}

TEST_CASE("aggregation relations: sum-norm = B·dr_grpo when S = L_max; junk in padding changes nothing",
          "[grpo][identity]") {
    std::mt19937_64 rng(31);
    GrpoConfig dr = config(LossType::DrGrpo, 0.04), sn = config(LossType::SeqMeanTokenSumNorm, 0.04);
    dr.max_completion_length = sn.max_completion_length = 9;
    RandomBatch rb = random_batch(rng, dr, 3, 2, 6);
    const GrpoResult a = grpo_loss(rb.x, rb.x_old, rb.x_ref, rb.A, rb.mask, rb.B, rb.T, dr);
    const GrpoResult b = grpo_loss(rb.x, rb.x_old, rb.x_ref, rb.A, rb.mask, rb.B, rb.T, sn);
    CHECK(std::fabs(b.loss - rb.B * a.loss) < 1e-14);
    for (double junk : {-7.0, 1e30, -1e30, std::nan("")}) {
        RandomBatch j = rb;
        for (int64_t k = 0; k < j.B * j.T; k++)
            if (j.mask[k] == 0.0) j.x[k] = j.x_old[k] = j.x_ref[k] = junk;
        const GrpoResult c = grpo_loss(j.x, j.x_old, j.x_ref, j.A, j.mask, j.B, j.T, dr);
        CHECK(c.loss == a.loss);
        CHECK(c.grad_logps == a.grad_logps);
    }
}

// ---- edge cases (ref/rl/advantages.h, ref/rl/grpo.h) ----------------------------------------------------------

TEST_CASE("equal rewards give zero advantages, never NaN; only the KL moves the policy", "[grpo][edge]") {
    for (RewardScale s : {RewardScale::Group, RewardScale::Batch, RewardScale::None}) {
        AdvantageConfig cfg;
        cfg.scale = s;
        cfg.epsilon = 0.0;  // even without epsilon: no 0/0
        for (double v : {0.1, 1.0, 0.0}) {
            const std::vector<double> A = group_advantages({v, v, v}, cfg);
            for (double a : A) CHECK(a == 0.0);  // [0.1]*3 gives mean 0.10000000000000002 in double
        }
        cfg.group_size = 1;  // groups of one: no std, A = 0
        for (double a : group_advantages({0.3, 0.7}, cfg)) CHECK(a == 0.0);
    }
    AdvantageConfig cfg;  // a group with a single scorable reward gets 0; an all-NaN group too
    cfg.group_size = 2;
    const std::vector<double> A = group_advantages({1.0, std::nan(""), std::nan(""), std::nan(""), 0.0, 1.0}, cfg);
    CHECK(A[0] == 0.0);
    CHECK(A[2] == 0.0);
    CHECK(A[4] < 0.0);
    CHECK_THROWS_AS(group_advantages({1.0, INFINITY}, cfg), Error);

    // Loss with A = 0: the surrogate is 0 and the gradient is beta·w·(1 − pi_ref/pi).
    const Example ex;
    std::vector<double> zero(16, 0.0);
    const GrpoResult r = grpo_loss(ex.x, ex.x_old, ex.x_ref, zero, ex.mask, 4, 4, config(LossType::Bnpo, 0.04));
    CHECK(std::fabs(r.loss - 0.04 * 0.003575835083) < 1e-12);
    for (int64_t k = 0; k < 16; k++) {
        CHECK(std::isfinite(r.grad_logps[k]));
        if (ex.mask[k] != 0.0)
            CHECK(std::fabs(r.grad_logps[k] - 0.04 / 10.0 * kl_estimate(KlEstimator::K3, ex.x[k], ex.x_ref[k]).dvalue_dx) < 1e-15);
    }
}

TEST_CASE("empty completion (mask all zero): counts in B for grpo/dr_grpo, no effect on token means", "[grpo][edge]") {
    const Example ex;
    // Append a fifth, fully masked row with garbage values.
    Example big = ex;
    big.B = 5;
    for (int t = 0; t < 4; t++) {
        big.x.push_back(-3.0);
        big.x_old.push_back(-1.0);
        big.x_ref.push_back(-2.0);
        big.mask.push_back(0.0);
    }
    std::vector<double> A5 = ex.token_adv();
    for (int t = 0; t < 4; t++) A5.push_back(0.7);
    auto run = [](const Example& e, const std::vector<double>& A, LossType type) {
        GrpoConfig c = config(type, 0.04);
        c.max_completion_length = 5;
        return grpo_loss(e.x, e.x_old, e.x_ref, A, e.mask, e.B, e.T, c);
    };
    const std::vector<double> A4 = ex.token_adv();
    CHECK(std::fabs(run(big, A5, LossType::Grpo).loss - run(ex, A4, LossType::Grpo).loss * 4.0 / 5.0) < 1e-15);
    CHECK(std::fabs(run(big, A5, LossType::DrGrpo).loss - run(ex, A4, LossType::DrGrpo).loss * 4.0 / 5.0) < 1e-15);
    for (LossType t : {LossType::Bnpo, LossType::Dapo, LossType::SeqMeanTokenSum, LossType::SeqMeanTokenSumNorm})
        CHECK(std::fabs(run(big, A5, t).loss - run(ex, A4, t).loss) < 1e-15);
    // Every row empty: loss, gradients and metrics are 0, not 0/0.
    for (LossType t : {LossType::Grpo, LossType::Bnpo, LossType::DrGrpo, LossType::Dapo, LossType::SeqMeanTokenSum,
                       LossType::SeqMeanTokenSumNorm})
        for (IsLevel level : {IsLevel::Token, IsLevel::Sequence}) {
            GrpoConfig c = config(t, 0.04);
            c.is_level = level;
            const GrpoResult r = grpo_loss(ex.x, ex.x_old, ex.x_ref, A4, std::vector<double>(16, 0.0), 4, 4, c);
            CHECK(r.loss == 0.0);
            CHECK(r.kl == 0.0);
            CHECK(r.clip_ratio_region == 0.0);
            for (double g : r.grad_logps) CHECK(g == 0.0);
        }
}

TEST_CASE("huge log-ratios: finite results in double, or a clear error; never a silent NaN", "[grpo][edge]") {
    GrpoConfig c = config(LossType::Bnpo, 0.0);
    const std::vector<double> mask = {1.0};
    auto one = [&](double lr, double A, const GrpoConfig& cfg) {
        return grpo_loss({-1.0}, {-1.0 - lr}, {-1.0}, {A}, mask, 1, 1, cfg);
    };
    // log-ratio 100 (ratio 2.7e43, inf in float32): A > 0 is clipped high, finite and flat.
    GrpoResult r = one(100.0, 0.5, c);
    CHECK(r.loss == Approx(-1.2 * 0.5).epsilon(1e-15));
    CHECK(r.grad_logps[0] == 0.0);
    // A < 0 is not clipped above (no delta): -r·A, huge but finite, gradient -A·r.
    r = one(100.0, -0.5, c);
    CHECK(std::isfinite(r.loss));
    CHECK(r.loss == Approx(0.5 * std::exp(100.0)).epsilon(1e-14));
    CHECK(r.grad_logps[0] == Approx(0.5 * std::exp(100.0)).epsilon(1e-14));
    // Beyond exp()'s range (log-ratio 800): A > 0 is still the finite clipped value, A = 0 gives 0 ...
    CHECK(one(800.0, 0.5, c).loss == Approx(-0.6).epsilon(1e-15));
    CHECK(one(800.0, 0.0, c).loss == 0.0);
    CHECK(one(800.0, 0.0, c).grad_logps[0] == 0.0);
    CHECK(one(-800.0, -0.5, c).loss == Approx(0.8 * 0.5).epsilon(1e-15));  // ratio 0, clipped low
    // ... A < 0 overflows: a clear error naming the log-ratio; delta caps it.
    try {
        one(800.0, -0.5, c);
        FAIL("expected an error");
    } catch (const Error& e) {
        CHECK(std::string(e.what()).find("logps - old_logps") != std::string::npos);
        CHECK(std::string(e.what()).find("overflows") != std::string::npos);
    }
    GrpoConfig cd = c;
    cd.delta = 3.0;
    r = one(800.0, -0.5, cd);
    CHECK(r.loss == Approx(1.5).epsilon(1e-15));
    CHECK(r.grad_logps[0] == 0.0);
    // GSPO: the same guard at sequence level.
    GrpoConfig cs = c;
    cs.is_level = IsLevel::Sequence;
    CHECK_THROWS_AS(one(800.0, -0.5, cs), Error);
    // k3 with ref_logps - logps = 800 overflows exp(): a clear error when the KL is computed.
    GrpoConfig ck = config(LossType::Bnpo, 0.04);
    try {
        grpo_loss({-900.0}, {-900.0}, {-100.0}, {0.5}, mask, 1, 1, ck);
        FAIL("expected an error");
    } catch (const Error& e) {
        CHECK(std::string(e.what()).find("ref_logps - logps") != std::string::npos);
    }
    // ref_logps - logps = 600 is still finite in double.
    r = grpo_loss({-700.0}, {-700.0}, {-100.0}, {0.5}, mask, 1, 1, ck);
    CHECK(std::isfinite(r.loss));
    CHECK(std::isfinite(r.grad_logps[0]));
}

TEST_CASE("bad inputs are refused with the tensor's name", "[grpo][edge]") {
    const Example ex;
    const std::vector<double> A = ex.token_adv();
    GrpoConfig c = config(LossType::Grpo, 0.04);
    std::vector<double> x = ex.x;
    x[1] = std::nan("");
    CHECK_THROWS_WITH(grpo_loss(x, ex.x_old, ex.x_ref, A, ex.mask, 4, 4, c), Catch::Contains("logps"));
    std::vector<double> m = ex.mask;
    m[0] = 0.5;
    CHECK_THROWS_WITH(grpo_loss(ex.x, ex.x_old, ex.x_ref, A, m, 4, 4, c), Catch::Contains("mask"));
    CHECK_THROWS_WITH(grpo_loss(ex.x, ex.x_old, {}, A, ex.mask, 4, 4, c), Catch::Contains("ref_logps"));
    c.delta = -1.0;
    CHECK_THROWS_AS(grpo_loss(ex.x, ex.x_old, ex.x_ref, A, ex.mask, 4, 4, c), UsageError);
    AdvantageConfig bad;
    bad.group_size = 3;
    CHECK_THROWS_AS(group_advantages(ex.rewards, bad), UsageError);
}

// ---- the grpo_loss op -----------------------------------------------------------------------------------------

static TensorMap example_inputs(const Example& ex) {
    TensorMap in;
    in["logps"] = f32({4, 4}, ex.x);
    in["old_logps"] = f32({4, 4}, ex.x_old);
    in["ref_logps"] = f32({4, 4}, ex.x_ref);
    in["rewards"] = f32({4}, ex.rewards);
    in["mask"] = f32({4, 4}, ex.mask);
    return in;
}

TEST_CASE("grpo_loss op: attributes, mask dtypes, every loss_type matches the library", "[grpo][op]") {
    const Example ex;
    const TensorMap in = example_inputs(ex);
    // The mask may be F32, U8, BOOL or I32, with identical results.
    std::vector<uint8_t> mb(ex.mask.begin(), ex.mask.end());
    std::vector<int32_t> mi(ex.mask.begin(), ex.mask.end());
    OpAttrs a;
    a.set("max_completion_length", "5");
    const TensorMap ref = run_op("grpo_loss", in, a);
    for (const Tensor& mt : {Tensor::from_u8({4, 4}, mb), Tensor::from_u8({4, 4}, mb, DType::BOOL), Tensor::from_i32({4, 4}, mi)}) {
        TensorMap in2 = in;
        in2["mask"] = mt;
        const TensorMap out = run_op("grpo_loss", in2, a);
        CHECK(out.at("loss").bytes == ref.at("loss").bytes);
        CHECK(out.at("grad_logps").bytes == ref.at("grad_logps").bytes);
    }
    // Each loss_type through the op equals the library on the float32-rounded inputs.
    std::vector<double> xf, of, rf, mf = ex.mask;
    for (double v : ex.x) xf.push_back((float)v);
    for (double v : ex.x_old) of.push_back((float)v);
    for (double v : ex.x_ref) rf.push_back((float)v);
    for (const char* name : {"grpo", "bnpo", "dr_grpo", "dapo", "seq-mean-token-sum", "seq-mean-token-sum-norm"})
        for (const char* level : {"token", "sequence"}) {
            OpAttrs b;
            b.set("loss_type", name);
            b.set("importance_sampling_level", level);
            b.set("epsilon_high", "0.28");
            b.set("delta", "1.3");
            b.set("beta", "0.01");
            b.set("max_completion_length", "6");
            b.set("loss_scale_factor", "4");
            b.set("scale_rewards", "batch");
            b.set("adv_epsilon", "1e-6");
            b.set("temperature", "0.5");  // ignored: no logits
            b.set("group_size", "2");
            const TensorMap out = run_op("grpo_loss", in, b);
            GrpoConfig c = config(loss_type_from_name(name), 0.01);
            c.is_level = std::string(level) == "token" ? IsLevel::Token : IsLevel::Sequence;
            c.epsilon_high = 0.28;
            c.delta = 1.3;
            c.max_completion_length = 6;
            c.loss_scale_factor = 4;
            AdvantageConfig ac;
            ac.scale = RewardScale::Batch;
            ac.epsilon = 1e-6;
            ac.group_size = 2;
            const std::vector<double> A1 = group_advantages(ex.rewards, ac);
            std::vector<double> At(16);
            for (int k = 0; k < 16; k++) At[k] = A1[k / 4];
            const GrpoResult r = grpo_loss(xf, of, rf, At, mf, 4, 4, c);
            INFO(name << " " << level);
            CHECK(scalar(out, "loss") == (float)r.loss);
            CHECK(out.at("grad_logps").bytes == f32({4, 4}, r.grad_logps).bytes);
            CHECK(out.at("per_token_loss").bytes == f32({4, 4}, r.per_token_loss).bytes);
            CHECK(out.at("advantages").bytes == f32({4}, A1).bytes);
            CHECK(scalar(out, "clip_ratio_high") == (float)r.clip_ratio_high);
            CHECK(scalar(out, "kl") == (float)r.kl);
        }
    // Bad attributes and inputs: usage errors and errors that name the culprit.
    OpAttrs bad;
    bad.set("loss_type", "ppo");
    CHECK_THROWS_AS(run_op("grpo_loss", in, bad), UsageError);
    OpAttrs typo;
    typo.set("epsilonhigh", "0.28");
    CHECK_THROWS_AS(run_op("grpo_loss", in, typo), UsageError);
    OpAttrs nan_eps;
    nan_eps.set("epsilon", "nan");
    CHECK_THROWS_AS(run_op("grpo_loss", in, nan_eps), UsageError);
    TensorMap no_ref = in;
    no_ref.erase("ref_logps");
    CHECK_THROWS_WITH(run_op("grpo_loss", no_ref, a), Catch::Contains("ref_logps"));
    OpAttrs beta0;
    beta0.set("beta", "0");
    CHECK(scalar(run_op("grpo_loss", no_ref, beta0), "kl") == 0.0);  // beta 0: ref_logps optional
    TensorMap bad_mask = in;
    bad_mask["mask"] = f32({4, 4}, std::vector<double>(16, 2.0));
    CHECK_THROWS_WITH(run_op("grpo_loss", bad_mask, a), Catch::Contains("mask"));
    TensorMap bad_shape = in;
    bad_shape["rewards"] = f32({3}, {1.0, 0.0, 1.0});
    CHECK_THROWS_WITH(run_op("grpo_loss", bad_shape, a), Catch::Contains("rewards"));
}

TEST_CASE("grpo_loss op with logits: logps, grad_logits, NaN logits refused", "[grpo][op]") {
    std::mt19937_64 rng(3);
    std::normal_distribution<double> n01(0.0, 1.0);
    const int64_t B = 2, T = 3, V = 4;
    std::vector<double> z(B * T * V), old(B * T), refl(B * T), mask = {1, 1, 0, 1, 1, 1};
    for (double& v : z) v = n01(rng);
    for (double& v : old) v = -1.4 + 0.1 * n01(rng);
    for (double& v : refl) v = -1.4 + 0.1 * n01(rng);
    std::vector<int32_t> tok = {0, 3, -100, 2, 1, 1};  // -100 padding at a masked position
    TensorMap in;
    in["logits"] = f32({B, T, V}, z);
    in["tokens"] = Tensor::from_i32({B, T}, tok);
    in["old_logps"] = f32({B, T}, old);
    in["ref_logps"] = f32({B, T}, refl);
    in["rewards"] = f32({B}, {1.0, 0.0});
    in["mask"] = f32({B, T}, mask);
    OpAttrs a;
    a.set("temperature", "0.7");
    a.set("loss_type", "dapo");
    const TensorMap out = run_op("grpo_loss", in, a);
    REQUIRE(out.count("grad_logits"));
    CHECK(out.at("grad_logits").shape == Shape{B, T, V});
    // The op's logps are log_softmax(z/0.7)[y]; its grad_logits is the backward of its grad_logps.
    std::vector<float> zf(z.begin(), z.end());
    std::vector<double> x;
    logprobs_forward(x, zf.data(), tok.data(), mask, B, T, V, 0.7);
    const std::vector<double> lp = out.at("logps").to_f64();
    for (int64_t k = 0; k < B * T; k++) CHECK(std::fabs(lp[k] - x[k]) <= 1e-7 * std::fabs(x[k]));  // f32 output
    const std::vector<double> g = out.at("grad_logps").to_f64(), gz = out.at("grad_logits").to_f64();
    for (int64_t n = 0; n < B * T; n++) {
        double s = 0.0;
        for (int64_t j = 0; j < V; j++) s += gz[n * V + j];
        CHECK(std::fabs(s) < 1e-7);  // Σ_j dx/dz_j = (1/T)(1 − Σ p) = 0
        if (mask[n] == 0.0) CHECK(g[n] == 0.0);
    }
    // logps and logits together, or logits without tokens: refused.
    TensorMap both = in;
    both["logps"] = f32({B, T}, old);
    CHECK_THROWS_AS(run_op("grpo_loss", both, a), Error);
    TensorMap no_tok = in;
    no_tok.erase("tokens");
    CHECK_THROWS_WITH(run_op("grpo_loss", no_tok, a), Catch::Contains("tokens"));
    // NaN logits: a clear error naming the tensor.
    TensorMap nan_in = in;
    z[5] = std::nan("");
    nan_in["logits"] = f32({B, T, V}, z);
    CHECK_THROWS_WITH(run_op("grpo_loss", nan_in, a), Catch::Contains("logits") && Catch::Contains("NaN"));
    // A token id out of range at an active position.
    TensorMap bad_tok = in;
    tok[0] = 4;
    bad_tok["tokens"] = Tensor::from_i32({B, T}, tok);
    CHECK_THROWS_WITH(run_op("grpo_loss", bad_tok, a), Catch::Contains("tokens"));
}
