// test_moe.cpp — covers ref/moe/moe.cpp and the `moe` op (ref/ops/ops_moe.cpp): a hand-built MoE whose output
// is worked out by hand, dispatch/combine against a direct per-token loop, thread independence, the
// golden layers of data/moe (float64 oracle moe_ref.py) with the wrong-rule sensitivity checks, the
// FeedForwardBlock made from a checkpoint (trace names), and bad input.
#include <catch2/catch.hpp>
#include <cmath>

#include "core/error.h"
#include "core/swiglu.h"
#include "io/safetensors.h"
#include "model/moe_block.h"
#include "moe_fixtures.h"
#include "ops/op_registry.h"
#include "test_util.h"

using namespace dsref;
using dsref_test::v3_gate;

namespace {

double silu_times(double a) { return a * a / (1.0 + std::exp(-a)); }  // silu(a)·a

std::vector<float> unit_row(int64_t n, int64_t j, float v = 1.0f) {
    std::vector<float> r(n, 0.0f);
    r[j] = v;
    return r;
}

MoeWeights random_weights(int64_t E, int64_t d, int64_t I, int64_t I_shared, bool bias, uint64_t seed) {
    MoeWeights w;
    w.d = d;
    w.I = I;
    w.I_shared = I_shared;
    w.gate = dsref_test::randn(E * d, seed, 1.0f / std::sqrt((float)d));
    if (bias) w.bias = dsref_test::randn(E, seed + 1, 0.1f);
    for (int64_t e = 0; e < E; e++) {
        w.w_gate.push_back(dsref_test::randn(I * d, seed + 10 + 3 * e, 1.0f / std::sqrt((float)d)));
        w.w_up.push_back(dsref_test::randn(I * d, seed + 11 + 3 * e, 1.0f / std::sqrt((float)d)));
        w.w_down.push_back(dsref_test::randn(d * I, seed + 12 + 3 * e, 1.0f / std::sqrt((float)I)));
    }
    if (I_shared > 0) {
        w.shared_gate = dsref_test::randn(I_shared * d, seed + 2, 1.0f / std::sqrt((float)d));
        w.shared_up = dsref_test::randn(I_shared * d, seed + 3, 1.0f / std::sqrt((float)d));
        w.shared_down = dsref_test::randn(d * I_shared, seed + 4, 1.0f / std::sqrt((float)I_shared));
    }
    return w;
}

// The MoE written the obvious way: for every token, for every chosen expert, one SwiGLU on one row.
// (One thread: hundreds of one-row products gain nothing from a parallel region each.)
std::vector<float> direct_moe(const std::vector<float>& x, int64_t T, const MoeRouting& r, const MoeWeights& w) {
    dsref_test::ThreadScope one(1);
    const int64_t d = w.d;
    std::vector<float> y(T * d, 0.0f), row(d), shared(d);
    for (int64_t t = 0; t < T; t++) {
        std::vector<double> acc(d, 0.0);
        for (int64_t k = 0; k < r.K; k++) {
            const int32_t e = r.topk_idx[t * r.K + k];
            swiglu_forward(row.data(), x.data() + t * d, w.w_gate[e].data(), w.w_up[e].data(), w.w_down[e].data(), 1, d,
                           w.I);
            for (int64_t c = 0; c < d; c++) acc[c] += (double)r.topk_weight[t * r.K + k] * row[c];
        }
        if (w.I_shared > 0) {
            swiglu_forward(shared.data(), x.data() + t * d, w.shared_gate.data(), w.shared_up.data(),
                           w.shared_down.data(), 1, d, w.I_shared);
            for (int64_t c = 0; c < d; c++) acc[c] += shared[c];
        }
        for (int64_t c = 0; c < d; c++) y[t * d + c] = (float)acc[c];
    }
    return y;
}

}  // namespace

