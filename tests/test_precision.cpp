// test_precision.cpp — precision emulation (ref/model/precision.h, `dsref forward --emulate`):
//   - in Emulation::None every rounding point is dsref's float32 function, bit for bit (the default
//     forward is unchanged);
//   - the rounding points, on inputs where the references' choices give different bits;
//   - hf-bf16 against transformers' own bf16 forward (data/golden/hf/*/expected_bf16.safetensors), with the
//     three target numbers printed (argmax agreement, routing agreement, mean |Δlogits|);
//   - official-fp8 against fp8_quant_act + fp8_gemm run op by op (dsref::run_op) on one dense MLP layer,
//     one MoE layer and the first projections of one MLA layer, bit for bit;
//   - the modes refuse what they cannot emulate, naming it.
#include <catch2/catch.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/attention.h"
#include "core/linear.h"
#include "core/rmsnorm.h"
#include "core/swiglu.h"
#include "core/tensor.h"
#include "io/checkpoint_layout.h"
#include "io/safetensors.h"
#include "model/model.h"
#include "model/moe_block.h"
#include "model_test_util.h"
#include "ops/op_registry.h"
#include "test_util.h"
#include "tools/init.h"

using namespace dsref;
using json = nlohmann::json;

namespace {

PrecisionPolicy policy(Emulation e) {
    PrecisionPolicy p;
    p.mode = e;
    return p;
}

std::vector<float> bf16_values(size_t n, uint64_t seed, float scale = 1.0f) {
    std::vector<float> v = dsref_test::randn(n, seed, scale);
    for (float& x : v) x = bf16_round(x);
    return v;
}

// How dsref with `mode` agrees with transformers' bf16 forward on one data/golden/hf case.
struct Agreement {
    int64_t tokens = 0, argmax = 0, pairs = 0, routed_same = 0;
    double mean_abs = 0;
    double argmax_frac() const { return (double)argmax / tokens; }
    double routing_frac() const { return pairs ? (double)routed_same / pairs : 1.0; }
};

Agreement against_hf_bf16(const std::string& dir, Emulation mode) {
    const TensorMap g = read_safetensors(dir + "/expected_bf16.safetensors");
    const std::vector<int32_t> tokens = dsref_test::golden_tokens(g);
    ModelOptions o;
    o.fwd.precision.mode = mode;
    Model m(dir, o);
    Trace trace;
    const std::vector<float> logits = m.prefill(tokens, &trace);
    const std::vector<double> want = g.at("logits").to_f64();
    const int64_t T = tokens.size(), V = m.config().vocab_size;
    Agreement a;
    a.tokens = T;
    for (int64_t t = 0; t < T; t++) {
        a.argmax += std::max_element(&logits[t * V], &logits[(t + 1) * V]) - &logits[t * V] ==
                    std::max_element(&want[t * V], &want[(t + 1) * V]) - &want[t * V];
        for (int64_t v = 0; v < V; v++) a.mean_abs += std::fabs(logits[t * V + v] - want[t * V + v]);
    }
    a.mean_abs /= (double)(T * V);
    const int64_t K = m.config().num_experts_per_tok;
    for (const auto& kv : g) {
        if (kv.first.rfind("topk_idx.", 0) != 0) continue;
        std::vector<int64_t> ours = trace.tensors().at(kv.first).to_i64();
        const std::vector<int64_t> hf = kv.second.to_i64();  // each row sorted by expert id
        for (int64_t t = 0; t < T; t++) {
            std::sort(ours.begin() + t * K, ours.begin() + (t + 1) * K);
            a.routed_same += std::equal(ours.begin() + t * K, ours.begin() + (t + 1) * K, hf.begin() + t * K);
            a.pairs++;
        }
    }
    return a;
}

}  // namespace

