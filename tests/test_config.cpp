// test_config.cpp — covers ref/io/config.cpp and ref/tools/model_info.cpp: accepted spellings, refused fields
// with the field named, parameter counts and KV-cache sizes.
#include <catch2/catch.hpp>

#include "core/error.h"
#include "io/config.h"
#include "tools/model_info.h"

using namespace dsref;
using json = nlohmann::json;

namespace {
json llama() {
    return {{"architectures", {"LlamaForCausalLM"}}, {"model_type", "llama"}, {"hidden_size", 64},
            {"intermediate_size", 128}, {"num_hidden_layers", 2}, {"num_attention_heads", 4},
            {"num_key_value_heads", 2}, {"vocab_size", 100}};
}
std::string error_of(const json& j) {
    try {
        parse_config(j, "cfg.json");
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}
json v3() {
    return {{"model_type", "deepseek_v3"}, {"hidden_size", 64}, {"intermediate_size", 128},
            {"num_hidden_layers", 2}, {"num_attention_heads", 4}, {"vocab_size", 100},
            {"kv_lora_rank", 16}, {"qk_nope_head_dim", 8}, {"qk_rope_head_dim", 4}, {"v_head_dim", 8},
            {"q_lora_rank", nullptr}};
}
json yarn(const char* type_key = "type") {
    return {{type_key, "yarn"}, {"factor", 40}, {"original_max_position_embeddings", 4096}, {"mscale", 1.0},
            {"mscale_all_dim", 1.0}};
}
}  // namespace

TEST_CASE("rope_scaling absent or null means plain RoPE; type and rope_type are both read", "[config]") {
    json j = llama();
    CHECK(parse_config(j, "x").rope_scaling.type == RopeScalingType::None);
    j["rope_scaling"] = nullptr;
    CHECK(parse_config(j, "x").rope_scaling.type == RopeScalingType::None);
    json d = v3();
    d["rope_scaling"] = yarn("rope_type");
    ModelConfig c = parse_config(d, "x");
    CHECK(c.rope_scaling.is_yarn());
    CHECK(c.rope_scaling.factor == 40);
    CHECK(c.q_lora_rank == 0);  // null → no query compression
    d["rope_scaling"] = yarn("type");
    d["rope_scaling"]["factor"] = 4;
    CHECK(parse_config(d, "x").rope_scaling.factor == 4);
}

// transformers 5 moved rope_theta and rope_scaling into rope_parameters; reading only the old keys gave
// theta = 10000 and no YaRN on such files, with no warning (max |Δlogits| 2.9 on a tiny V3).
TEST_CASE("transformers-5 rope_parameters are read for every architecture", "[config][rope]") {
    json l = llama();
    l["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 250000.0}};
    ModelConfig c = parse_config(l, "x");
    CHECK(c.rope_theta == 250000.0);
    CHECK(c.rope_scaling.type == RopeScalingType::None);
    json d = v3();
    d["rope_parameters"] = yarn("rope_type");
    d["rope_parameters"]["rope_theta"] = 50000.0;
    d["rope_parameters"]["factor"] = 4.0;
    d["rope_parameters"]["original_max_position_embeddings"] = 64;
    d["rope_parameters"]["beta_fast"] = 16;
    c = parse_config(d, "x");
    CHECK(c.rope_theta == 50000.0);
    REQUIRE(c.rope_scaling.is_yarn());
    CHECK(c.rope_scaling.factor == 4.0);
    CHECK(c.rope_scaling.original_max_position_embeddings == 64);
    CHECK(c.rope_scaling.beta_fast == 16);
    CHECK(c.rope_scaling.beta_slow == 1);
    // both conventions at once are fine when they agree ...
    d["rope_theta"] = 50000.0;
    d["rope_scaling"] = d["rope_parameters"];
    d["rope_scaling"].erase("rope_theta");
    CHECK(parse_config(d, "x").rope_theta == 50000.0);
    // ... and refused, naming both fields, when they do not
    json bad = d;
    bad["rope_theta"] = 10000.0;
    CHECK_THAT(error_of(bad), Catch::Contains("fields 'rope_theta' (10000) and 'rope_parameters.rope_theta' (50000) disagree"));
    bad = d;
    bad["rope_scaling"]["factor"] = 40;
    CHECK_THAT(error_of(bad), Catch::Contains("fields 'rope_scaling.factor' and 'rope_parameters.factor' disagree"));
    bad = d;
    bad["rope_scaling"] = {{"type", "default"}};
    CHECK_THAT(error_of(bad), Catch::Contains("'rope_scaling.rope_type' and 'rope_parameters.rope_type' disagree"));
    bad = d;
    bad["rope_parameters"]["type"] = "linear";
    CHECK_THAT(error_of(bad), Catch::Contains("fields 'rope_parameters.type' (linear) and 'rope_parameters.rope_type' (yarn) disagree"));
}

TEST_CASE("the V3 MoE defaults follow transformers' DeepseekV3TopkRouter; ambiguous ones are required", "[config][moe]") {
    json d = v3();
    d["n_routed_experts"] = 8;
    d["num_experts_per_tok"] = 2;
    d["moe_intermediate_size"] = 16;
    d["n_group"] = 2;
    d["topk_group"] = 1;
    d["routed_scaling_factor"] = 2.5;
    const ModelConfig c = parse_config(d, "x");  // as transformers 5 writes it: no scoring_func / topk_method
    CHECK(c.scoring_func == MoeScoring::Sigmoid);
    CHECK(c.topk_method == MoeTopk::NoauxTc);
    CHECK(c.norm_topk_prob);
    for (const char* k : {"n_group", "topk_group", "routed_scaling_factor"}) {
        json bad = d;
        bad.erase(k);
        CHECK_THAT(error_of(bad), Catch::Contains(std::string("missing required field '") + k + "'"));
    }
}

TEST_CASE("bad config fields are refused with the field named", "[config][errors]") {
    json j = llama();
    j.erase("hidden_size");
    CHECK_THAT(error_of(j), Catch::Contains("missing required field 'hidden_size'"));
    j = llama();
    j["num_attention_heads"] = "four";
    CHECK_THAT(error_of(j), Catch::Contains("'num_attention_heads' must be an integer"));
    j = llama();
    j["num_key_value_heads"] = 8;
    CHECK_THAT(error_of(j), Catch::Contains("num_key_value_heads 8 exceeds num_attention_heads 4"));
    j = llama();
    j["hidden_size"] = 66;
    CHECK_THAT(error_of(j), Catch::Contains("not divisible"));
    j = llama();
    j["model_type"] = "gpt2";
    j["architectures"] = {"GPT2LMHeadModel"};
    CHECK_THAT(error_of(j), Catch::Contains("unsupported architecture"));
    j = llama();
    j["rope_scaling"] = 3;
    CHECK_THAT(error_of(j), Catch::Contains("'rope_scaling' must be an object or null"));
    j = llama();
    j["eos_token_id"] = "eos";
    CHECK_THAT(error_of(j), Catch::Contains("field 'eos_token_id' must be an integer or a list of integers"));
    j = llama();
    j["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", "big"}};
    CHECK_THAT(error_of(j), Catch::Contains("field 'rope_parameters.rope_theta' must be a number"));
    j = llama();
    j["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 0.5}};
    CHECK_THAT(error_of(j), Catch::Contains("field 'rope_parameters.rope_theta' must be > 1"));
    json d = v3();
    d["rope_parameters"] = yarn("rope_type");
    d["rope_parameters"]["original_max_position_embeddings"] = -3;
    CHECK_THAT(error_of(d), Catch::Contains("field 'rope_parameters.original_max_position_embeddings' must be positive"));
    d["rope_parameters"].erase("original_max_position_embeddings");
    CHECK_THAT(error_of(d), Catch::Contains("missing required field 'rope_parameters.original_max_position_embeddings'"));
    d = v3();
    d["qk_head_dim"] = 13;
    CHECK_THAT(error_of(d), Catch::Contains("field 'qk_head_dim' is 13, but qk_nope_head_dim + qk_rope_head_dim = 12"));
}

// "No silent fallbacks": each key that would change the forward and that dsref does not model is an
// error naming the field. One check per refused key (or value).
TEST_CASE("every key or value dsref does not model is refused, naming the field", "[config][errors]") {
    struct Case {
        const char* what;
        json config;
        const char* message;
    };
    std::vector<Case> cases;
    auto add = [&](const char* what, json j, const char* message) { cases.push_back({what, std::move(j), message}); };
    json j;
    j = llama(), j["rope_parameters"] = {{"rope_type", "dynamic"}, {"factor", 2.0}};
    add("unknown rope_type", j, "field 'rope_parameters.rope_type' is 'dynamic', which dsref does not model");
    j = llama(), j["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}};
    add("rope_scaling type linear", j, "field 'rope_scaling.type' is 'linear', which dsref does not model");
    j = llama(), j["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 1e4}, {"factor", 2.0}};
    add("a factor on plain RoPE", j, "field 'rope_parameters.factor' (2.0) is not modelled");
    j = llama(), j["rope_parameters"] = {{"rope_type", "default"}, {"partial_rotary_factor", 0.5}};
    add("partial rotary", j, "field 'rope_parameters.partial_rotary_factor' is 0.5");
    j = llama(), j["partial_rotary_factor"] = 0.25;
    add("partial rotary (top level)", j, "field 'partial_rotary_factor' is not 1");
    j = llama(), j["attention_bias"] = true;
    add("attention_bias", j, "field 'attention_bias' is true");
    j = llama(), j["mlp_bias"] = true;
    add("mlp_bias", j, "field 'mlp_bias' is true");
    j = llama(), j["hidden_act"] = "gelu";
    add("hidden_act", j, "field 'hidden_act' is 'gelu'; only silu (SwiGLU) is modelled");
    j = llama(), j["sliding_window"] = 4096;
    add("sliding_window on llama", j, "field 'sliding_window' (4096) is not modelled");
    j = llama(), j["logit_softcapping"] = 30.0;
    add("an unknown key", j, "field 'logit_softcapping' (30.0) is not modelled by dsref and may change the forward");
    j = llama(), j["quantization_config"] = {{"quant_method", "fp8"}};
    add("quantization_config on llama", j, "field 'quantization_config'");
    j = llama(), j["rope_scaling"] = yarn();
    add("yarn on llama", j, "rope_scaling yarn on a llama config is not supported");
    json d;
    d = v3(), d["rope_parameters"] = yarn("rope_type"), d["rope_parameters"]["truncate"] = false;
    add("yarn truncate false", d, "field 'rope_parameters.truncate' is false");
    d = v3(), d["rope_parameters"] = yarn("rope_type"), d["rope_parameters"].erase("mscale");
    add("yarn whose HF cos/sin factor is not 1 (no mscale)", d, "make transformers multiply cos/sin by");
    d = v3(), d["rope_parameters"] = yarn("rope_type"), d["rope_parameters"]["mscale"] = 0.707;
    add("yarn with mscale != mscale_all_dim", d, "make transformers multiply cos/sin by");
    d = v3(), d["rope_parameters"] = yarn("rope_type"), d["rope_parameters"]["attention_factor"] = 1.2;
    add("yarn attention_factor", d, "(and 'rope_parameters.attention_factor') make transformers multiply cos/sin by 1.2");
    d = v3(), d["rope_parameters"] = yarn("rope_type"), d["rope_parameters"]["beta_fastest"] = 3;
    add("unknown yarn field", d, "field 'rope_parameters.beta_fastest' (3) is not modelled");
    d = v3(), d["rope_interleave"] = false;
    add("rope_interleave false", d, "field 'rope_interleave' is false");
    d = v3(), d["attention_bias"] = true;
    add("attention_bias on MLA", d, "field 'attention_bias' is true");
    d = v3(), d["quantization_config"] = {{"quant_method", "gptq"}, {"bits", 4}};
    add("quantization_config of an unknown method", d, "field 'quantization_config.quant_method' is 'gptq'");
    d = v3(), d["quantization_config"] = {{"quant_method", "fp8"}, {"activation_scheme", "static"}};
    add("static activation scales", d, "field 'quantization_config.activation_scheme' is 'static'");
    d = v3(), d["quantization_config"] = {{"quant_method", "fp8"}, {"fmt", "e5m2"}};
    add("fp8 fmt e5m2", d, "field 'quantization_config.fmt' is 'e5m2'");
    d = v3(), d["quantization_config"] = {{"quant_method", "fp8"}, {"scale_fmt", "e4m3"}};
    add("unknown scale_fmt", d, "field 'quantization_config.scale_fmt' is 'e4m3', which dsref does not model (ue8m0)");
    d = v3(), d["quantization_config"] = {{"quant_method", "fp8"}, {"scale_fmt", "ue8m0"}}, d["scale_fmt"] = "fp32";
    add("two scale_fmt that disagree", d, "fields 'scale_fmt' (fp32) and 'quantization_config.scale_fmt' (ue8m0) disagree");
    d = v3(), d["scale_fmt"] = "ue8m0";
    add("scale_fmt without FP8 weights", d, "field 'scale_fmt' is given but there is no quantization_config");
    d = v3(), d["quantization_config"] = {{"quant_method", "fp8"}, {"group_size", 64}};
    add("unknown quantization field", d, "field 'quantization_config.group_size' (64) is not modelled");
    for (const Case& k : cases) {
        INFO(k.what);
        CHECK_THAT(error_of(k.config), Catch::Contains(k.message) && Catch::Contains("cfg.json: "));
    }
}

TEST_CASE("the allow-list: harmless keys load, scale_fmt ue8m0 is read", "[config]") {
    json j = llama();
    for (const HarmlessKeyGroup& g : harmless_config_keys())
        for (const char* k : g.keys) j[k] = 0;
    j["pretraining_tp"] = 2;  // transformers 4's sliced projections: the same product
    j["dtype"] = "bfloat16";  // transformers 5's name for torch_dtype
    CHECK(parse_config(j, "x").torch_dtype == "bfloat16");
    json d = v3();
    d["quantization_config"] = {{"quant_method", "fp8"}, {"fmt", "e4m3"}, {"activation_scheme", "dynamic"},
                                {"weight_block_size", {128, 128}}, {"scale_fmt", "ue8m0"},
                                {"modules_to_not_convert", json::array()}};
    const ModelConfig c = parse_config(d, "x");
    CHECK(c.fp8_weights);
    CHECK(c.fp8_scale_fmt == Fp8ScaleFmt::Ue8m0);
    d.erase("quantization_config");
    CHECK(parse_config(d, "x").fp8_scale_fmt == Fp8ScaleFmt::Fp32);
}

TEST_CASE("the real configs of data/configs load", "[config]") {
    for (const char* f : {"deepseek_v3", "deepseek_v2", "deepseek_v2_lite"}) {
        INFO(f);
        CHECK_NOTHROW(load_config(std::string("data/configs/") + f + ".json"));
    }
}

TEST_CASE("info counts parameters and KV-cache bytes of a llama config", "[config][info]") {
    ModelConfig c = parse_config(llama(), "x");
    // embed 100·64 + head 100·64 + norm 64 + per layer (2·64 norms + q 64·64 + k,v 2·32·64 + o 64·64
    // + 3·128·64 mlp) = 12800 + 64 + 2·(128 + 4096 + 4096 + 4096 + 24576) = 12864 + 2·36992 = 86848
    const ParamCounts p = count_params(c);
    CHECK(p.total == 86848);
    CHECK(p.active == p.total - 100 * 64);  // active leaves out the embedding table, a lookup (model_info.h)
    CHECK(kv_values_per_token_layer(c) == 2 * 2 * 16);
    json info = model_info(c);
    CHECK(info["kv_cache"]["bytes_per_token_bf16"] == 2 * 64 * 2);
    CHECK(info["config"]["head_dim"] == 16);
}
