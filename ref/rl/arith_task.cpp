// arith_task.cpp — problem generation, worked traces and scoring (arith_task.h).
#include "rl/arith_task.h"

#include <algorithm>

#include "core/error.h"
#include "rl/rewards.h"

namespace dsref {

namespace {
uint64_t splitmix64(uint64_t& s) {
    uint64_t z = (s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}
int64_t digit(int64_t x, int64_t k) {  // the k-th decimal digit from the units
    for (int64_t i = 0; i < k; i++) x /= 10;
    return x % 10;
}
int64_t n_digits(int64_t x) {
    int64_t n = 1;
    while (x >= 10) x /= 10, n++;
    return n;
}
}  // namespace

ArithProblem arith_problem(int64_t a, int64_t b, char op, int64_t width, bool drop_carries) {
    if (a < 0 || b < 0) fail("arith_problem: operands must be >= 0, got ", a, " and ", b);
    if (op != '+' && op != '-') fail("arith_problem: op must be '+' or '-', got '", op, "'");
    if (op == '-' && a < b) fail("arith_problem: a - b needs a >= b, got ", a, " - ", b);
    const int64_t cols = std::max(width, std::max(n_digits(a), n_digits(b)));
    auto padded = [&](int64_t x) {
        std::string s = std::to_string(x);
        return std::string((size_t)std::max<int64_t>(0, width - (int64_t)s.size()), '0') + s;
    };
    ArithProblem p;
    p.prompt = padded(a) + op + padded(b) + "=";
    p.answer = std::to_string(op == '+' ? a + b : a - b);
    int64_t carry = 0;  // + : the carry into this column (0/1); − : the borrow from it (0/1)
    for (int64_t k = 0; k < cols; k++) {
        const int64_t x = digit(a, k), y = digit(b, k);
        if (drop_carries) carry = 0;
        std::string s = std::to_string(x) + op + std::to_string(y);
        if (carry) s += op == '+' ? "+1" : "-1";
        int64_t r = op == '+' ? x + y + carry : x - y - carry;
        if (op == '-' && r < 0) {
            s += "+10";
            r += 10;
            carry = 1;
        } else if (op == '-') {
            carry = 0;
        } else {
            carry = r >= 10 ? 1 : 0;
        }
        s += "=" + std::to_string(r);
        if (!p.trace.empty()) p.trace += ",";
        p.trace += s;
        p.boxed = (k + 1 == cols ? std::to_string(r) : std::to_string(r % 10)) + p.boxed;
    }
    return p;
}

std::string arith_completion(const ArithProblem& p) {
    return "<think>" + p.trace + "</think>\\boxed{" + p.boxed + "}";
}

std::vector<ArithProblem> arith_problems(const ArithTaskConfig& cfg, uint64_t seed, int64_t n,
                                         const std::set<std::string>& exclude) {
    if (cfg.max_operand < 1) fail("arith task: max_operand must be >= 1, got ", cfg.max_operand);
    if (!(cfg.slip >= 0.0 && cfg.slip <= 1.0)) fail("arith task: slip must lie in [0, 1], got ", cfg.slip);
    if (n < 0) fail("arith task: the number of problems must be >= 0, got ", n);
    const int64_t M = cfg.max_operand + 1;
    const int64_t space = cfg.subtraction ? M * M + M * (M + 1) / 2 : M * M;
    if (n + (int64_t)exclude.size() > space)
        fail("arith task: ", n, " distinct problems asked (", exclude.size(), " excluded) but the task has only ",
             space);
    std::vector<ArithProblem> out;
    std::set<std::string> seen = exclude;
    uint64_t s = seed;
    for (int64_t tries = 0; (int64_t)out.size() < n; tries++) {
        if (tries > 64 * (space + n)) fail("arith task: could not draw ", n, " distinct problems from seed ", seed);
        int64_t a = (int64_t)(splitmix64(s) % (uint64_t)M), b = (int64_t)(splitmix64(s) % (uint64_t)M);
        char op = '+';
        if (cfg.subtraction && (splitmix64(s) & 1)) {
            op = '-';
            if (a < b) std::swap(a, b);
        }
        const double u = (double)(splitmix64(s) >> 11) * 0x1.0p-53;  // drawn always: problems independent of slip
        ArithProblem p = arith_problem(a, b, op, cfg.pad ? n_digits(cfg.max_operand) : 0, u < cfg.slip);
        if (!seen.insert(p.prompt).second) continue;
        out.push_back(std::move(p));
    }
    return out;
}

ArithScore arith_score(const std::string& completion, const std::string& answer, bool reached_eos) {
    ArithScore r;
    std::string got;
    r.no_answer = !extract_answer(completion, &got);
    r.truncated = !reached_eos;
    r.accuracy = r.no_answer ? 0.0 : accuracy_reward(completion, answer);
    r.format = think_format_reward(completion);
    return r;
}

}  // namespace dsref
