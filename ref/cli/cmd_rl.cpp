// cmd_rl.cpp — `dsref rl`: GRPO with rule-based rewards on the synthetic arithmetic task (the loop is
// post/grpo_trainer.h), and `dsref rl-data`: the task's SFT corpus (worked <think> traces) for
// `dsref train`. `make r1zero` runs init → rl-data → train (SFT) → rl (walkthrough/09_r1zero).
#include <cstdio>
#include <fstream>
#include <iostream>

#include "cli.h"
#include "core/error.h"
#include "post/grpo_trainer.h"
#include "rl/arith_task.h"

namespace dsref::cli {

namespace {

struct TaskOpts {
    int64_t max_operand = 99;
    bool subtraction = false, no_pad = false;
    ArithTaskConfig cfg() const {
        ArithTaskConfig c;
        c.pad = !no_pad;
        c.max_operand = max_operand;
        c.subtraction = subtraction;
        return c;
    }
};

void add_task_options(CLI::App* cmd, TaskOpts* t) {
    cmd->add_option("--max-operand", t->max_operand, "operands in [0, N] (default 99)");
    cmd->add_flag("--subtraction", t->subtraction, "also a-b= problems (a >= b), half of them");
    cmd->add_flag("--no-pad", t->no_pad, "write operands without leading zeros (positions then vary)");
}

struct DataOpts {
    TaskOpts task;
    double slip = 0.0;
    uint64_t seed = 1;
    int64_t n = 1000;
    std::string out;
    bool show = false;
};

// OUT.bin: little-endian uint32 byte ids; every example is "prompt completion" followed by the
// end-of-sequence byte 0 (which is also BOS: the next prompt starts after it), and the stream starts
// with a 0, so every prompt is read after a 0 exactly as `dsref rl` presents it.
void run_data(const DataOpts& o) {
    ArithTaskConfig cfg = o.task.cfg();
    cfg.slip = o.slip;
    const auto probs = arith_problems(cfg, o.seed, o.n);
    std::ofstream f(o.out, std::ios::binary);
    if (!f) fail(o.out, ": cannot write the SFT corpus");
    auto put = [&](uint32_t v) {
        const unsigned char b[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
                                    (unsigned char)(v >> 24)};
        f.write((const char*)b, 4);
    };
    put(0);
    int64_t tokens = 1;
    for (const auto& p : probs) {
        const std::string s = p.prompt + arith_completion(p);
        for (unsigned char c : s) put(c);
        put(0);
        tokens += (int64_t)s.size() + 1;
        if (o.show && &p - &probs[0] < 3) std::cout << s << "\n";
    }
    if (!f) fail(o.out, ": write failed");
    std::cerr << "dsref rl-data: " << probs.size() << " problems, " << tokens << " tokens in " << o.out << "\n";
}

struct RlOpts {
    GrpoTrainOptions t;
    TaskOpts task;
    std::string loss_type = "grpo", scale = "group";
    double epsilon_high = -1;
    uint64_t sft_seed = 0;
    int64_t sft_n = 0;
    int threads = 0;
    bool eval_only = false;
};

void run_rl(RlOpts o) {
    if (!o.eval_only && o.t.out.empty()) usage_fail("dsref rl: --out is required (unless --eval-only)");
    o.t.task = o.task.cfg();
    o.t.grpo.loss_type = loss_type_from_name(o.loss_type);
    if (o.epsilon_high >= 0) o.t.grpo.epsilon_high = o.epsilon_high;
    if (o.scale == "group") o.t.scale = RewardScale::Group;
    else if (o.scale == "batch") o.t.scale = RewardScale::Batch;
    else if (o.scale == "none") o.t.scale = RewardScale::None;
    else usage_fail("--scale-rewards: '", o.scale, "' is not group, batch or none");
    if (o.sft_n > 0)
        for (const auto& p : arith_problems(o.t.task, o.sft_seed, o.sft_n)) o.t.exclude.push_back(p.prompt);
    if (o.eval_only) {
        const EvalResult e = arith_eval(o.t.model, grpo_heldout_problems(o.t), o.t.max_new);
        std::printf("held-out greedy accuracy of %s: %.1f%% (%lld problems; format %.1f%%, mean length %.1f, "
                    "no answer %lld, truncated %lld)\n",
                    o.t.model.c_str(), 100 * e.accuracy, (long long)e.n, 100 * e.format, e.mean_length,
                    (long long)e.no_answer, (long long)e.truncated);
        return;
    }
    const GrpoTrainSummary s = grpo_train(o.t);
    std::printf("held-out greedy accuracy: %.1f%% before GRPO (SFT model) -> %.1f%% after (%+.1f points; %lld problems)\n",
                100 * s.before.accuracy, 100 * s.after.accuracy, 100 * (s.after.accuracy - s.before.accuracy),
                (long long)s.after.n);
    std::printf("held-out format rate: %.1f%% -> %.1f%%, mean length %.1f -> %.1f tokens, no answer %lld -> %lld\n",
                100 * s.before.format, 100 * s.after.format, s.before.mean_length, s.after.mean_length,
                (long long)s.before.no_answer, (long long)s.after.no_answer);
    std::printf("sampling (KV cache): %.0f tokens/s; %.1f s in all; policy in %s\n", s.decode_tokens_per_s, s.seconds,
                o.t.out.c_str());
}

}  // namespace

void add_rl(CLI::App& app) {
    auto d = std::make_shared<DataOpts>();
    CLI::App* dc = app.add_subcommand("rl-data", "write the arithmetic task's SFT corpus (worked <think> traces) for dsref train");
    add_task_options(dc, &d->task);
    dc->add_option("--seed", d->seed, "problem seed (default 1)");
    dc->add_option("--n", d->n, "distinct problems (default 1000)");
    dc->add_option("--out", d->out, "output: little-endian uint32 byte ids (.bin)")->required();
    dc->add_flag("--show", d->show, "print the first three examples");
    dc->add_option("--slip", d->slip, "probability that a worked trace drops its carries (imperfect demonstrations; default 0)");
    dc->callback([d]() { run_data(*d); });

    auto o = std::make_shared<RlOpts>();
    GrpoTrainOptions& t = o->t;
    CLI::App* cmd = app.add_subcommand("rl", "GRPO (DeepSeekMath / R1-Zero) with rule-based rewards on synthetic arithmetic");
    cmd->add_option("--model", t.model, "initial checkpoint (the SFT model; also the frozen reference)")->required();
    cmd->add_option("--out", t.out, "output checkpoint directory (the policy, rewritten every step)");
    cmd->add_flag("--eval-only", o->eval_only, "only print the held-out greedy accuracy of --model");
    cmd->add_option("--log", t.log, "CSV log, one row per step (+ LOG.svg with the curves)");
    add_task_options(cmd, &o->task);
    cmd->add_option("--seed", t.seed, "RL prompts and sampling seeds (default 1)");
    cmd->add_option("--heldout-seed", t.heldout_seed, "held-out problems' seed (default 1000)");
    cmd->add_option("--heldout", t.heldout, "held-out problems, scored greedily (default 200)");
    cmd->add_option("--sft-seed", o->sft_seed, "the SFT corpus' seed: its problems are left out of the held-out set");
    cmd->add_option("--sft-n", o->sft_n, "the SFT corpus' size (with --sft-seed)");
    cmd->add_option("--steps", t.steps, "GRPO steps (default 100)");
    cmd->add_option("--prompts", t.prompts, "prompts per step (default 8)");
    cmd->add_option("--train-prompts", t.train_prompts, "RL prompt pool size, cycled (default steps x prompts)");
    cmd->add_option("--group-size,-G", t.G, "completions per prompt G >= 2 (default 8)");
    cmd->add_option("--max-new", t.max_new, "completion length limit in tokens (default 48)");
    cmd->add_option("--temperature", t.temperature, "sampling temperature, also divides the logits of the loss (default 1)");
    cmd->add_option("--top-p", t.top_p, "nucleus sampling (default 1)");
    cmd->add_option("--mu", t.mu, "inner iterations over the same samples (default 1)");
    cmd->add_option("--loss-type", o->loss_type, "grpo|bnpo|dr_grpo|dapo|seq-mean-token-sum|seq-mean-token-sum-norm");
    cmd->add_option("--epsilon", t.grpo.epsilon, "clip range eps_low (default 0.2)");
    cmd->add_option("--epsilon-high", o->epsilon_high, "clip range eps_high (default = --epsilon; DAPO 0.28)");
    cmd->add_option("--beta", t.grpo.beta, "KL (k3) coefficient to the reference (default 0.04)");
    cmd->add_option("--scale-rewards", o->scale, "advantage scale: group|batch|none (default group)");
    cmd->add_option("--lr", t.lr, "AdamW learning rate (default 1e-4)");
    cmd->add_option("--weight-decay", t.weight_decay, "AdamW decay on rank >= 2 tensors (default 0)");
    cmd->add_option("--clip", t.clip, "global gradient-norm clip, <= 0 for none (default 1)");
    cmd->add_option("--eval-every", t.eval_every, "held-out evaluation every N steps (default 25)");
    add_threads_option(cmd, &o->threads);
    cmd->callback([o]() {
        apply_threads(o->threads);
        run_rl(*o);
    });
}

}  // namespace dsref::cli
