// test_model_llama.cpp — covers ref/model/model.cpp, ref/model/gqa_block.cpp, ref/core/swiglu.cpp, ref/core/sampling.cpp on the dense
// Llama layout (DeepSeek LLM):
//   - golden logits / hidden / attn from the independent float64 PyTorch forward in data/golden/
//     (GQA with 1, 2 and H KV heads, sharded and unsharded, BF16 and F32 storage, tied embeddings,
//     T from 1 to 64), to max |Δ| ≤ 1e-4;
//   - identities: cached decode == full recompute, causality, 1 thread == 2 threads (bit for bit),
//     greedy generation == the argmax chain of repeated prefills.
#include <catch2/catch.hpp>
#include <cmath>

#include "io/safetensors.h"
#include "model/generate.h"
#include "model/model.h"
#include "model_test_util.h"
#include "test_util.h"
#include "tools/init.h"

using namespace dsref;
using dsref_test::golden_tokens;
using dsref_test::max_diff_prefix;

namespace {

const char* kCases[] = {"gqa1", "gqa2", "mha", "mha_sharded", "tied", "deep"};

}  // namespace

// Tolerance 1e-4: float32 compute against float64; the golden generator measured float32 vs
// float64 differences of at most 3.2e-6 on these models (data/golden/README.md), so 1e-4 leaves 30×
// headroom while any convention error (RoPE pairing, KV-head map, scale, theta) moves logits by > 0.5.
TEST_CASE("dense forward matches the independent float64 implementation", "[golden][model]") {
    for (const char* name : kCases) {
        const std::string dir = std::string("data/golden/llama/") + name;
        INFO("case " << name);
        const TensorMap g = read_safetensors(dir + "/expected.safetensors");
        const std::vector<int32_t> tokens = golden_tokens(g);
        Model model(dir);
        const int64_t V = model.config().vocab_size, d = model.config().hidden_size;
        const std::vector<double> want = g.at("logits").to_f64();
        for (int64_t T : {1, 7, 33, 64}) {
            INFO("T = " << T);
            std::vector<int32_t> prefix(tokens.begin(), tokens.begin() + T);
            Trace trace;
            std::vector<float> logits = model.prefill(prefix, T == 64 ? &trace : nullptr);
            CHECK(max_diff_prefix(logits, want, T * V) <= 1e-4);
            if (T != 64) continue;
            for (int64_t i = 0; i < model.config().num_hidden_layers; i++) {
                for (const char* k : {"hidden.", "attn."}) {
                    const std::string n = std::string(k) + std::to_string(i);
                    INFO(n);
                    REQUIRE(trace.tensors().count(n));
                    CHECK(max_diff_prefix(trace.tensors().at(n).to_f32(), g.at(n).to_f64(), T * d) <= 1e-4);
                }
            }
        }
    }
}

TEST_CASE("sharded and unsharded copies of one model give identical logits", "[model][io]") {
    const TensorMap g = read_safetensors("data/golden/llama/mha/expected.safetensors");
    const std::vector<int32_t> tokens = golden_tokens(g);
    Model a("data/golden/llama/mha"), b("data/golden/llama/mha_sharded");
    CHECK(a.prefill(tokens) == b.prefill(tokens));
}

namespace {
// A small random model written by `init` (dsref's own writer), for the identity tests.
struct RandomModel {
    dsref_test::TempDir dir;
    explicit RandomModel(int64_t n_kv, DType dt = DType::F32) {
        nlohmann::json j = {{"architectures", {"LlamaForCausalLM"}}, {"model_type", "llama"}, {"hidden_size", 48},
                            {"intermediate_size", 80}, {"num_hidden_layers", 3}, {"num_attention_heads", 6},
                            {"num_key_value_heads", n_kv}, {"vocab_size", 91}, {"rms_norm_eps", 1e-6},
                            {"rope_theta", 10000.0}, {"rope_scaling", nullptr}, {"eos_token_id", 1}};
        init_checkpoint(parse_config(j, "test config"), InitOptions{5, dt, 1}, dir.path);
    }
};
}  // namespace

