// ops_dsa.cpp — op `dsa_indexer`: the lightning indexer of DeepSeek Sparse Attention (model/dsa_indexer.h)
// on a causal prefill at positions 0..T-1, from one layer's indexer weights without the
// `model.layers.{i}.self_attn.` prefix, built by the model's own load_indexer_weights (ops/op_layer.h).
#include "core/error.h"
#include "io/checkpoint_layout.h"
#include "io/config.h"
#include "io/tensor_source.h"
#include "io/weights.h"
#include "model/dsa_indexer.h"
#include "ops/op_layer.h"
#include "ops/op_registry.h"

namespace dsref {

namespace {


TensorMap run_dsa_indexer(const TensorMap& in, const OpAttrs& a) {
    const Tensor& xt = op_input(in, "dsa_indexer", "x");
    const Tensor& qt = op_input(in, "dsa_indexer", "qr");
    if (xt.rank() != 2) fail("op dsa_indexer: input 'x' must be [T, d], got ", shape_str(xt.shape));
    if (qt.rank() != 2 || qt.dim(0) != xt.dim(0))
        fail("op dsa_indexer: input 'qr' must be [T, q_lora_rank] with T = ", xt.dim(0), ", got ", shape_str(qt.shape));
    const int64_t T = xt.dim(0);
    if (T < 1) fail("op dsa_indexer: input 'x' has no rows");
    for (const char* k : {"index_n_heads", "index_head_dim", "index_topk", "qk_rope_head_dim"})
        if (!a.has(k)) usage_fail("op dsa_indexer: attribute '", k, "' is required");

    // The layer's config from the attributes (config.json names), validated by the parser's sections.
    ModelConfig c;
    c.arch = Arch::DeepseekV32;
    c.source = "op dsa_indexer attributes";
    c.hidden_size = xt.dim(1);
    c.num_hidden_layers = 1;
    nlohmann::json j = attrs_to_json(a, {"index_n_heads", "index_head_dim", "index_topk", "qk_rope_head_dim"});
    j["q_lora_rank"] = qt.dim(1);
    rope_attrs_to_json(a, "dsa_indexer", j);
    parse_op_attrs([&] {
        FieldReader r(j, c.source);
        c.q_lora_rank = r.int_req("q_lora_rank");
        c.qk_rope_head_dim = r.int_req("qk_rope_head_dim");
        r.positive("qk_rope_head_dim", c.qk_rope_head_dim);
        if (c.qk_rope_head_dim % 2) r.fail_field("qk_rope_head_dim", "must be even");
        parse_indexer_section(r, c);
        parse_rope_section(j, c.source, c);
    });
    IndexerDims id = indexer_dims(c);
    const IndexerMode mode = indexer_mode_from_name(a.choice("mode", "exact", {"exact", "fp8"}));
    id.scale_fmt = a.choice("scale_fmt", "fp32", {"fp32", "ue8m0"}) == "ue8m0" ? Fp8ScaleFmt::Ue8m0 : Fp8ScaleFmt::Fp32;

    check_op_inputs("dsa_indexer", in, flatten(indexer_tensors(c, "")), {"x", "qr"}, "the indexer reads indexer.wq_b, indexer.wk, indexer.k_norm.weight/bias, indexer.weights_proj");
    const TensorMapSource src(in, "dsa_indexer");
    const DsaIndexer ix(id, load_indexer_weights(c, WeightLoader(src), ""), mode);
    const std::vector<float> x = op_f32(in, "dsa_indexer", "x"), qr = op_f32(in, "dsa_indexer", "qr");
    std::vector<float> k_cache;
    Trace trace;
    ix.forward(x.data(), qr.data(), T, 0, k_cache, &trace, 0);
    TensorMap out;
    for (const char* n : {"index_q", "index_k", "index_weights", "index_scores", "index_topk", "index_margin"})
        out[n] = trace.tensors().at(std::string(n) + ".0");
    return out;
}

const bool registered = register_op(
    {"dsa_indexer", "DeepSeek Sparse Attention's lightning indexer (V3.2), one layer, causal prefill: scores, top-k",
     "inputs (HF names of one layer, without 'model.layers.{i}.self_attn.'):\n"
     "  x                          [T, d]            the attention block's normalized input, positions 0..T-1\n"
     "  qr                         [T, d_q]          MLA's compressed query q_a_layernorm(q_a_proj x)\n"
     "  indexer.wq_b.weight        [n_I*d_I, d_q]\n"
     "  indexer.wk.weight          [d_I, d]\n"
     "  indexer.k_norm.weight      [d_I]             LayerNorm weight (eps 1e-6)\n"
     "  indexer.k_norm.bias        [d_I]             LayerNorm bias\n"
     "  indexer.weights_proj.weight [n_I, d]\n"
     "attributes (config.json names):\n"
     "  index_n_heads n_I, index_head_dim d_I, index_topk k, qk_rope_head_dim d_r   required\n"
     "  rope_theta 10000; factor (turns YaRN on), original_max_position_embeddings 4096, beta_fast 32,\n"
     "  beta_slow 1, mscale 1, mscale_all_dim 0 (the frequencies only)\n"
     "  mode                       exact (default) | fp8 (Hadamard + E4M3 1x128 round trip of q and k)\n"
     "  scale_fmt                  fp32 (default) | ue8m0: the fp8 mode's activation scales\n"
     "outputs (F32 unless said):\n"
     "  index_q       [T, n_I, d_I]  per head [rope | nope], half-split RoPE\n"
     "  index_k       [T, d_I]       LayerNorm then half-split RoPE\n"
     "  index_weights [T, n_I]       weights_proj(x) * n_I^-0.5\n"
     "  index_scores  [T, T]         sum_h w * ReLU(q.k) * d_I^-0.5, -inf above the diagonal\n"
     "  index_topk    I32 [T, min(k, T)]  by score, ties to the lower position, -1 padding\n"
     "  index_margin  [T]            k-th minus (k+1)-th score, +inf when nothing is left out\n",
     {"index_n_heads", "index_head_dim", "index_topk", "qk_rope_head_dim", "rope_theta", "factor",
      "original_max_position_embeddings", "beta_fast", "beta_slow", "mscale", "mscale_all_dim", "mode", "scale_fmt"},
     run_dsa_indexer});

}  // namespace
}  // namespace dsref
