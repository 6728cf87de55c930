// dense_mlp_block.cpp — the dense feed-forward sub-block of a decoder layer: one SwiGLU MLP
// (core/swiglu.h) of width intermediate_size (llama layers, V2/V3 layers < first_k_dense_replace).
#include <vector>

#include "io/checkpoint_layout.h"
#include "core/swiglu.h"
#include "model/blocks.h"
#include "model/held_weight.h"

namespace dsref {

namespace {
// The dense feed-forward sub-block of a decoder layer (llama layers, V2/V3 layers < first_k_dense_replace).
class DenseMlpBlock : public FeedForwardBlock {
public:
    DenseMlpBlock(const ModelConfig& c, const WeightLoader& w, const std::string& p, int64_t width,
                  const PrecisionPolicy& prec, bool hold_bf16)
        : d_(c.hidden_size), I_(width), prec_(prec) {
        const MlpTensors t = mlp_tensors(p, d_, I_);
        if (hold_bf16) {  // the same steps as swiglu_forward, on bf16 words (model/held_weight.h)
            for (int k = 0; k < 3; k++) bf16_[k] = hold_weight(w, k == 0 ? t.gate : k == 1 ? t.up : t.down, prec_, true);
            return;
        }
        gate_ = prec_.load(w, t.gate);
        up_ = prec_.load(w, t.up);
        down_ = prec_.load(w, t.down);
        fp8_[0] = prec_.load_fp8(w, t.gate);  // official-fp8 only
        fp8_[1] = prec_.load_fp8(w, t.up);
        fp8_[2] = prec_.load_fp8(w, t.down);
    }
    void forward(float* out, const float* x, int64_t T, Trace*, int64_t) const override {
        if (!bf16_[0].bf16.empty()) {
            std::vector<float> g(T * I_), u(T * I_);  // [T, I] each
            held_linear(g.data(), x, bf16_[0], T, d_, I_, prec_);
            held_linear(u.data(), x, bf16_[1], T, d_, I_, prec_);
            swiglu_gate(g.data(), u.data(), T * I_);
            held_linear(out, g.data(), bf16_[2], T, I_, d_, prec_);
            return;
        }
        const Fp8Weight* fp8[3] = {&fp8_[0], &fp8_[1], &fp8_[2]};
        prec_.swiglu(out, x, gate_, up_, down_, T, d_, I_, fp8);
    }

private:
    int64_t d_, I_;
    PrecisionPolicy prec_;
    std::vector<float> gate_, up_, down_;  // [I, d], [I, d], [d, I]
    Fp8Weight fp8_[3];                     // gate, up, down as stored, for official-fp8
    HeldWeight bf16_[3];                   // gate, up, down as bf16 words (hold_bf16), else empty
};
}  // namespace

std::unique_ptr<FeedForwardBlock> make_dense_mlp_block(const ModelConfig& c, const WeightLoader& w,
                                                       const std::string& p, int64_t width,
                                                       const PrecisionPolicy& prec, bool hold_bf16) {
    return std::make_unique<DenseMlpBlock>(c, w, p, width, prec, hold_bf16);
}

}  // namespace dsref
