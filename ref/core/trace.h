// trace.h — named intermediates, in the spirit of llama.cpp's `cb(tensor, "name", il)`.
//
// The forward pass offers every intermediate it computes under a fixed name ("hidden.3", "attn.0",
// "q_pe.1", ...); a Trace keeps those that pass its filter, and `dsref forward --dump` writes them.
// A null Trace* costs nothing.
#pragma once
#include <atomic>
#include <cstdint>
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

// The NaN/Inf policy for activations (README.md "Reliability"): the forward pass checks its trace
// points attn.{i} and hidden.{i} (in layer order) and the logits as it computes them, one pass each. The
// first non-finite element is an Error naming the point, its layer, token row and column: the first
// trace point where a NaN or Inf appears. With allow (`--allow-nonfinite`) one warning on stderr names
// it instead, and the run goes on (later points are not reported again).
class FiniteGuard {
public:
    explicit FiniteGuard(bool allow = false) : allow_(allow) {}
    // data: [rows, cols] at trace point `name` (what names the layer and the block, e.g. "attn.3").
    void check(const std::string& name, const float* data, int64_t rows, int64_t cols);
    bool allow() const { return allow_; }
    bool warned() const { return warned_; }

private:
    bool allow_;
    std::atomic<bool> warned_{false};
};

}  // namespace dsref
