// scratch.h — a float buffer that is not zero-filled, for an intermediate that a kernel writes in full
// before anything reads it (the rows of a MoE dispatch, SwiGLU's gate and up, MLA's decompressed keys).
// std::vector<float>(n) writes n zeros first: in a V3-shaped prefill (make bench-speed's model B) memset
// was ~3 % of the forward's samples (perf), and the prefill took ~500 ms with these zeros, ~492 without.
#pragma once
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>

namespace dsref {

class Scratch {
public:
    explicit Scratch(int64_t n) : p_(new float[n > 0 ? n : 1]) {}  // new float[n]: left uninitialized
    float* data() { return p_.get(); }
    const float* data() const { return p_.get(); }

private:
    std::unique_ptr<float[]> p_;
};

// A 64-byte aligned float buffer, not zero-filled, for the vector kernels' aligned loads (core/linear.h's
// x tiles, MLA's transposed keys): get(n) grows it to n floats when needed and never shrinks it, so one
// kept per thread is reused from call to call.
class AlignedScratch {
public:
    float* get(int64_t n) {
        if (n > cap_) {
            p_.reset(static_cast<float*>(std::aligned_alloc(64, (size_t)(n + 15) / 16 * 16 * sizeof(float))));
            if (!p_) throw std::bad_alloc();
            cap_ = n;
        }
        return p_.get();
    }

private:
    struct Free {
        void operator()(float* p) const { std::free(p); }
    };
    std::unique_ptr<float[], Free> p_;
    int64_t cap_ = 0;
};

}  // namespace dsref
