// ops_swiglu.cpp — the `swiglu` op for `dsref op` and the CUDA golden tests: the element-wise gate of
// the SwiGLU MLP (core/swiglu.h), y = silu(gate) ⊙ up with silu(z) = z / (1 + e^{−z}). A thin wrapper over
// swiglu_gate of ref/core/swiglu.h (double inside, rounded once to float32).
#include "core/error.h"
#include "core/swiglu.h"
#include "ops/op_registry.h"

namespace dsref {
namespace {

TensorMap run_swiglu(const TensorMap& in, const OpAttrs&) {
    const Tensor& gate_t = op_input(in, "swiglu", "gate");
    const Tensor& up_t = op_input(in, "swiglu", "up");
    if (gate_t.shape != up_t.shape)
        fail("op swiglu: 'gate' ", shape_str(gate_t.shape), " and 'up' ", shape_str(up_t.shape),
             " must have the same shape");
    std::vector<float> g = op_f32(in, "swiglu", "gate");  // [..., I]
    const std::vector<float> u = op_f32(in, "swiglu", "up");  // [..., I]
    op_require_finite(g, "swiglu", "gate");
    op_require_finite(u, "swiglu", "up");
    swiglu_gate(g.data(), u.data(), (int64_t)g.size());
    return {{"y", Tensor::from_f32(gate_t.shape, g)}};
}

const bool registered = register_op({"swiglu", "SwiGLU gate: y = silu(gate) * up, element-wise",
                                     "inputs:\n  gate  [..., I]  float\n  up    [..., I]  float (same shape)\n"
                                     "outputs:\n  y     [..., I]  F32 = gate / (1 + exp(-gate)) * up\n",
                                     {}, run_swiglu});

}  // namespace
}  // namespace dsref
