// test_model_deepseek.cpp — covers ref/model/model.cpp with ref/model/mla.cpp on dense-MLP DeepSeek-V2/V3 checkpoints,
// ref/tools/model_info.cpp for MLA configs, and the MLA parts of `dsref forward` / `dsref info`:
//   - golden logits and every intermediate from the independent float64 forward in data/golden/deepseek
//     (V3-, V2-, V2-Lite-shaped and plain-RoPE cases, F32 and BF16 storage, YaRN with short original
//     lengths, T from 1 to 96), on both --attn paths, to max |Δ| ≤ 1e-4;
//   - cached decode == full prefill, greedy generation == the argmax chain of repeated prefills (both paths);
//   - refused configs: kv_b_proj rows ≠ H·(d_n+d_v), odd qk_rope_head_dim, malformed rope_scaling,
//     a bad --attn (MoE models: tests/test_model_moe.cpp).
#include <catch2/catch.hpp>
#include <cmath>

#include "core/error.h"
#include "io/safetensors.h"
#include "model/generate.h"
#include "model/model.h"
#include "model_test_util.h"
#include "test_util.h"
#include "tools/init.h"
#include "tools/model_info.h"

using namespace dsref;
using dsref_test::golden_tokens;
using dsref_test::max_diff_prefix;
using json = nlohmann::json;

namespace {

ModelOptions with_attn(const std::string& path, bool keep = false) {
    ModelOptions o;
    o.fwd.attn = mla_path_from_name(path);
    o.keep_weights = keep;
    return o;
}

const char* kCases[] = {"v3", "v2", "v2_lite", "plain"};

}  // namespace

// Tolerance 1e-4: float32 compute against float64. The golden generator measured float32 vs
// float64 differences ≤ 2.6e-6 on these models (data/golden/README.md), so 1e-4 leaves ≥ 30× headroom,
// while every convention error tried there (half-split RoPE, no YaRN, no or unsquared mscale, d_n^-1/2,
// YaRN range from max_position_embeddings) moves the logits by ≥ 0.18.
TEST_CASE("DeepSeek V2/V3 forward matches the independent float64 implementation on both MLA paths",
          "[golden][model][mla]") {
    for (const char* name : kCases) {
        const std::string dir = std::string("data/golden/deepseek/") + name;
        const TensorMap g = read_safetensors(dir + "/expected.safetensors");
        const std::vector<int32_t> tokens = golden_tokens(g);
        const std::vector<double> want = g.at("logits").to_f64();
        for (const char* path : {"naive", "absorb"}) {
            Model model(dir, with_attn(path));
            const ModelConfig& c = model.config();
            const int64_t V = c.vocab_size, T_all = tokens.size();
            for (int64_t T : {(int64_t)1, (int64_t)2, (int64_t)49, T_all}) {  // rows [0, T) of the T = 96 file
                INFO("case " << name << ", --attn " << path << ", T = " << T);
                Trace trace;
                const std::vector<float> logits =
                    model.prefill(std::vector<int32_t>(tokens.begin(), tokens.begin() + T), T == T_all ? &trace : nullptr);
                CHECK(max_diff_prefix(logits, want, T * V) <= 1e-4);
                if (T != T_all) continue;
                for (int64_t i = 0; i < c.num_hidden_layers; i++) {
                    for (const char* k : {"hidden", "attn", "q_nope", "q_pe", "kv_latent", "k_pe"}) {
                        const std::string n = std::string(k) + "." + std::to_string(i);
                        INFO(n);
                        REQUIRE(trace.tensors().count(n));
                        const Tensor& got = trace.tensors().at(n);
                        CHECK(got.shape == g.at(n).shape);
                        CHECK(max_diff_prefix(got.to_f32(), g.at(n).to_f64(), got.numel()) <= 1e-4);
                    }
                }
            }
        }
    }
}

