// test_mla.cpp — covers ref/model/mla.cpp and ref/ops/ops_mla.cpp (MLA, ref/model/mla.h) without a whole model:
//   - identities: absorbed == naive over shapes, seeds, with and without q_lora_rank, with YaRN and
//     plain RoPE, across the tile edges of the attention (64 query rows, 256 keys, 1024-row blocks);
//     cached decode token by token (and in chunks) == one full prefill, on both paths; the absorbed
//     cache holds exactly the traced latent and k_pe; YaRN's mscale² multiplies the whole logit;
//     1 thread == 2 threads bit for bit;
//   - the softmax scale of the real V3 / V2 / V2-Lite configs, checked by hand (official MLA.__init__);
//   - op `mla` against the independent float64 golden data (data/golden/deepseek), and its errors.
#include <catch2/catch.hpp>
#include <cmath>

#include "core/error.h"
#include "core/rmsnorm.h"
#include "io/config.h"
#include "io/safetensors.h"
#include "model/mla.h"
#include "ops/op_registry.h"
#include "lab_expect.h"
#include "test_util.h"

using namespace dsref;
using dsref_test::randn;

namespace {

MlaDims dims(int64_t d, int64_t H, int64_t d_q, int64_t d_c, int64_t d_n, int64_t d_r, int64_t d_v, bool yarn) {
    MlaDims m;
    m.d = d, m.H = H, m.d_q = d_q, m.d_c = d_c, m.d_n = d_n, m.d_r = d_r, m.d_v = d_v;
    if (yarn) {
        m.rope_scaling.type = RopeScalingType::Yarn;
        m.rope_scaling.factor = 4;
        m.rope_scaling.original_max_position_embeddings = 48;
        m.rope_scaling.mscale = m.rope_scaling.mscale_all_dim = 0.707;
        m.rope_theta = 100;  // several rope pairs inside the YaRN ramp at d_r = 8..16
    }
    return m;
}

// Random weights that keep activations O(1): projections N(0, 1/in), norms 1 + 0.1·N(0, 1).
MlaWeights random_weights(const MlaDims& m, uint64_t seed) {
    auto proj = [&](int64_t out, int64_t in, uint64_t k) { return randn(out * in, seed * 100 + k, 1.0f / std::sqrt((float)in)); };
    auto norm = [&](int64_t n, uint64_t k) {
        std::vector<float> w = randn(n, seed * 100 + k, 0.1f);
        for (float& v : w) v += 1.0f;
        return w;
    };
    MlaWeights w;
    if (m.d_q > 0) {
        w.q_a = proj(m.d_q, m.d, 1);
        w.q_a_norm = norm(m.d_q, 2);
        w.q_b = proj(m.H * m.d_k(), m.d_q, 3);
    } else {
        w.q = proj(m.H * m.d_k(), m.d, 4);
    }
    w.kv_a = proj(m.d_c + m.d_r, m.d, 5);
    w.kv_a_norm = norm(m.d_c, 6);
    w.kv_b = proj(m.H * (m.d_n + m.d_v), m.d_c, 7);
    w.o = proj(m.d, m.H * m.d_v, 8);
    return w;
}

std::vector<float> prefill(const MlaLayer& l, MlaPath p, const std::vector<float>& x, int64_t T, Trace* tr = nullptr) {
    std::vector<float> out(T * l.dims().d);
    LayerCache cache;
    l.forward(p, out.data(), x.data(), T, 0, cache, tr, 0);
    return out;
}

// The T rows of x run through the cache: first the steps of the given sizes (each a prefill against what
// is cached), then one token at a time up to T.
std::vector<float> decode_in_steps(const MlaLayer& l, MlaPath p, const std::vector<float>& x, int64_t T,
                                   std::initializer_list<int64_t> steps, LayerCache& cache) {
    const int64_t d = l.dims().d;
    std::vector<float> got(T * d);
    int64_t t = 0;
    for (int64_t n : steps) {
        l.forward(p, got.data() + t * d, x.data() + t * d, n, t, cache, nullptr, 0);
        t += n;
    }
    for (; t < T; t++) l.forward(p, got.data() + t * d, x.data() + t * d, 1, t, cache, nullptr, 0);
    return got;
}

double max_abs(const std::vector<float>& a) {
    double m = 0;
    for (float v : a) m = std::max(m, (double)std::fabs(v));
    return m;
}

}  // namespace