TEST_CASE("cached decode, token by token, equals a full recompute", "[model][cache]") {
    for (int64_t n_kv : {1, 2, 6}) {
        RandomModel rm(n_kv);
        Model m(rm.dir.path);
        const std::vector<int32_t> tokens = {3, 17, 42, 5, 88, 0, 90, 12, 33, 7, 7, 61};
        const int64_t T = tokens.size(), V = m.config().vocab_size;
        std::vector<float> full = m.prefill(tokens);
        KVCache cache;
        const std::vector<float> got = dsref_test::prefill_then_decode(m, tokens, 5, cache);  // prefill 5, then 1 by 1
        REQUIRE(got.size() == (size_t)(T * V));
        // Same math, different GEMM tile shapes (1 row vs T rows): float rounding only.
        CHECK(dsref_test::max_abs_diff(got, full) < 1e-5);
        CHECK(cache.len == T);
    }
}

TEST_CASE("causality: changing token t leaves the logits of rows < t unchanged", "[model]") {
    RandomModel rm(2);
    Model m(rm.dir.path);
    std::vector<int32_t> a = {3, 17, 42, 5, 88, 0, 90, 12}, b = a;
    b[5] = 44;
    const int64_t V = m.config().vocab_size;
    std::vector<float> la = m.prefill(a), lb = m.prefill(b);
    for (int64_t i = 0; i < 5 * V; i++) REQUIRE(la[i] == lb[i]);
    double later = 0;
    for (int64_t i = 5 * V; i < 8 * V; i++) later = std::max(later, (double)std::fabs(la[i] - lb[i]));
    CHECK(later > 1e-3);
}

TEST_CASE("the forward pass is bit-identical at 1 and 2 threads", "[model][threads]") {
    RandomModel rm(2, DType::BF16);
    Model m(rm.dir.path);
    std::vector<int32_t> tokens;
    for (int i = 0; i < 70; i++) tokens.push_back((i * 37) % 91);
    std::vector<float> l1, l2;
    {
        dsref_test::ThreadScope s(1);
        l1 = m.prefill(tokens);
    }
    {
        dsref_test::ThreadScope s(2);
        l2 = m.prefill(tokens);
    }
    CHECK(l1 == l2);
}

TEST_CASE("greedy generate follows the argmax chain of repeated prefills", "[model][generate]") {
    RandomModel rm(3);
    ModelOptions o;
    o.keep_weights = true;
    Model m(rm.dir.path, o);
    const std::vector<int32_t> prompt = {5, 9, 2};
    const int64_t N = 10, V = m.config().vocab_size;
    GenerateResult r = generate(m, prompt, N, SamplingParams{}, false);
    REQUIRE(r.tokens.size() == (size_t)N);
    std::vector<int32_t> seq = prompt;
    for (int64_t n = 0; n < N; n++) {
        std::vector<float> last = m.prefill(seq, nullptr, true);
        CHECK(argmax_lowest(last.data(), V) == r.tokens[n]);
        // the logits that chose token n equal the last row of the full prefill (cache vs recompute)
        std::vector<float> chosen(r.logits.begin() + n * V, r.logits.begin() + (n + 1) * V);
        CHECK(dsref_test::max_abs_diff(chosen, last) < 1e-5);
        seq.push_back(r.tokens[n]);
    }
}

TEST_CASE("sampling: greedy ties go to the lowest id, seeds reproduce, top-p truncates", "[sampling]") {
    const float tie[4] = {1, 3, 3, 2};
    CHECK(argmax_lowest(tie, 4) == 1);
    const float lg[4] = {2.0f, 1.0f, 0.5f, -3.0f};
    std::vector<int32_t> a, b;
    Sampler s1({1.0, 1.0, 7}), s2({1.0, 1.0, 7});
    for (int i = 0; i < 50; i++) a.push_back(s1.sample(lg, 4)), b.push_back(s2.sample(lg, 4));
    CHECK(a == b);
    // p = softmax(lg) ≈ [0.61, 0.22, 0.14, 0.003]; top_p = 0.5 keeps only token 0.
    Sampler s3({1.0, 0.5, 1});
    for (int i = 0; i < 20; i++) CHECK(s3.sample(lg, 4) == 0);
    // top_p = 0.7 keeps tokens 0 and 1; over many draws both appear and never 2 or 3.
    Sampler s4({1.0, 0.7, 3});
    int seen[4] = {0, 0, 0, 0};
    for (int i = 0; i < 400; i++) seen[s4.sample(lg, 4)]++;
    CHECK(seen[0] > 0);
    CHECK(seen[1] > 0);
    CHECK(seen[2] + seen[3] == 0);
    // Frequencies at temperature 1 follow softmax: token 0 has p ≈ 0.61 (4σ over 4000 draws ≈ ±0.031).
    Sampler s5({1.0, 1.0, 11});
    int zeros = 0;
    for (int i = 0; i < 4000; i++) zeros += s5.sample(lg, 4) == 0;
    const double p0 = std::exp(2.0) / (std::exp(2.0) + std::exp(1.0) + std::exp(0.5) + std::exp(-3.0));
    CHECK(std::fabs(zeros / 4000.0 - p0) < 0.031);
}

