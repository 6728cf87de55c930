// test_rl_loop.cpp — the mini R1-Zero of post/grpo_trainer.h:
//   1. the arithmetic task: hand-checked traces and answers, seeds, distinct and excluded problems, and
//      scoring (an unparsable completion scores 0 and is reported as such);
//   2. one GRPO step through the model equals `dsref op grpo_loss` (run in-process by the op registry)
//      on the same tensors — logits of the training forward, tokens, old/ref log-probs, rewards — for
//      every loss_type: the loss and dLoss/dlogps;
//   3. dLoss/dθ of every tensor against central finite differences of that loss (double);
//   4. bad input: G < 2, a prompt too long for the context (its index named);
//   5. `dsref rl` end to end on data/train's tiny model: CSV + SVG written, unparsable completions
//      counted, the CSV bit-identical at 1 and 2 threads, bad options refused.
#include <catch2/catch.hpp>

#include <cmath>
#include <fstream>
#include <random>
#include <sstream>

#include "core/error.h"
#include "ops/op_registry.h"
#include "post/grpo_trainer.h"
#include "post/policy_grad.h"
#include "rl/advantages.h"
#include "rl/arith_task.h"
#include "test_util.h"

using namespace dsref;
using dsref_test::run_dsref;
using dsref_test::TempDir;

