// mlp.cpp — SwiGLU MLP forward (spec 2.3).
#include "mlp.h"

#include <cmath>
#include <vector>

#include "blocks.h"
#include "linear.h"

namespace dsref {

void swiglu_gate(float* g, const float* u, int64_t n) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) g[i] = (float)((double)g[i] / (1.0 + std::exp(-(double)g[i])) * u[i]);
}

void swiglu_forward(float* y, const float* x, const float* w_gate, const float* w_up, const float* w_down,
                    int64_t T, int64_t d, int64_t I) {
    std::vector<float> g(T * I), u(T * I);  // [T, I] each
    linear_forward(g.data(), x, w_gate, T, d, I);
    linear_forward(u.data(), x, w_up, T, d, I);
    swiglu_gate(g.data(), u.data(), T * I);
    linear_forward(y, g.data(), w_down, T, I, d);
}

namespace {
// The dense feed-forward sub-block of a decoder layer (llama layers, V2/V3 layers < first_k_dense_replace).
class DenseMlpBlock : public FeedForwardBlock {
public:
    DenseMlpBlock(const ModelConfig& c, const WeightLoader& w, const std::string& p, int64_t width)
        : d_(c.hidden_size), I_(width) {
        gate_ = w.load(p + "mlp.gate_proj.weight", {I_, d_});
        up_ = w.load(p + "mlp.up_proj.weight", {I_, d_});
        down_ = w.load(p + "mlp.down_proj.weight", {d_, I_});
    }
    void forward(float* out, const float* x, int64_t T, Trace*, int64_t) const override {
        swiglu_forward(out, x, gate_.data(), up_.data(), down_.data(), T, d_, I_);
    }

private:
    int64_t d_, I_;
    std::vector<float> gate_, up_, down_;  // [I, d], [I, d], [d, I]
};
}  // namespace

std::unique_ptr<FeedForwardBlock> make_dense_mlp_block(const ModelConfig& c, const WeightLoader& w,
                                                       const std::string& p, int64_t width) {
    return std::make_unique<DenseMlpBlock>(c, w, p, width);
}

}  // namespace dsref
