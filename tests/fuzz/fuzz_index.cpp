// fuzz_index.cpp — libFuzzer harness: the sharded checkpoint index (model.safetensors.index.json).
// The input is written as the index of a directory that also holds one valid shard, s1.safetensors
// (tensors "a" and "b"); Checkpoint must open it or refuse it with dsref::Error.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "core/error.h"
#include "io/safetensors.h"

static std::string g_dir;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    char tmpl[] = "/tmp/dsref_fuzz_index_XXXXXX";
    g_dir = mkdtemp(tmpl);
    dsref::write_safetensors(g_dir + "/s1.safetensors",
                             {{"a", dsref::Tensor::scalar(1)}, {"b", dsref::Tensor::from_f32({2}, {1, 2})}});
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string idx = g_dir + "/model.safetensors.index.json";
    FILE* f = std::fopen(idx.c_str(), "wb");
    if (!f) std::abort();
    std::fwrite(data, 1, size, f);
    std::fclose(f);
    try {
        dsref::Checkpoint c(g_dir);
        for (const std::string& n : c.names()) (void)c.get(n).to_f32();
    } catch (const dsref::Error&) {
    }
    return 0;
}