// 1e-5 absolute on logits of magnitude ~4: decode multiplies 1-row tiles where the prefill multiplies
// 64-row tiles (float32 rounding, measured ≤ 2e-6); the golden check ties both to the float64 values.
TEST_CASE("cached decode equals a full prefill for a DeepSeek model on both paths", "[model][mla][cache]") {
    const std::string dir = "data/golden/deepseek/v2";
    const TensorMap g = read_safetensors(dir + "/expected.safetensors");
    const std::vector<int32_t> tokens = golden_tokens(g);
    for (const char* path : {"naive", "absorb"}) {
        INFO("--attn " << path);
        Model m(dir, with_attn(path, true));
        const int64_t V = m.config().vocab_size, T = 72;
        const std::vector<int32_t> seq(tokens.begin(), tokens.begin() + T);
        const std::vector<float> full = m.prefill(seq);
        KVCache cache;
        const std::vector<float> got = dsref_test::prefill_then_decode(m, seq, 50, cache);
        CHECK(dsref_test::max_abs_diff(got, full) < 1e-5);
        CHECK(max_diff_prefix(got, g.at("logits").to_f64(), T * V) <= 1e-4);
        // the cache holds what each path promises: d_c + d_r or H·(d_k + d_v) floats per token per layer
        const ModelConfig& c = m.config();
        const int64_t per_token = std::string(path) == "absorb"
                                      ? c.kv_lora_rank + c.qk_rope_head_dim
                                      : c.num_attention_heads * (c.qk_head_dim() + c.v_head_dim);
        CHECK(cache.bytes() == (size_t)(T * per_token * c.num_hidden_layers * 4));
        CHECK(per_token == (std::string(path) == "absorb" ? 32 + 16 : 4 * (16 + 16 + 24)));
    }
}

TEST_CASE("greedy generate with the latent cache follows the argmax chain of repeated prefills", "[model][mla][generate]") {
    std::vector<int32_t> tokens_absorb;
    for (const char* path : {"absorb", "naive"}) {
        INFO("--attn " << path);
        Model m("data/golden/deepseek/v3", with_attn(path, true));
        const std::vector<int32_t> prompt = {5, 9, 2, 77};
        const int64_t N = 12, V = m.config().vocab_size;
        const GenerateResult r = generate(m, prompt, N, SamplingParams{}, false);
        REQUIRE(r.tokens.size() == (size_t)N);
        std::vector<int32_t> seq = prompt;
        for (int64_t n = 0; n < N; n++) {
            const std::vector<float> last = m.prefill(seq, nullptr, true);
            CHECK(argmax_lowest(last.data(), V) == r.tokens[n]);
            const std::vector<float> chosen(r.logits.begin() + n * V, r.logits.begin() + (n + 1) * V);
            CHECK(dsref_test::max_abs_diff(chosen, last) < 1e-5);  // as in the decode test above
            seq.push_back(r.tokens[n]);
        }
        if (tokens_absorb.empty()) tokens_absorb = r.tokens;
        else CHECK(r.tokens == tokens_absorb);  // both paths choose the same tokens
    }
}

TEST_CASE("the DeepSeek forward is bit-identical at 1 and 2 threads", "[model][mla][threads]") {
    const TensorMap g = read_safetensors("data/golden/deepseek/v2_lite/expected.safetensors");
    const std::vector<int32_t> tokens = golden_tokens(g);
    for (const char* path : {"naive", "absorb"}) {
        Model m("data/golden/deepseek/v2_lite", with_attn(path));
        std::vector<float> a, b;
        {
            dsref_test::ThreadScope s(1);
            a = m.prefill(tokens);
        }
        {
            dsref_test::ThreadScope s(2);
            b = m.prefill(tokens);
        }
        CHECK(a == b);
    }
}

// ---- refused configs and checkpoints --------------------------------------------------------------------

