// held_weight.cpp — float32 or bf16 weights behind one projection call (held_weight.h).
#include "model/held_weight.h"

#include "core/error.h"
#include "core/linear.h"
#include "core/linear_bf16.h"

namespace dsref {

HeldWeight hold_weight(const WeightLoader& w, const WeightSpec& s, const PrecisionPolicy& prec, bool bf16) {
    HeldWeight h;
    if (bf16) {
        if (!prec.none()) fail("holding bf16 weights runs in float32 only, not with --emulate");
        h.bf16 = w.load_bf16(s);
    } else {
        h.f32 = prec.load(w, s);
    }
    return h;
}

void held_linear(float* y, const float* x, const HeldWeight& w, int64_t T, int64_t K, int64_t N,
                 const PrecisionPolicy& prec, const float* bias) {
    if (w.bf16.empty()) return prec.linear(y, x, w.f32, T, K, N, nullptr, bias);
    linear_forward_bf16(y, x, w.bf16.data(), T, K, N);
    if (bias) add_bias(y, bias, T, N);
}

}  // namespace dsref
