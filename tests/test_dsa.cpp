// test_dsa.cpp — covers DeepSeek Sparse Attention (ref/model/dsa_indexer.cpp, the sparse path of
// ref/model/mla.cpp, ref/core/layernorm.cpp, ref/core/hadamard.cpp) and the deepseek_v32 config/layout:
//   - hand values: LayerNorm of a 4-vector; the 2- and 4-point Walsh–Hadamard transforms; a top-k with
//     ties (lower position first) and its margin;
//   - the indexer against a direct float64 evaluation of its formula written here (DeepSeek-V3.2-Exp
//     inference/model.py Indexer.forward, half-split RoPE), and the wrong variant (adjacent RoPE pairs)
//     changes the selection;
//   - identities: with index_topk ≥ T sparse MLA is dense MLA bit for bit; with index_topk < T it is
//     not, and with index_topk = 1 it reads exactly the selected value; naive == absorb;
//     cached decode == prefill (selection identical, outputs to float rounding); fp8 mode: dot products
//     kept by the rotation, the cached keys are E4M3 values;
//   - configs and checkpoints: missing or bad index_* fields, a missing indexer tensor, --emulate.
#include <catch2/catch.hpp>
#include <cmath>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/hadamard.h"
#include "core/layernorm.h"
#include "core/rmsnorm.h"
#include "io/checkpoint_layout.h"
#include "io/config.h"
#include "io/safetensors.h"
#include "model/dsa_indexer.h"
#include "model/mla.h"
#include "model/model.h"
#include "ops/op_registry.h"
#include "lab_expect.h"
#include "test_util.h"
#include "tools/init.h"
#include "tools/model_info.h"

using namespace dsref;
using dsref_test::randn;
using json = nlohmann::json;

