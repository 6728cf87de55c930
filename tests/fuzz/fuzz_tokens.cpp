// fuzz_tokens.cpp — libFuzzer harness: the CLI token-list parser (`--tokens 1,2,3`, cli/common.cpp).
// Every string must give non-negative int32 ids or a dsref::UsageError.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "cli/cli.h"
#include "core/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string s(reinterpret_cast<const char*>(data), size);
    try {
        for (int32_t id : dsref::cli::parse_tokens(s))
            if (id < 0) std::abort();
    } catch (const dsref::UsageError&) {
    }
    return 0;
}
