// grpo_trainer.cpp — the GRPO loop (grpo_trainer.h).
#include "post/grpo_trainer.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <set>

#include "core/error.h"
#include "model/generate.h"
#include "model/model.h"
#include "post/curves_svg.h"
#include "post/policy_grad.h"
#include "train/adamw.h"

namespace dsref {

namespace {

uint64_t mix(uint64_t a, uint64_t b) {  // splitmix64 of a combined with b: one seed per completion
    uint64_t z = a ^ (b + 0x9E3779B97F4A7C15ULL + (a << 6) + (a >> 2));
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

double seconds_since(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

std::string bytes_of(const std::vector<int32_t>& ids, int64_t eos) {
    std::string s;
    for (int32_t t : ids)
        if (t != eos) s += (char)(unsigned char)t;
    return s;
}

int64_t pool_size(const GrpoTrainOptions& o) { return o.train_prompts > 0 ? o.train_prompts : o.steps * o.prompts; }

struct StepRow {
    int64_t step = 0;
    double reward = 0, accuracy = 0, format = 0, length = 0, kl = 0, clip = 0, loss = 0, grad_norm = 0;
    int64_t no_answer = 0, truncated = 0;
    double heldout = NAN;
};

void write_row(std::ofstream& f, const StepRow& r, bool trained) {
    f << r.step << ",";
    if (trained)
        f << r.reward << "," << r.accuracy << "," << r.format << "," << r.length << "," << r.kl << "," << r.clip << ","
          << r.loss << "," << r.grad_norm << "," << r.no_answer << "," << r.truncated << ",";
    else
        f << ",,,,,,,,,,";
    if (std::isfinite(r.heldout)) f << r.heldout;
    f << "\n";
}

}  // namespace

std::vector<ArithProblem> grpo_heldout_problems(const GrpoTrainOptions& o) {
    const std::set<std::string> ex(o.exclude.begin(), o.exclude.end());
    return arith_problems(o.task, o.heldout_seed, o.heldout, ex);
}

std::vector<int32_t> byte_prompt(const std::string& text) {
    std::vector<int32_t> ids{0};
    for (unsigned char c : text) ids.push_back((int32_t)c);
    return ids;
}

void grpo_check_inputs(const std::vector<std::vector<int32_t>>& prompts, int64_t G, int64_t max_new,
                       int64_t context, double temperature) {
    if (G < 2) usage_fail("--group-size G = ", G, ": GRPO needs G >= 2 completions per prompt (the group baseline)");
    if (max_new < 1) usage_fail("--max-new must be >= 1, got ", max_new);
    if (!(temperature > 0.0)) usage_fail("--temperature must be > 0 for sampling, got ", temperature);
    for (size_t i = 0; i < prompts.size(); i++) {
        if (prompts[i].empty()) fail("prompt ", i, " is empty");
        if ((int64_t)prompts[i].size() + max_new > context)
            fail("prompt ", i, ": ", prompts[i].size(), " tokens + --max-new ", max_new,
                 " exceed the context of ", context, " positions (max_position_embeddings)");
    }
}

EvalResult arith_eval(const std::string& dir, const std::vector<ArithProblem>& problems, int64_t max_new) {
    ModelOptions mo;
    mo.keep_weights = true;
    Model m(dir, mo);
    const int64_t eos = m.config().eos_token_id;
    EvalResult r;
    SamplingParams greedy;  // temperature 0: the argmax
    for (const ArithProblem& p : problems) {
        const GenerateResult g = generate(m, byte_prompt(p.prompt), max_new, greedy, true);
        const bool eos_hit = !g.tokens.empty() && g.tokens.back() == eos;
        const ArithScore s = arith_score(bytes_of(g.tokens, eos), p.answer, eos_hit);
        r.accuracy += s.accuracy;
        r.format += s.format;
        r.mean_length += (double)g.tokens.size();
        r.no_answer += s.no_answer;
        r.truncated += s.truncated;
        r.n++;
    }
    if (r.n) r.accuracy /= (double)r.n, r.format /= (double)r.n, r.mean_length /= (double)r.n;
    return r;
}

GrpoTrainSummary grpo_train(const GrpoTrainOptions& o) {
    const auto t_start = std::chrono::steady_clock::now();
    if (o.steps < 1 || o.prompts < 1) usage_fail("--steps and --prompts must be >= 1");
    if (o.mu < 1) usage_fail("--mu (inner iterations over the same samples) must be >= 1, got ", o.mu);
    if (o.eval_every < 1) usage_fail("--eval-every must be >= 1");
    grpo_check_config(o.grpo);
    TinyPolicy policy = load_tiny_policy(o.model);
    const ParamMap<float> ref = policy.params;  // π_ref: the initial (SFT) model, frozen
    const int64_t ctx = policy.config.max_position_embeddings;
    const int64_t eos = policy.config.eos_token_id;
    if (eos < 0 || eos >= policy.net.V) fail(o.model, ": the trainer needs an eos_token_id in the vocabulary");

    const int64_t pool_n = pool_size(o);
    const std::vector<ArithProblem> heldout = grpo_heldout_problems(o);
    std::set<std::string> not_in_pool;  // the RL prompts never include a held-out problem
    for (const auto& p : heldout) not_in_pool.insert(p.prompt);
    const std::vector<ArithProblem> pool = arith_problems(o.task, o.seed, pool_n, not_in_pool);
    std::vector<std::vector<int32_t>> pool_ids;
    for (const auto& p : pool) pool_ids.push_back(byte_prompt(p.prompt));
    grpo_check_inputs(pool_ids, o.G, o.max_new, ctx, o.temperature);

    std::ofstream log;
    if (!o.log.empty()) {
        log.open(o.log);
        if (!log) fail(o.log, ": cannot write the log");
        log << "step,mean_reward,accuracy,format,mean_length,kl,clip_frac,loss,grad_norm,no_answer,truncated,"
               "heldout_accuracy\n";
        log.precision(9);
    }
    AdamWConfig ac;
    ac.beta1 = o.beta1;
    ac.beta2 = o.beta2;
    const auto shapes = tiny_v3_shapes(policy.net);
    std::map<std::string, AdamWState<float>> state;
    AdvantageConfig acfg;
    acfg.group_size = o.G;
    acfg.scale = o.scale;

    GrpoTrainSummary sum;
    std::vector<StepRow> rows;
    double decode_tokens = 0, decode_s = 0;
    int64_t adam_step = 0;
    save_tiny_policy(o.out, policy);
    for (int64_t k = 0; k <= o.steps; k++) {
        StepRow row;
        row.step = k;
        if (k % o.eval_every == 0 || k == o.steps) {
            const EvalResult e = arith_eval(o.out, heldout, o.max_new);
            row.heldout = e.accuracy;
            if (k == 0) sum.before = e;
            if (k == o.steps) sum.after = e;
        }
        if (k == o.steps) {  // the last row: the final held-out score only
            rows.push_back(row);
            if (log) write_row(log, row, false);
            break;
        }
        // ---- sample G completions per prompt from the current policy (KV cache) ----
        std::vector<std::vector<int32_t>> prompts, completions;
        std::vector<double> rewards;
        {
            ModelOptions mo;
            mo.keep_weights = true;
            Model m(o.out, mo);
            const auto t0 = std::chrono::steady_clock::now();
            for (int64_t j = 0; j < o.prompts; j++) {
                const int64_t q = (k * o.prompts + j) % pool_n;
                for (int64_t g = 0; g < o.G; g++) {
                    SamplingParams sp;
                    sp.temperature = o.temperature;
                    sp.top_p = o.top_p;
                    sp.seed = mix(mix(o.seed, (uint64_t)k), (uint64_t)(j * o.G + g));
                    GenerateResult gr = generate(m, pool_ids[q], o.max_new, sp, true);
                    const bool eos_hit = gr.tokens.back() == eos;
                    const ArithScore s = arith_score(bytes_of(gr.tokens, eos), pool[q].answer, eos_hit);
                    rewards.push_back(s.accuracy + s.format);
                    row.accuracy += s.accuracy;
                    row.format += s.format;
                    row.no_answer += s.no_answer;
                    row.truncated += s.truncated;
                    row.length += (double)gr.tokens.size();
                    decode_tokens += (double)gr.tokens.size();
                    prompts.push_back(pool_ids[q]);
                    completions.push_back(std::move(gr.tokens));
                }
            }
            decode_s += seconds_since(t0);
        }
        const double Bn = (double)rewards.size();
        for (double r : rewards) row.reward += r / Bn;
        row.accuracy /= Bn, row.format /= Bn, row.length /= Bn;
        // ---- advantages, reference and old log-probs ----
        const PolicyBatch b = make_policy_batch(prompts, completions);
        const std::vector<double> A = group_advantages(rewards, acfg);
        std::vector<double> At(b.B * b.T);
        for (int64_t i = 0; i < b.B; i++)
            for (int64_t t = 0; t < b.T; t++) At[i * b.T + t] = A[i];
        // x_ref also at beta = 0: the KL is then logged, not optimized
        const std::vector<double> x_ref = policy_logps(policy.net, ref, b, o.temperature);
        const std::vector<double> x_old =
            o.mu > 1 ? policy_logps(policy.net, policy.params, b, o.temperature) : std::vector<double>();
        // ---- μ updates on the same samples ----
        for (int64_t it = 0; it < o.mu; it++) {
            ParamMap<float> grads;
            const PolicyStep ps = grpo_policy_step(policy.net, policy.params, &grads, b, x_old, x_ref, At, o.grpo,
                                                   o.temperature);
            if (!std::isfinite(ps.grpo.loss)) fail("step ", k, ": the GRPO loss is ", ps.grpo.loss);
            std::vector<float*> gp;
            std::vector<int64_t> sizes;
            for (auto& [name, gv] : grads) {
                for (size_t i = 0; i < gv.size(); i++)
                    if (!std::isfinite(gv[i])) fail("step ", k, ": gradient of ", name, " is ", gv[i], " at element ", i);
                gp.push_back(gv.data());
                sizes.push_back((int64_t)gv.size());
            }
            const double norm = clip_grad_norm(gp, sizes, o.clip);
            adam_step++;
            for (auto& [name, gv] : grads)
                adamw_step(policy.params[name].data(), gv.data(), state[name], (int64_t)gv.size(), adam_step, o.lr,
                           adamw_decays(shapes.at(name)) ? o.weight_decay : 0.0, ac);
            row.loss += ps.grpo.loss / (double)o.mu;
            row.kl += ps.grpo.kl / (double)o.mu;
            row.clip += ps.grpo.clip_ratio_region / (double)o.mu;
            row.grad_norm += norm / (double)o.mu;
        }
        save_tiny_policy(o.out, policy);
        rows.push_back(row);
        if (log) {
            write_row(log, row, true);
            log.flush();
        }
        if (o.progress) {
            const double el = seconds_since(t_start);
            std::fprintf(stderr,
                         "\rdsref rl: step %lld/%lld  reward %.3f  acc %.3f  len %.1f  kl %.4f  %.0f tok/s  ETA %.0f s   ",
                         (long long)k + 1, (long long)o.steps, row.reward, row.accuracy, row.length, row.kl,
                         decode_tokens / std::max(decode_s, 1e-9), el / (double)(k + 1) * (double)(o.steps - k - 1));
        }
    }
    if (o.progress) std::fprintf(stderr, "\n");
    if (!o.log.empty()) {
        std::string svg = o.log;
        if (svg.size() > 4 && svg.substr(svg.size() - 4) == ".csv") svg = svg.substr(0, svg.size() - 4);
        std::vector<CurveSeries> s(8);
        const char* titles[8] = {"mean reward (accuracy + format)", "accuracy (samples)", "format rate",
                                 "mean completion length (tokens)", "KL to the reference (k3)",
                                 "clip fraction", "GRPO loss", "held-out greedy accuracy"};
        for (int i = 0; i < 8; i++) s[i].title = titles[i], s[i].smooth = i < 7 ? 10 : 0;
        for (const StepRow& r : rows) {
            const double x = (double)r.step;
            if (r.step < o.steps) {
                const double v[7] = {r.reward, r.accuracy, r.format, r.length, r.kl, r.clip, r.loss};
                for (int i = 0; i < 7; i++) s[i].x.push_back(x), s[i].y.push_back(v[i]);
            }
            if (std::isfinite(r.heldout)) s[7].x.push_back(x), s[7].y.push_back(r.heldout);
        }
        write_curves_svg(svg + ".svg", "dsref rl: GRPO on arithmetic (x: step; dark: 10-step mean)", s, 4);
    }
    sum.decode_tokens_per_s = decode_tokens / std::max(decode_s, 1e-9);
    sum.seconds = seconds_since(t_start);
    return sum;
}

}  // namespace dsref
