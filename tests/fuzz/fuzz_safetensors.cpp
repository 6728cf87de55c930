// fuzz_safetensors.cpp — libFuzzer harness: the safetensors header and tensor table (io/safetensors.h).
// The input is a whole file image. Every input must either parse into tensors that tile the buffer or be
// refused with dsref::Error; anything else (a crash, a sanitizer report, an allocation beyond the
// limit `make fuzz` sets) is a finding.
#include <cstdint>
#include <cstdlib>

#include "core/error.h"
#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::vector<dsref::TensorRef> tensors;
    std::vector<std::pair<std::string, std::string>> meta;
    try {
        dsref::parse_safetensors("fuzz.safetensors", data, size, &tensors, &meta);
    } catch (const dsref::Error&) {
        return 0;
    }
    // Accepted: every tensor lies inside the input and its byte count is its shape's.
    for (const dsref::TensorRef& t : tensors) {
        if (t.data < data || t.data + t.nbytes > data + size) std::abort();
        if ((uint64_t)dsref::shape_numel(t.shape) * dsref::dtype_size(t.dtype) != t.nbytes) std::abort();
        (void)t.to_f32();  // conversion of every dtype reads only the tensor's bytes
    }
    return 0;
}