// 1e-5 relative: the two paths are the same sums in another order (ref/model/mla.h, associativity),
// so they differ by float32 rounding only; measured ≤ 1e-6 here, while a mistake (wrong W_UK/W_UV
// rows, missing k_pe term, scale 576^-1/2) changes the output by O(1).
TEST_CASE("absorbed MLA equals naive MLA over shapes, seeds, q_lora_rank and RoPE kinds", "[mla][identity]") {
    struct Case {
        MlaDims m;
        int64_t T;
    };
    const Case cases[] = {
        {dims(32, 2, 0, 16, 8, 4, 8, false), 9},     // V2-Lite-like: q_proj, plain RoPE
        {dims(64, 4, 48, 32, 16, 8, 16, true), 70},  // V3-like: q_lora, YaRN, T crosses the 64-row tile
        {dims(48, 3, 24, 40, 12, 16, 20, true), 33}, // odd H, d_v != d_n, d_r 16
        {dims(40, 5, 0, 24, 8, 2, 12, true), 1},     // a single token, d_r = 2
        {dims(24, 4, 16, 8, 4, 6, 4, false), 300},   // T·H = 1200 rows: two row blocks, keys cross 256
    };
    for (const Case& c : cases) {
        for (uint64_t seed : {1, 2, 3}) {
            INFO("d " << c.m.d << " H " << c.m.H << " d_q " << c.m.d_q << " d_c " << c.m.d_c << " T " << c.T
                      << " yarn " << c.m.rope_scaling.is_yarn() << " seed " << seed);
            const MlaLayer l(c.m, random_weights(c.m, seed));
            const std::vector<float> x = randn(c.T * c.m.d, seed + 7);
            Trace tn, ta;
            const std::vector<float> naive = prefill(l, MlaPath::Naive, x, c.T, &tn);
            const std::vector<float> absorb = prefill(l, MlaPath::Absorb, x, c.T, &ta);
            REQUIRE(max_abs(naive) > 0.05);  // a non-trivial output
            dsref_test::check_elements("absorbed MLA output [T, d] against naive", absorb, naive, 1e-5 * max_abs(naive),
                                       "o = softmax(q_h K_h^T scale) V_h with K_h = [c W_UK_h | k_pe], V_h = c W_UV_h");
            // the intermediates are computed before the paths split: identical bit for bit
            for (const char* n : {"q_nope.0", "q_pe.0", "kv_latent.0", "k_pe.0"})
                CHECK(tn.tensors().at(n).bytes == ta.tensors().at(n).bytes);
        }
    }
}

// [order]: tests mla_absorb_decompresses, which is not a lab body, so the mla_absorbed lab does not grade it
TEST_CASE("the absorb path's product order: a prefill decompresses, a decode step stays in latent space", "[mla][order]") {
    // V3's real dims (d_c 512, d_n 128, d_r 64, d_v 128): per query-key pair 1088 multiply-adds absorbed
    // against 320 decompressed; decompressing costs S·d_c·(d_n + d_v) per head against T·d_c·(d_n + d_v).
    const MlaDims v3 = dims(7168, 128, 1536, 512, 128, 64, 128, true);
    CHECK(mla_absorb_decompresses(v3, 4096, 0));     // a long prefill
    CHECK(mla_absorb_decompresses(v3, 4, 0));        // a short one too (fewer pairs, same decompression)
    CHECK_FALSE(mla_absorb_decompresses(v3, 1, 4095));  // decode: one query against 4096 latents
    CHECK_FALSE(mla_absorb_decompresses(v3, 64, 4096));  // a short chunk after a long context
    // the cached-decode test below runs both orders on the absorb path (a 5-token prefill decompresses,
    // the 3-token chunk after 7 tokens and every single token attend in latent space)
    const MlaDims m = dims(64, 4, 48, 32, 16, 8, 16, true);
    CHECK(mla_absorb_decompresses(m, 5, 0));
    CHECK_FALSE(mla_absorb_decompresses(m, 3, 7));
    CHECK_FALSE(mla_absorb_decompresses(m, 1, 9));
}

