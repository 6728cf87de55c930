// test_config_v4.cpp — covers ref/io/config_v4.h (DeepSeek-V4 config.json in the hub and the transformers
// spellings) and ref/tools/v4_info.h (parameter and KV-cache counts) on the real V4-Flash and V4-Pro configs
// in data/configs/, and the bad inputs that must be refused naming the field.
#include <catch2/catch.hpp>
#include <cmath>
#include <fstream>

#include "core/error.h"
#include "io/config.h"
#include "io/config_v4.h"
#include "tools/v4_info.h"

using namespace dsref;
using json = nlohmann::json;

namespace {
json read_json(const std::string& p) {
    std::ifstream in(p);
    json j;
    in >> j;
    return j;
}
}  // namespace

TEST_CASE("v4 config: the real Flash and Pro configs and their published sizes", "[config][v4]") {
    const V4Config f = load_v4_config("data/configs/deepseek_v4_flash.json");
    CHECK(f.num_hidden_layers == 43);
    CHECK(f.compress_ratio.size() == 44);
    CHECK(f.layer_type(0) == V4LayerType::Sliding);
    CHECK(f.layer_type(2) == V4LayerType::Csa);
    CHECK(f.layer_type(3) == V4LayerType::Hca);
    CHECK(f.qk_rope_head_dim == 64);
    CHECK(f.hash_layer[2]);
    CHECK_FALSE(f.hash_layer[3]);
    CHECK(f.compress_rope.is_yarn());
    CHECK(f.compress_rope.factor == 16.0);
    CHECK(f.fp4_experts);
    const json fi = v4_model_info(f);
    // Published: 284B total, 13B active (DeepSeek-V4 report, model card). Our count (embedding and head
    // included, MTP apart) must land within 2% of 284B and between 13B and 14B (13.3B without the embedding).
    const double ft = fi["parameters"]["total"].get<double>(), fa = fi["parameters"]["active_per_token"].get<double>();
    CHECK(std::fabs(ft / 284e9 - 1) < 0.02);
    CHECK(fa > 13e9);
    CHECK(fa < 14e9);
    CHECK(fi["kv_cache"]["csa_values_per_token_per_layer"].get<double>() == 160.0);  // 512/4 + 128/4
    CHECK(fi["kv_cache"]["hca_values_per_token_per_layer"].get<double>() == 4.0);    // 512/128

    const V4Config p = load_v4_config("data/configs/deepseek_v4_pro.json");
    const json pi = v4_model_info(p);
    // Published: 1.6T total, 49B active.
    const double pt = pi["parameters"]["total"].get<double>(), pa = pi["parameters"]["active_per_token"].get<double>();
    CHECK(std::fabs(pt / 1.6e12 - 1) < 0.03);
    CHECK(std::fabs(pa / 49e9 - 1) < 0.03);
    CHECK(pi["layers"]["sliding_attention"].get<int64_t>() == 0);
    CHECK(pi["layers"]["compressed_sparse_attention"].get<int64_t>() == 30);
}

TEST_CASE("v4 config: the transformers spelling gives the same config", "[config][v4]") {
    json hub = read_json("data/configs/deepseek_v4_flash.json");
    json hf = hub;
    for (const char* k : {"compress_ratios", "num_hash_layers", "qk_rope_head_dim", "rope_scaling"}) hf.erase(k);
    json lt = json::array(), mlt = json::array();
    for (int i = 0; i < 43; ++i) {
        const int m = hub["compress_ratios"][i].get<int>();
        lt.push_back(m == 0 ? "sliding_attention" : m == 4 ? "compressed_sparse_attention" : "heavily_compressed_attention");
        mlt.push_back(i < 3 ? "hash_moe" : "moe");
    }
    hf["layer_types"] = lt;
    hf["mlp_layer_types"] = mlt;
    hf["partial_rotary_factor"] = 0.125;
    hf["compress_rates"] = {{"compressed_sparse_attention", 4}, {"heavily_compressed_attention", 128}};
    hf["rope_parameters"] = {
        {"main", {{"rope_type", "default"}, {"rope_theta", 10000}, {"partial_rotary_factor", 0.125}}},
        {"compress", {{"rope_type", "yarn"}, {"rope_theta", 160000}, {"factor", 16}, {"original_max_position_embeddings", 65536},
                      {"beta_fast", 32}, {"beta_slow", 1}, {"attention_factor", 1.0}, {"partial_rotary_factor", 0.125}}}};
    hf["num_nextn_predict_layers"] = 0;  // transformers' layer_types has no MTP entry
    const V4Config a = parse_v4_config(hub, "hub"), b = parse_v4_config(hf, "hf");
    for (int64_t i = 0; i < 43; ++i) CHECK(a.compress_ratio[i] == b.compress_ratio[i]);
    CHECK(a.hash_layer == b.hash_layer);
    CHECK(a.qk_rope_head_dim == b.qk_rope_head_dim);
    CHECK(b.compress_rope.factor == a.compress_rope.factor);
    CHECK(b.compress_rope.original_max_position_embeddings == 65536);
    // without attention_factor transformers would scale cos/sin by 0.1·ln(16) + 1 (its config injects 1.0 only
    // when it builds the nested form itself): refused, naming the field
    hf["rope_parameters"]["compress"].erase("attention_factor");
    CHECK_THROWS_WITH(parse_v4_config(hf, "hf"), Catch::Contains("attention_factor") && Catch::Contains("--compat hf"));
    // --compat hf reads it as transformers does
    CHECK(parse_v4_config(hf, "hf", V4Compat::Hf).compress_rope_scale == Approx(0.1 * std::log(16.0) + 1));
    CHECK(parse_v4_config(hf, "hf", V4Compat::Hf).compat == V4Compat::Hf);
}

