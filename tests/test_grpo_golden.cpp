// test_grpo_golden.cpp — the grpo_loss and dpo_loss ops against an independent PyTorch implementation of
// the formulas of ref/rl/grpo.h (data/grpo/make_grpo_golden.py: TRL's _compute_loss structure, verl's aggregation
// modes, gradients by torch autograd in float64). 324 grpo_loss cases cover every loss_type ×
// scale_rewards × importance_sampling_level with beta, epsilon_high and delta each on and off, plus each
// of the 36 combinations once more with logits at temperature != 1; masks come as F32/U8/BOOL/I32, some
// rows are empty, some groups have equal or NaN (unscorable) rewards, some cases have no old_logps.
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include <catch2/catch.hpp>

#include "io/safetensors.h"
#include "ops/op_registry.h"

using namespace dsref;

namespace {

struct Case {
    std::string op, prefix;
    OpAttrs attrs;
};

std::vector<Case> read_cases(const std::string& path) {
    std::ifstream f(path);
    REQUIRE(f.good());
    std::vector<Case> cases;
    std::string line;
    while (std::getline(f, line)) {
        if (line.empty() || line[0] == '#') continue;
        std::istringstream is(line);
        Case c;
        is >> c.op >> c.prefix;
        std::string kv;
        while (is >> kv) {
            const size_t eq = kv.find('=');
            REQUIRE(eq != std::string::npos);
            c.attrs.set(kv.substr(0, eq), kv.substr(eq + 1));
        }
        cases.push_back(c);
    }
    return cases;
}

// Outputs are float32 roundings of double results computed from the same float32 inputs as the
// reference, so they agree to ~6e-8 relative; 1e-6 relative leaves > 10× headroom. The 1e-9 absolute floor
// covers entries that are 0 in exact arithmetic but carry summation-order noise (~1e-16 × the terms).
bool close(double got, double want) { return std::fabs(got - want) <= 1e-6 * std::fabs(want) + 1e-9; }

}  // namespace

TEST_CASE("grpo_loss and dpo_loss ops match the independent PyTorch implementation", "[grpo][dpo][golden][op]") {
    const std::vector<Case> cases = read_cases("data/grpo/grpo_cases.txt");
    const TensorMap all = read_safetensors("data/grpo/grpo_golden.safetensors");
    int n_grpo = 0, n_dpo = 0, n_logits = 0, n_values = 0;
    std::set<std::string> combos;  // loss_type/scale/level/beta/eps_high/delta seen
    for (const Case& c : cases) {
        TensorMap in, expect;
        const std::string p = c.prefix + ".", pe = c.prefix + ".expect.";
        for (auto it = all.lower_bound(p); it != all.end() && it->first.compare(0, p.size(), p) == 0; ++it) {
            if (it->first.compare(0, pe.size(), pe) == 0) expect[it->first.substr(pe.size())] = it->second;
            else in[it->first.substr(p.size())] = it->second;
        }
        REQUIRE(!in.empty());
        REQUIRE(!expect.empty());
        const TensorMap out = run_op(c.op, in, c.attrs);
        for (const auto& kv : expect) {
            INFO(c.prefix << " " << c.op << " output " << kv.first);
            REQUIRE(out.count(kv.first));
            const Tensor& got = out.at(kv.first);
            CHECK(got.dtype == DType::F32);
            REQUIRE(got.shape == kv.second.shape);
            const std::vector<double> g = got.to_f64(), w = kv.second.to_f64();
            for (size_t k = 0; k < w.size(); k++) {
                INFO("element " << k << ": got " << g[k] << ", want " << w[k]);
                CHECK(close(g[k], w[k]));
                n_values++;
            }
        }
        if (c.op == "grpo_loss") {
            n_grpo++;
            n_logits += in.count("logits") ? 1 : 0;
            if (!in.count("logits"))
                combos.insert(c.attrs.str("loss_type", "") + "/" + c.attrs.str("scale_rewards", "") + "/" +
                              c.attrs.str("importance_sampling_level", "") + "/" + c.attrs.str("beta", "") + "/" +
                              c.attrs.str("epsilon_high", "none") + "/" + c.attrs.str("delta", "none"));
        } else {
            n_dpo++;
        }
    }
    CHECK(n_grpo == 324);
    CHECK(n_logits == 36);
    CHECK(combos.size() == 6 * 3 * 2 * 8);  // the full product, on logps
    CHECK(n_dpo == 12);
    CHECK(n_values > 10000);
}