// 1e-5 absolute on O(1) outputs: decode multiplies 1-row tiles where prefill multiplies 64-row tiles,
// so float32 rounding differs (measured ≤ 1e-6); a position or mask error is O(0.1) or more.
TEST_CASE("cached decode token by token and in chunks equals a full prefill on both paths", "[mla][cache]") {
    for (const MlaDims& m : {dims(64, 4, 48, 32, 16, 8, 16, true), dims(32, 3, 0, 16, 8, 4, 12, false)}) {
        const MlaLayer l(m, random_weights(m, 11));
        const int64_t T = 21, d = m.d;
        const std::vector<float> x = randn(T * d, 12);
        for (MlaPath p : {MlaPath::Naive, MlaPath::Absorb}) {
            INFO("path " << (p == MlaPath::Naive ? "naive" : "absorb") << " d_q " << m.d_q);
            const std::vector<float> full = prefill(l, p, x, T);
            // prefill 5, then 1, 1, 3 (a chunk against the cache), then one at a time
            LayerCache cache;
            const std::vector<float> got = decode_in_steps(l, p, x, T, {5, 1, 1, 3}, cache);
            dsref_test::check_elements("cached decode output [T, d] against a full prefill", got, full, 1e-5,
                                       "rows pos0.. of the cache are the new tokens; query t sees keys 0..pos0 + t");
            const int64_t per_token = mla_cache_values_per_token(m, p);
            CHECK((int64_t)(cache.a.size() + cache.b.size()) == T * per_token);
            if (p == MlaPath::Absorb) CHECK(per_token == m.d_c + m.d_r);
            else CHECK(per_token == m.H * (m.d_n + m.d_r + m.d_v));
            // a cache filled by one path is refused by the other
            std::vector<float> one(d);
            const MlaPath other = p == MlaPath::Naive ? MlaPath::Absorb : MlaPath::Naive;
            CHECK_THROWS_WITH(l.forward(other, one.data(), x.data(), 1, T, cache, nullptr, 0),
                              Catch::Contains("was it filled by the other path?"));
        }
    }
}

TEST_CASE("cached decode across the 256-key chunks equals a full prefill on both paths", "[mla][cache]") {
    // the attention splits the keys into chunks of 256 (model/mla.cpp): a prefill of 250, then steps of
    // 1 (one query row per head on the naive path), a chunk of 9 against the cache (the absorbed path in
    // latent space) and single tokens, reach keys of both chunks and a partial last chunk
    const MlaDims m = dims(32, 3, 0, 16, 8, 4, 12, false);
    const MlaLayer l(m, random_weights(m, 31));
    const int64_t T = 270;
    const std::vector<float> x = randn(T * m.d, 32);
    for (MlaPath p : {MlaPath::Naive, MlaPath::Absorb}) {
        INFO("path " << (p == MlaPath::Naive ? "naive" : "absorb"));
        const std::vector<float> full = prefill(l, p, x, T);
        LayerCache cache;
        const std::vector<float> got = decode_in_steps(l, p, x, T, {250, 1, 1, 9}, cache);
        dsref_test::check_elements("cached decode output [T, d] against a full prefill", got, full, 1e-5,
                                   "as above; the chunks are merged by the exact online softmax");
    }
}

TEST_CASE("the absorbed cache holds the normalized latent and k_pe after RoPE, nothing else", "[mla][cache]") {
    const MlaDims m = dims(64, 4, 48, 32, 16, 8, 16, true);
    const MlaLayer l(m, random_weights(m, 5));
    const int64_t T = 13;
    const std::vector<float> x = randn(T * m.d, 6);
    LayerCache cache;
    Trace trace;
    std::vector<float> out(T * m.d);
    l.forward(MlaPath::Absorb, out.data(), x.data(), T, 0, cache, &trace, 3);
    CHECK(cache.a == trace.tensors().at("kv_latent.3").to_f32());
    CHECK(cache.b == trace.tensors().at("k_pe.3").to_f32());
    CHECK(trace.tensors().at("q_pe.3").shape == Shape{T, 4, 8});
    CHECK(trace.tensors().at("q_nope.3").shape == Shape{T, 4, 16});
    // the latent is RMS-normalized: mean(c² / w²) = 1 per token (eps 1e-6 against mean squares ~1)
    const std::vector<float> w = random_weights(m, 5).kv_a_norm;
    for (int64_t t = 0; t < T; t++) {
        double ms = 0;
        for (int64_t i = 0; i < m.d_c; i++) ms += std::pow(cache.a[t * m.d_c + i] / w[i], 2);
        CHECK(ms / m.d_c == Approx(1.0).epsilon(1e-4));
    }
    // k_pe at position 0 is not rotated: it equals the raw rows [d_c, d_c + d_r) of kv_a_proj · x
    const MlaWeights wt = random_weights(m, 5);
    for (int64_t j = 0; j < m.d_r; j++) {
        double raw = 0;
        for (int64_t i = 0; i < m.d; i++) raw += (double)wt.kv_a[(m.d_c + j) * m.d + i] * x[i];
        CHECK(cache.b[j] == Approx(raw).margin(1e-5));
    }
}

