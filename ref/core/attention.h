// attention.h — scaled dot-product attention with grouped KV heads and a causal mask
// (Vaswani et al. 2017; GQA: Ainslie et al. 2023).
//
//   o[t, h] = Σ_s softmax_s( scale · q[t, h] · k[s, g(h)] ) · v[s, g(h)],   g(h) = ⌊h · H_kv / H⌋
//
// g(h) is HF's repeat_kv grouping: consecutive query heads share a KV head. H_kv = H is MHA,
// H_kv = 1 is MQA. Causal: query row t sits at absolute position pos0 + t and sees keys 0..pos0+t,
// so the same function serves a full prefill (pos0 = 0, S = T) and decode against a cache
// (pos0 = S − T). Softmax is computed in double after subtracting the row max.
#pragma once
#include <cstdint>

namespace dsref {

// o: [T, H, d_v] out · q: [T, H, d] · k: [S, H_kv, d] · v: [S, H_kv, d_v]
// scale: usually d^-1/2 · causal: mask keys after pos0 + t · pos0: absolute position of query row 0
void attention_forward(float* o, const float* q, const float* k, const float* v, int64_t T, int64_t S,
                       int64_t H, int64_t H_kv, int64_t d, int64_t d_v, float scale, bool causal, int64_t pos0);

}  // namespace dsref
