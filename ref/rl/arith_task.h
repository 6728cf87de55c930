// arith_task.h — the synthetic arithmetic task of the mini R1-Zero (walkthrough/09_r1zero): prompts
// "a+b=" (and "a-b=" with a ≥ b when subtraction is on) whose answer is checked by a rule, as the
// R1-Zero accuracy reward checks a math answer (R1 paper §2.2.2).
//
// One problem, with operands drawn uniformly from [0, max_operand], written with `width` digits
// (zero-padded: every digit sits at a fixed position, which a 2-layer model finds far more easily):
//   prompt      "37+45="            "05+03="
//   completion  "<think>7+5=12,3+4+1=8</think>\boxed{82}"    "<think>5+3=8,0+0=0</think>\boxed{08}"
// (the worked trace, used by SFT only). The trace adds column by column from the units, carrying 0 or 1
// ("a+b+1=s" when a carry comes in); subtraction borrows ("7-9+10=8", "3-1-1=1"). The boxed answer is
// the last column's result followed by the units of the others, so it may keep a leading zero ("08"):
// the accuracy reward compares numbers, and 08 = 8.
//
// Imperfect demonstrations: with `slip` > 0 the SFT corpus (and only it) drops the carry (or the
// borrow) of a problem with that probability — "7+5=12,3+4=7" then \boxed{72} for 37+45 — a habit a
// real corpus of human or distilled solutions also has. The model learns the habit from SFT; the
// rule-based reward of GRPO, which checks the answer, is what can remove it (walkthrough/09_r1zero).
//
// The draw is a splitmix64 stream of the seed, so a seed gives the same problems on every platform. A
// held-out set is drawn from another seed with every problem of the training sets removed
// (`exclude`), so held-out accuracy is never measured on a problem the model was trained on.
#pragma once
#include <cstdint>
#include <set>
#include <string>
#include <vector>

namespace dsref {

struct ArithProblem {
    std::string prompt;  // "37+45="
    std::string answer;  // "82": the truth, as the reward compares it
    std::string boxed;   // "82" / "08": what the worked solution writes in \boxed{}
    std::string trace;   // "7+5=12,3+4+1=8"
};

struct ArithTaskConfig {
    int64_t max_operand = 99;  // operands in [0, max_operand]
    bool subtraction = false;  // also "a-b=" with a >= b (half of the problems)
    bool pad = true;           // zero-pad the operands to the digits of max_operand
    double slip = 0.0;         // SFT corpus only: the probability that a worked trace drops its carries
};

// The completion an SFT example teaches: "<think>" trace "</think>\boxed{" answer "}".
std::string arith_completion(const ArithProblem& p);

// op '+' or '-' (needs a >= b) · width: digits of each operand, zero-padded (0: as many as needed)
// drop_carries: the trace and the boxed answer ignore every carry / borrow (`answer` stays the truth)
ArithProblem arith_problem(int64_t a, int64_t b, char op, int64_t width = 0, bool drop_carries = false);

// n distinct problems of `seed`, none of whose prompts is in `exclude`; fails when the task has
// fewer than n such problems. cfg.slip > 0 drops the carries of a problem with that probability (a
// separate draw of the same stream, so the problems themselves do not depend on slip).
std::vector<ArithProblem> arith_problems(const ArithTaskConfig& cfg, uint64_t seed, int64_t n,
                                         const std::set<std::string>& exclude = {});

// What the rule-based reward saw in one completion (rl/rewards.h decides the numbers).
struct ArithScore {
    double accuracy = 0;    // accuracy_reward: the \boxed{} answer equals the truth
    double format = 0;      // think_format_reward: <think> ... </think> first
    bool no_answer = false; // no \boxed{} (nor <answer>) to read: scored 0, counted in the log
    bool truncated = false; // the completion hit the length limit before the end-of-sequence token
};
ArithScore arith_score(const std::string& completion, const std::string& answer, bool reached_eos);

}  // namespace dsref