TEST_CASE("with no emulation every rounding point is the float32 function, bit for bit", "[precision]") {
    const PrecisionPolicy p;  // Emulation::None
    const int64_t T = 5, d = 24, N = 16, H = 4, H_kv = 2, hd = 6, I = 20;
    const std::vector<float> x = dsref_test::randn(T * d, 1), w = dsref_test::randn(N * d, 2), b = dsref_test::randn(N, 3);
    std::vector<float> y1(T * N), y2(T * N);
    linear_forward(y1.data(), x.data(), w.data(), T, d, N);
    for (int64_t t = 0; t < T; t++)
        for (int64_t n = 0; n < N; n++) y1[t * N + n] += b[n];
    p.linear(y2.data(), x.data(), w, T, d, N, nullptr, b.data());
    CHECK(y1 == y2);
    const std::vector<float> nw = dsref_test::randn(d, 4);
    std::vector<float> n1(T * d), n2(T * d);
    rmsnorm_forward(n1.data(), x.data(), nw.data(), T, d, 1e-6f);
    p.rmsnorm(n2.data(), x.data(), nw.data(), T, d, 1e-6f);
    CHECK(n1 == n2);
    std::vector<float> h1 = x, h2 = x;
    for (size_t j = 0; j < h1.size(); j++) h1[j] += n1[j];
    p.residual_add(h2.data(), n1.data(), T * d);
    CHECK(h1 == h2);
    const std::vector<int64_t> pos = {0, 1, 2, 7, 30};
    const std::vector<double> inv = rope_inv_freq(hd, 10000, RopeScaling{});
    for (RopeLayout l : {RopeLayout::Half, RopeLayout::Interleaved}) {
        std::vector<float> r1 = dsref_test::randn(T * H * hd, 5), r2 = r1;
        rope_forward(r1.data(), T, H, hd, H * hd, hd, pos.data(), inv, l);
        p.rope(r2.data(), T, H, hd, H * hd, hd, pos.data(), inv, l);
        CHECK(r1 == r2);
    }
    const std::vector<float> q = dsref_test::randn(T * H * hd, 6), k = dsref_test::randn(T * H_kv * hd, 7),
                             v = dsref_test::randn(T * H_kv * hd, 8);
    std::vector<float> o1(T * H * hd), o2(T * H * hd);
    attention_forward(o1.data(), q.data(), k.data(), v.data(), T, T, H, H_kv, hd, hd, 0.4f, true, 0);
    p.attention(o2.data(), q.data(), k.data(), v.data(), T, T, H, H_kv, hd, hd, 0.4f, 0);
    CHECK(o1 == o2);
    const std::vector<float> g = dsref_test::randn(I * d, 9), u = dsref_test::randn(I * d, 10), dn = dsref_test::randn(d * I, 11);
    std::vector<float> s1(T * d), s2(T * d);
    swiglu_forward(s1.data(), x.data(), g.data(), u.data(), dn.data(), T, d, I);
    p.swiglu(s2.data(), x.data(), g, u, dn, T, d, I);
    CHECK(s1 == s2);
    std::vector<float> r = x;
    p.round(r.data(), (int64_t)r.size());
    CHECK(r == x);
}

