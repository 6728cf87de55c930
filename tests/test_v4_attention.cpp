// test_v4_attention.cpp — covers ref/model/v4_attention.h (DeepSeek-V4 shared-KV MQA with the sliding window,
// attention sink, partial trailing RoPE and its inverse, grouped output projection, the compressor and the
// dense compressed branch) against the float64 golden of data/golden/make_deepseek_v4_cases.py (from the
// official DeepSeek-V4 inference/model.py Attention / Compressor and kernel.py sparse_attn), plus a
// hand-checkable sink identity.
#include <catch2/catch.hpp>
#include <cmath>

#include "core/error.h"
#include "core/rope.h"
#include "core/tensor.h"
#include "io/safetensors.h"
#include "model/v4_attention.h"

using namespace dsref;

TEST_CASE("v4 sink attention: one key, by hand", "[v4][attention]") {
    // One key k = q's direction: l = q·k/sqrt(d), p = e^l / (e^l + e^sink), o = p · k.
    const std::vector<float> q = {1.0f, 0.0f}, kv = {2.0f, 0.0f}, sink = {0.5f};
    const std::vector<int64_t> idx = {0};
    std::vector<float> o(2);
    v4_sink_attention(o.data(), q.data(), kv.data(), idx.data(), 1, 1, 2, 1, sink.data(), 1.0 / std::sqrt(2.0));
    const double l = 2.0 / std::sqrt(2.0), p = std::exp(l) / (std::exp(l) + std::exp(0.5));
    CHECK(o[0] == Approx(p * 2.0).epsilon(1e-6));
    CHECK(o[1] == 0.0f);
}

TEST_CASE("v4 attention: golden against the float64 implementation of the official code", "[v4][attention][golden]") {
    const TensorMap g = read_safetensors("data/golden/deepseek_v4/attn.safetensors");
    for (const char* tag : {"win_t3", "win_t11", "hca_t13", "csa_t13"}) {
        INFO(tag);
        const std::string p = std::string(tag) + ".";
        const std::vector<int64_t> dm = g.at(p + "dims").to_i64();
        const int64_t T = dm[0];
        V4AttnDims D;
        D.d = dm[1], D.H = dm[2], D.d_h = dm[3], D.d_r = dm[4], D.q_lora = dm[5], D.G = dm[6], D.R = dm[7];
        D.window = dm[8], D.ratio = dm[9];
        std::map<std::string, std::vector<float>> w;
        for (const char* k : {"wq_a", "q_norm", "wq_b", "wkv", "kv_norm", "wo_a", "wo_b", "sink", "c_wkv", "c_wgate",
                              "c_ape", "c_norm"})
            if (g.count(p + "w." + k)) w[k] = g.at(p + "w." + k).to_f32();
        V4AttnWeights W;
        W.wq_a = w["wq_a"].data(), W.q_norm = w["q_norm"].data(), W.wq_b = w["wq_b"].data();
        W.wkv = w["wkv"].data(), W.kv_norm = w["kv_norm"].data(), W.wo_a = w["wo_a"].data();
        W.wo_b = w["wo_b"].data(), W.sink = w["sink"].data();
        W.c_wkv = w["c_wkv"].data(), W.c_wgate = w["c_wgate"].data(), W.c_ape = w["c_ape"].data(), W.c_norm = w["c_norm"].data();
        RopeScaling rs;
        if (D.ratio > 0) {  // compressed layers: compress_rope_theta 160000 with YaRN (factor 16, L0 64)
            rs.type = RopeScalingType::Yarn, rs.factor = 16, rs.original_max_position_embeddings = 64;
            rs.beta_fast = 32, rs.beta_slow = 1;
        }
        const std::vector<double> inv = rope_inv_freq(D.d_r, D.ratio > 0 ? 160000.0 : 10000.0, rs);
        const std::vector<float> x = g.at(p + "x").to_f32();
        auto maxd = [](const std::vector<float>& a, const std::vector<double>& b) {
            REQUIRE(a.size() == b.size());
            double m = 0;
            for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
            return m;
        };
        // O(1) activations through ~6 float32 products of ≤ 24 terms and normalizations: a few 1e-7 each.
        if (D.ratio == 4) {
            CHECK(maxd(v4_compress(x.data(), T, D, W, inv), g.at(p + "compressed_kv").to_f64()) < 1e-5);
            continue;  // this case has no indexer weights: the CSA forward is checked on csa.safetensors
        }
        const V4AttnOut r = v4_attention_forward(x.data(), T, D, W, inv);
        CHECK(maxd(r.out, g.at(p + "out").to_f64()) < 1e-5);
        CHECK(maxd(r.window_attn, g.at(p + "window_attn").to_f64()) < 1e-5);
        if (D.ratio > 0) CHECK(maxd(r.compressed_kv, g.at(p + "compressed_kv").to_f64()) < 1e-5);
    }
}

