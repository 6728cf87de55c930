// trace.cpp — the named-intermediate recorder.
#include "core/trace.h"

namespace dsref {

void Trace::record(const std::string& name, const Shape& shape, const float* data) {
    if (wants(name)) kept_[name] = Tensor::from_f32(shape, data);
}

void Trace::record(const std::string& name, Tensor t) {
    if (wants(name)) kept_[name] = std::move(t);
}

}  // namespace dsref