TEST_CASE("a hand-built MoE (coordinate experts, identity router) gives the hand-computed output", "[ref][moe]") {
    // d = 4, E = 4 experts of width 1. Router = identity, so the logits are x itself.
    // Expert e reads and writes coordinate e: Expert_e(x) = c_e · silu(x_e)·x_e · ê_e, c = [1, 2, 3, 4].
    // Shared expert (width 1): reads coordinate 1, writes coordinate 3, weight 1.
    // Gate: softmax, greedy top-2, routed_scaling_factor 16, no normalization (V2 rule).
    const int64_t d = 4, E = 4;
    MoeWeights w;
    w.d = d;
    w.I = 1;
    w.I_shared = 1;
    for (int64_t e = 0; e < E; e++) {
        const std::vector<float> r = unit_row(d, e);
        w.gate.insert(w.gate.end(), r.begin(), r.end());
        w.w_gate.push_back(r);
        w.w_up.push_back(r);
        w.w_down.push_back(unit_row(d, e, (float)(e + 1)));  // [d, 1] column = c_e·ê_e
    }
    w.shared_gate = unit_row(d, 1);
    w.shared_up = unit_row(d, 1);
    w.shared_down = unit_row(d, 3);
    MoeGateConfig g;
    g.E = E;
    g.K = 2;
    g.scoring = MoeScoring::Softmax;
    g.topk_method = MoeTopk::Greedy;
    g.routed_scaling_factor = 16.0;

    const std::vector<float> x = {3, 1, 2, 0,    // token 0 prefers experts 0 (logit 3) and 2 (logit 2)
                                  0, 2, -1, 1};  // token 1 prefers experts 1 (2) and 3 (1)
    std::vector<float> y(2 * d);
    std::vector<int64_t> load;
    const MoeRouting r = moe_forward(y.data(), x.data(), 2, g, w, &load);
    CHECK(r.topk_idx == std::vector<int32_t>{0, 2, 1, 3});
    CHECK(load == std::vector<int64_t>{1, 1, 1, 1});

    const double Z0 = std::exp(3) + std::exp(1) + std::exp(2) + 1, Z1 = 1 + std::exp(2) + std::exp(-1) + std::exp(1);
    const double y0[4] = {16 * std::exp(3) / Z0 * 1 * silu_times(3), 0, 16 * std::exp(2) / Z0 * 3 * silu_times(2),
                          silu_times(1)};  // the shared expert is NOT scaled by 16
    const double y1[4] = {0, 16 * std::exp(2) / Z1 * 2 * silu_times(2), 0,
                          16 * std::exp(1) / Z1 * 4 * silu_times(1) + silu_times(2)};
    for (int c = 0; c < 4; c++) {
        CHECK(y[c] == Approx(y0[c]).margin(1e-6).epsilon(1e-6));  // float32 rounding of exp and products only
        CHECK(y[d + c] == Approx(y1[c]).margin(1e-6).epsilon(1e-6));
    }
}

TEST_CASE("dispatch: counts, prefix-sum offsets and contiguous token-ordered expert blocks", "[ref][moe][dispatch]") {
    // T = 3, K = 2, E = 4: token 0 → {2, 0}, token 1 → {2, 3}, token 2 → {0, 2}
    const int32_t idx[6] = {2, 0, 2, 3, 0, 2};
    const MoeDispatch p = moe_dispatch_plan(idx, 3, 2, 4);
    CHECK(p.counts == std::vector<int64_t>{2, 0, 3, 1});
    CHECK(p.offsets == std::vector<int64_t>{0, 2, 2, 5, 6});
    CHECK(p.slot_token == std::vector<int64_t>{0, 2, 0, 1, 2, 1});  // expert 0: t0, t2 · expert 2: t0, t1, t2 · 3: t1
    CHECK(p.token_slot == std::vector<int64_t>{2, 0, 3, 5, 1, 4});
    // Permute then combine with weights 1 and identity experts gives K·x back.
    const std::vector<float> x = {1, 2, 3, 4, 5, 6};  // [3, 2]
    std::vector<float> xs(6 * 2), y(3 * 2);
    moe_permute(xs.data(), x.data(), p, 2);
    CHECK(xs == std::vector<float>{1, 2, 5, 6, 1, 2, 3, 4, 5, 6, 3, 4});
    const std::vector<float> ones(6, 1.0f);
    moe_combine(y.data(), xs.data(), ones.data(), p, 2);
    CHECK(y == std::vector<float>{2, 4, 6, 8, 10, 12});
    const int32_t bad[2] = {0, 4};
    CHECK_THROWS_WITH(moe_dispatch_plan(bad, 1, 2, 4), Catch::Contains("topk_idx[0, 1] = 4"));
}

