// scratch.h — a float buffer that is not zero-filled, for an intermediate that a kernel writes in full
// before anything reads it (the rows of a MoE dispatch, SwiGLU's gate and up, MLA's decompressed keys).
// std::vector<float>(n) writes n zeros first: in a V3-shaped prefill (make bench-speed's model B) memset
// was ~3 % of the forward's samples (perf), and the prefill took ~500 ms with these zeros, ~492 without.
#pragma once
#include <cstdint>
#include <memory>

namespace dsref {

class Scratch {
public:
    explicit Scratch(int64_t n) : p_(new float[n > 0 ? n : 1]) {}  // new float[n]: left uninitialized
    float* data() { return p_.get(); }
    const float* data() const { return p_.get(); }

private:
    std::unique_ptr<float[]> p_;
};

}  // namespace dsref
