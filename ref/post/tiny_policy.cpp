// tiny_policy.cpp — checkpoint ⇄ trainable weights (tiny_policy.h).
#include "post/tiny_policy.h"

#include <sys/stat.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/rope.h"
#include "io/safetensors.h"
#include "model/mla.h"

namespace dsref {

TinyV3Config tiny_v3_config_of(const ModelConfig& c) {
    if (c.arch != Arch::DeepseekV3) fail(c.source, ": the trainable policy supports model_type deepseek_v3 only");
    if (!c.has_moe()) fail(c.source, ": the trainable policy needs a MoE config (n_routed_experts > 0)");
    if (c.moe_layer_freq != 1) fail(c.source, ": moe_layer_freq = ", c.moe_layer_freq, " is not supported");
    TinyV3Config t;
    t.V = c.vocab_size;
    t.d = c.hidden_size;
    t.L = c.num_hidden_layers;
    t.first_dense = c.first_k_dense_replace;
    t.I_dense = c.intermediate_size;
    t.I_moe = c.moe_intermediate_size;
    t.n_shared = c.n_shared_experts;
    t.eps = c.rms_norm_eps;
    t.tie = c.tie_word_embeddings;
    const MlaDims m = mla_dims(c);
    t.mla.d = m.d;
    t.mla.H = m.H;
    t.mla.d_q = m.d_q;
    t.mla.d_c = m.d_c;
    t.mla.d_n = m.d_n;
    t.mla.d_r = m.d_r;
    t.mla.d_v = m.d_v;
    t.mla.scale = mla_softmax_scale(m);
    t.mla.inv_freq = rope_inv_freq(m.d_r, m.rope_theta, m.rope_scaling);
    t.mla.layout = RopeLayout::Interleaved;
    t.gate.E = c.n_routed_experts;
    t.gate.K = c.num_experts_per_tok;
    t.gate.n_group = c.n_group;
    t.gate.topk_group = c.topk_group;
    t.gate.scoring = c.scoring_func;
    t.gate.topk_method = c.topk_method;
    t.gate.norm_topk_prob = c.norm_topk_prob;
    t.gate.routed_scaling_factor = c.routed_scaling_factor;
    return t;
}

TinyPolicy load_tiny_policy(const std::string& dir) {
    TinyPolicy p;
    p.config = load_config(dir);
    p.net = tiny_v3_config_of(p.config);
    const Checkpoint ck(dir);
    const auto shapes = tiny_v3_shapes(p.net);
    for (const auto& [name, shape] : shapes) p.params[name] = ck.load_f32(name, shape);
    for (const auto& name : ck.names())
        if (!shapes.count(name))
            fail(dir, ": tensor ", name, " is not part of the trainable network (an MTP layer is not trained here)");
    return p;
}

void save_tiny_policy(const std::string& dir, const TinyPolicy& p) {
    ::mkdir(dir.c_str(), 0755);
    struct stat st;
    if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) fail(dir, ": cannot create the checkpoint directory");
    const auto shapes = tiny_v3_shapes(p.net);
    TensorMap out;
    for (const auto& [name, v] : p.params) out[name] = Tensor::from_f32(shapes.at(name), v);
    nlohmann::json cfg = p.config.raw;
    cfg["torch_dtype"] = "float32";
    std::ofstream f(dir + "/config.json");
    f << cfg.dump(2) << "\n";
    if (!f) fail(dir, "/config.json: write failed");
    f.close();
    write_checkpoint(dir, out, 1);
}

}  // namespace dsref
