// test_config_keys.cpp — every key transformers' config classes write is read, allow-listed or refused.
//
// data/config_keys/transformers_keys.json lists, for llama, qwen2, deepseek_v2 and deepseek_v3, every key
// of the class's to_dict() (what save_pretrained writes) with its default
// (data/config_keys/list_transformers_keys.py). For each key a real config of that model type lacks, the
// key is added with transformers' default and parse_config must either accept it — the key was read
// through io/config_keys' FieldReader or is on the harmless allow-list (refuse_unread guarantees one of
// the two) — or refuse it with an error naming that key. Keys the real config has are parsed as the
// real config (every data/configs/ file must parse). A key transformers adds later fails here until it
// is classified.
#include <catch2/catch.hpp>

#include <fstream>
#include <map>

#include "core/error.h"
#include "io/config.h"
#include "io/config_keys.h"

using namespace dsref;
using json = nlohmann::json;

namespace {
json read_json(const std::string& p) {
    std::ifstream f(p);
    REQUIRE(f);
    return json::parse(f);
}
bool allow_listed(const std::string& k) {
    for (const HarmlessKeyGroup& g : harmless_config_keys())
        for (const char* h : g.keys)
            if (k == h) return true;
    return false;
}
}  // namespace

TEST_CASE("every key of transformers' config classes is read, allow-listed or refused by name", "[config]") {
    const json keys = read_json("data/config_keys/transformers_keys.json");
    const std::map<std::string, std::string> base = {
        {"llama", "data/configs/deepseek_r1_distill_llama_8b.json"},
        {"qwen2", "data/configs/deepseek_r1_distill_qwen_1_5b.json"},
        {"deepseek_v2", "data/configs/deepseek_v2_lite.json"},
        {"deepseek_v3", "data/configs/deepseek_v3.json"}};
    int total = 0;
    for (const auto& mt : base) {
        INFO(mt.first);
        REQUIRE(keys["model_types"].contains(mt.first));
        const json real = read_json(mt.second);
        REQUIRE_NOTHROW(parse_config(real, mt.second));
        int n_real = 0, n_read = 0, n_allowed = 0, n_refused = 0;
        std::string refused;
        for (auto it = keys["model_types"][mt.first].begin(); it != keys["model_types"][mt.first].end(); ++it) {
            const std::string& k = it.key();
            total++;
            if (real.contains(k)) {
                n_real++;
                continue;
            }
            json c = real;
            c[k] = it.value();
            INFO("key " << k << " = " << it.value().dump());
            try {
                parse_config(c, "cfg.json");
                (allow_listed(k) ? n_allowed : n_read)++;
            } catch (const Error& e) {
                n_refused++;
                refused += " " + k;
                CHECK_THAT(e.what(), Catch::Contains("'" + k));
            }
        }
        std::printf("report: %s: %d transformers keys: %d in the real config, %d more read, %d allow-listed, %d refused by name (%s)\n",
                    mt.first.c_str(), n_real + n_read + n_allowed + n_refused, n_real, n_read, n_allowed, n_refused,
                    refused.c_str() + (refused.empty() ? 0 : 1));
    }
    CHECK(total > 100);
}

TEST_CASE("every key of the real configs in data/configs is read or allow-listed", "[config]") {
    for (const char* p : {"deepseek_r1_distill_llama_70b", "deepseek_r1_distill_llama_8b", "deepseek_r1_distill_qwen_14b",
                          "deepseek_r1_distill_qwen_1_5b", "deepseek_r1_distill_qwen_32b", "deepseek_r1_distill_qwen_7b",
                          "deepseek_v2", "deepseek_v2_lite", "deepseek_v3", "deepseek_v32"}) {
        const std::string path = std::string("data/configs/") + p + ".json";
        INFO(path);
        CHECK_NOTHROW(parse_config(read_json(path), path));
    }
}

TEST_CASE("a PretrainedConfig field that would change the model is refused, not allow-listed", "[config]") {
    json c = read_json("data/configs/deepseek_r1_distill_llama_8b.json");
    c["is_encoder_decoder"] = true;
    CHECK_THROWS_WITH(parse_config(c, "cfg.json"), Catch::Contains("'is_encoder_decoder'"));
}