TEST_CASE("the rounding points round where each reference does", "[precision]") {
    const PrecisionPolicy hf = policy(Emulation::HfBf16), off = policy(Emulation::OfficialBf16);
    // bf16 keeps 8 significant bits: 1 + 2^-8 is a tie (to 1, even), 1 + 3·2^-8 a tie (to 1 + 2^-6, even)
    std::vector<float> t = {1.0f + 1.0f / 256, 1.0f + 3.0f / 256, -2.0f - 5.0f / 512};
    hf.round(t.data(), 3);
    CHECK(t == std::vector<float>{1.0f, 1.0f + 4.0f / 256, -2.0f - 4.0f / 256});
    // RMSNorm: transformers rounds x·rsqrt before the weight multiply, the official F.rms_norm after it.
    // On this row the two orders give different bits.
    const int64_t d = 4;
    const std::vector<float> x = {1.5390625f, -0.29296875f, -2.171875f, 0.5703125f},
                             w = {0.890625f, 0.859375f, 1.0390625f, 1.0859375f};  // bf16 values
    std::vector<float> y_hf(d), y_off(d), want_hf(d), want_off(d);
    hf.rmsnorm(y_hf.data(), x.data(), w.data(), 1, d, 1e-6f);
    off.rmsnorm(y_off.data(), x.data(), w.data(), 1, d, 1e-6f);
    double ss = 0;
    for (float v : x) ss += (double)v * v;
    const float inv = 1.0f / std::sqrt((float)(ss / d) + 1e-6f);
    for (int64_t i = 0; i < d; i++) {
        want_hf[i] = bf16_round(w[i] * bf16_round(x[i] * inv));
        want_off[i] = bf16_round(x[i] * inv * w[i]);
    }
    CHECK(y_hf == want_hf);
    CHECK(y_off == want_off);
    CHECK(want_hf != want_off);
    // residual add: h + y rounded
    std::vector<float> h = {1.0f};
    const std::vector<float> y = {1.0f / 512};
    hf.residual_add(h.data(), y.data(), 1);
    CHECK(h[0] == 1.0f);  // 1 + 2^-9 rounds back to 1 in bf16 (float32 would keep it)
    // RoPE: at position 0 the rotation is the identity in both; the rounded outputs stay bf16 values
    const std::vector<double> inv_freq = rope_inv_freq(4, 10000, RopeScaling{});
    const int64_t p0 = 0, p5 = 5;
    std::vector<float> r = {0.5f, -1.25f, 2.0f, 0.375f}, r0 = r;
    hf.rope(r.data(), 1, 1, 4, 4, 4, &p0, inv_freq, RopeLayout::Half);
    CHECK(r == r0);
    std::vector<float> a = bf16_values(4, 3), b = a;
    hf.rope(a.data(), 1, 1, 4, 4, 4, &p5, inv_freq, RopeLayout::Interleaved);
    off.rope(b.data(), 1, 1, 4, 4, 4, &p5, inv_freq, RopeLayout::Interleaved);
    for (float v : a) CHECK(v == bf16_round(v));
    for (float v : b) CHECK(v == bf16_round(v));
}

// The targets: against transformers 5's own bf16 forward (eager attention and experts), --emulate hf-bf16
// reaches argmax agreement >= 97 %, routing identical on >= 95 % of (token, MoE layer) pairs, and mean
// |Δlogits| <= 5e-3; float32 (no emulation) is shown next to it. Logits of size ~3 have a bf16 ulp of
// 1.6e-2, so the mean target means that nearly every logit is the same bf16 number.
TEST_CASE("--emulate hf-bf16 reproduces transformers' bf16 forward", "[precision][golden][hf]") {
    for (const char* name : {"v3_yarn", "v3_flat", "llama_theta", "llama3_rope", "qwen2_untied", "qwen2_tied"}) {
        INFO("case " << name);
        const std::string dir = std::string("data/golden/hf/") + name;
        const Agreement f32 = against_hf_bf16(dir, Emulation::None), emu = against_hf_bf16(dir, Emulation::HfBf16);
        char routing[64] = "no MoE", routing32[16] = "-";
        if (emu.pairs) {
            std::snprintf(routing, sizeof routing, "%5.1f %% (%lld/%lld)", 100 * emu.routing_frac(),
                          (long long)emu.routed_same, (long long)emu.pairs);
            std::snprintf(routing32, sizeof routing32, "%5.1f %%", 100 * f32.routing_frac());
        }
        std::printf("report: %-12s vs transformers bf16: hf-bf16 argmax %5.1f %% (%lld/%lld), routing %s, "
                    "mean |dlogits| %.1e;  float32: %5.1f %%, %s, %.1e\n",
                    name, 100 * emu.argmax_frac(), (long long)emu.argmax, (long long)emu.tokens, routing,
                    emu.mean_abs, 100 * f32.argmax_frac(), routing32, f32.mean_abs);
        CHECK(emu.argmax_frac() >= 0.97);
        CHECK(emu.routing_frac() >= 0.95);
        CHECK(emu.mean_abs <= 5e-3);
        CHECK(emu.mean_abs * 5 < f32.mean_abs);  // the emulation, not luck, closes the gap
    }
}

