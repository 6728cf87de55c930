// walkthrough/11_precision — what bf16 does to a forward pass, and how dsref reproduces it.
//
// What this program shows (run: make walkthrough, from the repository root):
//   1. bf16 keeps 8 significant bits: the rounding step near 1 and near 4, and a residual add that vanishes;
//   2. one RMSNorm, two references: transformers rounds before the weight multiply, the official code
//      after it — how many elements of a row come out different;
//   3. whole models written by transformers 5 (data/golden/hf/): dsref in float32, in --emulate hf-bf16
//      and (V3) --emulate official-bf16, each against transformers' own bf16 and float32 forwards:
//      argmax agreement, routing agreement, mean and max |Δlogits|;
//   4. where float32 and bf16 part inside the model: mean |Δ hidden.i| per layer, and the tokens whose
//      experts change.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/safetensors.h"
#include "model/model.h"
#include "model/precision.h"

using namespace dsref;

namespace {

std::vector<int32_t> tokens_of(const TensorMap& g) {
    std::vector<int32_t> t;
    for (int64_t v : g.at("tokens").to_i64()) t.push_back((int32_t)v);
    return t;
}

struct Run {
    std::vector<float> logits;
    TensorMap dump;
};

Run run(const std::string& dir, Emulation e, const std::vector<int32_t>& tokens) {
    ModelOptions o;
    o.fwd.precision.mode = e;
    Model m(dir, o);
    Trace trace;
    Run r;
    r.logits = m.prefill(tokens, &trace);
    r.dump = trace.tensors();
    return r;
}

struct Stats {
    double argmax = 0, routing = -1, mean = 0, max = 0;
};

Stats compare(const Run& r, const TensorMap& g, int64_t V, int64_t K) {
    const std::vector<double> want = g.at("logits").to_f64();
    const int64_t T = (int64_t)want.size() / V;
    Stats s;
    for (int64_t t = 0; t < T; t++) {
        const float* a = &r.logits[t * V];
        const double* b = &want[t * V];
        s.argmax += (std::max_element(a, a + V) - a) == (std::max_element(b, b + V) - b);
        for (int64_t v = 0; v < V; v++) {
            const double d = std::fabs(a[v] - b[v]);
            s.mean += d;
            s.max = std::max(s.max, d);
        }
    }
    s.argmax /= (double)T;
    s.mean /= (double)(T * V);
    int64_t same = 0, pairs = 0;
    for (const auto& kv : g) {
        if (kv.first.rfind("topk_idx.", 0) != 0) continue;
        std::vector<int64_t> x = r.dump.at(kv.first).to_i64();
        const std::vector<int64_t> y = kv.second.to_i64();
        for (int64_t t = 0; t < T; t++) {
            std::sort(x.begin() + t * K, x.begin() + (t + 1) * K);
            same += std::equal(x.begin() + t * K, x.begin() + (t + 1) * K, y.begin() + t * K);
            pairs++;
        }
    }
    if (pairs) s.routing = (double)same / pairs;
    return s;
}

void print_row(const char* what, const Stats& s) {
    char routing[16] = "  -  ";
    if (s.routing >= 0) std::snprintf(routing, sizeof routing, "%5.1f %%", 100 * s.routing);
    std::printf("  %-42s argmax %5.1f %%  routing %s  mean |Δ| %.1e  max |Δ| %.1e\n", what, 100 * s.argmax, routing,
                s.mean, s.max);
}

}  // namespace

