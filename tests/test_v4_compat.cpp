// test_v4_compat.cpp — covers `--compat hf` of the DeepSeek-V4 forward (ref/model/v4_model.h V4Compat::Hf,
// ref/io/config_v4.h): transformers' DeepseekV4ForCausalLM (modeling_deepseek_v4.py) where it differs from the
// official DeepSeek-V4 inference/model.py. The golden is transformers' own float64 run,
// data/golden/make_deepseek_v4_hf_compat.py → data/golden/deepseek_v4_hf_compat/ (a tiny model as transformers
// saves it, its nested rope_parameters.compress yarn WITHOUT attention_factor, so that transformers scales the
// compressed layers' cos/sin by 0.1·ln(16) + 1 = 1.277).
#include <catch2/catch.hpp>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/safetensors.h"
#include "model/v4_model.h"
#include "moe/moe_gate.h"
#include "test_util.h"

using namespace dsref;
using dsref_test::as_i32;
using dsref_test::TempDir;

static const char* kDir = "data/golden/deepseek_v4_hf_compat";

static bool same_argmax(const std::vector<float>& a, const std::vector<double>& b, int64_t V) {
    for (size_t r = 0; r * V < a.size(); ++r) {
        const auto ia = std::max_element(a.begin() + r * V, a.begin() + (r + 1) * V) - (a.begin() + r * V);
        const auto ib = std::max_element(b.begin() + r * V, b.begin() + (r + 1) * V) - (b.begin() + r * V);
        if (ia != ib) return false;
    }
    return true;
}