namespace {
// A tiny FP8 DeepSeek-V3 whose FP8 projections all have inputs of 128 (act_quant's group), with V3.1's
// ue8m0 activation scales: layer 0 dense, layer 1 MoE (8 experts in 2 groups, top-2, a shared expert).
json fp8_v3() {
    return {{"architectures", {"DeepseekV3ForCausalLM"}}, {"model_type", "deepseek_v3"}, {"hidden_size", 128},
            {"intermediate_size", 256}, {"moe_intermediate_size", 128}, {"num_hidden_layers", 2},
            {"num_attention_heads", 2}, {"n_shared_experts", 1}, {"n_routed_experts", 8}, {"num_experts_per_tok", 2},
            {"n_group", 2}, {"topk_group", 1}, {"first_k_dense_replace", 1}, {"routed_scaling_factor", 2.5},
            {"q_lora_rank", 128}, {"kv_lora_rank", 128}, {"qk_rope_head_dim", 16}, {"qk_nope_head_dim", 32},
            {"v_head_dim", 64}, {"vocab_size", 64}, {"rms_norm_eps", 1e-6},
            {"rope_parameters", {{"rope_type", "yarn"}, {"rope_theta", 10000.0}, {"factor", 4.0},
                                 {"original_max_position_embeddings", 32}, {"mscale", 1.0}, {"mscale_all_dim", 1.0}}},
            {"quantization_config", {{"quant_method", "fp8"}, {"fmt", "e4m3"}, {"activation_scheme", "dynamic"},
                                     {"weight_block_size", {128, 128}}, {"scale_fmt", "ue8m0"}}}};
}

// One FP8 projection op by op: act_quant (ue8m0) → fp8_gemm (tensorcore) → bf16.  x: [T, K] → [T, N]
std::vector<float> fp8_projection_ops(const std::vector<float>& x, int64_t T, int64_t K, const TensorMap& ckpt,
                                      const std::string& weight) {
    OpAttrs qa;
    qa.set("scale_fmt", "ue8m0");
    const TensorMap aq = run_op("fp8_quant_act", {{"x", Tensor::from_f32({T, K}, x)}}, qa);
    OpAttrs ga;
    ga.set("accum", "tensorcore");
    const TensorMap c = run_op("fp8_gemm", {{"a", aq.at("q")}, {"a_scale", aq.at("scale")}, {"b", ckpt.at(weight)},
                                            {"b_scale", ckpt.at(weight + "_scale_inv")}},
                               ga);
    std::vector<float> y = c.at("c").to_f32();
    for (float& v : y) v = bf16_round(v);
    return y;
}

// silu(gate) R, · up R, then down: the MLP of the official code, op by op.  x: [T, d] → [T, d]
std::vector<float> fp8_mlp_ops(const std::vector<float>& x, int64_t T, int64_t d, int64_t I, const TensorMap& ckpt,
                               const std::string& p) {
    std::vector<float> g = fp8_projection_ops(x, T, d, ckpt, p + "gate_proj.weight");
    const std::vector<float> u = fp8_projection_ops(x, T, d, ckpt, p + "up_proj.weight");
    for (int64_t i = 0; i < T * I; i++)
        g[i] = bf16_round(bf16_round((float)((double)g[i] / (1.0 + std::exp(-(double)g[i])))) * u[i]);
    return fp8_projection_ops(g, T, I, ckpt, p + "down_proj.weight");
}
}  // namespace