TEST_CASE("dispatch/combine equals a direct per-token loop", "[ref][moe][dispatch]") {
    const int64_t T = 37, d = 40, E = 16, I = 24;
    const MoeWeights w = random_weights(E, d, I, 2 * I, true, 100);
    const std::vector<float> x = dsref_test::randn(T * d, 7);
    const MoeGateConfig g = v3_gate(E, 3, 4, 2);
    std::vector<float> y(T * d);
    std::vector<int64_t> load;
    const MoeRouting r = moe_forward(y.data(), x.data(), T, g, w, &load);
    int64_t total = 0;
    for (int64_t c : load) total += c;
    CHECK(total == T * 3);
    const std::vector<float> ref = direct_moe(x, T, r, w);
    // Same math, different product shapes (one row vs a whole expert block): Eigen may sum in a
    // different order, so allow float32 rounding of d- and I-term dot products (~1e-6 relative).
    CHECK(dsref_test::max_abs_diff(y, ref) < 1e-5);
}

TEST_CASE("the MoE layer is bit-identical at 1 and 2 threads", "[ref][moe]") {
    // T·K·d = 33,280 and T·E = 4,160: large enough that permute/combine take their parallel path
    // (kMoeParallelMin = 32,768); the experts always run in parallel.
    const int64_t T = 520, d = 32, E = 8, I = 16;
    const MoeWeights w = random_weights(E, d, I, I, true, 200);
    const std::vector<float> x = dsref_test::randn(T * d, 8);
    const MoeGateConfig g = v3_gate(E, 2, 4, 2);
    std::vector<float> y1(T * d), y2(T * d);
    {
        dsref_test::ThreadScope one(1);
        moe_forward(y1.data(), x.data(), T, g, w);
    }
    {
        dsref_test::ThreadScope two(2);
        moe_forward(y2.data(), x.data(), T, g, w);
    }
    CHECK(y1 == y2);
}

// ---- golden layers from data/moe (moe_ref.py, float64) -----------------------------------------------------

namespace {
struct GoldenCase {
    TensorMap inputs, expected;  // op inputs; expected.* and wrong.* tensors
    OpAttrs attrs;
};

GoldenCase load_case(const std::string& name) {
    const std::string path = "data/moe/" + name + ".safetensors";
    GoldenCase c;
    for (auto& kv : read_safetensors(path)) {
        const bool ref = kv.first.rfind("expected.", 0) == 0 || kv.first.rfind("wrong.", 0) == 0;
        (ref ? c.expected : c.inputs)[kv.first] = kv.second;
    }
    const SafetensorsFile file(path);
    for (const auto& kv : file.metadata()) c.attrs.set(kv.first, kv.second);
    return c;
}

// Relative to max(1, max|y|): float32 products over d ≤ 32 and I ≤ 16 terms and float32 gate weights,
// combined over K ≤ 4 experts plus the shared one. Measured at most 2.4e-7 on these cases (v3); 2e-6
// leaves ~10x margin. Every wrong rule moves y by more than 1e-2 (asserted by the generator and again
// below), far above this tolerance.
constexpr double kGoldenTol = 2e-6;

double max_abs(const std::vector<double>& v) {
    double m = 0;
    for (double a : v) m = std::max(m, std::fabs(a));
    return m;
}

double max_err(const std::vector<float>& got, const std::vector<double>& ref) {
    double m = 0;
    for (size_t i = 0; i < got.size(); i++) m = std::max(m, std::fabs((double)got[i] - ref[i]));
    return m;
}
}  // namespace

TEST_CASE("golden MoE layers (V3, V3 negative bias, V3 K=1, V2, V2-Lite, V2 norm) match the float64 oracle",
          "[golden][moe]") {
    for (const char* name : {"v3", "v3_negbias", "v3_k1", "v2", "v2_lite", "v2_norm"}) {
        INFO("case " << name);
        const GoldenCase c = load_case(name);
        const TensorMap out = run_op("moe", c.inputs, c.attrs);
        const std::vector<double> y_ref = c.expected.at("expected.y").to_f64();
        const double tol = kGoldenTol * std::max(1.0, max_abs(y_ref));
        const std::vector<float> y = out.at("y").to_f32();
        REQUIRE(y.size() == y_ref.size());
        const double err = max_err(y, y_ref);
        CHECK(err < tol);
        CHECK(out.at("topk_idx").to_i64() == c.expected.at("expected.topk_idx").to_i64());
        CHECK(out.at("expert_load").to_i64() == c.expected.at("expected.expert_load").to_i64());

        // Sensitivity: under each deliberately wrong rule the oracle's y is far outside the tolerance,
        // so the comparison above would catch an engine (or a dsref) that used it.
        for (const auto& kv : c.expected) {
            const std::string& n = kv.first;
            if (n.rfind("wrong.", 0) != 0 || n.size() < 2 || n.substr(n.size() - 2) != ".y") continue;
            INFO("wrong rule " << n);
            CHECK(max_err(y, kv.second.to_f64()) > 100 * tol);
        }
    }
}