static std::string read_all(const std::string& p) {
    std::ifstream f(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

// The golden checkpoint with an edited config.json, in t.
static void copy_with_config(const TempDir& t, const std::function<void(nlohmann::json&)>& edit) {
    nlohmann::json c = nlohmann::json::parse(read_all(std::string(kDir) + "/config.json"));
    edit(c);
    dsref_test::write_text(t.file("config.json"), c.dump(2));
    dsref_test::write_text(t.file("model.safetensors"), read_all(std::string(kDir) + "/model.safetensors"));
}

static std::vector<float> prefill(V4Model& m, const std::vector<int32_t>& tokens) {
    V4Cache c;
    return m.forward(tokens, c);
}

TEST_CASE("v4 --compat hf: prefill and cached decode equal transformers' float64 logits", "[v4][compat][golden]") {
    const TensorMap g = read_safetensors(std::string(kDir) + "/expected.safetensors");
    const std::vector<int32_t> tokens = as_i32(g.at("tokens"));
    const int64_t P = g.at("dims").to_i64()[1];
    V4Model m(kDir, V4Compat::Hf);
    const int64_t V = m.config().vocab_size;
    CHECK(m.config().compress_rope_scale == Approx(0.1 * std::log(16.0) + 1).epsilon(1e-15));
    const std::vector<float> logits = prefill(m, tokens);
    // float32 (dsref) against float64 (transformers, which itself rounds to float32 in every RMSNorm, the mHC
    // mixes, the compressor softmax and cos/sin), 3 blocks, O(1) logits: 8.1e-6 measured. 1e-4 is the issue's
    // target; leaving out the 1.277 scaling moves the logits by 3.2 (below), a wrong formula by 1e-2 and more.
    CHECK(dsref_test::max_abs_diff(logits, g.at("logits").to_f64()) < 1e-4);
    CHECK(same_argmax(logits, g.at("logits").to_f64(), V));
    // transformers' cache: a prefill of P tokens, then one token per call (across the window 6, CSA 4, HCA 8)
    V4Cache cache;
    std::vector<float> dec = m.forward(std::vector<int32_t>(tokens.begin(), tokens.begin() + P), cache);
    for (size_t s = (size_t)P; s < tokens.size(); ++s) {
        const std::vector<float> l = m.forward({tokens[s]}, cache);
        dec.insert(dec.end(), l.begin(), l.end());
    }
    CHECK(dsref_test::max_abs_diff(dec, g.at("decode_logits").to_f64()) < 1e-4);  // 5.8e-6 measured
    // bit-identical at any thread count
    const int nt = omp_get_max_threads();
    omp_set_num_threads(1);
    V4Model m1(kDir, V4Compat::Hf);
    const std::vector<float> one = prefill(m1, tokens);
    omp_set_num_threads(nt);
    CHECK(one == logits);
}

TEST_CASE("v4 --compat hf: without it the config is refused, naming the field and --compat hf", "[v4][compat]") {
    CHECK_THROWS_WITH(V4Model(kDir), Catch::Contains("rope_parameters.compress.attention_factor") &&
                                         Catch::Contains("--compat hf"));
}

TEST_CASE("v4 --compat hf: the attention_factor scaling is what makes the difference", "[v4][compat][golden]") {
    const TensorMap g = read_safetensors(std::string(kDir) + "/expected.safetensors");
    const std::vector<int32_t> tokens = as_i32(g.at("tokens"));
    // the same weights with attention_factor 1.0 written: the official mode accepts it and does not scale
    TempDir t;
    copy_with_config(t, [](nlohmann::json& c) { c["rope_parameters"]["compress"]["attention_factor"] = 1.0; });
    V4Model off(t.path);
    CHECK(off.config().compress_rope_scale == 1.0);
    const std::vector<float> l = prefill(off, tokens);
    CHECK(dsref_test::max_abs_diff(l, g.at("logits").to_f64()) > 1.0);       // 3.2: transformers' 1.277 left out
    CHECK(dsref_test::max_abs_diff(l, g.at("logits_af1").to_f64()) < 1e-4);  // = transformers on that config (3.4e-6 measured)
    V4Model hf(t.path, V4Compat::Hf);
    CHECK(dsref_test::max_abs_diff(prefill(hf, tokens), g.at("logits_af1").to_f64()) < 1e-4);  // 3.8e-6 measured
}

TEST_CASE("v4 --compat hf: swiglu_limit 0 clamps every expert to 0, as transformers does", "[v4][compat][golden]") {
    const TensorMap g = read_safetensors(std::string(kDir) + "/expected.safetensors");
    const std::vector<int32_t> tokens = as_i32(g.at("tokens"));
    TempDir t;
    copy_with_config(t, [](nlohmann::json& c) { c["swiglu_limit"] = 0.0; });
    V4Model hf(t.path, V4Compat::Hf);
    CHECK(dsref_test::max_abs_diff(prefill(hf, tokens), g.at("logits_limit0").to_f64()) < 1e-4);  // 1.3e-6 measured
    // the golden pins something: the experts' 0 moves transformers' logits by 4.5
    CHECK(dsref_test::max_abs_diff(prefill(hf, tokens), g.at("logits").to_f64()) > 1.0);
    // the official Expert does not clamp at swiglu_limit 0 (on the attention_factor 1.0 config, which it reads)
    TempDir t2;
    copy_with_config(t2, [](nlohmann::json& c) {
        c["swiglu_limit"] = 0.0;
        c["rope_parameters"]["compress"]["attention_factor"] = 1.0;
    });
    V4Model off(t2.path), hf2(t2.path, V4Compat::Hf);
    const std::vector<float> a = prefill(off, tokens), b = prefill(hf2, tokens);
    double d = 0;
    for (size_t i = 0; i < a.size(); ++i) d = std::max(d, (double)std::fabs(a[i] - b[i]));
    CHECK(d > 1.0);
}

TEST_CASE("v4 --compat hf on the golden model: transformers' logits; the official mode as before", "[v4][compat][golden]") {
    // data/golden/deepseek_v4_hf: the official golden model as transformers saves it (attention_factor 1.0 given);
    // golden_logits: transformers (float64) on it at the golden tokens; the official float64 golden beside it.
    const TensorMap g = read_safetensors(std::string(kDir) + "/expected.safetensors");
    const TensorMap o = read_safetensors("data/golden/deepseek_v4/model.safetensors");
    const std::vector<int32_t> tokens = as_i32(o.at("tokens"));
    V4Model hf("data/golden/deepseek_v4_hf", V4Compat::Hf), off("data/golden/deepseek_v4_model");
    const std::vector<float> lh = prefill(hf, tokens), lo = prefill(off, tokens);
    CHECK(dsref_test::max_abs_diff(lh, g.at("golden_logits").to_f64()) < 1e-4);  // 8.3e-6 measured
    CHECK(dsref_test::max_abs_diff(lo, o.at("logits").to_f64()) < 1e-4);         // 1.15e-5 measured
    CHECK(same_argmax(lh, g.at("golden_logits").to_f64(), hf.config().vocab_size));
    // here the two modes differ only where the expert weight is applied and by the 1e-20: rounding, not zero
    double d = 0;
    for (size_t i = 0; i < lh.size(); ++i) d = std::max(d, (double)std::fabs(lh[i] - lo[i]));
    CHECK(d > 0);
    CHECK(d < 1e-5);  // 5.9e-6 measured
    // transformers has no MTP block
    std::vector<float> h;
    V4Cache c;
    hf.forward({1, 2, 3}, c, nullptr, &h);
    CHECK_THROWS_WITH(hf.mtp_forward(h, {1, 2, 3}), Catch::Contains("--compat hf") && Catch::Contains("MTP"));
}

TEST_CASE("v4 routing: transformers' + 1e-20 in the denominator (norm_eps)", "[v4][compat][moe]") {
    MoeGateConfig g;
    g.E = 3, g.K = 2, g.scoring = MoeScoring::SqrtSoftplus, g.topk_method = MoeTopk::NoauxTc;
    g.norm_topk_prob = true, g.routed_scaling_factor = 1.0;
    // sqrt(softplus(-69)) ≈ 1e-15: the sum 2e-15 + 1e-20 moves each weight by 5e-6, far above float32's ulp
    const std::vector<float> z = {-69.0f, -69.0f, -80.0f};
    const MoeRouting off = moe_route(z.data(), nullptr, 1, g);
    CHECK(off.topk_weight[0] == 0.5f);
    g.norm_eps = 1e-20;
    const MoeRouting hf = moe_route(z.data(), nullptr, 1, g);
    const double s = off.scores[0];
    CHECK(hf.topk_weight[0] == (float)(s / (2 * s + 1e-20)));
    CHECK(std::fabs(hf.topk_weight[0] - 0.5) > 1e-6);
    // sigmoid scores that underflow to 0: the official division is refused, transformers' gives 0
    g.scoring = MoeScoring::Sigmoid;
    const std::vector<float> u = {-200.0f, -200.0f, -300.0f};
    g.norm_eps = 0;
    CHECK_THROWS_WITH(moe_route(u.data(), nullptr, 1, g), Catch::Contains("sum to 0"));
    g.norm_eps = 1e-20;
    const MoeRouting z0 = moe_route(u.data(), nullptr, 1, g);
    CHECK(z0.topk_weight[0] == 0.0f);
    // the hash router too
    const std::vector<int32_t> tab = {0, 1};
    const int64_t id = 0;
    g.scoring = MoeScoring::SqrtSoftplus;
    const MoeRouting hh = moe_route_hash(z.data(), tab.data(), 1, &id, 1, g, "tid2eid");
    CHECK(hh.topk_weight[0] == hf.topk_weight[0]);
}

TEST_CASE("v4 cli: --compat on forward, generate and info; its refusals", "[v4][compat][cli]") {
    using dsref_test::run_dsref;
    TempDir t;
    std::string out;
    const TensorMap g = read_safetensors(std::string(kDir) + "/expected.safetensors");
    const std::vector<int32_t> tokens = as_i32(g.at("tokens"));
    std::string ids;
    for (size_t i = 0; i < tokens.size(); ++i) ids += (i ? "," : "") + std::to_string(tokens[i]);
    REQUIRE(run_dsref(std::string("forward --model ") + kDir + " --compat hf --tokens " + ids + " --out " +
                          t.file("o.safetensors"), &out) == 0);
    V4Model m(kDir, V4Compat::Hf);
    CHECK(read_safetensors(t.file("o.safetensors")).at("logits").to_f32() == prefill(m, tokens));  // the library
    CHECK(run_dsref(std::string("forward --model ") + kDir + " --tokens 1,2 --out " + t.file("x"), &out) == 1);
    CHECK_THAT(out, Catch::Contains("attention_factor") && Catch::Contains("--compat hf"));
    CHECK(run_dsref(std::string("forward --model ") + kDir + " --compat transformers --tokens 1 --out " + t.file("x"), &out) == 2);
    CHECK_THAT(out, Catch::Contains("official or hf"));
    CHECK(run_dsref(std::string("forward --model ") + kDir + " --compat hf --mtp --tokens 1,2 --out " + t.file("x"), &out) == 2);
    CHECK_THAT(out, Catch::Contains("MTP"));
    CHECK(run_dsref("forward --model data/golden/deepseek/v3 --compat hf --tokens 1 --out " + t.file("x"), &out) == 2);
    CHECK_THAT(out, Catch::Contains("only deepseek_v4"));
    CHECK(run_dsref(std::string("forward --model data/golden/deepseek_v4_model --compat official --tokens 1,2 --out ") +
                        t.file("x"), &out) == 0);
    CHECK(run_dsref(std::string("generate --model ") + kDir + " --compat hf --tokens 3,1,4 --max-new 3", &out) == 0);
    CHECK(run_dsref(std::string("generate --model ") + kDir + " --tokens 3,1,4 --max-new 3", &out) == 1);
    CHECK(run_dsref(std::string("info --model ") + kDir + " --compat hf", &out) == 0);
    CHECK(run_dsref(std::string("forward --help"), &out) == 0);
    CHECK_THAT(out, Catch::Contains("--compat hf") && Catch::Contains("1e-20"));
}
