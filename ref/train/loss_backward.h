// loss_backward.h — mean cross-entropy over N positions and its gradient with respect to the logits.
//
//   loss = (1/N) Σ_n [ logsumexp(z_n) − z_n[y_n] ],   dz_n = scale · (softmax(z_n) − onehot(y_n)) / N
//
// Log-sum-exp in double after subtracting the row max. `scale` is the weight of this loss in the total
// (1 for the main loss, λ for the MTP loss: V3 report §2.2 eq. 25), so the caller gets the gradient
// of its weighted term directly.
#pragma once
#include <cstdint>

namespace dsref {

// returns the mean loss · dz: [N, V] out (nullptr: loss only) · z: [N, V] · y: [N] targets
template <class F> double xent_fwd_bwd(F* dz, const F* z, const int32_t* y, int64_t N, int64_t V, double scale);

}  // namespace dsref