namespace {
json small_v3() {
    return {{"architectures", {"DeepseekV3ForCausalLM"}}, {"model_type", "deepseek_v3"}, {"hidden_size", 32},
            {"intermediate_size", 48}, {"num_hidden_layers", 2}, {"num_attention_heads", 2}, {"vocab_size", 50},
            {"q_lora_rank", 24}, {"kv_lora_rank", 16}, {"qk_nope_head_dim", 8}, {"qk_rope_head_dim", 4},
            {"v_head_dim", 8}, {"rms_norm_eps", 1e-6}, {"rope_theta", 10000},
            {"rope_scaling", {{"type", "yarn"}, {"factor", 4}, {"original_max_position_embeddings", 64},
                              {"mscale", 1.0}, {"mscale_all_dim", 1.0}}},
            {"first_k_dense_replace", 2}, {"eos_token_id", 1}};
}
std::string config_error(const json& j) {
    try {
        parse_config(j, "config.json");
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}
std::string model_error(const std::string& dir, const std::string& attn = "absorb") {
    try {
        Model m(dir, with_attn(attn));
    } catch (const std::exception& e) {
        return e.what();
    }
    return "";
}
}  // namespace

TEST_CASE("bad MLA configs are refused with the field named", "[model][mla][errors]") {
    json j = small_v3();
    j["qk_rope_head_dim"] = 5;
    CHECK_THAT(config_error(j), Catch::Contains("'qk_rope_head_dim' must be even, got 5"));
    j = small_v3();
    j["rope_scaling"]["type"] = "longrope";
    CHECK_THAT(config_error(j), Catch::Contains("field 'rope_scaling.type' is 'longrope', which dsref does not model"));
    for (double f : {0.0, -2.0}) {
        j = small_v3();
        j["rope_scaling"]["factor"] = f;
        CHECK_THAT(config_error(j), Catch::Contains("'rope_scaling.factor' must be > 0"));
    }
    j = small_v3();
    j["rope_scaling"].erase("factor");
    CHECK_THAT(config_error(j), Catch::Contains("missing required field 'rope_scaling.factor'"));
    j = small_v3();
    j["rope_scaling"]["original_max_position_embeddings"] = 0;
    CHECK_THAT(config_error(j), Catch::Contains("original_max_position_embeddings"));
    j = small_v3();
    j["rope_scaling"] = "yarn";
    CHECK_THAT(config_error(j), Catch::Contains("'rope_scaling' must be an object or null"));
    j = small_v3();
    j.erase("kv_lora_rank");
    CHECK_THAT(config_error(j), Catch::Contains("missing required field 'kv_lora_rank'"));
    // a plain-RoPE V3 config (rope_scaling null) is fine
    j = small_v3();
    j["rope_scaling"] = nullptr;
    CHECK(config_error(j).empty());
}

TEST_CASE("a kv_b_proj with the wrong rows and a bad --attn are refused; MoE configs load", "[model][mla][errors]") {
    dsref_test::TempDir t;
    init_checkpoint(parse_config(small_v3(), "test config"), InitOptions{3, DType::F32, 1}, t.path);
    CHECK(model_error(t.path).empty());
    // kv_b_proj must have H·(d_n + d_v) = 2·(8 + 8) = 32 rows
    TensorMap w = read_safetensors(t.file("model.safetensors"));
    w["model.layers.1.self_attn.kv_b_proj.weight"] = Tensor::zeros(DType::F32, {2 * (8 + 4), 16});
    write_safetensors(t.file("model.safetensors"), w);
    CHECK_THAT(model_error(t.path), Catch::Contains("'model.layers.1.self_attn.kv_b_proj.weight' has shape [24, 16], "
                                                    "expected [32, 16]"));
    CHECK_THAT(model_error(t.path, "flash"), Catch::Contains("--attn must be naive or absorb"));

    // MoE layers load (their numerics: tests/test_model_moe.cpp)
    json moe = small_v3();
    moe["first_k_dense_replace"] = 1;
    moe["n_routed_experts"] = 4;
    moe["num_experts_per_tok"] = 2;
    moe["moe_intermediate_size"] = 16;
    moe["n_shared_experts"] = 1;
    moe["n_group"] = 1;
    moe["topk_group"] = 1;
    moe["routed_scaling_factor"] = 1.0;
    dsref_test::TempDir t2;
    init_checkpoint(parse_config(moe, "moe config"), InitOptions{3, DType::F32, 1}, t2.path);
    CHECK(model_error(t2.path).empty());
    // experts declared but every layer dense (first_k_dense_replace = num_hidden_layers) runs
    moe["first_k_dense_replace"] = 2;
    dsref_test::TempDir t3;
    init_checkpoint(parse_config(moe, "dense config"), InitOptions{3, DType::BF16, 1}, t3.path);
    CHECK(model_error(t3.path).empty());
}

// ---- dsref info / forward on MLA models -----------------------------------------------------------------

TEST_CASE("info compares the MLA cache with MHA, GQA and MQA and prints the real V2/V3 figures", "[info][mla]") {
    json v3 = {{"model_type", "deepseek_v3"}, {"hidden_size", 7168}, {"intermediate_size", 18432},
               {"num_hidden_layers", 61}, {"num_attention_heads", 128}, {"vocab_size", 129280},
               {"q_lora_rank", 1536}, {"kv_lora_rank", 512}, {"qk_nope_head_dim", 128}, {"qk_rope_head_dim", 64},
               {"v_head_dim", 128}, {"first_k_dense_replace", 3}, {"n_routed_experts", 256},
               {"n_group", 8}, {"topk_group", 4}, {"routed_scaling_factor", 2.5},
               {"num_experts_per_tok", 8}, {"moe_intermediate_size", 2048}};  // a MoE config must name k (parse_config checks the gate)
    const json info = model_info(parse_config(v3, "v3"));
    CHECK(info["kv_cache"]["values_per_token_per_layer"] == 576);
    CHECK(info["kv_cache"]["bytes_per_token_bf16"] == 70272);  // 576 values · 2 B · 61 layers
    auto values = [&](const std::string& prefix) -> int64_t {  // the row whose mechanism starts with prefix
        for (const json& row : info["kv_cache_comparison"])
            if (row["mechanism"].get<std::string>().rfind(prefix, 0) == 0) {
                CHECK(row["bytes_bf16"] == 2 * row["values"].get<int64_t>());
                return row["values"].get<int64_t>();
            }
        return -1;
    };
    CHECK(info["kv_cache_comparison"].size() == 5);
    CHECK(values("MLA latent") == 576);                 // d_c + d_r
    CHECK(values("MLA decompressed") == 128 * (192 + 128));  // what --attn naive caches: 40960
    CHECK(values("MHA") == 2 * 128 * 128);              // the paper's 2·n_h·d_h = 32768
    CHECK(values("GQA, 8 KV heads") == 2 * 8 * 128);
    CHECK(values("MQA") == 256);
    std::string figures;
    for (const json& s : info["reference_figures"]) figures += s.get<std::string>() + "\n";
    CHECK_THAT(figures, Catch::Contains("DeepSeek-V3: MLA caches d_c + d_r = 512 + 64 = 576 values per token per "
                                        "layer against 2·128·128 = 32768 for MHA (1.76 %)"));
    CHECK_THAT(figures, Catch::Contains("61 layers: 70272 B"));
    CHECK_THAT(figures, Catch::Contains("60 layers: 69120 B"));      // V2: 34,560 values
    CHECK_THAT(figures, Catch::Contains("2·16·128 = 4096"));          // V2-Lite's MHA
    CHECK_THAT(figures, Catch::Contains("1 − 25920/389120 = 93.3 %"));  // V2's headline (V2 report §1)
    // a llama config has neither
    json llama = {{"model_type", "llama"}, {"hidden_size", 64}, {"intermediate_size", 128},
                  {"num_hidden_layers", 2}, {"num_attention_heads", 4}, {"vocab_size", 100}};
    CHECK_FALSE(model_info(parse_config(llama, "l")).contains("kv_cache_comparison"));
}

TEST_CASE("dsref forward --attn naive|absorb dumps the MLA intermediates; info and --help show MLA", "[cli][mla]") {
    using dsref_test::run_dsref;
    dsref_test::TempDir t;
    const std::string model = "data/golden/deepseek/v2";
    const TensorMap g = read_safetensors(model + "/expected.safetensors");
    std::string toks;
    for (int32_t id : golden_tokens(g)) toks += (toks.empty() ? "" : ",") + std::to_string(id);
    std::string out;
    for (const char* path : {"naive", "absorb"}) {
        INFO(path);
        const std::string file = t.file(std::string(path) + ".safetensors");
        REQUIRE(run_dsref("forward --model " + model + " --tokens " + toks + " --out " + file + " --dump --attn " + path,
                          &out) == 0);
        const TensorMap o = read_safetensors(file);
        CHECK(o.at("q_nope.1").shape == Shape{96, 4, 16});
        CHECK(o.at("q_pe.1").shape == Shape{96, 4, 16});
        CHECK(o.at("kv_latent.0").shape == Shape{96, 32});
        CHECK(o.at("k_pe.0").shape == Shape{96, 16});
        CHECK(max_diff_prefix(o.at("logits").to_f32(), g.at("logits").to_f64(), 96 * 97) <= 1e-4);
    }
    CHECK(run_dsref("forward --model " + model + " --tokens 1 --out " + t.file("x") + " --attn fast", &out) == 2);
    CHECK_THAT(out, Catch::Contains("--attn must be naive or absorb"));
    CHECK(run_dsref("forward --help", &out) == 0);
    CHECK_THAT(out, Catch::Contains("q_pe.{i}") && Catch::Contains("kv_latent.{i}") && Catch::Contains("adjacent"));
    CHECK(run_dsref("info --model " + model, &out) == 0);
    CHECK_THAT(out, Catch::Contains("MLA latent (--attn absorb): d_c + d_r = 32 + 16: 48 values"));
    CHECK_THAT(out, Catch::Contains("DeepSeek-V3: MLA caches d_c + d_r = 512 + 64 = 576"));
}