TEST_CASE("v4 config: --compat hf reads what transformers reads", "[config][v4][compat]") {
    const json hub = read_json("data/configs/deepseek_v4_flash.json");
    // the flat rope_scaling: transformers injects attention_factor 1.0 when absent, takes a given one
    CHECK(parse_v4_config(hub, "hub").compress_rope_scale == 1.0);
    CHECK(parse_v4_config(hub, "hub", V4Compat::Hf).compress_rope_scale == 1.0);
    json j = hub;
    j["rope_scaling"]["attention_factor"] = 1.5;
    CHECK_THROWS_WITH(parse_v4_config(j, "c"), Catch::Contains("attention_factor") && Catch::Contains("--compat hf"));
    CHECK(parse_v4_config(j, "c", V4Compat::Hf).compress_rope_scale == 1.5);
    j["rope_scaling"]["attention_factor"] = -1.0;
    CHECK_THROWS_WITH(parse_v4_config(j, "c", V4Compat::Hf), Catch::Contains("attention_factor"));
    // the nested spelling beside the flat one must give transformers the same factor
    j = hub;
    j["rope_parameters"] = {{"main", {{"rope_type", "default"}, {"rope_theta", 10000}}},
                            {"compress", {{"rope_type", "yarn"}, {"rope_theta", 160000}, {"factor", 16},
                                          {"original_max_position_embeddings", 65536}, {"beta_fast", 32}, {"beta_slow", 1}}}};
    CHECK_THROWS_WITH(parse_v4_config(j, "c", V4Compat::Hf), Catch::Contains("different attention_factor"));
    j["rope_parameters"]["compress"]["attention_factor"] = 1.0;
    CHECK(parse_v4_config(j, "c", V4Compat::Hf).compress_rope_scale == 1.0);
    // a nested partial_rotary_factor sets transformers' rope dims: it must agree
    j["rope_parameters"]["compress"]["partial_rotary_factor"] = 0.25;
    CHECK_THROWS_WITH(parse_v4_config(j, "c"), Catch::Contains("partial_rotary_factor"));
    // routing: the official Gate normalizes iff the score is not a softmax; transformers has no softmax router
    j = hub;
    j["scoring_func"] = "softmax";
    j.erase("norm_topk_prob");
    CHECK_FALSE(parse_v4_config(j, "c").norm_topk_prob);
    CHECK_THROWS_WITH(parse_v4_config(j, "c", V4Compat::Hf), Catch::Contains("scoring_func"));
    j["norm_topk_prob"] = true;
    CHECK_THROWS_WITH(parse_v4_config(j, "c"), Catch::Contains("norm_topk_prob"));
    CHECK(v4_compat_from_name("hf") == V4Compat::Hf);
    CHECK_THROWS_WITH(v4_compat_from_name("transformers"), Catch::Contains("official or hf"));
}

TEST_CASE("v4 config: bad input names the field", "[config][v4]") {
    const json base = read_json("data/configs/deepseek_v4_flash.json");
    auto refuses = [&](const std::function<void(json&)>& edit, const std::string& field) {
        json j = base;
        edit(j);
        INFO(field);
        CHECK_THROWS_WITH(parse_v4_config(j, "cfg.json"), Catch::Contains(field));
    };
    refuses([](json& j) { j["hc_mult"] = 0; }, "hc_mult");
    refuses([](json& j) { j["compress_ratios"][3] = 5; }, "compress_ratios");
    refuses([](json& j) { j["compress_ratios"] = json::array({0, 4}); }, "compress_ratios");
    refuses([](json& j) { j.erase("compress_ratios"); j["layer_types"] = json::array(); for (int i = 0; i < 43; ++i) j["layer_types"].push_back("full_attention"); }, "unknown layer type");
    refuses([](json& j) { j["dspark_block_size"] = 5; }, "dspark_block_size");
    refuses([](json& j) { j["scoring_func"] = "tanh"; }, "scoring_func");
    refuses([](json& j) { j["n_group"] = 8; }, "n_group");
    refuses([](json& j) { j["num_key_value_heads"] = 2; }, "num_key_value_heads");
    refuses([](json& j) { j.erase("swiglu_limit"); }, "swiglu_limit");
    refuses([](json& j) { j["rope_scaling"]["type"] = "linear"; }, "rope_type");
    refuses([](json& j) { j["o_groups"] = 7; }, "o_groups");
}

TEST_CASE("v4 config: the V2/V3 reader refuses V4 clearly (forward, generate, init hand it to the V4 model)", "[config][v4]") {
    const json j = read_json("data/configs/deepseek_v4_pro.json");
    CHECK_THROWS_WITH(parse_config(j, "pro.json"), Catch::Contains("deepseek_v4") && Catch::Contains("does not model it"));
    CHECK(path_is_v4_config("data/configs/deepseek_v4_pro.json"));
    CHECK_FALSE(path_is_v4_config("data/configs/deepseek_v3.json"));
    CHECK_FALSE(path_is_v4_config("data/configs/no_such_file.json"));
}
