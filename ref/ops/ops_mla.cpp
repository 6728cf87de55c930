// ops_mla.cpp — op `mla`: one layer's Multi-head Latent Attention (model/mla.h) on a causal prefill
// at positions 0..T-1, from the layer's HF weights without the `model.layers.{i}.self_attn.` prefix,
// built by the model's own load_mla_weights over the op's inputs (ops/op_layer.h).
#include "core/error.h"
#include "io/config.h"
#include "io/tensor_source.h"
#include "io/weights.h"
#include "model/mla.h"
#include "ops/op_layer.h"
#include "ops/op_registry.h"

namespace dsref {

namespace {

const std::vector<std::string> kMlaShapeAttrs = {"q_lora_rank", "kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim",
                                                 "v_head_dim"};

TensorMap run_mla(const TensorMap& in, const OpAttrs& a) {
    const Tensor& xt = op_input(in, "mla", "x");
    if (xt.rank() != 2) fail("op mla: input 'x' must be [T, d], got ", shape_str(xt.shape));
    const int64_t T = xt.dim(0);
    if (T < 1) fail("op mla: input 'x' has no rows");
    for (const char* k : {"num_attention_heads", "kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim"})
        if (!a.has(k)) usage_fail("op mla: attribute '", k, "' is required");

    // The layer's config: the attributes (config.json names; the YaRN ones are rope_scaling's fields),
    // validated by the config parser's own sections; d comes from x.
    ModelConfig c;
    c.arch = Arch::DeepseekV3;
    c.source = "op mla attributes";
    c.hidden_size = xt.dim(1);
    c.num_attention_heads = a.i64("num_attention_heads", 0);
    if (c.num_attention_heads <= 0) usage_fail("op mla: attribute 'num_attention_heads' must be positive");
    nlohmann::json j = attrs_to_json(a, kMlaShapeAttrs);
    rope_attrs_to_json(a, "mla", j);
    parse_op_attrs([&] {
        parse_mla_section(j, c.source, c);
        parse_rope_section(j, c.source, c);
    });
    MlaDims m = mla_dims(c);
    m.latent_eps = a.f64("rms_norm_eps", kMlaLatentNormEps);  // the op lets the latent norms' eps be set
    if (!(m.latent_eps > 0)) usage_fail("op mla: attribute 'rms_norm_eps' must be > 0");
    const MlaPath path = mla_path_from_name(a.choice("path", "absorb", {"naive", "absorb"}));

    check_op_inputs("mla", in, flatten(mla_tensors(c, "")), {"x"},
                    "q_lora_rank is " + std::to_string(c.q_lora_rank) +
                        (c.q_lora_rank > 0 ? ": the query path is q_a_proj, q_a_layernorm, q_b_proj"
                                           : ": the query path is q_proj (set q_lora_rank for q_a_proj/q_b_proj)"));
    const TensorMapSource src(in, "mla");
    const MlaLayer layer(m, load_mla_weights(c, WeightLoader(src), ""));
    const std::vector<float> x = op_f32(in, "mla", "x");
    std::vector<float> o(T * c.hidden_size);
    LayerCache cache;
    Trace trace;
    layer.forward(path, o.data(), x.data(), T, 0, cache, &trace, 0);
    TensorMap out = {{"o", Tensor::from_f32({T, c.hidden_size}, o)}};
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
