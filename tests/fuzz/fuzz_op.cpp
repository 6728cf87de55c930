// fuzz_op.cpp — libFuzzer harness: the op runner's inputs (`dsref op NAME --in FILE --set k=v`).
// Input layout: byte 0 picks the op (modulo the number of registered ops); then `--set` attributes as
// text lines "key=value" up to the first NUL byte; the rest is the --in safetensors image. run_op must
// return outputs or throw dsref::Error / dsref::UsageError; an accepted result must have consistent bytes.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "core/error.h"
#include "io/safetensors.h"
#include "ops/op_registry.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 2) return 0;
    const std::vector<const dsref::OpSpec*> ops = dsref::list_ops();
    const dsref::OpSpec* op = ops[data[0] % ops.size()];
    const uint8_t* nul = static_cast<const uint8_t*>(std::memchr(data + 1, 0, size - 1));
    if (!nul) return 0;
    dsref::OpAttrs attrs;
    std::string text(reinterpret_cast<const char*>(data + 1), nul - (data + 1));
    size_t i = 0;
    while (i < text.size()) {
        size_t j = text.find('\n', i);
        if (j == std::string::npos) j = text.size();
        const std::string line = text.substr(i, j - i);
        const size_t eq = line.find('=');
        if (eq != std::string::npos) attrs.set(line.substr(0, eq), line.substr(eq + 1));
        i = j + 1;
    }
    try {
        std::vector<dsref::TensorRef> refs;
        std::vector<std::pair<std::string, std::string>> meta;
        dsref::parse_safetensors("fuzz.safetensors", nul + 1, size - (nul + 1 - data), &refs, &meta);
        dsref::TensorMap in;
        for (const dsref::TensorRef& r : refs) in[r.name] = r.copy();
        const dsref::TensorMap out = dsref::run_op(op->name, in, attrs);
        for (const auto& kv : out)
            if ((uint64_t)kv.second.numel() * dsref::dtype_size(kv.second.dtype) != kv.second.bytes.size()) std::abort();
    } catch (const dsref::Error&) {
    } catch (const dsref::UsageError&) {
    }
    return 0;
}