TEST_CASE("v4 attention: a window-only layer is shift invariant (relative RoPE, inverse RoPE on the output)",
          "[v4][attention]") {
    // With shared K = V, RoPE on the keys rotates the values too; the inverse RoPE at the query's position
    // turns each value's contribution into a function of the distance t − s alone. So the output of token t
    // depends only on the window x[t−n_win+1 .. t], not on where that window sits: running the window alone
    // (positions 0..n_win−1) must give the same last row.
    const TensorMap g = read_safetensors("data/golden/deepseek_v4/attn.safetensors");
    const std::string p = "win_t11.";
    const std::vector<int64_t> dm = g.at(p + "dims").to_i64();
    const int64_t T = dm[0];
    V4AttnDims D;
    D.d = dm[1], D.H = dm[2], D.d_h = dm[3], D.d_r = dm[4], D.q_lora = dm[5], D.G = dm[6], D.R = dm[7];
    D.window = dm[8], D.ratio = 0;
    std::map<std::string, std::vector<float>> w;
    for (const char* k : {"wq_a", "q_norm", "wq_b", "wkv", "kv_norm", "wo_a", "wo_b", "sink"}) w[k] = g.at(p + "w." + k).to_f32();
    V4AttnWeights W;
    W.wq_a = w["wq_a"].data(), W.q_norm = w["q_norm"].data(), W.wq_b = w["wq_b"].data(), W.wkv = w["wkv"].data();
    W.kv_norm = w["kv_norm"].data(), W.wo_a = w["wo_a"].data(), W.wo_b = w["wo_b"].data(), W.sink = w["sink"].data();
    const std::vector<double> inv = rope_inv_freq(D.d_r, 10000.0, RopeScaling{});
    const std::vector<float> x = g.at(p + "x").to_f32();
    const V4AttnOut full = v4_attention_forward(x.data(), T, D, W, inv);
    const int64_t n = D.window;
    for (int64_t t = n - 1; t < T; ++t) {
        const V4AttnOut part = v4_attention_forward(x.data() + (t - n + 1) * D.d, n, D, W, inv);
        double m = 0;
        for (int64_t i = 0; i < D.d; ++i) m = std::max(m, (double)std::fabs(part.out[(n - 1) * D.d + i] - full.out[t * D.d + i]));
        // float32 rotations at angles up to 10 rad: a few ulps of O(1) values.
        CHECK(m < 1e-5);
    }
    // and the window matters: without the inverse RoPE this would fail, and a token outside the window
    // must not change row t.
    std::vector<float> x2 = x;
    for (int64_t i = 0; i < D.d; ++i) x2[i] += 1.0f;  // token 0 is outside the window of t = T − 1
    const V4AttnOut pert = v4_attention_forward(x2.data(), T, D, W, inv);
    for (int64_t i = 0; i < D.d; ++i) CHECK(pert.out[(T - 1) * D.d + i] == full.out[(T - 1) * D.d + i]);
    CHECK(pert.out[0] != full.out[0]);
}

