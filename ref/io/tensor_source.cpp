// tensor_source.cpp — tensor references, the shared shape check, and op inputs as a tensor source.
#include "io/tensor_source.h"

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
    if (dtype == DType::F32) {  // fast path: copy straight out of the mapping
        std::vector<float> out(nbytes / 4);
        if (nbytes) std::memcpy(out.data(), data, nbytes);
        return out;
    }
    return copy().to_f32();
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