TEST_CASE("a checkpoint missing a tensor or with a wrong shape is refused before compute", "[model][errors]") {
    RandomModel rm(2);
    TensorMap w = read_safetensors(rm.dir.file("model.safetensors"));
    w.erase("model.layers.1.mlp.up_proj.weight");
    write_safetensors(rm.dir.file("model.safetensors"), w);
    CHECK_THROWS_WITH(Model(rm.dir.path), Catch::Contains("missing tensor 'model.layers.1.mlp.up_proj.weight'"));
    w["model.layers.1.mlp.up_proj.weight"] = Tensor::zeros(DType::F32, {80, 47});
    write_safetensors(rm.dir.file("model.safetensors"), w);
    CHECK_THROWS_WITH(Model(rm.dir.path), Catch::Contains("'model.layers.1.mlp.up_proj.weight' has shape [80, 47], expected [80, 48]"));
    w["model.layers.1.mlp.up_proj.weight"] = Tensor::zeros(DType::F32, {80, 48});
    write_safetensors(rm.dir.file("model.safetensors"), w);
    Model m(rm.dir.path);
    CHECK_THROWS_WITH(m.prefill({1, 91}), Catch::Contains("token id 91 is outside the vocabulary [0, 91)"));
}

// ForwardOptions::hold_bf16 (generate --hold-bf16, model/held_weight.h). The weights' values are the same
// (bf16 → float32 is exact) and core/linear_bf16.h sums every output in linear_forward's order, so the
// whole generation is bit-identical to holding float32 weights: prefill, decode steps and tokens.
TEST_CASE("hold_bf16: the same bits as float32 weights, prefill and decode", "[model][generate]") {
    for (int64_t n_kv : {2, 6}) {
        RandomModel rm(n_kv, DType::BF16);
        ModelOptions o32, o16;
        o32.keep_weights = o16.keep_weights = true;
        o16.fwd.hold_bf16 = true;
        Model m32(rm.dir.path, o32), m16(rm.dir.path, o16);
        const std::vector<int32_t> prompt = {5, 9, 2, 40, 77};
        KVCache c32, c16;
        CHECK(m32.forward_hidden(prompt, c32) == m16.forward_hidden(prompt, c16));
        const int64_t N = 12, V = m32.config().vocab_size;
        const GenerateResult r32 = generate(m32, prompt, N, SamplingParams{}, false);
        const GenerateResult r16 = generate(m16, prompt, N, SamplingParams{}, false);
        CHECK(r16.tokens == r32.tokens);
        REQUIRE(r16.logits.size() == (size_t)(N * V));
        CHECK(r16.logits == r32.logits);
    }
}

TEST_CASE("hold_bf16 is refused where it does not apply, naming why", "[model][errors]") {
    ModelOptions o;
    o.keep_weights = true;
    o.fwd.hold_bf16 = true;
    RandomModel f32(2, DType::F32);
    CHECK_THROWS_WITH(Model(f32.dir.path, o), Catch::Contains("model.layers.0.self_attn.q_proj.weight") &&
                                                   Catch::Contains("is stored F32"));
    RandomModel b16(2, DType::BF16);
    ModelOptions no_keep = o;
    no_keep.keep_weights = false;
    CHECK_THROWS_WITH(Model(b16.dir.path, no_keep), Catch::Contains("for generation"));
    // the committed demo model (data/demo_v3/model): MLA and MoE, refused before any weight is read
    CHECK_THROWS_WITH(Model("data/demo_v3/model", o), Catch::Contains("deepseek_v3 has MLA attention"));
}