// The softmax scale is d_k^-1/2 · m², m = 0.1·mscale_all_dim·ln(factor) + 1 (ref/core/rope.h), applied to the
// whole logit (nope and rope parts). Scaling every query by m² with mscale_all_dim = 0 (m = 1) must then
// give the same output as the config with mscale_all_dim set: same YaRN frequencies, same logits.
TEST_CASE("YaRN's mscale² multiplies the whole attention logit", "[mla][yarn]") {
    MlaDims a = dims(48, 3, 24, 16, 8, 8, 8, true);
    a.rope_scaling.mscale = a.rope_scaling.mscale_all_dim = 1.0;
    MlaDims b = a;
    b.rope_scaling.mscale_all_dim = 0.0;  // m = 1: scale d_k^-1/2 only
    const double m = 0.1 * 1.0 * std::log(4.0) + 1.0;
    CHECK(mla_softmax_scale(a) == Approx(std::pow(16.0, -0.5) * m * m).epsilon(1e-12));
    CHECK(mla_softmax_scale(b) == Approx(0.25).epsilon(1e-12));
    MlaWeights wa = random_weights(a, 9), wb = wa;
    for (float& v : wb.q_b) v = (float)(v * m * m);  // q_nope and q_pe both scale with q_b
    const int64_t T = 40;
    const std::vector<float> x = randn(T * a.d, 10);
    const MlaLayer la(a, wa), lb(b, wb);
    for (MlaPath p : {MlaPath::Naive, MlaPath::Absorb}) {
        const std::vector<float> ya = prefill(la, p, x, T), yb = prefill(lb, p, x, T);
        CHECK(dsref_test::max_abs_diff(ya, yb) / max_abs(ya) <= 1e-5);  // float rounding of the m² products
        // and it matters: without the m² factor the output moves by far more than that
        const std::vector<float> yc = prefill(MlaLayer(b, wa), p, x, T);
        CHECK(dsref_test::max_abs_diff(ya, yc) / max_abs(ya) > 1e-2);
    }
}

TEST_CASE("softmax scale of the real V3, V2 and V2-Lite configs, checked by hand", "[mla][yarn]") {
    // Hand computation, qk_head_dim = 128 + 64 = 192, 192^-1/2 = 0.0721688, factor 40, ln 40 = 3.688879:
    //   V3  mscale_all_dim 1.0:   m = 0.1·1.0·3.688879 + 1   = 1.368888, m² = 1.873854 → 0.0721688·1.873854 = 0.1352338
    //   V2  mscale_all_dim 0.707: m = 0.1·0.707·3.688879 + 1 = 1.260804, m² = 1.589626 → 0.1147214
    auto real = [](const char* type, int64_t H, int64_t d, nlohmann::json q_lora, double msc) {
        nlohmann::json j = {{"model_type", type}, {"hidden_size", d}, {"intermediate_size", 128},
                            {"num_hidden_layers", 1}, {"num_attention_heads", H}, {"vocab_size", 100},
                            {"q_lora_rank", q_lora}, {"kv_lora_rank", 512}, {"qk_nope_head_dim", 128},
                            {"qk_rope_head_dim", 64}, {"v_head_dim", 128}, {"rope_theta", 10000},
                            {"rope_scaling", {{"type", "yarn"}, {"factor", 40}, {"original_max_position_embeddings", 4096},
                                              {"beta_fast", 32}, {"beta_slow", 1}, {"mscale", msc}, {"mscale_all_dim", msc}}}};
        return mla_dims(parse_config(j, type));
    };
    CHECK(mla_softmax_scale(real("deepseek_v3", 128, 7168, 1536, 1.0)) == Approx(0.1352338).epsilon(1e-6));
    CHECK(mla_softmax_scale(real("deepseek_v2", 128, 5120, 1536, 0.707)) == Approx(0.1147214).epsilon(1e-6));
    CHECK(mla_softmax_scale(real("deepseek_v2", 16, 2048, nullptr, 0.707)) == Approx(0.1147214).epsilon(1e-6));
    // the layer uses exactly that value (a small layer with the real head sizes and rope_scaling)
    MlaDims m = real("deepseek_v3", 2, 64, 48, 1.0);
    m.d_c = 16;
    const MlaLayer l(m, random_weights(m, 1));
    CHECK(l.softmax_scale() == Approx(0.1352338).epsilon(1e-6));
    // absent rope_scaling: plain 192^-1/2, never 576^-1/2 or 128^-1/2
    m.rope_scaling = RopeScaling{};
    CHECK(mla_softmax_scale(m) == Approx(0.0721688).epsilon(1e-6));
}