// The official-cache golden: prefill, then the official decode branch token by token (start_pos > 0).
static void check_csa_case(const TensorMap& g, const std::string& tag) {
    INFO(tag);
    const std::string p = tag + ".";
    const std::vector<int64_t> dm = g.at(p + "dims").to_i64();
    const int64_t T = dm[0], P = dm[1];
    V4AttnDims D;
    D.d = dm[2], D.H = dm[3], D.d_h = dm[4], D.d_r = dm[5], D.q_lora = dm[6], D.G = dm[7], D.R = dm[8];
    D.window = dm[9], D.ratio = dm[10], D.n_I = dm[11], D.d_I = dm[12], D.topk = dm[13];
    std::map<std::string, std::vector<float>> w;
    for (const auto& kv : g)
        if (kv.first.rfind(p + "w.", 0) == 0) w[kv.first.substr(p.size() + 2)] = kv.second.to_f32();
    auto ptr = [&](const std::string& k) { return w.count(k) ? w[k].data() : nullptr; };
    V4AttnWeights W;
    W.wq_a = ptr("wq_a.weight"), W.q_norm = ptr("q_norm.weight"), W.wq_b = ptr("wq_b.weight");
    W.wkv = ptr("wkv.weight"), W.kv_norm = ptr("kv_norm.weight"), W.wo_a = ptr("wo_a.weight");
    W.wo_b = ptr("wo_b.weight"), W.sink = ptr("attn_sink");
    W.c_wkv = ptr("compressor.wkv.weight"), W.c_wgate = ptr("compressor.wgate.weight");
    W.c_ape = ptr("compressor.ape"), W.c_norm = ptr("compressor.norm.weight");
    W.i_wq_b = ptr("indexer.wq_b.weight"), W.i_weights_proj = ptr("indexer.weights_proj.weight");
    W.i_comp = {ptr("indexer.compressor.wkv.weight"), ptr("indexer.compressor.wgate.weight"),
                ptr("indexer.compressor.ape"), ptr("indexer.compressor.norm.weight")};
    RopeScaling rs;
    if (D.ratio > 0) rs.type = RopeScalingType::Yarn, rs.factor = 16, rs.original_max_position_embeddings = 64;
    const std::vector<double> inv = rope_inv_freq(D.d_r, D.ratio > 0 ? 160000.0 : 10000.0, rs);
    const std::vector<float> x = g.at(p + "x").to_f32();
    auto maxd = [](const std::vector<float>& a, const std::vector<double>& b) {
        REQUIRE(a.size() == b.size());
        double m = 0;
        for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
        return m;
    };
    // O(1) activations through ~8 float32 products of ≤ 24 terms and normalizations: a few 1e-7 each.
    const V4AttnOut r = v4_attention_forward(x.data(), T, D, W, inv);
    CHECK(maxd(r.out, g.at(p + "out").to_f64()) < 1e-5);
    CHECK(maxd(r.window_attn, g.at(p + "window_attn").to_f64()) < 1e-5);
    if (D.ratio > 0) CHECK(maxd(r.compressed_kv, g.at(p + "compressed_kv").to_f64()) < 1e-5);
    if (D.ratio == 4) {  // the generator asserts a top-k margin > 1e-5, far above float32 score errors (~1e-7)
        const std::vector<int64_t> ti = g.at(p + "index_topk").to_i64();
        CHECK(std::vector<int32_t>(ti.begin(), ti.end()) == r.index_topk);
        const std::vector<double> ref = g.at(p + "index_scores").to_f64();
        REQUIRE(ref.size() == r.index_scores.size());
        for (size_t i = 0; i < ref.size(); ++i) {
            if (std::isinf(ref[i])) CHECK(std::isinf(r.index_scores[i]));
            else CHECK(std::fabs(r.index_scores[i] - ref[i]) < 1e-5);
        }
    }
    // cached decode: a prefill of P tokens, then one token at a time, against the official decode branch
    V4LayerCache cache;
    std::vector<float> dec = v4_attention_step(x.data(), P, D, W, inv, cache).out;
    for (int64_t s = P; s < T; ++s) {
        const V4AttnOut o = v4_attention_step(x.data() + s * D.d, 1, D, W, inv, cache);
        dec.insert(dec.end(), o.out.begin(), o.out.end());
    }
    CHECK(cache.len == T);
    CHECK((int64_t)cache.kv.size() == std::min(D.window, T) * D.d_h);  // the cache holds the window, no more
    CHECK(maxd(dec, g.at(p + "decode_out").to_f64()) < 1e-5);
    // and dsref's own decode equals its prefill to float32 rounding (same math, other grouping of work)
    double m = 0;
    for (size_t i = 0; i < dec.size(); ++i) m = std::max(m, (double)std::fabs(dec[i] - r.out[i]));
    CHECK(m < 2e-6);
}

TEST_CASE("v4 attention: CSA, HCA and window prefill + cached decode against the official cache branches",
          "[v4][attention][golden][csa]") {
    const TensorMap g = read_safetensors("data/golden/deepseek_v4/csa.safetensors");
    for (const char* tag : {"csa_t23", "hca_t21", "win_t9"}) check_csa_case(g, tag);
}

TEST_CASE("v4 attention: the compressor state must match the cache position", "[v4][attention]") {
    V4CompressorState st;
    std::vector<float> e;
    const std::vector<float> x(4, 1.0f), w(8, 0.1f), ape(8, 0.0f), nrm(2, 1.0f);
    const std::vector<double> inv = {1.0};
    CHECK_THROWS_WITH(v4_compressor_step(e, st, x.data(), 1, 3, 4, 4, 1, 0, {w.data(), w.data(), ape.data(), nrm.data()},
                                         1e-6, inv),
                      Catch::Contains("incomplete group"));
}
