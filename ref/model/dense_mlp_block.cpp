// dense_mlp_block.cpp — the dense feed-forward sub-block of a decoder layer: one SwiGLU MLP
// (core/swiglu.h) of width intermediate_size (llama layers, V2/V3 layers < first_k_dense_replace).
#include <vector>

#include "core/swiglu.h"
#include "io/checkpoint_layout.h"
#include "model/blocks.h"

namespace dsref {

namespace {
// The dense feed-forward sub-block of a decoder layer (llama layers, V2/V3 layers < first_k_dense_replace).
class DenseMlpBlock : public FeedForwardBlock {
public:
    DenseMlpBlock(const ModelConfig& c, const WeightLoader& w, const std::string& p, int64_t width)
        : d_(c.hidden_size), I_(width) {
        const MlpTensors t = mlp_tensors(p, d_, I_);
        gate_ = w.load(t.gate);
        up_ = w.load(t.up);
        down_ = w.load(t.down);
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
