// fuzz_config.cpp — libFuzzer harness: config.json parsing for every architecture (io/config.h).
// The seeds are the real configs of data/configs/ and the golden models (llama, qwen2, deepseek_v2,
// deepseek_v3); the input is parsed as JSON and given to parse_config, which must accept it or refuse it
// with dsref::Error. An accepted config must also be one the model can be sized from without overflow.
#include <cstdint>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(data, data + size);
    } catch (const nlohmann::json::exception&) {
        return 0;
    }
    try {
        const dsref::ModelConfig c = dsref::parse_config(j, "fuzz/config.json");
        for (int64_t i = 0; i < c.num_hidden_layers && i < 1000; i++) (void)c.is_moe_layer(i);
    } catch (const dsref::Error&) {
    }
    return 0;
}
