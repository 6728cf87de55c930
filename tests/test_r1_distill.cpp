// test_r1_distill.cpp — the R1-Distill families: DeepSeek-R1-Distill-Qwen (qwen2: q/k/v biases, GQA,
// tied or untied embeddings, no sliding window) and DeepSeek-R1-Distill-Llama (llama with Llama 3 RoPE
// scaling). Covers ref/io/config.cpp (qwen2 fields), ref/core/rope.cpp (llama3), the biases of
// ref/io/checkpoint_layout.cpp and ref/model/gqa_block.cpp, and `dsref info` on the real configs.
// Their golden forwards (transformers and the independent float64 llama_ref.py): tests/test_hf_golden.cpp.
#include <catch2/catch.hpp>
#include <cmath>

#include "core/error.h"
#include "core/rope.h"
#include "io/checkpoint_layout.h"
#include "io/config.h"
#include "io/safetensors.h"
#include "model/generate.h"
#include "model/model.h"
#include "model_test_util.h"
#include "test_util.h"
#include "tools/init.h"
#include "tools/model_info.h"

using namespace dsref;
using json = nlohmann::json;

namespace {
json qwen2(bool tied = false) {
    return {{"architectures", {"Qwen2ForCausalLM"}}, {"model_type", "qwen2"}, {"hidden_size", 48},
            {"intermediate_size", 80}, {"num_hidden_layers", 3}, {"num_attention_heads", 6},
            {"num_key_value_heads", 2}, {"vocab_size", 91}, {"rms_norm_eps", 1e-6}, {"rope_theta", 1e6},
            {"tie_word_embeddings", tied}, {"use_sliding_window", false}, {"sliding_window", 4096},
            {"max_window_layers", 2}, {"use_mrope", false}, {"eos_token_id", 1}};
}
std::string error_of(const json& j) {
    try {
        parse_config(j, "cfg.json");
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}
}  // namespace

TEST_CASE("qwen2 configs load with q/k/v biases and no o_proj bias; sliding windows are refused", "[config][qwen2]") {
    const ModelConfig c = parse_config(qwen2(), "x");
    CHECK(c.arch == Arch::Qwen2);
    CHECK(c.qkv_bias);
    CHECK(c.head_dim == 8);
    const GqaTensors t = gqa_tensors(c, attn_prefix(0));
    REQUIRE(t.q_bias);
    CHECK(t.q_bias->name == "model.layers.0.self_attn.q_proj.bias");
    CHECK(t.q_bias->shape == Shape{48});
    CHECK(t.k_bias->shape == Shape{16});
    CHECK(t.v_bias->shape == Shape{16});
    for (const WeightSpec& w : checkpoint_layout(c)) CHECK(w.name.find("o_proj.bias") == std::string::npos);
    // a llama config has no biases (and attention_bias: true stays refused there)
    json l = qwen2();
    l["model_type"] = "llama";
    l["architectures"] = {"LlamaForCausalLM"};
    for (const char* k : {"use_sliding_window", "sliding_window", "max_window_layers", "use_mrope"}) l.erase(k);
    CHECK_FALSE(parse_config(l, "x").qkv_bias);

    json j = qwen2();
    j["use_sliding_window"] = true;
    CHECK_THAT(error_of(j), Catch::Contains("field 'use_sliding_window' is true; dsref does not model Qwen2's "
                                            "sliding-window attention"));
    j = qwen2();
    j["layer_types"] = {"full_attention", "sliding_attention", "full_attention"};
    CHECK_THAT(error_of(j), Catch::Contains("field 'layer_types' [1] is \"sliding_attention\""));
    j["layer_types"] = {"full_attention"};
    CHECK_THAT(error_of(j), Catch::Contains("field 'layer_types' must be a list of num_hidden_layers = 3"));
    j["layer_types"] = {"full_attention", "full_attention", "full_attention"};
    CHECK(error_of(j).empty());
    j = qwen2();
    j["use_mrope"] = true;
    CHECK_THAT(error_of(j), Catch::Contains("field 'use_mrope' is true"));
    j = qwen2();
    j["use_sliding_window"] = "no";
    CHECK_THAT(error_of(j), Catch::Contains("field 'use_sliding_window' must be true or false"));
    j = qwen2();
    j["sliding_window"] = -1;
    CHECK_THAT(error_of(j), Catch::Contains("field 'sliding_window' must be a positive integer or null"));
    j = qwen2();
    j["rope_scaling"] = {{"type", "yarn"}, {"factor", 4}, {"original_max_position_embeddings", 32768}};
    CHECK_THAT(error_of(j), Catch::Contains("rope_scaling yarn on a qwen2 config is not supported"));
}

// Llama 3 RoPE at head_dim 32, theta 500000, L0 128, factor 8, l 1, h 4: wavelengths λ_j = 2π·500000^(j/16).
// λ_0 = 6.28 and λ_1 = 14.27 are below L0/h = 32 (kept); λ_2 = 32.40 and λ_3 = 73.58 lie between 32 and
// L0/l = 128 (smoothed: a = (128/λ − 1)/3 = 0.983521 and 0.246597, so θ'/θ = (1 − a)/8 + a = 0.9855805 and
// 0.3407445); λ_4 = 167 and above are divided by 8.
TEST_CASE("Llama 3 RoPE scaling keeps, smooths and divides the three frequency bands", "[rope][llama3]") {
    RopeScaling s;
    s.type = RopeScalingType::Llama3;
    s.factor = 8;
    s.low_freq_factor = 1;
    s.high_freq_factor = 4;
    s.original_max_position_embeddings = 128;
    const std::vector<double> plain = rope_inv_freq(32, 500000, RopeScaling{}), l3 = rope_inv_freq(32, 500000, s);
    CHECK(l3[0] == plain[0]);
    CHECK(l3[1] == plain[1]);
    CHECK_PRINTED(l3[2] / plain[2], "0.9855805");
    CHECK_PRINTED(l3[3] / plain[3], "0.3407445");
    for (int j = 4; j < 16; j++) CHECK(l3[j] == Approx(plain[j] / 8).epsilon(1e-15));
    // the rope_type is read from both spellings, and every field is required
    json j = qwen2();
    j["model_type"] = "llama";
    j["architectures"] = {"LlamaForCausalLM"};
    for (const char* k : {"use_sliding_window", "sliding_window", "max_window_layers", "use_mrope"}) j.erase(k);
    j["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 1.0},
                         {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 8192}};
    const ModelConfig c = parse_config(j, "x");
    CHECK(c.rope_scaling.type == RopeScalingType::Llama3);
    CHECK(c.rope_scaling.original_max_position_embeddings == 8192);
    for (const char* k : {"factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"}) {
        json bad = j;
        bad["rope_scaling"].erase(k);
        CHECK_THAT(error_of(bad), Catch::Contains(std::string("missing required field 'rope_scaling.") + k + "'"));
    }
    json bad = j;
    bad["rope_scaling"]["high_freq_factor"] = 0.5;
    CHECK_THAT(error_of(bad), Catch::Contains("field 'rope_scaling.high_freq_factor' must be larger than low_freq_factor"));
    bad = j;
    bad["rope_scaling"]["factor"] = "eight";
    CHECK_THAT(error_of(bad), Catch::Contains("field 'rope_scaling.factor' must be a number"));
    // llama3 on MLA is not a DeepSeek model
    json v3 = {{"model_type", "deepseek_v3"}, {"hidden_size", 64}, {"intermediate_size", 128}, {"num_hidden_layers", 1},
               {"num_attention_heads", 4}, {"vocab_size", 100}, {"kv_lora_rank", 16}, {"qk_nope_head_dim", 8},
               {"qk_rope_head_dim", 4}, {"v_head_dim", 8}, {"rope_scaling", j["rope_scaling"]}};
    CHECK_THAT(error_of(v3), Catch::Contains("rope_type llama3 on a deepseek_v3 config is not supported"));
}

// The real configs (data/configs/deepseek_r1_distill_*.json): dsref's counts reproduce the sizes published
// with the checkpoints (1.78B, 7.62B, 14.8B, 32.8B; 8.03B, 70.6B).
TEST_CASE("info on the real R1-Distill configs gives their published sizes", "[info][qwen2][llama3]") {
    struct Row {
        const char* file;
        int64_t total;
        const char* arch;
    };
    const Row rows[] = {{"deepseek_r1_distill_qwen_1_5b", 1777088000, "qwen2"},
                        {"deepseek_r1_distill_qwen_7b", 7615616512, "qwen2"},
                        {"deepseek_r1_distill_qwen_14b", 14770033664, "qwen2"},
                        {"deepseek_r1_distill_qwen_32b", 32763876352, "qwen2"},
                        {"deepseek_r1_distill_llama_8b", 8030261248, "llama"},
                        {"deepseek_r1_distill_llama_70b", 70553706496, "llama"}};
    for (const Row& r : rows) {
        INFO(r.file);
        const ModelConfig c = load_config(std::string("data/configs/") + r.file + ".json");
        CHECK(std::string(arch_name(c.arch)) == r.arch);
        CHECK(count_params(c).total == r.total);
        if (c.arch == Arch::Llama) CHECK(c.rope_scaling.type == RopeScalingType::Llama3);
    }
    // Qwen-1.5B by hand: embedding and head 2·151936·1536, 28 layers of q 1536·1536 + 1536, k and v
    // 256·1536 + 256 each, o 1536·1536, MLP 3·1536·8960, two norms 1536, final norm 1536.
    const int64_t layer = 1536 * 1536 + 1536 + 2 * (256 * 1536 + 256) + 1536 * 1536 + 3 * 1536 * 8960 + 2 * 1536;
    CHECK(2 * 151936LL * 1536 + 28 * layer + 1536 == 1777088000);
    const nlohmann::json info = model_info(load_config("data/configs/deepseek_r1_distill_qwen_7b.json"));
    CHECK(info["config"]["qkv_bias"] == true);
    CHECK(info["kv_cache"]["values_per_token_per_layer"] == 2 * 4 * 128);
}

TEST_CASE("a random qwen2 model: biases used, cached decode == prefill, greedy generate, tied head", "[model][qwen2]") {
    for (bool tied : {false, true}) {
        INFO("tied " << tied);
        dsref_test::TempDir dir;
        init_checkpoint(parse_config(qwen2(tied), "test config"), InitOptions{7, DType::BF16, 1}, dir.path);
        const TensorMap w = read_safetensors(dir.file("model.safetensors"));
        CHECK(w.count("model.layers.2.self_attn.k_proj.bias"));
        CHECK(w.count("lm_head.weight") == (tied ? 0u : 1u));
        ModelOptions o;
        o.keep_weights = true;
        Model m(dir.path, o);
        const std::vector<int32_t> tokens = {3, 17, 42, 5, 88, 0, 90, 12, 33, 7};
        const std::vector<float> full = m.prefill(tokens);
        KVCache cache;
        const std::vector<float> cached = dsref_test::prefill_then_decode(m, tokens, 4, cache);
        // the same math on other tile shapes: float rounding, relative to the logits' size (a tied head is
        // the N(0, 1) embedding, so its logits reach ~10)
        double scale = 1;
        for (float v : full) scale = std::max(scale, (double)std::fabs(v));
        CHECK(dsref_test::max_abs_diff(cached, full) < 1e-5 * scale);
        // the biases matter: zeroing one changes the logits
        TensorMap w2 = w;
        w2["model.layers.0.self_attn.q_proj.bias"] = Tensor::zeros(w.at("model.layers.0.self_attn.q_proj.bias").dtype, {48});
        write_safetensors(dir.file("model.safetensors"), w2);
        CHECK(dsref_test::max_abs_diff(Model(dir.path).prefill(tokens), full) > 1e-3);
        write_safetensors(dir.file("model.safetensors"), w);
        GenerateResult r = generate(m, {5, 9, 2}, 6, SamplingParams{}, false);
        std::vector<int32_t> seq = {5, 9, 2};
        for (int32_t t : r.tokens) {
            const std::vector<float> last = m.prefill(seq, nullptr, true);
            CHECK(argmax_lowest(last.data(), 91) == t);
            seq.push_back(t);
        }
        // a missing bias is named before any compute
        TensorMap w3 = w;
        w3.erase("model.layers.1.self_attn.v_proj.bias");
        write_safetensors(dir.file("model.safetensors"), w3);
        CHECK_THROWS_WITH(Model(dir.path), Catch::Contains("missing tensor 'model.layers.1.self_attn.v_proj.bias' (shape [16])"));
    }
}

TEST_CASE("dsref init / forward --dump / generate on the R1-Distill layouts", "[cli][qwen2][llama3]") {
    dsref_test::TempDir t;
    std::string out;
    REQUIRE(dsref_test::run_dsref("init --config data/golden/hf/qwen2_untied --seed 3 --out " + t.file("q") +
                                      " --dtype bf16", &out) == 0);
    REQUIRE(dsref_test::run_dsref("forward --model " + t.file("q") + " --tokens 1,2,3,4 --dump --out " +
                                      t.file("q.safetensors"), &out) == 0);
    const TensorMap f = read_safetensors(t.file("q.safetensors"));
    CHECK(f.count("attn.1"));
    CHECK(f.count("hidden.1"));
    CHECK(f.at("logits").shape == Shape{4, 96});
    REQUIRE(dsref_test::run_dsref("generate --model data/golden/hf/llama3_rope --tokens 5,6,7 --max-new 4", &out) == 0);
    CHECK(out.find("dsref generate: 3 prompt tokens, 4 new") != std::string::npos);
    REQUIRE(dsref_test::run_dsref("info --model data/configs/deepseek_r1_distill_llama_8b.json", &out) == 0);
    CHECK(out.find("\"llama3\"") != std::string::npos);
    dsref_test::write_text(t.file("bad.json"), R"({"model_type": "qwen2", "hidden_size": 48, "intermediate_size": 80,
        "num_hidden_layers": 1, "num_attention_heads": 6, "vocab_size": 91, "use_sliding_window": true})");
    CHECK(dsref_test::run_dsref("info --model " + t.file("bad.json"), &out) == 1);
    CHECK(out.find("field 'use_sliding_window' is true") != std::string::npos);
}