TEST_CASE("MLA is bit-identical at 1 and 2 threads on both paths", "[mla][threads]") {
    const MlaDims m = dims(64, 4, 48, 32, 16, 8, 16, true);
    const MlaLayer l(m, random_weights(m, 21));
    const int64_t T = 150;  // several row and key tiles
    const std::vector<float> x = randn(T * m.d, 22);
    for (MlaPath p : {MlaPath::Naive, MlaPath::Absorb}) {
        std::vector<float> a, b;
        {
            dsref_test::ThreadScope s(1);
            a = prefill(l, p, x, T);
        }
        {
            dsref_test::ThreadScope s(2);
            b = prefill(l, p, x, T);
        }
        CHECK(a == b);
    }
}

// ---- op `mla` against the golden data -------------------------------------------------------------------

namespace {
// The op's inputs for layer 0 of a golden checkpoint: x = RMSNorm(E[tokens]; input_layernorm.0) and
// the layer's attention weights without the prefix; attributes from its config.json.
struct OpCase {
    TensorMap in;
    OpAttrs attrs;
    TensorMap expected;
};
OpCase golden_op_case(const std::string& name) {
    const std::string dir = "data/golden/deepseek/" + name;
    const ModelConfig c = load_config(dir);
    const TensorMap w = read_safetensors(dir + "/model.safetensors");
    OpCase oc;
    oc.expected = read_safetensors(dir + "/expected.safetensors");
    const std::vector<int64_t> tokens = oc.expected.at("tokens").to_i64();
    const int64_t T = tokens.size(), d = c.hidden_size;
    const std::vector<float> E = w.at("model.embed_tokens.weight").to_f32();
    std::vector<float> x(T * d);
    for (int64_t t = 0; t < T; t++) std::copy(E.begin() + tokens[t] * d, E.begin() + (tokens[t] + 1) * d, x.begin() + t * d);
    rmsnorm_forward(x.data(), x.data(), w.at("model.layers.0.input_layernorm.weight").to_f32().data(), T, d,
                    (float)c.rms_norm_eps);
    oc.in["x"] = Tensor::from_f32({T, d}, x);
    const std::string p = "model.layers.0.self_attn.";
    for (const auto& kv : w)
        if (kv.first.rfind(p, 0) == 0) oc.in[kv.first.substr(p.size())] = kv.second;
    auto set = [&](const char* k, double v) { oc.attrs.set(k, std::to_string(v)); };
    auto seti = [&](const char* k, int64_t v) { oc.attrs.set(k, std::to_string(v)); };
    seti("num_attention_heads", c.num_attention_heads);
    seti("q_lora_rank", c.q_lora_rank);
    seti("kv_lora_rank", c.kv_lora_rank);
    seti("qk_nope_head_dim", c.qk_nope_head_dim);
    seti("qk_rope_head_dim", c.qk_rope_head_dim);
    seti("v_head_dim", c.v_head_dim);
    set("rope_theta", c.rope_theta);
    if (c.rope_scaling.is_yarn()) {
        set("factor", c.rope_scaling.factor);
        seti("original_max_position_embeddings", c.rope_scaling.original_max_position_embeddings);
        set("beta_fast", c.rope_scaling.beta_fast);
        set("beta_slow", c.rope_scaling.beta_slow);
        set("mscale", c.rope_scaling.mscale);
        set("mscale_all_dim", c.rope_scaling.mscale_all_dim);
    }
    return oc;
}

// got against want within 1e-4 absolute, shapes equal; a failure names the first mismatching element
void check_tensor(const std::string& what, const Tensor& got, const Tensor& want, const char* equation) {
    INFO(what << " shape");
    CHECK(got.shape == want.shape);
    if (got.shape == want.shape) dsref_test::check_elements(what, got.to_f64(), want.to_f64(), 1e-4, equation);
}
}  // namespace