TEST_CASE("official-fp8 equals fp8_quant_act + fp8_gemm run op by op", "[precision][fp8]") {
    dsref_test::TempDir dir;
    const ModelConfig c = parse_config(fp8_v3(), "fp8 test config");
    init_checkpoint(c, InitOptions{11, DType::BF16, 1}, dir.path);
    const TensorMap ckpt = read_safetensors(dir.file("model.safetensors"));
    REQUIRE(ckpt.at("model.layers.0.mlp.up_proj.weight").dtype == DType::F8_E4M3);
    const Checkpoint cp(dir.path);
    const WeightLoader wl(cp, c);
    PrecisionPolicy p = policy(Emulation::OfficialFp8);
    p.scale_fmt = Fp8ScaleFmt::Ue8m0;
    const int64_t T = 7, d = 128;
    const std::vector<float> x = bf16_values(T * d, 21);

    SECTION("the dense MLP of layer 0") {
        std::vector<float> y(T * d);
        make_dense_mlp_block(c, wl, mlp_prefix(0), 256, p)->forward(y.data(), x.data(), T, nullptr, 0);
        CHECK(y == fp8_mlp_ops(x, T, d, 256, ckpt, mlp_prefix(0)));
    }
    SECTION("the MoE layer 1: its experts and shared expert, with the block's own routing") {
        std::vector<float> y(T * d);
        Trace trace;
        make_moe_block(c, wl, mlp_prefix(1), p)->forward(y.data(), x.data(), T, &trace, 1);
        const std::vector<int64_t> idx = trace.tensors().at("topk_idx.1").to_i64();
        const std::vector<float> wt = trace.tensors().at("topk_weight.1").to_f32();
        const int64_t K = 2;
        std::vector<float> acc(T * d, 0.0f);
        for (int64_t e = 0; e < 8; e++)  // ascending expert id, bf16 products and sums (MoE.forward)
            for (int64_t t = 0; t < T; t++)
                for (int64_t k = 0; k < K; k++) {
                    if (idx[t * K + k] != e) continue;
                    const std::vector<float> xt(x.begin() + t * d, x.begin() + (t + 1) * d);
                    const std::vector<float> ye =
                        fp8_mlp_ops(xt, 1, d, 128, ckpt, mlp_prefix(1) + "experts." + std::to_string(e) + ".");
                    for (int64_t j = 0; j < d; j++)
                        acc[t * d + j] = bf16_round(acc[t * d + j] + bf16_round(ye[j] * wt[t * K + k]));
                }
        const std::vector<float> z = fp8_mlp_ops(x, T, d, 128, ckpt, mlp_prefix(1) + "shared_experts.");
        for (int64_t j = 0; j < T * d; j++) acc[j] = bf16_round(acc[j] + z[j]);
        CHECK(y == acc);
        for (float v : wt) CHECK(v == bf16_round(v));  // the official Gate's weights are bf16
    }
    SECTION("the query and latent projections of MLA layer 0 (q_nope.0, kv_latent.0)") {
        ModelOptions o;
        o.fwd.precision.mode = Emulation::OfficialFp8;
        Model m(dir.path, o);
        const std::vector<int32_t> tokens = {1, 5, 9, 3, 7, 11, 63};
        Trace trace;
        m.prefill(tokens, &trace);
        // the embedding rows (stored bf16), input_layernorm and the two FP8 chains of the official MLA.forward
        const std::vector<float> emb = ckpt.at("model.embed_tokens.weight").to_f32();
        std::vector<float> h(T * d), xn(T * d);
        for (int64_t t = 0; t < T; t++) std::copy(&emb[tokens[t] * d], &emb[(tokens[t] + 1) * d], &h[t * d]);
        p.rmsnorm(xn.data(), h.data(), ckpt.at("model.layers.0.input_layernorm.weight").to_f32().data(), T, d, 1e-6f);
        std::vector<float> cq = fp8_projection_ops(xn, T, d, ckpt, attn_prefix(0) + "q_a_proj.weight");
        p.rmsnorm(cq.data(), cq.data(), ckpt.at(attn_prefix(0) + "q_a_layernorm.weight").to_f32().data(), T, 128, 1e-6f);
        const std::vector<float> q = fp8_projection_ops(cq, T, 128, ckpt, attn_prefix(0) + "q_b_proj.weight");
        const std::vector<float> q_nope = trace.tensors().at("q_nope.0").to_f32();  // [T, 2, 32]
        for (int64_t r = 0; r < T * 2; r++)
            for (int64_t j = 0; j < 32; j++) REQUIRE(q_nope[r * 32 + j] == q[r * 48 + j]);
        const std::vector<float> kv = fp8_projection_ops(xn, T, d, ckpt, attn_prefix(0) + "kv_a_proj_with_mqa.weight");
        std::vector<float> lat(T * 128);
        for (int64_t t = 0; t < T; t++) std::copy(&kv[t * 144], &kv[t * 144 + 128], &lat[t * 128]);
        p.rmsnorm(lat.data(), lat.data(), ckpt.at(attn_prefix(0) + "kv_a_layernorm.weight").to_f32().data(), T, 128, 1e-6f);
        CHECK(trace.tensors().at("kv_latent.0").to_f32() == lat);
        // and official-bf16 holds the FP8 weights as weight_dequant's bf16(fp8 · scale)
        const PrecisionPolicy ob = policy(Emulation::OfficialBf16);
        const WeightSpec s = mla_tensors(c, attn_prefix(0)).o;
        std::vector<float> dq = wl.load(s);
        for (float& v : dq) v = bf16_round(v);
        CHECK(ob.load(wl, s) == dq);
    }
}

