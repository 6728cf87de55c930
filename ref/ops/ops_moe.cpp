// ops_moe.cpp — the DeepSeekMoE ops for `dsref op`: moe_gate, moe, eplb (moe/moe_gate.h, moe/moe.h,
// moe/eplb.h). Op moe builds its layer with the model's own load_moe_weights over the op's inputs.
#include "core/error.h"
#include "io/checkpoint_layout.h"
#include "io/config.h"
#include "io/tensor_source.h"
#include "io/weights.h"
#include "model/moe_block.h"
#include "moe/eplb.h"
#include "moe/moe.h"
#include "ops/op_layer.h"
#include "ops/op_registry.h"

namespace dsref {

namespace {

const std::vector<std::string> kGateAttrs = {"n_routed_experts", "num_experts_per_tok", "n_group", "topk_group",
                                             "scoring_func",     "topk_method",         "norm_topk_prob",
                                             "routed_scaling_factor"};

// The MoE config of a one-layer op: the gate attributes (config.json names) validated by the config
// parser's own MoE section; E comes from the router weight's rows (and must equal n_routed_experts when
// that is given), d from x, and moe_intermediate_size / n_shared_experts from the inputs when not given.
ModelConfig op_moe_config(const OpAttrs& a, const std::string& op, int64_t E, int64_t d, int64_t I, int64_t I_shared) {
    if (!a.has("num_experts_per_tok")) usage_fail("op ", op, ": attribute num_experts_per_tok is required");
    if (a.has("n_routed_experts") && a.i64("n_routed_experts", 0) != E)
        usage_fail("op ", op, ": n_routed_experts=", a.i64("n_routed_experts", 0), " but the router weight has ", E, " rows");
    nlohmann::json j = attrs_to_json(a, kGateAttrs);
    j["n_routed_experts"] = E;
    if (I > 0) {
        if (a.has("moe_intermediate_size") && a.i64("moe_intermediate_size", 0) != I)
            usage_fail("op ", op, ": moe_intermediate_size=", a.i64("moe_intermediate_size", 0),
                       " but experts.0.gate_proj.weight has ", I, " rows");
        const int64_t n_s = a.i64("n_shared_experts", I_shared / I);
        if (n_s * I != I_shared)
            usage_fail("op ", op, ": n_shared_experts=", n_s, " needs shared experts of width ", n_s * I,
                       ", the inputs hold width ", I_shared);
        j["moe_intermediate_size"] = I;
        j["n_shared_experts"] = n_s;
    }
    ModelConfig c;
    c.arch = Arch::DeepseekV3;
    c.source = "op " + op + " attributes";
    c.hidden_size = d;
    parse_op_attrs([&] {
        parse_moe_section(j, c.source, c);
        if (I > 0) moe_gate_config(c);  // every MoE field, as for a checkpoint's MoE layer
    });
    return c;
}

// The gate alone (op moe_gate): no experts, so only the gate's own checks.
MoeGateConfig gate_config(const OpAttrs& a, const std::string& op, int64_t E) {
    ModelConfig c = op_moe_config(a, op, E, 0, 0, 0);
    c.moe_intermediate_size = 1;  // the gate does not use it
    MoeGateConfig g;
    parse_op_attrs([&] { g = moe_gate_config(c); });
    return g;
}

// The 2-D float input `name` as float32, checking its shape.
std::vector<float> input_2d(const TensorMap& in, const std::string& op, const std::string& name, int64_t rows,
                            int64_t cols) {
    const Tensor& t = op_input(in, op, name);
    if (t.shape != Shape{rows, cols})
        fail("op ", op, ": input '", name, "' has shape ", shape_str(t.shape), ", expected [", rows, ", ", cols, "]");
    return op_f32(in, op, name, 2);
}

// The optional e_score_correction_bias: needed by noaux_tc only (absent = all zeros).
std::vector<float> gate_bias(const TensorMap& in, const std::string& op, const std::string& name,
                             const MoeGateConfig& g) {
    if (!op_optional(in, name)) return g.topk_method == MoeTopk::NoauxTc ? std::vector<float>(g.E, 0.0f) : std::vector<float>();
    std::vector<float> b = op_f32(in, op, name, 1);
    moe_gate_check(g, (int64_t)b.size());  // wrong length, or a bias the method does not use
    return b;
}

TensorMap run_moe_gate(const TensorMap& in, const OpAttrs& a) {
    const Tensor& xt = op_input(in, "moe_gate", "x");
    const Tensor& wt = op_input(in, "moe_gate", "weight");
    if (xt.rank() != 2) fail("op moe_gate: input 'x' must be [T, d], got ", shape_str(xt.shape));
    if (wt.rank() != 2) fail("op moe_gate: input 'weight' must be [E, d], got ", shape_str(wt.shape));
    const int64_t T = xt.dim(0), d = xt.dim(1), E = wt.dim(0);
    const MoeGateConfig g = gate_config(a, "moe_gate", E);
    const std::vector<float> x = op_f32(in, "moe_gate", "x", 2), w = input_2d(in, "moe_gate", "weight", E, d);
    const std::vector<float> b = gate_bias(in, "moe_gate", "bias", g);
    const MoeRouting r = moe_gate_forward(x.data(), w.data(), b.empty() ? nullptr : b.data(), T, d, g);
    return {{"topk_idx", Tensor::from_i32({T, g.K}, r.topk_idx)},
            {"topk_weight", Tensor::from_f32({T, g.K}, r.topk_weight)},
            {"scores", Tensor::from_f32({T, E}, r.scores)},
            {"margin", Tensor::from_f32({T}, r.margin)}};
}

TensorMap run_moe(const TensorMap& inputs, const OpAttrs& a) {
    const std::string op = "moe";
    const Tensor& xt = op_input(inputs, op, "x");
    const Tensor& gt = op_input(inputs, op, "gate.weight");
    if (xt.rank() != 2) fail("op moe: input 'x' must be [T, d], got ", shape_str(xt.shape));
    if (gt.rank() != 2) fail("op moe: input 'gate.weight' must be [E, d], got ", shape_str(gt.shape));
    const int64_t T = xt.dim(0), d = xt.dim(1), E = gt.dim(0);
    const Tensor& e0 = op_input(inputs, op, "experts.0.gate_proj.weight");
    if (e0.rank() != 2) fail("op moe: input 'experts.0.gate_proj.weight' must be [I, d], got ", shape_str(e0.shape));
    const Tensor* sg = op_optional(inputs, "shared_experts.gate_proj.weight");
    if (sg && sg->rank() != 2) fail("op moe: input 'shared_experts.gate_proj.weight' must be [n_s*I, d]");
    const ModelConfig c = op_moe_config(a, op, E, d, e0.dim(0), sg ? sg->dim(0) : 0);

    const MoeTensors t = moe_tensors(c, "");
    check_op_inputs(op, inputs, flatten(t), {"x"},
                    "n_routed_experts = " + std::to_string(E) + "; names are gate.weight, gate.e_score_correction_bias, "
                    "experts.{j}.{gate,up,down}_proj.weight, shared_experts.{gate,up,down}_proj.weight");
    TensorMap in = inputs;
    if (t.bias && !in.count(t.bias->name))  // the op's convenience: an absent correction bias is all zeros
        in[t.bias->name] = Tensor::from_f32(t.bias->shape, std::vector<float>(E, 0.0f));
    const TensorMapSource src(in, op);
    const MoeGateConfig g = moe_gate_config(c);
    const MoeWeights w = load_moe_weights(c, g, WeightLoader(src), "");

    const std::vector<float> x = op_f32(in, op, "x", 2);
    std::vector<float> y(T * d);
    std::vector<int64_t> load;
    const MoeRouting r = moe_forward(y.data(), x.data(), T, g, w, &load);
    std::vector<int32_t> load32(load.begin(), load.end());
    return {{"y", Tensor::from_f32({T, d}, y)},
            {"topk_idx", Tensor::from_i32({T, g.K}, r.topk_idx)},
            {"topk_weight", Tensor::from_f32({T, g.K}, r.topk_weight)},
            {"expert_load", Tensor::from_i32({E}, load32)},
            {"margin", Tensor::from_f32({T}, r.margin)}};
}

TensorMap run_eplb(const TensorMap& in, const OpAttrs& a) {
    const Tensor& wt = op_input(in, "eplb", "weight");
    if (wt.rank() != 2) fail("op eplb: input 'weight' must be [layers, E], got ", shape_str(wt.shape));
    const int64_t L = wt.dim(0), E = wt.dim(1);
    for (const char* k : {"num_replicas", "num_groups", "num_nodes", "num_gpus"})
        if (!a.has(k)) usage_fail("op eplb: attribute ", k, " is required");
    const std::vector<double> w = wt.to_f64();
    const EplbPlan p = eplb_rebalance(w.data(), L, E, a.i64("num_replicas", 0), a.i64("num_groups", 0),
                                      a.i64("num_nodes", 0), a.i64("num_gpus", 0),
                                      parse_eplb_policy(a.choice("policy", "auto", {"auto", "hierarchical", "global"})));
    return {{"phy2log", Tensor::from_i32({L, p.R}, p.phy2log)},
            {"log2phy", Tensor::from_i32({L, E, p.max_cnt}, p.log2phy)},
            {"logcnt", Tensor::from_i32({L, E}, p.logcnt)}};
}

const char* kGateHelp =
    "  num_experts_per_tok    K (required)\n"
    "  n_routed_experts       E (optional; checked against the router weight's rows)\n"
    "  n_group 1, topk_group 1\n"
    "  scoring_func           softmax (V2) | sigmoid (V3)            default softmax\n"
    "  topk_method            greedy | group_limited_greedy (group = max) | noaux_tc (group = top-2 sum of s+bias)\n"
    "  norm_topk_prob false, routed_scaling_factor 1.0\n"
    "                         noaux_tc: normalize over the selected if norm_topk_prob (any K), then scale;\n"
    "                         others (V2 remote code): if K>1 and norm_topk_prob normalize, else scale\n"
    "  dropped groups are masked with -inf (official code); ties go to the lower expert id\n";

const bool registered =
    register_op({"moe_gate", "DeepSeekMoE router: scores, group-limited top-K, combine weights",
                 std::string("inputs:\n  x       [T, d]\n  weight  [E, d]  the router (HF mlp.gate.weight)\n"
                             "  bias    [E]     e_score_correction_bias (noaux_tc only; absent = zeros)\n"
                             "attributes:\n") + kGateHelp +
                     "outputs:\n  topk_idx     I32 [T, K]  by selection score (s+bias or s) after masking, descending\n"
                     "  topk_weight  F32 [T, K]  same order, from the unbiased scores, normalized/scaled\n"
                     "  scores       F32 [T, E]  softmax or sigmoid of the logits\n"
                     "  margin       F32 [T]     smallest score gap that decided the routing (near-tie flag)\n",
                 kGateAttrs, run_moe_gate}) &&
    register_op({"moe", "one DeepSeekMoE layer: gate, routed experts (dispatch/combine), shared expert",
                 std::string("inputs (HF names without 'model.layers.{i}.mlp.'):\n  x  [T, d]\n"
                             "  gate.weight [E, d], gate.e_score_correction_bias [E] (noaux_tc; absent = zeros)\n"
                             "  experts.{j}.gate_proj.weight, experts.{j}.up_proj.weight [I, d], "
                             "experts.{j}.down_proj.weight [d, I]   (j < E)\n"
                             "  shared_experts.{gate_proj,up_proj}.weight [n_s*I, d], shared_experts.down_proj.weight "
                             "[d, n_s*I]   (optional)\n"
                             "attributes:\n") + kGateHelp +
                     "  moe_intermediate_size, n_shared_experts   optional, checked against the tensors\n"
                     "outputs:\n  y  F32 [T, d]  sum_k w_k Expert_k(x) + Shared(x)  (no residual)\n"
                     "  topk_idx I32 [T, K], topk_weight F32 [T, K], expert_load I32 [E], margin F32 [T]\n",
                 [] {
                     std::vector<std::string> v = kGateAttrs;
                     v.push_back("moe_intermediate_size");
                     v.push_back("n_shared_experts");
                     return v;
                 }(),
                 run_moe}) &&
    register_op({"eplb", "expert-parallel load balancer: replicate heavy experts and place replicas on GPUs",
                 "inputs:\n  weight  [layers, E]  measured load per expert (any numeric dtype)\n"
                 "attributes:\n  num_replicas  R physical experts (required, multiple of num_gpus, >= E)\n"
                 "  num_groups, num_nodes, num_gpus   (required)\n"
                 "  policy        auto (hierarchical if num_groups % num_nodes == 0, else global) |"
                 " hierarchical | global\n"
                 "outputs:\n  phy2log  I32 [layers, R]           logical expert of each physical slot (GPU-major)\n"
                 "  log2phy  I32 [layers, E, max_cnt]  physical slots of each expert, -1 padded\n"
                 "  logcnt   I32 [layers, E]           replicas per expert\n",
                 {"num_replicas", "num_groups", "num_nodes", "num_gpus", "policy"}, run_eplb});

}  // namespace
}  // namespace dsref