TEST_CASE("golden sensitivity: each wrong rule has its case", "[golden][moe]") {
    // bias in the weights, no renormalization, max instead of top-2 sum, 0.0 masking (V3);
    // softmax after masking (V2); normalize-and-scale for V2 (the V3 rule).
    CHECK(load_case("v3").expected.count("wrong.bias_in_weights.y"));
    CHECK(load_case("v3").expected.count("wrong.no_renorm.y"));
    CHECK(load_case("v3").expected.count("wrong.group_max.y"));
    CHECK(load_case("v3_negbias").expected.count("wrong.zero_mask.y"));
    CHECK(load_case("v3_k1").expected.count("wrong.no_renorm.y"));
    CHECK(load_case("v2").expected.count("wrong.softmax_after_mask.y"));
    CHECK(load_case("v2_norm").expected.count("wrong.v3_rule.y"));
}

// ---- the FeedForwardBlock, from a checkpoint directory -------------------------------------------------

namespace {
// The v3 golden case as decoder layer 3 of a checkpoint, and a config that matches it.
ModelConfig v3_config() {
    ModelConfig c;
    c.arch = Arch::DeepseekV3;
    c.source = "test config";
    c.hidden_size = 32;
    c.n_routed_experts = 16;
    c.n_shared_experts = 1;
    c.num_experts_per_tok = 4;
    c.moe_intermediate_size = 8;
    c.n_group = 4;
    c.topk_group = 2;
    c.scoring_func = MoeScoring::Sigmoid;
    c.topk_method = MoeTopk::NoauxTc;
    c.norm_topk_prob = true;
    c.routed_scaling_factor = 2.5;
    return c;
}

TensorMap as_layer(const TensorMap& inputs, const std::string& prefix) {
    TensorMap t;
    for (const auto& kv : inputs)
        if (kv.first != "x") t[prefix + "mlp." + kv.first] = kv.second;
    return t;
}
}  // namespace

TEST_CASE("make_moe_block reads HF names, matches the golden layer and records topk_idx/topk_weight",
          "[golden][moe][block]") {
    const GoldenCase c = load_case("v3");
    dsref_test::TempDir dir;
    write_checkpoint(dir.path, as_layer(c.inputs, "model.layers.3."), 2);  // two shards
    const ModelConfig cfg = v3_config();
    const Checkpoint ckpt(dir.path);
    const WeightLoader loader(ckpt, cfg);
    const std::unique_ptr<FeedForwardBlock> block = make_moe_block(cfg, loader, "model.layers.3.mlp.");
    const Tensor& xt = c.inputs.at("x");
    const int64_t T = xt.dim(0), d = xt.dim(1);
    std::vector<float> y(T * d);
    Trace trace;
    block->forward(y.data(), xt.f32(), T, &trace, 3);
    const std::vector<double> y_ref = c.expected.at("expected.y").to_f64();
    CHECK(max_err(y, y_ref) < kGoldenTol * std::max(1.0, max_abs(y_ref)));
    REQUIRE(trace.tensors().count("topk_idx.3"));
    REQUIRE(trace.tensors().count("topk_weight.3"));
    const Tensor& idx = trace.tensors().at("topk_idx.3");
    CHECK(idx.dtype == DType::I32);
    CHECK(idx.shape == Shape{T, 4});
    CHECK(idx.to_i64() == c.expected.at("expected.topk_idx").to_i64());
    const Tensor& w = trace.tensors().at("topk_weight.3");
    CHECK(w.dtype == DType::F32);
    CHECK(w.shape == Shape{T, 4});
    // A filtered trace keeps only what it was asked for; a null trace is fine.
    Trace only(std::set<std::string>{"topk_weight.3"});
    block->forward(y.data(), xt.f32(), T, &only, 3);
    CHECK(only.tensors().size() == 1);
    block->forward(y.data(), xt.f32(), T, nullptr, 3);
}

