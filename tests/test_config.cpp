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
}  // namespace

TEST_CASE("rope_scaling absent or null means plain RoPE; type and rope_type are both read", "[config]") {
    json j = llama();
    CHECK(parse_config(j, "x").rope_scaling.type == RopeScalingType::None);
    j["rope_scaling"] = nullptr;
    CHECK(parse_config(j, "x").rope_scaling.type == RopeScalingType::None);
    json v3 = {{"model_type", "deepseek_v3"}, {"hidden_size", 64}, {"intermediate_size", 128},
               {"num_hidden_layers", 2}, {"num_attention_heads", 4}, {"vocab_size", 100},
               {"kv_lora_rank", 16}, {"qk_nope_head_dim", 8}, {"qk_rope_head_dim", 4}, {"v_head_dim", 8},
               {"q_lora_rank", nullptr}};
    v3["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 40}, {"original_max_position_embeddings", 4096}};
    ModelConfig c = parse_config(v3, "x");
    CHECK(c.rope_scaling.is_yarn());
    CHECK(c.rope_scaling.factor == 40);
    CHECK(c.q_lora_rank == 0);  // null → no query compression
    v3["rope_scaling"] = {{"type", "yarn"}, {"factor", 4}, {"original_max_position_embeddings", 64}};
    CHECK(parse_config(v3, "x").rope_scaling.factor == 4);
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
    j["rope_scaling"] = {{"type", "dynamic"}, {"factor", 2}};
    CHECK_THAT(error_of(j), Catch::Contains("rope_scaling type 'dynamic' is not supported"));
    j = llama();
    j["hidden_act"] = "gelu";
    CHECK_THAT(error_of(j), Catch::Contains("hidden_act"));
    j = llama();
    j["rope_scaling"] = 3;
    CHECK_THAT(error_of(j), Catch::Contains("'rope_scaling' must be an object or null"));
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
