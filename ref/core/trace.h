// trace.h — named intermediates, in the spirit of llama.cpp's `cb(tensor, "name", il)`.
//
// The forward pass offers every intermediate it computes under a fixed name ("hidden.3", "attn.0",
// "q_pe.1", ...); a Trace keeps those that pass its filter, and `dsref forward --dump` writes them.
// A null Trace* costs nothing.
#pragma once
#include <set>
#include <string>

#include "core/tensor.h"

namespace dsref {

class Trace {
public:
    Trace() = default;                                  // keeps everything
    explicit Trace(std::set<std::string> only) : only_(std::move(only)) {}  // keeps only these names

    bool wants(const std::string& name) const { return only_.empty() || only_.count(name) != 0; }
    void record(const std::string& name, const Shape& shape, const float* data);  // F32 copy
    void record(const std::string& name, Tensor t);
    const TensorMap& tensors() const { return kept_; }

private:
    std::set<std::string> only_;
    TensorMap kept_;
};

// Convenience for forward code: records only when `trace` is non-null and wants the name.
inline void trace_f32(Trace* trace, const std::string& name, const Shape& shape, const float* data) {
    if (trace && trace->wants(name)) trace->record(name, shape, data);
}

}  // namespace dsref