namespace {

TinyV3Config tiny_config() {  // tests/test_train_model.cpp's fixture: dense layer 0, MoE layer 1
    TinyV3Config c;
    c.V = 11;
    c.d = 8;
    c.L = 2;
    c.first_dense = 1;
    c.I_dense = 12;
    c.I_moe = 4;
    c.n_shared = 1;
    c.mla.d = 8;
    c.mla.H = 2;
    c.mla.d_q = 6;
    c.mla.d_c = 5;
    c.mla.d_n = 3;
    c.mla.d_r = 4;
    c.mla.d_v = 3;
    c.mla.scale = 1.0 / std::sqrt(7.0);
    c.mla.inv_freq = rope_inv_freq(4, 10000.0, RopeScaling{});
    c.gate.E = 4;
    c.gate.K = 2;
    c.gate.n_group = 2;
    c.gate.topk_group = 1;
    c.gate.scoring = MoeScoring::Sigmoid;
    c.gate.topk_method = MoeTopk::NoauxTc;
    c.gate.norm_topk_prob = true;
    c.gate.routed_scaling_factor = 2.5;
    return c;
}

ParamMap<double> init(const TinyV3Config& c, uint64_t seed, double scale) {
    std::mt19937_64 g(seed);
    std::normal_distribution<double> n(0.0, 1.0);
    ParamMap<double> p;
    for (const auto& [name, shape] : tiny_v3_shapes(c)) {
        int64_t size = 1;
        for (int64_t s : shape) size *= s;
        auto& v = p[name];
        v.resize(size);
        const bool norm = name.find("norm") != std::string::npos;
        const bool bias = name.find("bias") != std::string::npos;
        for (auto& x : v) x = bias ? 0.05 * n(g) : norm ? 1.0 + 0.1 * n(g) : scale * n(g);
    }
    return p;
}

ParamMap<double> perturbed(const ParamMap<double>& p, uint64_t seed, double eps) {
    std::mt19937_64 g(seed);
    std::normal_distribution<double> n(0.0, 1.0);
    ParamMap<double> q = p;
    for (auto& [name, v] : q)
        if (name.find("bias") == std::string::npos)
            for (auto& x : v) x += eps * n(g);
    return q;
}

ParamMap<float> to_float(const ParamMap<double>& p) {
    ParamMap<float> f;
    for (const auto& [name, v] : p) f[name] = std::vector<float>(v.begin(), v.end());
    return f;
}

std::vector<double> float_rounded(std::vector<double> v) {
    for (auto& x : v) x = (double)(float)x;
    return v;
}

// Two prompts, G = 3 completions each, of different lengths (the [B, T] tensors are padded).
PolicyBatch fixture_batch() {
    const std::vector<std::vector<int32_t>> prompts = {{0, 3}, {0, 3}, {0, 3}, {0, 7, 2}, {0, 7, 2}, {0, 7, 2}};
    const std::vector<std::vector<int32_t>> comps = {{5, 1, 0}, {9}, {4, 4, 10, 0}, {2, 8}, {6, 0}, {1, 3, 5}};
    return make_policy_batch(prompts, comps);
}

std::vector<double> broadcast(const std::vector<double>& A, int64_t T) {
    std::vector<double> At(A.size() * T);
    for (size_t k = 0; k < At.size(); k++) At[k] = A[k / T];
    return At;
}

std::vector<std::string> lines(const std::string& path) {
    std::ifstream f(path);
    std::vector<std::string> out;
    for (std::string l; std::getline(f, l);) out.push_back(l);
    return out;
}

std::string slurp(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

}  // namespace

TEST_CASE("arith task: worked traces, answers and the held-out split", "[rl][arith]") {
    const ArithProblem p = arith_problem(37, 45, '+', 2);
    CHECK(p.prompt == "37+45=");
    CHECK(p.answer == "82");
    CHECK(p.trace == "7+5=12,3+4+1=8");
    CHECK(arith_completion(p) == "<think>7+5=12,3+4+1=8</think>\\boxed{82}");
    const ArithProblem z = arith_problem(5, 3, '+', 2);  // zero-padded: the box keeps the leading zero
    CHECK(z.prompt == "05+03=");
    CHECK(z.trace == "5+3=8,0+0=0");
    CHECK(z.boxed == "08");
    CHECK(z.answer == "8");
    CHECK(arith_problem(99, 99, '+', 2).boxed == "198");
    CHECK(arith_problem(99, 99, '+', 2).trace == "9+9=18,9+9+1=19");
    const ArithProblem s = arith_problem(52, 17, '-', 2);
    CHECK(s.answer == "35");
    CHECK(s.trace == "2-7+10=5,5-1-1=3");
    CHECK(s.boxed == "35");
    CHECK(arith_problem(7, 45, '+', 0).prompt == "7+45=");  // width 0: natural digits
    const ArithProblem slip = arith_problem(37, 45, '+', 2, true);  // the imperfect demonstration
    CHECK(slip.trace == "7+5=12,3+4=7");
    CHECK(slip.boxed == "72");
    CHECK(slip.answer == "82");  // the truth the reward checks is unchanged
    CHECK(arith_problem(52, 17, '-', 2, true).trace == "2-7+10=5,5-1=4");
    CHECK_THROWS_AS(arith_problem(3, 5, '-', 2), Error);

    // every worked solution earns the full reward (accuracy + format), the leading zero included
    ArithTaskConfig cfg;
    const auto a = arith_problems(cfg, 1, 300);
    for (const auto& q : a) {
        const ArithScore sc = arith_score(arith_completion(q), q.answer, true);
        INFO(q.prompt << arith_completion(q));
        CHECK(sc.accuracy == 1.0);
        CHECK(sc.format == 1.0);
        CHECK(std::stoi(q.answer) == std::stoi(q.prompt.substr(0, 2)) + std::stoi(q.prompt.substr(3, 2)));
    }
    // a seed gives the same problems; another seed others; `exclude` is honoured
    const auto a2 = arith_problems(cfg, 1, 300);
    CHECK(a2[17].prompt == a[17].prompt);
    std::set<std::string> seen;
    for (const auto& q : a) seen.insert(q.prompt);
    CHECK(seen.size() == 300);  // distinct
    const auto h = arith_problems(cfg, 2, 200, seen);
    for (const auto& q : h) CHECK(seen.count(q.prompt) == 0);
    ArithTaskConfig small;
    small.max_operand = 3;
    CHECK_THROWS_WITH(arith_problems(small, 1, 17), Catch::Contains("only 16"));

    // slip: the same problems, some traces without their carries (about slip of those with a carry)
    ArithTaskConfig sl = cfg;
    sl.slip = 1.0;
    const auto as = arith_problems(sl, 1, 300);
    int carried = 0, wrong = 0;
    for (size_t i = 0; i < as.size(); i++) {
        CHECK(as[i].prompt == a[i].prompt);
        CHECK(as[i].answer == a[i].answer);
        carried += (a[i].prompt[1] - '0') + (a[i].prompt[4] - '0') >= 10;  // the units carry into the tens
        wrong += arith_score(arith_completion(as[i]), as[i].answer, true).accuracy == 0.0;
    }
    CHECK(carried > 100);
    CHECK(wrong == carried);  // every problem with a carry is solved wrongly, every other one rightly
    sl.slip = 1.5;
    CHECK_THROWS_WITH(arith_problems(sl, 1, 3), Catch::Contains("slip"));

    // unparsable completions score 0 with the reason, never throw
    const ArithScore none = arith_score("<think>7+5=12</think> 82", "82", true);
    CHECK(none.no_answer);
    CHECK(none.accuracy == 0.0);
    CHECK(none.format == 1.0);
    const ArithScore junk = arith_score(std::string("\xff\xfe\\boxed{8", 9), "8", false);
    CHECK(junk.no_answer);  // unbalanced brace: no answer
    CHECK(junk.truncated);
    CHECK(junk.accuracy == 0.0);
    CHECK(arith_score("\\boxed{81}", "82", true).accuracy == 0.0);
    CHECK(arith_score("\\boxed{81}", "82", true).format == 0.0);
}

TEST_CASE("one GRPO step through the model equals dsref op grpo_loss on the same tensors", "[rl][grpo_step]") {
    const TinyV3Config c = tiny_config();
    const ParamMap<float> p = to_float(init(c, 3, 0.4));
    const ParamMap<float> old_p = to_float(perturbed(init(c, 3, 0.4), 11, 0.05));
    const ParamMap<float> ref_p = to_float(perturbed(init(c, 3, 0.4), 12, 0.1));
    const PolicyBatch b = fixture_batch();
    const int64_t B = b.B, T = b.T, V = c.V, G = 3;
    REQUIRE(B == 6);
    REQUIRE(T == 4);
    // the op gets F32 tensors: the old / ref log-probs are rounded to float for both sides
    const std::vector<double> x_old = float_rounded(policy_logps(c, old_p, b, 1.0));
    const std::vector<double> x_ref = float_rounded(policy_logps(c, ref_p, b, 1.0));
    const std::vector<double> rewards = {1, 0, 2, 0, 0, 1};
    AdvantageConfig ac;
    ac.group_size = G;
    const std::vector<double> At = broadcast(group_advantages(rewards, ac), T);
    // the logits of the training forward at the completion positions, padded to [B, T, V]
    std::vector<float> logits(B * T * V, 0.0f);
    std::vector<int32_t> tokens(B * T, 0);
    for (int64_t i = 0; i < B; i++) {
        const auto& s = b.seqs[i];
        const int64_t np = b.n_prompt[i], n = (int64_t)s.size();
        const TinyV3Head<float> grab = [&](const float* z, float*, int64_t Tn, int64_t Vn) {
            for (int64_t t = np - 1; t < Tn; t++)
                for (int64_t v = 0; v < Vn; v++) logits[(i * T + t - (np - 1)) * V + v] = z[t * Vn + v];
            return 0.0;
        };
        tiny_v3_step_head<float>(c, p, nullptr, s.data(), n - 1, 0.0, grab);
        for (int64_t j = 0; j < n - np; j++) tokens[i * T + j] = s[np + j];
    }
    std::vector<float> mask_f(b.mask.begin(), b.mask.end()), old_f(x_old.begin(), x_old.end()),
        ref_f(x_ref.begin(), x_ref.end()), rew_f(rewards.begin(), rewards.end());
    TensorMap in;
    in["logits"] = Tensor::from_f32({B, T, V}, logits);
    in["tokens"] = Tensor::from_i32({B, T}, tokens);
    in["mask"] = Tensor::from_f32({B, T}, mask_f);
    in["old_logps"] = Tensor::from_f32({B, T}, old_f);
    in["ref_logps"] = Tensor::from_f32({B, T}, ref_f);
    in["rewards"] = Tensor::from_f32({B}, rew_f);
    for (const char* lt : {"grpo", "bnpo", "dr_grpo", "dapo", "seq-mean-token-sum", "seq-mean-token-sum-norm"}) {
        INFO("loss_type " << lt);
        GrpoConfig cfg;
        cfg.loss_type = loss_type_from_name(lt);
        cfg.epsilon = 0.02;  // small, so that some ratios of this fixture are clipped
        cfg.epsilon_high = 0.03;
        cfg.beta = 0.04;
        ParamMap<float> grads;
        const PolicyStep st = grpo_policy_step(c, p, &grads, b, x_old, x_ref, At, cfg, 1.0);
        const TensorMap out = run_op("grpo_loss", in,
                                     OpAttrs({{"group_size", "3"}, {"loss_type", lt}, {"epsilon", "0.02"},
                                              {"epsilon_high", "0.03"}, {"beta", "0.04"}}));
        // the op returns float32: 1e-6 relative is its rounding (the two computations are the same
        // double arithmetic on the same float logits)
        CHECK(st.grpo.loss == Approx(out.at("loss").to_f32()[0]).epsilon(1e-6).margin(1e-9));
        const auto g_op = out.at("grad_logps").to_f32();
        const auto x_op = out.at("logps").to_f32();
        for (int64_t k = 0; k < B * T; k++) {
            CHECK(st.grpo.grad_logps[k] == Approx(g_op[k]).epsilon(1e-6).margin(1e-9));
            CHECK(st.logps[k] == Approx(x_op[k]).epsilon(1e-6).margin(1e-9));
        }
        CHECK(st.grpo.clip_ratio_region == Approx(out.at("clip_ratio_region").to_f32()[0]).margin(1e-7));
        CHECK(st.grpo.kl == Approx(out.at("kl").to_f32()[0]).epsilon(1e-6).margin(1e-9));
        CHECK(grads.count("lm_head.weight"));
    }
    // the fixture exercises the clip (a test of the clipped branch, not only of ratio 1)
    GrpoConfig cfg;
    cfg.epsilon = 0.02;
    cfg.epsilon_high = 0.03;
    const PolicyStep st = grpo_policy_step<float>(c, p, nullptr, b, x_old, x_ref, At, cfg, 1.0);
    CHECK(st.grpo.clip_ratio_region > 0.0);
    CHECK(st.grpo.clip_ratio_region < 1.0);
}

TEST_CASE("GRPO step: dLoss/dθ of every tensor matches finite differences (double)", "[rl][grpo_step]") {
    const TinyV3Config c = tiny_config();
    auto p = init(c, 5, 0.4);
    const ParamMap<double> old_p = perturbed(p, 21, 0.03), ref_p = perturbed(p, 22, 0.1);
    const PolicyBatch b = fixture_batch();
    const std::vector<double> x_old = policy_logps(c, old_p, b, 0.7), x_ref = policy_logps(c, ref_p, b, 0.7);
    AdvantageConfig ac;
    ac.group_size = 3;
    const std::vector<double> At = broadcast(group_advantages({1, 0, 2, 0, 0, 1}, ac), b.T);
    for (LossType lt : {LossType::Grpo, LossType::DrGrpo}) {
        GrpoConfig cfg;
        cfg.loss_type = lt;
        cfg.epsilon = 0.2;
        cfg.beta = 0.04;
        ParamMap<double> g;
        const PolicyStep st = grpo_policy_step(c, p, &g, b, x_old, x_ref, At, cfg, 0.7);  // temperature 0.7
        auto loss = [&] { return grpo_policy_step<double>(c, p, nullptr, b, x_old, x_ref, At, cfg, 0.7).grpo.loss; };
        CHECK(loss() == st.grpo.loss);
        const double h = 1e-6;
        int checked = 0;
        for (auto& [name, v] : p) {
            if (name.find("e_score_correction_bias") != std::string::npos) continue;
            REQUIRE(g.count(name));
            const size_t step = std::max<size_t>(1, v.size() / 4);
            for (size_t i = 0; i < v.size(); i += step) {
                const double keep = v[i];
                v[i] = keep + h;
                const double lp = loss();
                v[i] = keep - h;
                const double lm = loss();
                v[i] = keep;
                const double num = (lp - lm) / (2 * h);
                INFO(name << "[" << i << "] analytic " << g[name][i] << " numeric " << num);
                // central differences in double are good to ~1e-9 on this O(0.1) loss; 1e-6 (absolute
                // below 1) still catches a wrong term. No ratio sits within ±h·|dx/dθ| of a clip edge
                // on this fixture (a kink would show as a jump of O(|A|), far above the bar).
                CHECK(std::abs(g[name][i] - num) <= 1e-6 * std::max(1.0, std::abs(num)));
                checked++;
            }
        }
        CHECK(checked > 100);
    }
}

TEST_CASE("GRPO loop: G < 2 and a prompt longer than the context are refused", "[rl][bad]") {
    const std::vector<std::vector<int32_t>> prompts = {{0, 1}, {0, 1, 2}, std::vector<int32_t>(30, 5)};
    CHECK_THROWS_AS(grpo_check_inputs(prompts, 1, 4, 64, 1.0), UsageError);
    CHECK_THROWS_WITH(grpo_check_inputs(prompts, 1, 4, 64, 1.0), Catch::Contains("G >= 2"));
    CHECK_NOTHROW(grpo_check_inputs(prompts, 2, 4, 64, 1.0));
    CHECK_THROWS_WITH(grpo_check_inputs(prompts, 2, 40, 64, 1.0), Catch::Contains("prompt 2:"));
    CHECK_THROWS_WITH(grpo_check_inputs(prompts, 2, 4, 64, 0.0), Catch::Contains("temperature"));
    CHECK_THROWS_WITH(make_policy_batch({{0}}, {{}}), Catch::Contains("row 0 has an empty completion"));
}

TEST_CASE("dsref rl: CSV and SVG, unparsable completions counted, bit-identical at 1 and 2 threads", "[rl][cli]") {
    TempDir t;
    std::string out;
    REQUIRE(run_dsref("init --config data/train/tiny_v3.config.json --seed 4 --out " + t.file("init"), &out) == 0);
    const std::string common = "rl --model " + t.file("init") +
                               " --steps 2 --prompts 2 --heldout 3 --eval-every 1 --mu 2 --lr 1e-3 --seed 9";
    const std::string ok = common + " -G 3 --max-new 6";
    REQUIRE(run_dsref(ok + " --out " + t.file("o1") + " --log " + t.file("a.csv") + " --threads 1", &out) == 0);
    INFO(out);
    CHECK(out.find("held-out greedy accuracy: 0.0% before") != std::string::npos);
    REQUIRE(run_dsref(ok + " --out " + t.file("o2") + " --log " + t.file("b.csv") + " --threads 2", &out) == 0);
    const auto rows = lines(t.file("a.csv"));
    REQUIRE(rows.size() == 4);  // header, steps 0 and 1, the final held-out row
    CHECK(rows[0] == "step,mean_reward,accuracy,format,mean_length,kl,clip_frac,loss,grad_norm,no_answer,truncated,"
                     "heldout_accuracy");
    // a random byte model writes no \boxed{} in 6 tokens: all 6 completions are scored 0 and counted
    std::stringstream ss(rows[1]);
    std::vector<std::string> f;
    for (std::string x; std::getline(ss, x, ',');) f.push_back(x);
    REQUIRE(f.size() == 12);
    CHECK(f[2] == "0");
    CHECK(f[9] == "6");
    CHECK(f[4] == "6");  // no EOS in 6 tokens: every completion is 6 long
    CHECK(slurp(t.file("a.csv")) == slurp(t.file("b.csv")));
    CHECK(slurp(t.file("o1/model.safetensors")) == slurp(t.file("o2/model.safetensors")));
    CHECK(slurp(t.file("a.svg")).find("held-out greedy accuracy") != std::string::npos);
    // bad input exits non-zero with the reason
    CHECK(run_dsref(common + " -G 1 --max-new 6 --out " + t.file("o3"), &out) == 2);
    CHECK(out.find("G >= 2") != std::string::npos);
    CHECK(run_dsref(common + " -G 3 --max-new 300 --out " + t.file("o3"), &out) == 1);
    CHECK(out.find("prompt 0:") != std::string::npos);
    CHECK(run_dsref(ok + " --loss-type ppo --out " + t.file("o3"), &out) == 2);
}
