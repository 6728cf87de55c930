// ops_basic.cpp — the foundation's ops for `dsref op`: rmsnorm, rope, attention.
#include <cmath>

#include "core/attention.h"
#include "core/error.h"
#include "ops/op_registry.h"
#include "core/rmsnorm.h"
#include "core/rope.h"

namespace dsref {

namespace {

TensorMap run_rmsnorm(const TensorMap& in, const OpAttrs& a) {
    const Tensor& xt = op_input(in, "rmsnorm", "x");
    if (xt.rank() < 1) fail("op rmsnorm: input 'x' must have rank >= 1");
    const int64_t d = xt.dim(-1), T = d ? xt.numel() / d : 0;
    std::vector<float> x = op_f32(in, "rmsnorm", "x"), w = op_f32(in, "rmsnorm", "weight", 1);
    op_require_finite(x, "rmsnorm", "x");
    op_require_finite(w, "rmsnorm", "weight");
    if ((int64_t)w.size() != d)
        fail("op rmsnorm: 'weight' has ", w.size(), " elements but x's last dimension is ", d);
    std::vector<float> y(x.size());
    rmsnorm_forward(y.data(), x.data(), w.data(), T, d, (float)op_positive(a, "rmsnorm", "eps", 1e-6));
    return {{"y", Tensor::from_f32(xt.shape, y)}};
}

TensorMap run_rope(const TensorMap& in, const OpAttrs& a) {
    const Tensor& xt = op_input(in, "rope", "x");
    if (xt.rank() != 2 && xt.rank() != 3) fail("op rope: 'x' must be [T, d_r] or [T, H, d_r], got ", shape_str(xt.shape));
    const int64_t T = xt.dim(0), N = xt.rank() == 3 ? xt.dim(1) : 1, d_r = xt.dim(-1);
    if (d_r % 2) fail("op rope: the rope dimension d_r = ", d_r, " must be even");
    std::vector<int64_t> pos(T);
    if (const Tensor* p = op_optional(in, "positions")) {
        if (p->shape != Shape{T}) fail("op rope: 'positions' must be [", T, "], got ", shape_str(p->shape));
        if (dtype_is_float(p->dtype)) fail("op rope: 'positions' must be an integer tensor, got ", dtype_name(p->dtype));
        pos = p->to_i64();
    } else {
        for (int64_t t = 0; t < T; t++) pos[t] = t;
    }
    RopeScaling s;
    if (a.has("factor")) {  // YaRN
        s.type = RopeScalingType::Yarn;
        s.factor = op_positive(a, "rope", "factor", 1.0);
        s.original_max_position_embeddings = a.i64("original_max_position_embeddings", 4096);
        s.beta_fast = a.f64("beta_fast", 32.0);
        s.beta_slow = a.f64("beta_slow", 1.0);
        s.mscale = a.f64("mscale", 1.0);
        s.mscale_all_dim = a.f64("mscale_all_dim", 0.0);
    }
    const RopeLayout layout =
        a.choice("layout", "interleaved", {"interleaved", "half"}) == "half" ? RopeLayout::Half : RopeLayout::Interleaved;
    std::vector<float> x = op_f32(in, "rope", "x");
    op_require_finite(x, "rope", "x");
    rope_forward(x.data(), T, N, d_r, N * d_r, d_r, pos.data(), rope_inv_freq(d_r, op_positive(a, "rope", "theta", 10000.0), s), layout);
    return {{"y", Tensor::from_f32(xt.shape, x)}};
}

TensorMap run_attention(const TensorMap& in, const OpAttrs& a) {
    const Tensor& q = op_input(in, "attention", "q");
    const Tensor& k = op_input(in, "attention", "k");
    const Tensor& v = op_input(in, "attention", "v");
    if (q.rank() != 3 || k.rank() != 3 || v.rank() != 3)
        fail("op attention: q, k, v must be [T, H, d], [S, H_kv, d], [S, H_kv, d_v]");
    const int64_t T = q.dim(0), H = q.dim(1), d = q.dim(2), S = k.dim(0), Hkv = k.dim(1), dv = v.dim(2);
    if (k.dim(2) != d) fail("op attention: k head size ", k.dim(2), " differs from q's ", d);
    if (v.dim(0) != S || v.dim(1) != Hkv) fail("op attention: v must be [", S, ", ", Hkv, ", d_v]");
    if (Hkv < 1 || H % Hkv) fail("op attention: ", H, " query heads cannot share ", Hkv, " KV heads");
    const bool causal = a.boolean("causal", true);
    if (causal && S < T) fail("op attention: causal attention needs S >= T (queries are the last T positions)");
    std::vector<float> qv = op_f32(in, "attention", "q"), kv = op_f32(in, "attention", "k"), vv = op_f32(in, "attention", "v"),
                       o(T * H * dv);
    op_require_finite(qv, "attention", "q");
    op_require_finite(kv, "attention", "k");
    op_require_finite(vv, "attention", "v");
    const double scale = a.f64("scale", 1.0 / std::sqrt((double)d));
    if (!std::isfinite(scale)) usage_fail("op attention: attribute scale must be finite");
    attention_forward(o.data(), qv.data(), kv.data(), vv.data(), T, S, H, Hkv, d, dv,
                      (float)scale, causal, causal ? S - T : 0);
    return {{"o", Tensor::from_f32({T, H, dv}, o)}};
}

const bool registered = register_op({"rmsnorm", "RMSNorm: y = x / sqrt(mean(x^2) + eps) * weight",
                                     "inputs:\n  x       [..., d]  float\n  weight  [d]       float\n"
                                     "attributes:\n  eps     1e-6\n"
                                     "outputs:\n  y       [..., d]  F32\n",
                                     {"eps"}, run_rmsnorm}) &&
                        register_op({"rope", "rotary position embedding, plain or YaRN, interleaved or half pairs",
                                     "inputs:\n  x          [T, d_r] or [T, H, d_r]  float\n"
                                     "  positions  [T] integer (optional; default 0..T-1)\n"
                                     "attributes:\n  theta      10000\n"
                                     "  layout     interleaved (pairs 2j,2j+1: DeepSeek V2/V3) | half (pairs j,j+d_r/2: HF Llama)\n"
                                     "  factor     YaRN scale s; setting it turns YaRN on (frequency blending only,\n"
                                     "             mscale goes into the softmax scale, not into cos/sin)\n"
                                     "  original_max_position_embeddings 4096, beta_fast 32, beta_slow 1,\n"
                                     "  mscale 1, mscale_all_dim 0  (accepted for completeness)\n"
                                     "outputs:\n  y          same shape as x, F32\n",
                                     {"theta", "layout", "factor", "original_max_position_embeddings", "beta_fast",
                                      "beta_slow", "mscale", "mscale_all_dim"},
                                     run_rope}) &&
                        register_op({"attention", "softmax(scale q k^T) v with GQA head sharing and a causal mask",
                                     "inputs:\n  q  [T, H, d]\n  k  [S, H_kv, d]\n  v  [S, H_kv, d_v]   (H % H_kv == 0;"
                                     " query head h uses KV head h*H_kv/H)\n"
                                     "attributes:\n  causal  true (queries are the last T of the S positions)\n"
                                     "  scale   d^-0.5\n"
                                     "outputs:\n  o  [T, H, d_v] F32\n",
                                     {"causal", "scale"}, run_attention});

}  // namespace
}  // namespace dsref