int main() {
    std::printf("== 1. bf16: 8 significant bits ==\n");
    for (float x : {1.0f + 1.0f / 256, 1.0f + 3.0f / 256, 3.3f, 3.3f + 0.01f})
        std::printf("  bf16(%.7f) = %.7f\n", x, bf16_round(x));
    std::printf("  the step near 1 is 2^-7 = %.5f, near 4 it is 2^-5 = %.5f: a logit of size ~3 moves in steps of %.4f\n",
                1.0 / 128, 1.0 / 32, 1.0 / 64);
    std::printf("  a residual add h + y with h = 3, y = 0.005: float32 %.6f, bf16 %.6f (the update is lost)\n\n",
                3.0f + 0.005f, bf16_round(3.0f + 0.005f));

    std::printf("== 2. One RMSNorm row, two references ==\n");
    {
        const int64_t d = 4096;
        std::mt19937 g(3);
        std::normal_distribution<float> n;
        std::vector<float> x(d), w(d), y_hf(d), y_off(d);
        for (int64_t i = 0; i < d; i++) x[i] = bf16_round(n(g)), w[i] = bf16_round(1.0f + 0.1f * n(g));
        PrecisionPolicy hf, off;
        hf.mode = Emulation::HfBf16;
        off.mode = Emulation::OfficialBf16;
        hf.rmsnorm(y_hf.data(), x.data(), w.data(), 1, d, 1e-6f);
        off.rmsnorm(y_off.data(), x.data(), w.data(), 1, d, 1e-6f);
        int64_t differ = 0;
        for (int64_t i = 0; i < d; i++) differ += y_hf[i] != y_off[i];
        std::printf("  d = %lld: transformers (round x·rsqrt, then round w·x) and the official F.rms_norm (round once)\n"
                    "  give different bf16 values for %lld of %lld elements (%.1f %%), each by one bf16 step\n\n",
                    (long long)d, (long long)differ, (long long)d, 100.0 * differ / d);
    }

    std::printf("== 3. Whole models written by transformers 5, T = 96 (data/golden/hf/) ==\n");
    for (const char* name : {"v3_yarn", "v3_flat", "llama_theta", "qwen2_tied"}) {
        const std::string dir = std::string("data/golden/hf/") + name;
        const TensorMap g16 = read_safetensors(dir + "/expected_bf16.safetensors");
        const TensorMap g32 = read_safetensors(dir + "/expected_f32.safetensors");
        const std::vector<int32_t> tokens = tokens_of(g16);
        const ModelConfig c = load_config(dir);
        const int64_t V = c.vocab_size, K = c.num_experts_per_tok;
        std::printf("%s (%s):\n", name, arch_name(c.arch));
        const Run f32 = run(dir, Emulation::None, tokens), emu = run(dir, Emulation::HfBf16, tokens);
        print_row("transformers fp32 vs transformers bf16", [&] {
            Run r;
            for (double v : g32.at("logits").to_f64()) r.logits.push_back((float)v);
            r.dump = g32;
            return compare(r, g16, V, K);
        }());
        print_row("dsref float32 vs transformers fp32", compare(f32, g32, V, K));
        print_row("dsref float32 vs transformers bf16", compare(f32, g16, V, K));
        print_row("dsref hf-bf16 vs transformers bf16", compare(emu, g16, V, K));
        if (c.arch == Arch::DeepseekV3)
            print_row("dsref official-bf16 vs transformers bf16", compare(run(dir, Emulation::OfficialBf16, tokens), g16, V, K));
        if (std::string(name) == "v3_flat") {
            std::printf("  where they part, mean |Δ hidden.i| against transformers bf16 (float32 / hf-bf16):");
            for (int64_t i = 0; i < c.num_hidden_layers; i++) {
                const std::string h = "hidden." + std::to_string(i);
                const std::vector<double> want = g16.at(h).to_f64();
                double a = 0, b = 0;
                const std::vector<float> x = f32.dump.at(h).to_f32(), y = emu.dump.at(h).to_f32();
                for (size_t j = 0; j < want.size(); j++) a += std::fabs(x[j] - want[j]), b += std::fabs(y[j] - want[j]);
                std::printf(" layer %lld %.1e / %.1e;", (long long)i, a / want.size(), b / want.size());
            }
            std::printf("\n  tokens whose experts differ between dsref float32 and transformers bf16:\n");
            for (int64_t i = c.first_k_dense_replace; i < c.num_hidden_layers; i++) {
                const std::string n = "topk_idx." + std::to_string(i);
                std::vector<int64_t> x = f32.dump.at(n).to_i64();
                const std::vector<int64_t> y = g16.at(n).to_i64();
                for (size_t t = 0; t * K < x.size(); t++) {
                    std::sort(x.begin() + t * K, x.begin() + (t + 1) * K);
                    if (std::equal(x.begin() + t * K, x.begin() + (t + 1) * K, y.begin() + t * K)) continue;
                    std::printf("    layer %lld token %2zu: float32 {", (long long)i, t);
                    for (int64_t k = 0; k < K; k++) std::printf("%s%lld", k ? ", " : "", (long long)x[t * K + k]);
                    std::printf("}  bf16 {");
                    for (int64_t k = 0; k < K; k++) std::printf("%s%lld", k ? ", " : "", (long long)y[t * K + k]);
                    std::printf("}\n");
                }
            }
        }
    }
    return 0;
}