// 1e-4 absolute, as for the model (float32 vs float64; measured ≤ 3e-6, see data/golden/README.md).
// One test case per path: each path is a lab of its own (walkthrough/LABS.md: mla_naive, mla_absorbed).
static void check_golden_path(const char* path) {
    for (const char* name : {"v3", "v2_lite", "plain"}) {
        OpCase oc = golden_op_case(name);
        INFO(name << " path " << path);
        oc.attrs.set("path", path);
        const TensorMap out = run_op("mla", oc.in, oc.attrs);
        for (const char* n : {"q_nope", "q_pe", "kv_latent", "k_pe"})  // computed before the paths split
            check_tensor(n, out.at(n), oc.expected.at(std::string(n) + ".0"),
                         "q = W_qb RMSNorm(W_qa x) split [q_nope | q_pe], RoPE on q_pe; [c | k_pe] = W_kva x, "
                         "c normalized, RoPE on k_pe");
        check_tensor("attention output o [T, H, d_v]", out.at("o"), oc.expected.at("attn.0"),
                     std::string(path) == "naive"
                         ? "K_h = [c W_UK_h | k_pe], V_h = c W_UV_h, o_h = softmax(scale q_h K_h^T, causal) V_h"
                         : "q~ = q_nope W_UK_h, score = scale (q~ . c + q_pe . k_pe), o_h = W_UV_h sum_s P c(s)");
    }
}
TEST_CASE("op mla matches the float64 golden layer 0, with and without q_lora_rank: naive path",
          "[mla][op][golden][naive]") {
    check_golden_path("naive");
}
TEST_CASE("op mla matches the float64 golden layer 0, with and without q_lora_rank: absorbed path",
          "[mla][op][golden][absorb]") {
    check_golden_path("absorb");
}

TEST_CASE("op mla refuses bad inputs and attributes with the name", "[mla][op][errors]") {
    const OpCase base = golden_op_case("v3");
    auto error_of = [](const TensorMap& in, const OpAttrs& a) -> std::string {
        try {
            run_op("mla", in, a);
        } catch (const std::exception& e) {
            return e.what();
        }
        return "";
    };
    {  // kv_b_proj rows must be H·(d_n + d_v) = 4·32 = 128
        TensorMap in = base.in;
        in["kv_b_proj.weight"] = Tensor::zeros(DType::F32, {120, 32});
        CHECK_THAT(error_of(in, base.attrs),
                   Catch::Contains("'kv_b_proj.weight' has shape [120, 32], expected [128, 32]") &&
                       Catch::Contains("H·(qk_nope_head_dim+v_head_dim)"));
    }
    {  // a q_proj input next to q_lora_rank > 0, and q_a_proj with q_lora_rank 0
        TensorMap in = base.in;
        in["q_proj.weight"] = Tensor::zeros(DType::F32, {96, 64});
        CHECK_THAT(error_of(in, base.attrs),
                   Catch::Contains("unexpected input tensor 'q_proj.weight'") && Catch::Contains("q_lora_rank is 48"));
        OpAttrs a = base.attrs;
        a.set("q_lora_rank", "0");
        CHECK_THAT(error_of(base.in, a),
                   Catch::Contains("q_lora_rank is 0") && Catch::Contains("unexpected input tensor 'q_a_"));
    }
    {
        TensorMap in = base.in;
        in.erase("kv_a_layernorm.weight");
        CHECK_THAT(error_of(in, base.attrs), Catch::Contains("missing input tensor 'kv_a_layernorm.weight'"));
    }
    OpAttrs a = base.attrs;
    a.set("qk_rope_head_dim", "7");
    CHECK_THROWS_AS(run_op("mla", base.in, a), UsageError);
    CHECK_THAT(error_of(base.in, a), Catch::Contains("'qk_rope_head_dim' must be even"));
    a = base.attrs;
    a.set("factor", "0");
    CHECK_THAT(error_of(base.in, a), Catch::Contains("'rope_scaling.factor' must be > 0"));
    a = OpAttrs();
    a.set("kv_lora_rank", "32");
    CHECK_THAT(error_of(base.in, a), Catch::Contains("attribute 'num_attention_heads' is required"));
    a = base.attrs;
    a.set("path", "flash");
    CHECK_THAT(error_of(base.in, a), Catch::Contains("naive|absorb"));
    a = base.attrs;
    a.set("q_lora", "48");  // a typo is an unknown attribute, not a silent default
    CHECK_THROWS_AS(run_op("mla", base.in, a), UsageError);
    // mscale without factor would silently do nothing: refused
    OpCase plain = golden_op_case("plain");
    plain.attrs.set("mscale_all_dim", "1");
    CHECK_THAT(error_of(plain.in, plain.attrs), Catch::Contains("needs 'factor'"));
}