TEST_CASE("bad MoE checkpoints are refused, naming the tensor", "[ref][moe][block][errors]") {
    const GoldenCase c = load_case("v3");
    const ModelConfig cfg = v3_config();
    const std::string p = "model.layers.3.";
    {  // a missing expert tensor
        TensorMap t = as_layer(c.inputs, p);
        t.erase(p + "mlp.experts.5.up_proj.weight");
        dsref_test::TempDir dir;
        write_checkpoint(dir.path, t, 1);
        const Checkpoint ckpt(dir.path);
        const WeightLoader loader(ckpt, cfg);
        CHECK_THROWS_WITH(make_moe_block(cfg, loader, p + "mlp."), Catch::Contains("mlp.experts.5.up_proj.weight"));
    }
    {  // a correction bias of the wrong length
        TensorMap t = as_layer(c.inputs, p);
        t[p + "mlp.gate.e_score_correction_bias"] = Tensor::from_f32({15}, std::vector<float>(15, 0.0f));
        dsref_test::TempDir dir;
        write_checkpoint(dir.path, t, 1);
        const Checkpoint ckpt(dir.path);
        const WeightLoader loader(ckpt, cfg);
        CHECK_THROWS_WITH(make_moe_block(cfg, loader, p + "mlp."),
                          Catch::Contains("e_score_correction_bias") && Catch::Contains("[15]"));
    }
    {  // a missing correction bias under noaux_tc
        TensorMap t = as_layer(c.inputs, p);
        t.erase(p + "mlp.gate.e_score_correction_bias");
        dsref_test::TempDir dir;
        write_checkpoint(dir.path, t, 1);
        const Checkpoint ckpt(dir.path);
        const WeightLoader loader(ckpt, cfg);
        CHECK_THROWS_WITH(make_moe_block(cfg, loader, p + "mlp."), Catch::Contains("noaux_tc needs it"));
    }
    {  // num_experts_per_tok larger than the experts topk_group allows (2 groups of 4 = 8)
        ModelConfig bad = cfg;
        bad.num_experts_per_tok = 9;
        dsref_test::TempDir dir;
        write_checkpoint(dir.path, as_layer(c.inputs, p), 1);
        const Checkpoint ckpt(dir.path);
        const WeightLoader loader(ckpt, bad);
        CHECK_THROWS_WITH(make_moe_block(bad, loader, p + "mlp."), Catch::Contains("num_experts_per_tok = 9"));
    }
}

TEST_CASE("op moe: missing, unexpected and mis-shaped tensors are refused", "[ref][moe][errors]") {
    const GoldenCase c = load_case("v3");
    TensorMap in = c.inputs;
    in.erase("experts.5.up_proj.weight");
    CHECK_THROWS_WITH(run_op("moe", in, c.attrs), Catch::Contains("missing input tensor 'experts.5.up_proj.weight'"));
    in = c.inputs;
    in["experts.16.up_proj.weight"] = c.inputs.at("experts.0.up_proj.weight");
    CHECK_THROWS_WITH(run_op("moe", in, c.attrs), Catch::Contains("unexpected input tensor 'experts.16.up_proj.weight'"));
    in = c.inputs;
    in["gate.e_score_correction_bias"] = Tensor::from_f32({15}, std::vector<float>(15, 0.0f));
    CHECK_THROWS_WITH(run_op("moe", in, c.attrs), Catch::Contains("'gate.e_score_correction_bias' has shape [15], expected [16]"));
    in = c.inputs;
    in["experts.2.down_proj.weight"] = c.inputs.at("experts.2.up_proj.weight");  // [I, d] instead of [d, I]
    CHECK_THROWS_WITH(run_op("moe", in, c.attrs), Catch::Contains("'experts.2.down_proj.weight' has shape [8, 32]"));
    OpAttrs a = c.attrs;
    a.set("num_experts_per_tok", "9");
    CHECK_THROWS_WITH(run_op("moe", c.inputs, a), Catch::Contains("num_experts_per_tok = 9"));
    a = c.attrs;
    a.set("n_shared_experts", "2");
    CHECK_THROWS_AS(run_op("moe", c.inputs, a), UsageError);
}
