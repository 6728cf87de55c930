// tensor_source.cpp — tensor references, the shared shape check, and op inputs as a tensor source.
#include "io/tensor_source.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"

namespace dsref {

Tensor TensorRef::copy() const {
    Tensor t;
    t.dtype = dtype;
    t.shape = shape;
    t.bytes.assign(data, data + nbytes);
    return t;
}

std::vector<float> TensorRef::to_f32() const {
    std::vector<float> out(shape_numel(shape));
    to_f32_into(out.data());
    return out;
}

// Straight out of the mapping for the float storages (no owned copy of the bytes); the values are
// Tensor::to_f32's.
void TensorRef::to_f32_into(float* out) const {
    const int64_t n = shape_numel(shape);
    if (dtype == DType::F32) {
        if (nbytes) std::memcpy(out, data, nbytes);
    } else if (dtype == DType::BF16) {
        // bf16 is the top half of a float32: a shift (bf16_to_f32, inlined so that the loop vectorizes;
        // a large tensor is cut over the threads). The bytes may be unaligned: memcpy.
        const uint8_t* __restrict src = data;
        uint32_t* __restrict dst = reinterpret_cast<uint32_t*>(out);
#pragma omp parallel for simd schedule(static) if (n >= (1 << 22))
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            std::memcpy(&h, src + 2 * i, 2);
            dst[i] = (uint32_t)h << 16;
        }
    } else if (dtype == DType::F16) {
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            std::memcpy(&h, data + 2 * i, 2);
            out[i] = f16_to_f32(h);
        }
    } else {
        const std::vector<float> v = copy().to_f32();
        std::copy(v.begin(), v.end(), out);
    }
}

void check_tensor_shape(const TensorSource& src, const TensorRef& r, const Shape& expected, const std::string& doc) {
    if (r.shape != expected)
        fail(src.describe(r.name), " has shape ", shape_str(r.shape), ", expected ", shape_str(expected),
             doc.empty() ? "" : " (" + doc + ")");
}

TensorMapSource::TensorMapSource(const TensorMap& tensors, std::string op) : op_(std::move(op)) {
    for (const auto& kv : tensors) {
        TensorRef r;
        r.name = kv.first;
        r.dtype = kv.second.dtype;
        r.shape = kv.second.shape;
        r.data = kv.second.bytes.data();
        r.nbytes = kv.second.bytes.size();
        refs_.emplace(kv.first, std::move(r));
    }
}

bool TensorMapSource::has(const std::string& name) const { return refs_.count(name) != 0; }

const TensorRef& TensorMapSource::get(const std::string& name) const {
    auto it = refs_.find(name);
    if (it == refs_.end()) fail("op ", op_, ": missing input tensor '", name, "'");
    return it->second;
}


}  // namespace dsref