namespace {

MlaDims mla_small() {
    MlaDims m;
    m.d = 32, m.H = 4, m.d_q = 24, m.d_c = 16, m.d_n = 8, m.d_r = 8, m.d_v = 8;
    m.rope_scaling.type = RopeScalingType::Yarn;
    m.rope_scaling.factor = 4;
    m.rope_scaling.original_max_position_embeddings = 16;
    m.rope_scaling.mscale = m.rope_scaling.mscale_all_dim = 1.0;
    m.rope_theta = 100;
    return m;
}

// 16 index heads: with few heads ReLU makes exact-zero score ties common.
IndexerDims indexer_small(const MlaDims& m, int64_t k) {
    IndexerDims id;
    id.d = m.d, id.d_q = m.d_q, id.n_I = 16, id.d_I = 16, id.d_r = m.d_r, id.k = k;
    id.rope_theta = m.rope_theta;
    id.rope_scaling = m.rope_scaling;
    return id;
}

std::vector<float> norm_w(int64_t n, uint64_t seed) {
    std::vector<float> w = randn(n, seed, 0.1f);
    for (float& v : w) v += 1.0f;
    return w;
}

MlaWeights mla_weights(const MlaDims& m, uint64_t seed) {
    auto proj = [&](int64_t out, int64_t in, uint64_t k) { return randn(out * in, seed * 100 + k, 1.0f / std::sqrt((float)in)); };
    MlaWeights w;
    w.q_a = proj(m.d_q, m.d, 1);
    w.q_a_norm = norm_w(m.d_q, seed * 100 + 2);
    w.q_b = proj(m.H * m.d_k(), m.d_q, 3);
    w.kv_a = proj(m.d_c + m.d_r, m.d, 5);
    w.kv_a_norm = norm_w(m.d_c, seed * 100 + 6);
    w.kv_b = proj(m.H * (m.d_n + m.d_v), m.d_c, 7);
    w.o = proj(m.d, m.H * m.d_v, 8);
    return w;
}

IndexerWeights indexer_weights(const IndexerDims& id, uint64_t seed) {
    auto proj = [&](int64_t out, int64_t in, uint64_t k) { return randn(out * in, seed * 100 + k, 1.0f / std::sqrt((float)in)); };
    IndexerWeights w;
    w.wq_b = proj(id.n_I * id.d_I, id.d_q, 11);
    w.wk = proj(id.d_I, id.d, 12);
    w.k_norm = norm_w(id.d_I, seed * 100 + 13);
    w.k_norm_bias = randn(id.d_I, seed * 100 + 14, 0.2f);
    w.weights_proj = proj(id.n_I, id.d, 15);
    return w;
}

std::vector<float> run(const MlaLayer& l, MlaPath p, const std::vector<float>& x, int64_t T, Trace* tr = nullptr) {
    std::vector<float> out(T * l.dims().d);
    LayerCache cache;
    l.forward(p, out.data(), x.data(), T, 0, cache, tr, 0);
    return out;
}

double max_diff(const std::vector<float>& a, const std::vector<float>& b) {
    if (a.size() != b.size()) return INFINITY;
    double m = 0;
    for (size_t i = 0; i < a.size(); i++) m = std::max(m, (double)std::fabs(a[i] - b[i]));
    return m;
}

// The indexer's formula evaluated directly in float64 from the weights (plain loops, no shared code but
// the RoPE frequencies): returns I [T, T] (−inf above the diagonal). `adjacent`: the wrong RoPE pairing.
std::vector<double> direct_scores(const IndexerDims& id, const IndexerWeights& w, const std::vector<float>& x,
                                  const std::vector<float>& qr, int64_t T, bool adjacent = false) {
    const int64_t n_I = id.n_I, d_I = id.d_I, d_r = id.d_r, d = id.d, d_q = id.d_q;
    const std::vector<double> f = rope_inv_freq(d_r, id.rope_theta, id.rope_scaling);
    auto rope = [&](std::vector<double>& v, int64_t p) {  // v: [d_I], rope on v[0:d_r]
        for (int64_t j = 0; j < d_r / 2; j++) {
            const int64_t a = adjacent ? 2 * j : j, b = adjacent ? 2 * j + 1 : j + d_r / 2;
            const double c = std::cos(p * f[j]), s = std::sin(p * f[j]), x0 = v[a], x1 = v[b];
            v[a] = x0 * c - x1 * s;
            v[b] = x0 * s + x1 * c;
        }
    };
    std::vector<std::vector<double>> q(T * n_I, std::vector<double>(d_I)), k(T, std::vector<double>(d_I));
    std::vector<double> wt(T * n_I);
    for (int64_t t = 0; t < T; t++) {
        for (int64_t o = 0; o < n_I * d_I; o++) {
            double a = 0;
            for (int64_t i = 0; i < d_q; i++) a += (double)w.wq_b[o * d_q + i] * qr[t * d_q + i];
            q[t * n_I + o / d_I][o % d_I] = a;
        }
        for (int64_t h = 0; h < n_I; h++) rope(q[t * n_I + h], t);
        std::vector<double>& kt = k[t];
        for (int64_t o = 0; o < d_I; o++) {
            double a = 0;
            for (int64_t i = 0; i < d; i++) a += (double)w.wk[o * d + i] * x[t * d + i];
            kt[o] = a;
        }
        double mu = 0, var = 0;
        for (double v : kt) mu += v / d_I;
        for (double v : kt) var += (v - mu) * (v - mu) / d_I;
        for (int64_t o = 0; o < d_I; o++) kt[o] = (kt[o] - mu) / std::sqrt(var + 1e-6) * w.k_norm[o] + w.k_norm_bias[o];
        rope(kt, t);
        for (int64_t h = 0; h < n_I; h++) {
            double a = 0;
            for (int64_t i = 0; i < d; i++) a += (double)w.weights_proj[h * d + i] * x[t * d + i];
            wt[t * n_I + h] = a / std::sqrt((double)n_I);
        }
    }
    std::vector<double> I(T * T, -INFINITY);
    for (int64_t t = 0; t < T; t++)
        for (int64_t s = 0; s <= t; s++) {
            double a = 0;
            for (int64_t h = 0; h < n_I; h++) {
                double dot = 0;
                for (int64_t j = 0; j < d_I; j++) dot += q[t * n_I + h][j] * k[s][j];
                a += wt[t * n_I + h] * std::max(0.0, dot) / std::sqrt((double)d_I);
            }
            I[t * T + s] = a;
        }
    return I;
}

// qr = RMSNorm(W_qa x; q_a_layernorm) as MLA computes it
std::vector<float> compressed_query(const MlaDims& m, const MlaWeights& w, const std::vector<float>& x, int64_t T) {
    std::vector<float> qr(T * m.d_q);
    for (int64_t t = 0; t < T; t++)
        for (int64_t o = 0; o < m.d_q; o++) {
            double a = 0;
            for (int64_t i = 0; i < m.d; i++) a += (double)w.q_a[o * m.d + i] * x[t * m.d + i];
            qr[t * m.d_q + o] = (float)a;
        }
    rmsnorm_forward(qr.data(), qr.data(), w.q_a_norm.data(), T, m.d_q, 1e-6f);
    return qr;
}

json small_v32() {
    return {{"architectures", {"DeepseekV32ForCausalLM"}}, {"model_type", "deepseek_v32"}, {"hidden_size", 32},
            {"intermediate_size", 48}, {"num_hidden_layers", 2}, {"num_attention_heads", 2}, {"vocab_size", 50},
            {"q_lora_rank", 24}, {"kv_lora_rank", 16}, {"qk_nope_head_dim", 8}, {"qk_rope_head_dim", 4},
            {"v_head_dim", 8}, {"rms_norm_eps", 1e-6}, {"rope_theta", 10000},
            {"rope_scaling", {{"type", "yarn"}, {"factor", 4}, {"original_max_position_embeddings", 64},
                              {"mscale", 1.0}, {"mscale_all_dim", 1.0}}},
            {"first_k_dense_replace", 2}, {"eos_token_id", 1},
            {"index_n_heads", 16}, {"index_head_dim", 16}, {"index_topk", 4}};
}
std::string config_error(const json& j) {
    try {
        parse_config(j, "config.json");
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

}  // namespace

// ---- building blocks, by hand ---------------------------------------------------------------------

TEST_CASE("LayerNorm with weight and bias, by hand", "[dsa][layernorm]") {
    // x = [1, 2, 3, 6]: μ = 3, σ² = (4 + 1 + 0 + 9)/4 = 3.5; eps 0 here
    const std::vector<float> x = {1, 2, 3, 6}, w = {1, 2, 1, 1}, b = {0, 0, 1, -1};
    std::vector<float> y(4);
    layernorm_forward(y.data(), x.data(), w.data(), b.data(), 1, 4, 0.0f);
    const double r = 1.0 / std::sqrt(3.5);
    // 1e-6: one float32 rounding of O(1) values
    CHECK(y[0] == Approx(-2 * r).margin(1e-6));
    CHECK(y[1] == Approx(-1 * r * 2).margin(1e-6));
    CHECK(y[2] == Approx(0 + 1).margin(1e-6));
    CHECK(y[3] == Approx(3 * r - 1).margin(1e-6));
}

TEST_CASE("Walsh–Hadamard transform: hand values, orthogonal, its own inverse", "[dsa][hadamard]") {
    std::vector<float> a = {1, 0};
    hadamard_forward(a.data(), 1, 2);
    CHECK(a[0] == Approx(1 / std::sqrt(2.0)).margin(1e-7));  // float rounding of 2^-1/2
    CHECK(a[1] == Approx(1 / std::sqrt(2.0)).margin(1e-7));
    // H_4 (Sylvester) rows: ++++, +-+-, ++--, +--+; H_4 [1, 2, 3, 4] / 2 = [10, -2, -4, 0] / 2
    std::vector<float> b = {1, 2, 3, 4};
    hadamard_forward(b.data(), 1, 4);
    CHECK(b == std::vector<float>{5, -1, -2, 0});  // exact: small integers and halves
    std::vector<float> q = randn(64, 1), k = randn(64, 2);
    double dot0 = 0, dot1 = 0;
    for (int i = 0; i < 64; i++) dot0 += (double)q[i] * k[i];
    std::vector<float> q2 = q, k2 = k;
    hadamard_forward(q2.data(), 1, 64);
    hadamard_forward(k2.data(), 1, 64);
    for (int i = 0; i < 64; i++) dot1 += (double)q2[i] * k2[i];
    CHECK(dot1 == Approx(dot0).margin(1e-5));  // float32 rounding of 64 outputs, |dot| ~ 8
    hadamard_forward(q2.data(), 1, 64);        // H/√n is symmetric and orthogonal: its own inverse
    CHECK(max_diff(q2, q) < 1e-6);
    std::vector<float> bad(6);
    CHECK_THROWS_WITH(hadamard_forward(bad.data(), 1, 6), Catch::Contains("power of two"));
}

TEST_CASE("top-k selection: by score, ties to the lower position, margin, causal", "[dsa][topk]") {
    // 3 queries at positions 0..2 (pos0 = 0), S = 3, k = 2. Entries above the diagonal are ignored.
    const std::vector<float> scores = {0.5f, 9, 9,     //
                                       1.0f, 1.0f, 9,  //
                                       0.2f, 0.7f, 0.7f};
    IndexerSelection sel;
    dsa_select_topk(sel, scores.data(), 3, 3, 0, 2);
    CHECK(sel.kk == 2);
    CHECK(sel.topk == std::vector<int32_t>{0, -1, 0, 1, 1, 2});
    CHECK(std::isinf(sel.margin[0]));  // every visible position kept
    CHECK(std::isinf(sel.margin[1]));
    CHECK(sel.margin[2] == Approx(0.5f));  // 0.7 (2nd kept) − 0.2 (first left out)
    // decode: one query at position 3 against 4 positions, k = 2; a tie between 1 and 3 keeps 1
    const std::vector<float> row = {0.1f, 0.4f, 0.3f, 0.4f};
    dsa_select_topk(sel, row.data(), 1, 4, 3, 2);
    CHECK(sel.topk == std::vector<int32_t>{1, 3});
    CHECK(sel.margin[0] == Approx(0.1f));
}

// ---- the indexer -------------------------------------------------------------------------------------

// 1e-4 relative on O(1) scores: float32 projections, LayerNorm and products against float64; a layout
// mistake (RoPE pairs, [rope | nope] order, missing bias, scale) changes them by O(1).
TEST_CASE("indexer scores equal a direct float64 evaluation; adjacent RoPE pairs change the selection",
          "[dsa][indexer]") {
    const MlaDims m = mla_small();
    const int64_t T = 24, k = 6;
    const IndexerDims id = indexer_small(m, k);
    const IndexerWeights w = indexer_weights(id, 3);
    const MlaWeights mw = mla_weights(m, 3);
    const std::vector<float> x = randn(T * m.d, 77);
    const std::vector<float> qr = compressed_query(m, mw, x, T);
    DsaIndexer ix(id, w);
    std::vector<float> kc;
    Trace trace;
    const IndexerSelection sel = ix.forward(x.data(), qr.data(), T, 0, kc, &trace, 0);
    const std::vector<double> ref = direct_scores(id, w, x, qr, T);
    double worst = 0, scale = 0;
    for (int64_t i = 0; i < T * T; i++) {
        if (std::isinf(ref[i])) {
            CHECK(std::isinf(sel.scores[i]));
            continue;
        }
        worst = std::max(worst, std::fabs(sel.scores[i] - ref[i]));
        scale = std::max(scale, std::fabs(ref[i]));
    }
    CHECK(scale > 0.1);
    CHECK(worst <= 1e-4 * scale);
    // the selection is the float64 top-k wherever the float64 margin is clear of the rounding
    IndexerSelection ref_sel;
    std::vector<float> ref_f(ref.begin(), ref.end());
    dsa_select_topk(ref_sel, ref_f.data(), T, T, 0, k);
    for (int64_t t = 0; t < T; t++)
        if (ref_sel.margin[t] > 1e-3 * scale)
            for (int64_t j = 0; j < sel.kk; j++) CHECK(sel.topk[t * sel.kk + j] == ref_sel.topk[t * sel.kk + j]);
    // dumps
    const TensorMap& tm = trace.tensors();
    CHECK(tm.at("index_scores.0").shape == Shape{T, T});
    CHECK(tm.at("index_topk.0").dtype == DType::I32);
    CHECK(tm.at("index_topk.0").shape == Shape{T, k});
    CHECK(tm.at("index_q.0").shape == Shape{T, id.n_I, id.d_I});
    CHECK(tm.at("index_k.0").to_f32() == kc);
    CHECK(tm.at("index_margin.0").shape == Shape{T});
    CHECK(tm.at("index_weights.0").shape == Shape{T, id.n_I});

    // the wrong variant: MLA's adjacent pairing inside the indexer selects other positions
    const std::vector<double> wrong = direct_scores(id, w, x, qr, T, true);
    std::vector<float> wrong_f(wrong.begin(), wrong.end());
    IndexerSelection wrong_sel;
    dsa_select_topk(wrong_sel, wrong_f.data(), T, T, 0, k);
    int64_t differ = 0;
    for (int64_t t = 0; t < T; t++)
        for (int64_t j = 0; j < k; j++) differ += wrong_sel.topk[t * k + j] != sel.topk[t * k + j];
    CHECK(differ > 0);
}

// ---- sparse MLA ----------------------------------------------------------------------------------------

TEST_CASE("sparse MLA: k >= T is dense MLA bit for bit; k < T differs and is the restricted attention",
          "[dsa][mla]") {
    const MlaDims m = mla_small();
    const int64_t T = 20;
    const MlaWeights mw = mla_weights(m, 5);
    const std::vector<float> x = randn(T * m.d, 9);
    const MlaLayer dense(m, mw);
    for (MlaPath p : {MlaPath::Naive, MlaPath::Absorb}) {
        const std::vector<float> ref = run(dense, p, x, T);
        const IndexerDims all = indexer_small(m, T);
        const MlaLayer sparse_all(m, mw, PrecisionPolicy(), MlaFp8Weights(), DsaIndexer(all, indexer_weights(all, 5)));
        CHECK(run(sparse_all, p, x, T) == ref);  // exactly: every visible key kept, the same sums
        const IndexerDims few = indexer_small(m, 5);
        const MlaLayer sparse(m, mw, PrecisionPolicy(), MlaFp8Weights(), DsaIndexer(few, indexer_weights(few, 5)));
        Trace tr;
        const std::vector<float> got = run(sparse, p, x, T, &tr);
        // rows t < 5 see at most 5 positions: all kept, the same as dense; later rows differ
        const int64_t d = m.d;
        CHECK(std::vector<float>(got.begin(), got.begin() + 5 * d) == std::vector<float>(ref.begin(), ref.begin() + 5 * d));
        CHECK(max_diff(got, ref) > 1e-3);
        // both paths select the same positions and agree to float rounding (1e-5, as test_mla.cpp)
        if (p == MlaPath::Absorb) {
            Trace tn;
            const std::vector<float> naive = run(sparse, MlaPath::Naive, x, T, &tn);
            CHECK(max_diff(naive, got) < 1e-5);
            CHECK(tn.tensors().at("index_topk.0").to_i64() == tr.tensors().at("index_topk.0").to_i64());
        }
    }
}

// The attention really is restricted to the selection: with index_topk = 1 each row attends to one
// position s*, its softmax weight is 1, and the layer output is W_o · concat_h W_UV[h] c(s*).
TEST_CASE("sparse MLA with index_topk = 1: each query reads exactly the one selected value", "[dsa][mla]") {
    MlaDims m = mla_small();
    const int64_t T = 12;
    const MlaWeights mw = mla_weights(m, 8);
    const std::vector<float> x = randn(T * m.d, 10);
    const IndexerDims one = indexer_small(m, 1);
    const MlaLayer sparse(m, mw, PrecisionPolicy(), MlaFp8Weights(), DsaIndexer(one, indexer_weights(one, 8)));
    Trace tr;
    run(sparse, MlaPath::Naive, x, T, &tr);
    const std::vector<int64_t> sel = tr.tensors().at("index_topk.0").to_i64();
    const std::vector<float> latent = tr.tensors().at("kv_latent.0").to_f32();  // [T, d_c]
    // out = W_o · concat_h W_UV[h] c(s*) for every row: build it directly
    const int64_t d_kv = m.d_n + m.d_v;
    std::vector<float> want(T * m.d);
    for (int64_t t = 0; t < T; t++) {
        const int64_t s = sel[t];
        REQUIRE(s >= 0);
        REQUIRE(s <= t);
        std::vector<double> o(m.H * m.d_v);
        for (int64_t h = 0; h < m.H; h++)
            for (int64_t j = 0; j < m.d_v; j++) {
                double a = 0;
                for (int64_t c = 0; c < m.d_c; c++) a += (double)mw.kv_b[(h * d_kv + m.d_n + j) * m.d_c + c] * latent[s * m.d_c + c];
                o[h * m.d_v + j] = a;
            }
        for (int64_t i = 0; i < m.d; i++) {
            double a = 0;
            for (int64_t j = 0; j < m.H * m.d_v; j++) a += (double)mw.o[i * m.H * m.d_v + j] * o[j];
            want[t * m.d + i] = (float)a;
        }
    }
    for (MlaPath p : {MlaPath::Naive, MlaPath::Absorb})
        CHECK(max_diff(run(sparse, p, x, T), want) < 1e-5);  // float32 products of O(1) values
}

// 1e-5 absolute, as test_mla.cpp: decode multiplies 1-row tiles where prefill multiplies 64-row tiles
// (the projections feeding the indexer too, so its O(1) scores differ by float rounding). The selection
// is checked exactly: no margin of this case is near 1e-5.
TEST_CASE("sparse MLA: cached decode token by token equals a full prefill, both paths", "[dsa][mla][cache]") {
    const MlaDims m = mla_small();
    const int64_t T = 16, d = m.d;
    const MlaWeights mw = mla_weights(m, 6);
    const std::vector<float> x = randn(T * d, 11);
    const IndexerDims id = indexer_small(m, 4);
    const MlaLayer sparse(m, mw, PrecisionPolicy(), MlaFp8Weights(), DsaIndexer(id, indexer_weights(id, 6)));
    for (MlaPath p : {MlaPath::Naive, MlaPath::Absorb}) {
        Trace full;
        const std::vector<float> ref = run(sparse, p, x, T, &full);
        const std::vector<float> full_scores = full.tensors().at("index_scores.0").to_f32();
        const std::vector<int64_t> full_topk = full.tensors().at("index_topk.0").to_i64();
        LayerCache cache;
        std::vector<float> got(T * d);
        sparse.forward(p, got.data(), x.data(), 3, 0, cache, nullptr, 0);
        for (int64_t t = 3; t < T; t++) {
            Trace step;
            sparse.forward(p, got.data() + t * d, x.data() + t * d, 1, t, cache, &step, 0);
            const std::vector<int64_t> tk = step.tensors().at("index_topk.0").to_i64();
            CHECK(tk == std::vector<int64_t>(full_topk.begin() + t * 4, full_topk.begin() + (t + 1) * 4));
            const std::vector<float> sc = step.tensors().at("index_scores.0").to_f32();
            CHECK(max_diff(sc, std::vector<float>(full_scores.begin() + t * T, full_scores.begin() + t * T + t + 1)) < 1e-5);
        }
        CHECK((int64_t)cache.index_k.size() == T * id.d_I);
        CHECK(max_diff(got, ref) < 1e-5);
    }
}

TEST_CASE("indexer fp8 mode: rotated, E4M3-quantized keys in the cache; close to exact", "[dsa][fp8]") {
    const MlaDims m = mla_small();
    const int64_t T = 16;
    const IndexerDims id = indexer_small(m, 4);
    const IndexerWeights w = indexer_weights(id, 4);
    const std::vector<float> x = randn(T * m.d, 12), qr = randn(T * m.d_q, 13);
    std::vector<float> ke, k8;
    const IndexerSelection se = DsaIndexer(id, w).forward(x.data(), qr.data(), T, 0, ke, nullptr, 0);
    const IndexerSelection s8 = DsaIndexer(id, w, IndexerMode::Fp8).forward(x.data(), qr.data(), T, 0, k8, nullptr, 0);
    // the cached fp8 key = dequant(quant(H k_exact)), recomputed with the two ops
    std::vector<float> hk = ke;
    hadamard_forward(hk.data(), T, id.d_I);
    std::vector<uint8_t> q(T * id.d_I);
    std::vector<float> sc(T);
    fp8_quant_act(q.data(), sc.data(), hk.data(), T, id.d_I, Fp8ScaleFmt::Fp32);
    std::vector<float> back(T * id.d_I);
    fp8_dequant_act(back.data(), q.data(), sc.data(), T, id.d_I);
    CHECK(k8 == back);  // bit-identical: the same steps op by op
    // E4M3 keeps 3 mantissa bits (relative step 2^-3 at worst): scores agree to ~10% of their scale,
    // and differ (the quantization is real)
    double worst = 0, scale = 0;
    for (int64_t i = 0; i < T * T; i++)
        if (!std::isinf(se.scores[i])) {
            worst = std::max(worst, (double)std::fabs(se.scores[i] - s8.scores[i]));
            scale = std::max(scale, (double)std::fabs(se.scores[i]));
        }
    CHECK(worst > 0);
    CHECK(worst < 0.1 * scale);
    IndexerDims bad = id;
    bad.d_I = 12;
    CHECK_THROWS_WITH(DsaIndexer(bad, indexer_weights(bad, 1), IndexerMode::Fp8), Catch::Contains("power of two"));
}

// ---- config, checkpoint, model ----------------------------------------------------------------------------

TEST_CASE("deepseek_v32 configs: index fields required and checked", "[dsa][config]") {
    CHECK(config_error(small_v32()).empty());
    const ModelConfig c = parse_config(small_v32(), "c");
    CHECK(c.arch == Arch::DeepseekV32);
    CHECK(c.has_indexer());
    CHECK(c.index_topk == 4);
    for (const char* f : {"index_n_heads", "index_head_dim", "index_topk"}) {
        json j = small_v32();
        j.erase(f);
        CHECK_THAT(config_error(j), Catch::Contains(std::string("missing required field '") + f + "'"));
        j[f] = 0;
        CHECK_THAT(config_error(j), Catch::Contains(std::string("'") + f + "' must be positive"));
    }
    json j = small_v32();
    j["index_head_dim"] = 2;
    CHECK_THAT(config_error(j), Catch::Contains("'index_head_dim' is 2, less than qk_rope_head_dim = 4"));
    j = small_v32();
    j["q_lora_rank"] = nullptr;
    CHECK_THAT(config_error(j), Catch::Contains("'q_lora_rank' must be positive in a deepseek_v32 config"));
    j = small_v32();
    j["layer_types"] = {"indexed_attention", "full_attention"};
    CHECK_THAT(config_error(j), Catch::Contains("'layer_types' [1] is \"full_attention\""));
    j = small_v32();
    j["mlp_layer_types"] = {"dense", "sparse"};
    CHECK_THAT(config_error(j), Catch::Contains("'mlp_layer_types' [1] is \"sparse\""));
    j["mlp_layer_types"] = {"dense", "dense"};
    CHECK(config_error(j).empty());
    // the real V3.2-Exp config parses
    CHECK(load_config("data/configs/deepseek_v32.json").index_topk == 2048);
}

TEST_CASE("V3.2 checkpoints: indexer tensors written, checked by name, dumped; --emulate refused", "[dsa][model]") {
    const ModelConfig c = parse_config(small_v32(), "c");
    const IndexerTensors it = indexer_tensors(c, attn_prefix(1), 1);
    CHECK(it.wq_b.name == "model.layers.1.self_attn.indexer.wq_b.weight");
    CHECK(it.wq_b.shape == Shape{16 * 16, 24});
    CHECK(it.k_norm_bias.name == "model.layers.1.self_attn.indexer.k_norm.bias");
    CHECK(it.weights_proj.shape == Shape{16, 32});
    CHECK(!it.weights_proj.fp8);
    CHECK(it.wk.fp8);
    dsref_test::TempDir t;
    init_checkpoint(c, InitOptions{3, DType::F32, 1}, t.path);
    {
        Model model(t.path, ModelOptions());
        Trace tr;
        const std::vector<int32_t> tokens = {3, 1, 4, 1, 5, 9, 2, 6, 5, 3};
        model.prefill(tokens, &tr);
        CHECK(tr.tensors().at("index_topk.1").shape == Shape{10, 4});
        CHECK(tr.tensors().at("index_scores.0").shape == Shape{10, 10});
        // cached decode of the whole model == prefill (1e-4 on logits: 1-row vs 64-row tiles, 2 layers)
        KVCache cache;
        std::vector<float> got = model.forward({tokens.begin(), tokens.begin() + 4}, cache);
        for (size_t i = 4; i < tokens.size(); i++) {
            std::vector<float> r = model.forward({tokens[i]}, cache);
            got.insert(got.end(), r.begin(), r.end());
        }
        CHECK(max_diff(got, model.prefill(tokens)) < 1e-4);
    }
    {
        ModelOptions mo;
        mo.fwd.precision.mode = Emulation::OfficialBf16;
        CHECK_THROWS_WITH(Model(t.path, mo), Catch::Contains("deepseek_v32 is not emulated"));
        mo.fwd.precision.mode = Emulation::HfBf16;
        CHECK_THROWS_WITH(Model(t.path, mo), Catch::Contains("deepseek_v32 is not emulated"));
    }
    TensorMap w = read_safetensors(t.file("model.safetensors"));
    w.erase("model.layers.0.self_attn.indexer.k_norm.bias");
    write_safetensors(t.file("model.safetensors"), w);
    CHECK_THROWS_WITH(Model(t.path, ModelOptions()), Catch::Contains("model.layers.0.self_attn.indexer.k_norm.bias"));
}

// ---- op dsa_indexer against the golden data (data/golden/make_dsa_cases.py) -------------------------------

namespace {
struct GoldenCase {
    TensorMap in, expect;
    OpAttrs attrs;
};
// The attributes data/golden/make_dsa_cases.py fixes (T = 40, k = 8, 16 heads of 32, YaRN factor 4, L0 16).
GoldenCase golden_case() {
    GoldenCase g;
    g.in = read_safetensors("data/golden/dsa/inputs.safetensors");
    g.expect = read_safetensors("data/golden/dsa/expected.safetensors");
    g.attrs.set("index_n_heads", "16");
    g.attrs.set("index_head_dim", "32");
    g.attrs.set("index_topk", "8");
    g.attrs.set("qk_rope_head_dim", "16");
    g.attrs.set("rope_theta", "10000");
    g.attrs.set("factor", "4");
    g.attrs.set("original_max_position_embeddings", "16");
    g.attrs.set("mscale", "1");
    g.attrs.set("mscale_all_dim", "1");
    return g;
}
const char* const kIndexerEquation =
    "q_I = RoPE(W_qb^I qr), k_I = RoPE(LayerNorm(W_k^I x)) (half-split RoPE on the first d_r dims), w = W_w x / "
    "sqrt(n_I), I[t, s] = sum_h w[t, h] ReLU(q_I[t, h] . k_I[s]) / sqrt(d_I), s <= t";
}  // namespace

// exact: 1e-4 absolute on O(1) values (float32 vs float64; measured ≤ 8.4e-7). The selection must equal
// transformers' float32 top-k wherever dsref's margin is ≥ 1e-5 (below that the two float32 orders of
// summation may legitimately swap near-ties), and the float64 top-k likewise.
TEST_CASE("op dsa_indexer matches the float64 golden and transformers' top-k", "[dsa][op][golden]") {
    GoldenCase g = golden_case();
    const TensorMap out = run_op("dsa_indexer", g.in, g.attrs);
    for (const char* n : {"index_q", "index_k", "index_weights", "index_scores"})
        dsref_test::check_elements(n, out.at(n).to_f32(), g.expect.at(std::string("exact.") + n).to_f64(), 1e-4,
                                   kIndexerEquation);
    const std::vector<int64_t> topk = out.at("index_topk").to_i64(), hf = g.expect.at("hf.index_topk").to_i64();
    const std::vector<float> margin = out.at("index_margin").to_f32();
    const int64_t T = 40, k = 8;
    REQUIRE(out.at("index_topk").shape == Shape{T, k});
    int64_t compared = 0;
    for (int64_t t = k; t < T; t++)  // rows t < k: all visible positions, HF pads with masked ones
        if (margin[t] >= 1e-5) {
            compared++;
            for (int64_t j = 0; j < k; j++) CHECK(topk[t * k + j] == hf[t * k + j]);
        }
    CHECK(compared >= T - k - 2);  // near-ties are rare with 16 heads
    for (int64_t t = 0; t < k; t++) {  // all visible positions kept, in score order
        std::vector<int64_t> row(topk.begin() + t * k, topk.begin() + t * k + t + 1), want(hf.begin() + t * k, hf.begin() + t * k + t + 1);
        CHECK(row == want);
    }

    // fp8: 1e-4 absolute against the golden's own FP8 emulation (measured ≤ 5.6e-7: both quantize
    // nearly the same values, so every E4M3 code agrees here; one flipped code would move a score by
    // ~1e-2, which this bound catches); the selection matches where the golden margin is ≥ 1e-3
    g.attrs.set("mode", "fp8");
    const TensorMap o8 = run_op("dsa_indexer", g.in, g.attrs);
    dsref_test::check_elements("index_scores (fp8)", o8.at("index_scores").to_f32(),
                               g.expect.at("fp8.index_scores").to_f64(), 1e-4,
                               "fp8 mode: q_I and k_I Hadamard-rotated, then 1x128 E4M3-quantized, before the scores");
    dsref_test::check_elements("index_k (fp8)", o8.at("index_k").to_f32(), g.expect.at("fp8.index_k").to_f64(), 1e-4,
                               "fp8 mode: k_I Hadamard-rotated, then 1x128 E4M3-quantized (dequantized values)");
    const std::vector<double> s8 = g.expect.at("fp8.index_scores").to_f64();
    std::vector<float> s8f(s8.begin(), s8.end());
    IndexerSelection ref;
    dsa_select_topk(ref, s8f.data(), T, T, 0, k);
    const std::vector<int64_t> t8 = o8.at("index_topk").to_i64();
    for (int64_t t = 0; t < T; t++)
        if (ref.margin[t] >= 1e-3)
            for (int64_t j = 0; j < k; j++) CHECK(t8[t * k + j] == ref.topk[t * k + j]);
}

TEST_CASE("op dsa_indexer refuses bad attributes and inputs, naming them", "[dsa][op][errors]") {
    const GoldenCase g = golden_case();
    auto error_of = [](const TensorMap& in, const OpAttrs& a) -> std::string {
        try {
            run_op("dsa_indexer", in, a);
        } catch (const std::exception& e) {
            return e.what();
        }
        return "";
    };
    OpAttrs a = g.attrs;
    a.set("index_topk", "0");
    CHECK_THAT(error_of(g.in, a), Catch::Contains("'index_topk' must be positive"));
    a = g.attrs;
    a.set("index_head_dim", "8");
    CHECK_THAT(error_of(g.in, a), Catch::Contains("index_head_dim"));
    TensorMap in = g.in;
    in.erase("indexer.k_norm.bias");
    CHECK_THAT(error_of(in, g.attrs), Catch::Contains("indexer.k_norm.bias"));
    in = g.in;
    in["indexer.wk.weight"] = Tensor::zeros(DType::F32, {31, 48});
    CHECK_THAT(error_of(in, g.attrs), Catch::Contains("indexer.wk.weight"));
}

// The real V3.2-Exp config (data/configs/deepseek_v32.json): V3's counts plus 61 indexers of
// 64·128·1536 (wq_b) + 128·7168 (wk) + 2·128 (k_norm) + 64·7168 (weights_proj) = 13,959,424 parameters,
// and the official FP8 key cache, 128 E4M3 codes + one fp32 scale = 132 B per token per layer.
TEST_CASE("info on the real V3.2-Exp config: totals and the indexer's cache", "[dsa][info]") {
    const json info = model_info(load_config("data/configs/deepseek_v32.json"));
    CHECK(info["architecture"] == "deepseek_v32");
    CHECK(info["dsa_indexer"]["parameters_per_layer"] == 13959424);
    CHECK(info["parameters"]["total"] == 671026419200LL + 61LL * 13959424);  // V3's total (data/configs/README.md)
    CHECK(info["parameters"]["stored_total"] == 685355329792LL);            // "685B" with the MTP module
    CHECK(info["dsa_indexer"]["key_cache_bytes_per_token_fp8"] == 132 * 61);
}

// An FP8 V3.2 checkpoint (quantization_config fp8, 128×128 blocks): wq_b and wk stored E4M3 with their
// weight_scale_inv, weights_proj and the norm kept in the float dtype, as the real checkpoint; it loads and
// runs with both indexer modes.
TEST_CASE("FP8 V3.2 checkpoints: the indexer's storage, and both --indexer modes run", "[dsa][model][fp8]") {
    json j = small_v32();
    j["quantization_config"] = {{"quant_method", "fp8"}, {"fmt", "e4m3"}, {"activation_scheme", "dynamic"},
                                {"weight_block_size", {128, 128}}};
    dsref_test::TempDir t;
    init_checkpoint(parse_config(j, "fp8 v32"), InitOptions{5, DType::BF16, 1}, t.path);
    const TensorMap w = read_safetensors(t.file("model.safetensors"));
    const std::string p = "model.layers.0.self_attn.indexer.";
    CHECK(w.at(p + "wq_b.weight").dtype == DType::F8_E4M3);
    CHECK(w.count(p + "wq_b.weight_scale_inv") == 1);
    CHECK(w.at(p + "wk.weight").dtype == DType::F8_E4M3);
    CHECK(w.at(p + "weights_proj.weight").dtype == DType::BF16);
    CHECK(w.count(p + "weights_proj.weight_scale_inv") == 0);
    CHECK(w.at(p + "k_norm.bias").dtype == DType::BF16);
    for (IndexerMode mode : {IndexerMode::Exact, IndexerMode::Fp8}) {
        ModelOptions mo;
        mo.fwd.indexer = mode;
        Model model(t.path, mo);
        Trace tr;
        const std::vector<float> logits = model.prefill({1, 2, 3, 4, 5, 6, 7, 8}, &tr);
        for (float v : logits) REQUIRE(std::isfinite(v));
        CHECK(tr.tensors().at("index_topk.0").shape == Shape{8, 4});
    }
}

TEST_CASE("sparse MLA and the indexer are bit-identical at 1 and 2 threads", "[dsa][threads]") {
    const MlaDims m = mla_small();
    const int64_t T = 300;  // past the key tile (256) and the parallel thresholds
    const MlaWeights mw = mla_weights(m, 31);
    const IndexerDims id = indexer_small(m, 16);
    const MlaLayer sparse(m, mw, PrecisionPolicy(), MlaFp8Weights(), DsaIndexer(id, indexer_weights(id, 31)));
    const std::vector<float> x = randn(T * m.d, 32);
    for (MlaPath p : {MlaPath::Naive, MlaPath::Absorb}) {
        std::vector<float> a, b;
        Trace ta, tb;
        {
            dsref_test::ThreadScope s(1);
            a = run(sparse, p, x, T, &ta);
        }
        {
            dsref_test::ThreadScope s(2);
            b = run(sparse, p, x, T, &tb);
        }
        CHECK(a == b);
        CHECK(ta.tensors().at("index_scores.0").to_f32() == tb.tensors().at("index_scores.0").to_f32());
    }
}

// A whole V3.2 model that transformers wrote itself (save_pretrained, data/golden/make_dsa_cases.py) and
// its float32 eager forward. 1e-4 absolute on logits of size ~4: both are float32, summing in other orders
// (measured 1.9e-6). index_topk must be identical wherever dsref's margin is ≥ 1e-5 (every row here;
// rows t < k keep every visible position, where transformers pads with masked ones).
TEST_CASE("a transformers-written V3.2 model: logits and every layer's selection match", "[dsa][model][golden]") {
    const std::string dir = "data/golden/dsa/model";
    const TensorMap g = read_safetensors(dir + "/expected.safetensors");
    std::vector<int32_t> tokens;
    for (int64_t t : g.at("tokens").to_i64()) tokens.push_back((int32_t)t);
    const int64_t T = (int64_t)tokens.size(), k = 8;
    for (MlaPath p : {MlaPath::Absorb, MlaPath::Naive}) {
        ModelOptions mo;
        mo.fwd.attn = p;
        Model model(dir, mo);
        Trace tr;
        const std::vector<float> logits = model.prefill(tokens, &tr);
        const std::vector<double> want = g.at("logits").to_f64();
        double worst = 0;
        REQUIRE(logits.size() == want.size());
        for (size_t i = 0; i < want.size(); i++) worst = std::max(worst, std::fabs(logits[i] - want[i]));
        CHECK(worst < 1e-4);
        for (int64_t layer = 0; layer < 2; layer++) {
            const std::string i = "." + std::to_string(layer);
            const std::vector<int64_t> got = tr.tensors().at("index_topk" + i).to_i64(), hf = g.at("index_topk" + i).to_i64();
            const std::vector<float> margin = tr.tensors().at("index_margin" + i).to_f32();
            for (int64_t t = k; t < T; t++)
                if (margin[t] >= 1e-5)
                    for (int64_t j = 0; j < k; j++) CHECK(got[t * k + j] == hf[t * k + j]);
        }
    }
}
