// ops_mla.cpp — op `mla`: one layer's Multi-head Latent Attention (mla.h, spec 4) on a causal prefill
// at positions 0..T-1, from the layer's HF weights without the `model.layers.{i}.self_attn.` prefix.
#include "core/error.h"
#include "model/mla.h"
#include "ops/op_registry.h"

namespace dsref {

namespace {

int64_t required_i64(const OpAttrs& a, const char* k) {
    if (!a.has(k)) usage_fail("op mla: attribute '", k, "' is required");
    const int64_t v = a.i64(k, 0);
    if (v <= 0) usage_fail("op mla: attribute '", k, "' must be positive, got ", v);
    return v;
}

// The input `name`, as float32, after checking that it has exactly `shape`.
std::vector<float> weight(const TensorMap& in, const std::string& name, const Shape& shape, const std::string& what) {
    const Tensor& t = op_input(in, "mla", name);
    if (t.shape != shape)
        fail("op mla: input '", name, "' has shape ", shape_str(t.shape), ", expected ", shape_str(shape), " (", what, ")");
    return op_f32(in, "mla", name);
}

TensorMap run_mla(const TensorMap& in, const OpAttrs& a) {
    const Tensor& xt = op_input(in, "mla", "x");
    if (xt.rank() != 2) fail("op mla: input 'x' must be [T, d], got ", shape_str(xt.shape));
    const int64_t T = xt.dim(0);
    if (T < 1) fail("op mla: input 'x' has no rows");

    MlaDims m;
    m.d = xt.dim(1);
    m.H = required_i64(a, "num_attention_heads");
    m.d_q = a.i64("q_lora_rank", 0);
    if (m.d_q < 0) usage_fail("op mla: attribute 'q_lora_rank' must be 0 (no query compression) or positive");
    m.d_c = required_i64(a, "kv_lora_rank");
    m.d_n = required_i64(a, "qk_nope_head_dim");
    m.d_r = required_i64(a, "qk_rope_head_dim");
    m.d_v = required_i64(a, "v_head_dim");
    if (m.d_r % 2) usage_fail("op mla: attribute 'qk_rope_head_dim' must be even (RoPE rotates pairs), got ", m.d_r);
    m.latent_eps = a.f64("rms_norm_eps", kMlaLatentNormEps);
    if (!(m.latent_eps > 0)) usage_fail("op mla: attribute 'rms_norm_eps' must be > 0");
    m.rope_theta = a.f64("rope_theta", 10000.0);
    if (!(m.rope_theta > 1)) usage_fail("op mla: attribute 'rope_theta' must be > 1");
    if (a.has("factor")) {  // YaRN, as in op rope
        RopeScaling& s = m.rope_scaling;
        s.type = RopeScalingType::Yarn;
        s.factor = a.f64("factor", 1.0);
        if (!(s.factor > 0)) usage_fail("op mla: attribute 'factor' must be > 0");
        s.original_max_position_embeddings = a.i64("original_max_position_embeddings", 4096);
        if (s.original_max_position_embeddings <= 0)
            usage_fail("op mla: attribute 'original_max_position_embeddings' must be positive");
        s.beta_fast = a.f64("beta_fast", 32.0);
        s.beta_slow = a.f64("beta_slow", 1.0);
        if (!(s.beta_fast > 0) || !(s.beta_slow > 0)) usage_fail("op mla: 'beta_fast' and 'beta_slow' must be > 0");
        s.mscale = a.f64("mscale", 1.0);
        s.mscale_all_dim = a.f64("mscale_all_dim", 0.0);
    } else {
        for (const char* k : {"original_max_position_embeddings", "beta_fast", "beta_slow", "mscale", "mscale_all_dim"})
            if (a.has(k)) usage_fail("op mla: attribute '", k, "' needs 'factor' (YaRN is on only when factor is set)");
    }
    const MlaPath path = mla_path_from_name(a.choice("path", "absorb", {"naive", "absorb"}));

    const int64_t d = m.d, H = m.H, d_k = m.d_k();
    MlaWeights w;
    if (m.d_q > 0) {
        if (in.count("q_proj.weight"))
            fail("op mla: q_lora_rank is ", m.d_q, " (query compression) but input 'q_proj.weight' is given; "
                 "use q_a_proj/q_a_layernorm/q_b_proj, or set q_lora_rank=0");
        w.q_a = weight(in, "q_a_proj.weight", {m.d_q, d}, "[q_lora_rank, d]");
        w.q_a_norm = weight(in, "q_a_layernorm.weight", {m.d_q}, "[q_lora_rank]");
        w.q_b = weight(in, "q_b_proj.weight", {H * d_k, m.d_q},
                       "[H·(qk_nope_head_dim+qk_rope_head_dim), q_lora_rank]");
    } else {
        for (const char* n : {"q_a_proj.weight", "q_a_layernorm.weight", "q_b_proj.weight"})
            if (in.count(n))
                fail("op mla: q_lora_rank is 0 (no query compression) but input '", n,
                     "' is given; set q_lora_rank to its rank, or give q_proj.weight");
        w.q = weight(in, "q_proj.weight", {H * d_k, d}, "[H·(qk_nope_head_dim+qk_rope_head_dim), d]");
    }
    w.kv_a = weight(in, "kv_a_proj_with_mqa.weight", {m.d_c + m.d_r, d}, "[kv_lora_rank+qk_rope_head_dim, d]");
    w.kv_a_norm = weight(in, "kv_a_layernorm.weight", {m.d_c}, "[kv_lora_rank]");
    w.kv_b = weight(in, "kv_b_proj.weight", {H * (m.d_n + m.d_v), m.d_c},
                    "[H·(qk_nope_head_dim+v_head_dim), kv_lora_rank]");
    w.o = weight(in, "o_proj.weight", {d, H * m.d_v}, "[d, H·v_head_dim]");

    const MlaLayer layer(m, std::move(w));
    const std::vector<float> x = op_f32(in, "mla", "x");
    std::vector<float> o(T * d);
    LayerCache cache;
    Trace trace;
    layer.forward(path, o.data(), x.data(), T, 0, cache, &trace, 0);
    TensorMap out = {{"o", Tensor::from_f32({T, d}, o)}};
    for (const char* n : {"q_nope", "q_pe", "kv_latent", "k_pe"}) out[n] = trace.tensors().at(std::string(n) + ".0");
    return out;
}

const bool registered = register_op(
    {"mla", "Multi-head Latent Attention (DeepSeek-V2/V3), one layer, causal prefill, naive or absorbed",
     "inputs (HF names of one layer, without 'model.layers.{i}.self_attn.'):\n"
     "  x                          [T, d]               normalized layer input, positions 0..T-1\n"
     "  q_a_proj.weight            [d_q, d]             when q_lora_rank = d_q > 0\n"
     "  q_a_layernorm.weight       [d_q]                when q_lora_rank = d_q > 0\n"
     "  q_b_proj.weight            [H*(d_n+d_r), d_q]   when q_lora_rank = d_q > 0\n"
     "  q_proj.weight              [H*(d_n+d_r), d]     when q_lora_rank = 0 (V2-Lite)\n"
     "  kv_a_proj_with_mqa.weight  [d_c+d_r, d]         rows: latent c_kv, then k_pe\n"
     "  kv_a_layernorm.weight      [d_c]\n"
     "  kv_b_proj.weight           [H*(d_n+d_v), d_c]   per head: k_nope rows, then v rows\n"
     "  o_proj.weight              [d, H*d_v]\n"
     "attributes (config.json names):\n"
     "  num_attention_heads H, kv_lora_rank d_c, qk_nope_head_dim d_n, qk_rope_head_dim d_r (even),\n"
     "  v_head_dim d_v              required\n"
     "  q_lora_rank                0 = no query compression (HF null)\n"
     "  rms_norm_eps               1e-6, eps of q_a_layernorm and kv_a_layernorm (the model always uses\n"
     "                             1e-6 there, as HF and the official code do)\n"
     "  rope_theta                 10000\n"
     "  factor                     YaRN scale s; setting it turns YaRN on (frequencies and the\n"
     "                             softmax scale (d_n+d_r)^-0.5 * (0.1*mscale_all_dim*ln s + 1)^2)\n"
     "  original_max_position_embeddings 4096, beta_fast 32, beta_slow 1, mscale 1, mscale_all_dim 0\n"
     "  path                       absorb (cache latent + k_pe, W_UK folded into q) | naive (decompress K, V)\n"
     "outputs (F32):\n"
     "  o          [T, d]          o_proj output\n"
     "  q_nope     [T, H, d_n]     query, no-RoPE part\n"
     "  q_pe       [T, H, d_r]     query rope part after RoPE, checkpoint (adjacent-pair) order\n"
     "  kv_latent  [T, d_c]        after kv_a_layernorm\n"
     "  k_pe       [T, d_r]        shared rope key after RoPE, adjacent-pair order\n",
     {"num_attention_heads", "q_lora_rank", "kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim",
      "rms_norm_eps", "rope_theta", "factor", "original_max_position_embeddings", "beta_fast", "beta_slow", "mscale",
      "mscale_all_dim", "path"},
     run_mla});

}  // namespace
}  // namespace dsref