TEST_CASE("--emulate refuses the architectures and storage it does not emulate", "[precision][cli][errors]") {
    dsref_test::TempDir dir;
    init_checkpoint(parse_config(fp8_v3(), "fp8 test config"), InitOptions{11, DType::BF16, 1}, dir.path);
    struct Case {
        std::string args;
        int rc;
        const char* message;
    };
    const std::string out = " --tokens 1,2 --out " + dir.file("o.safetensors");
    const Case cases[] = {
        {"--model data/golden/hf/qwen2_tied --emulate official-bf16", 1,
         "--emulate official-bf16: qwen2 is not emulated: the official DeepSeek-V3 inference/model.py runs deepseek_v3 only"},
        {"--model " + dir.path + " --emulate hf-bf16", 1, "--emulate hf-bf16: FP8 storage is not emulated"},
        {"--model data/golden/hf/v3_yarn --emulate official-fp8", 1, "--emulate official-fp8: needs FP8 storage"},
        {"--model data/golden/deepseek_moe/v3_moe --emulate official-fp8", 1,
         "hidden_size = 64 is not a multiple of 128, which act_quant needs"},
        {"--model data/golden/deepseek/v2 --emulate hf-bf16", 1, "--emulate hf-bf16: deepseek_v2 is not emulated"},
        {"--model data/golden/hf/v3_yarn --emulate bf16", 2, "--emulate must be none, hf-bf16, official-bf16 or official-fp8"},
        {"--model data/golden/hf/v3_yarn --emulate hf-bf16 --mtp", 2, "--mtp with --emulate"},
    };
    for (const Case& k : cases) {
        INFO(k.args);
        std::string output;
        CHECK(dsref_test::run_dsref("forward " + k.args + out, &output) == k.rc);
        CHECK_THAT(output, Catch::Contains(k.message));
    }
    std::string output;
    REQUIRE(dsref_test::run_dsref("forward --model " + dir.path + " --emulate official-fp8 --dump" + out, &output) == 0);
    REQUIRE(dsref_test::run_dsref("forward --help", &output) == 0);
    CHECK_THAT(output, Catch::Contains("eager_attention_forward") && Catch::Contains("act_quant(x,"));
}
