// test_diff_explain.cpp — `dsref diff --explain` (ref/tools/diff_explain.h): the first diverging tensor of
// two dumps in forward order, on a model where one layer's weight was perturbed; transformers'
// de-interleaved q_pe/k_pe and unsorted topk_idx are recognized as layouts, not divergences.
#include <catch2/catch.hpp>
#include <algorithm>

#include "io/safetensors.h"
#include "model/model.h"
#include "test_util.h"
#include "tools/diff_explain.h"
#include "tools/init.h"

using namespace dsref;
using json = nlohmann::json;

namespace {
// 3 layers: 0 dense, 1 and 2 MoE (8 experts, top-2, a shared expert)
json small_v3() {
    return {{"model_type", "deepseek_v3"}, {"hidden_size", 32}, {"intermediate_size", 48},
            {"moe_intermediate_size", 16}, {"num_hidden_layers", 3}, {"num_attention_heads", 2},
            {"n_shared_experts", 1}, {"n_routed_experts", 8}, {"num_experts_per_tok", 2}, {"n_group", 2},
            {"topk_group", 1}, {"first_k_dense_replace", 1}, {"routed_scaling_factor", 2.5},
            {"q_lora_rank", 24}, {"kv_lora_rank", 16}, {"qk_rope_head_dim", 8}, {"qk_nope_head_dim", 8},
            {"v_head_dim", 8}, {"vocab_size", 50}, {"rms_norm_eps", 1e-6}};
}
const std::vector<int32_t> kTokens = {3, 17, 42, 5, 0, 49, 12, 33, 7, 21, 8, 30};

TensorMap dump(const std::string& dir) {
    Model m(dir);
    Trace trace;
    TensorMap out;
    const std::vector<float> logits = m.prefill(kTokens, &trace);
    out = trace.tensors();
    out["logits"] = Tensor::from_f32({(int64_t)kTokens.size(), 50}, logits);
    return out;
}

// Adds `delta` to every element of a stored F32 tensor.
void perturb(const std::string& dir, const std::string& name, float delta) {
    TensorMap w = read_safetensors(dir + "/model.safetensors");
    std::vector<float> v = w.at(name).to_f32();
    for (float& x : v) x += delta;
    w[name] = Tensor::from_f32(w.at(name).shape, v);
    write_safetensors(dir + "/model.safetensors", w);
}

struct Fixture {
    dsref_test::TempDir dir;
    TensorMap reference;
    Fixture() {
        init_checkpoint(parse_config(small_v3(), "test config"), InitOptions{4, DType::F32, 1}, dir.path);
        reference = dump(dir.path);
    }
};
}  // namespace

TEST_CASE("diff --explain names the first diverging tensor after one weight is perturbed", "[diff][explain]") {
    SECTION("an attention weight of layer 1: attn.1, with hidden.0 agreeing") {
        Fixture f;
        perturb(f.dir.path, "model.layers.1.self_attn.o_proj.weight", 0.05f);
        const DiffExplanation e = explain_diff(dump(f.dir.path), f.reference, 1e-4, 0);
        REQUIRE(e.first >= 0);
        CHECK(e.steps[e.first].name == "attn.1");
        CHECK_THAT(e.conclusion, Catch::Contains("first divergence: attn.1, layer 1: the attention block") &&
                                     Catch::Contains("(its input, hidden.0, agrees)"));
        CHECK(e.later > 0);  // everything after it inherits the difference
        for (int64_t i = 0; i < e.first; i++) CHECK(e.steps[i].status.rfind("ok", 0) == 0);
    }
    SECTION("the latent norm of layer 2: kv_latent.2, before attn.2") {
        Fixture f;
        perturb(f.dir.path, "model.layers.2.self_attn.kv_a_layernorm.weight", 0.01f);
        const DiffExplanation e = explain_diff(dump(f.dir.path), f.reference, 1e-4, 0);
        REQUIRE(e.first >= 0);
        CHECK(e.steps[e.first].name == "kv_latent.2");
        CHECK_THAT(e.conclusion, Catch::Contains("layer 2, attention: the latent"));
    }
    SECTION("the shared expert of layer 1: hidden.1, with attn.1 agreeing") {
        Fixture f;
        perturb(f.dir.path, "model.layers.1.mlp.shared_experts.down_proj.weight", 0.05f);
        const DiffExplanation e = explain_diff(dump(f.dir.path), f.reference, 1e-4, 0);
        REQUIRE(e.first >= 0);
        CHECK(e.steps[e.first].name == "hidden.1");
        CHECK_THAT(e.conclusion, Catch::Contains("layer 1: the feed-forward block") && Catch::Contains("attn.1 agrees"));
    }
    SECTION("the router of layer 2: topk_idx.2 with the number of tokens routed elsewhere") {
        Fixture f;
        perturb(f.dir.path, "model.layers.2.mlp.gate.e_score_correction_bias", 0.0f);
        TensorMap w = read_safetensors(f.dir.file("model.safetensors"));
        std::vector<float> b = w.at("model.layers.2.mlp.gate.e_score_correction_bias").to_f32();
        b[7] += 10.0f;  // expert 7 now wins every token's selection in its group
        w["model.layers.2.mlp.gate.e_score_correction_bias"] = Tensor::from_f32({8}, b);
        write_safetensors(f.dir.file("model.safetensors"), w);
        const DiffExplanation e = explain_diff(dump(f.dir.path), f.reference, 1e-4, 0);
        REQUIRE(e.first >= 0);
        CHECK(e.steps[e.first].name == "topk_idx.2");
        CHECK_THAT(e.steps[e.first].detail, Catch::Contains(" of 12 tokens route to other experts (first: token"));
        CHECK_THAT(e.conclusion, Catch::Contains("layer 2, MoE router"));
    }
}

TEST_CASE("diff --explain: transformers' q_pe/k_pe layout and unsorted top-k are not divergences", "[diff][explain]") {
    Fixture f;
    TensorMap hf = f.reference;  // what transformers' hooks would give for the same model
    for (auto& kv : hf) {
        const std::string& n = kv.first;
        if (n.rfind("q_pe.", 0) == 0 || n.rfind("k_pe.", 0) == 0) {  // de-interleave: [x0, x2, .., x1, x3, ..]
            std::vector<float> v = kv.second.to_f32(), p(v.size());
            const int64_t d_r = kv.second.shape.back(), P = d_r / 2;
            for (size_t r = 0; r < v.size() / d_r; r++)
                for (int64_t j = 0; j < d_r; j++) p[r * d_r + j] = v[r * d_r + (j < P ? 2 * j : 2 * (j - P) + 1)];
            kv.second = Tensor::from_f32(kv.second.shape, p);
        }
    }
    for (const char* layer : {"1", "2"}) {  // reverse each token's experts (and their weights)
        std::vector<int64_t> idx = hf.at(std::string("topk_idx.") + layer).to_i64();
        std::vector<float> w = hf.at(std::string("topk_weight.") + layer).to_f32();
        std::vector<int32_t> idx32(idx.size());
        for (size_t t = 0; t < idx.size() / 2; t++) {
            std::swap(idx[2 * t], idx[2 * t + 1]);
            std::swap(w[2 * t], w[2 * t + 1]);
        }
        std::copy(idx.begin(), idx.end(), idx32.begin());
        hf[std::string("topk_idx.") + layer] = Tensor::from_i32({12, 2}, idx32);
        hf[std::string("topk_weight.") + layer] = Tensor::from_f32({12, 2}, w);
    }
    hf.erase("q_nope.0");
    const DiffExplanation e = explain_diff(f.reference, hf, 1e-6, 0);
    CHECK(e.first == -1);
    CHECK_THAT(e.conclusion, Catch::Contains("no divergence"));
    int permuted = 0, reordered = 0, only = 0;
    for (const ExplainStep& s : e.steps) {
        permuted += s.status == "ok (permuted)";
        reordered += s.status == "ok (reordered)";
        only += s.status == "only in A";
    }
    CHECK(permuted == 6);   // q_pe and k_pe of 3 layers
    CHECK(reordered == 2);  // topk_idx of the 2 MoE layers
    CHECK(only == 1);
    // the forward order: per layer q_nope, q_pe, kv_latent, k_pe, attn, topk_idx, topk_weight, hidden; then logits
    const std::vector<std::string> order = forward_order(f.reference, hf);
    CHECK(order.front() == "q_nope.0");
    CHECK(order.back() == "logits");
    CHECK(std::find(order.begin(), order.end(), "attn.1") < std::find(order.begin(), order.end(), "topk_idx.1"));
    CHECK(std::find(order.begin(), order.end(), "hidden.1") < std::find(order.begin(), order.end(), "q_nope.2"));
}

TEST_CASE("dsref diff --explain: exit 0 when nothing diverges, 1 naming the tensor otherwise", "[diff][explain][cli]") {
    Fixture f;
    write_safetensors(f.dir.file("ref.safetensors"), f.reference);
    perturb(f.dir.path, "model.layers.0.mlp.up_proj.weight", 0.05f);
    write_safetensors(f.dir.file("engine.safetensors"), dump(f.dir.path));
    std::string out;
    CHECK(dsref_test::run_dsref("diff --explain " + f.dir.file("ref.safetensors") + " " + f.dir.file("ref.safetensors"), &out) == 0);
    CHECK_THAT(out, Catch::Contains("no divergence"));
    CHECK(dsref_test::run_dsref("diff --explain " + f.dir.file("engine.safetensors") + " " + f.dir.file("ref.safetensors"), &out) == 1);
    CHECK_THAT(out, Catch::Contains("first divergence: hidden.0, layer 0: the feed-forward block"));
    // a real transformers dump (data/golden/hf): dsref agrees once the layouts are accounted for
    const TensorMap g = read_safetensors("data/golden/hf/v3_yarn/expected_f32.safetensors");
    std::vector<int32_t> tokens;
    for (int64_t t : g.at("tokens").to_i64()) tokens.push_back((int32_t)t);
    Model m("data/golden/hf/v3_yarn");
    Trace trace;
    TensorMap ours;
    const std::vector<float> logits = m.prefill(tokens, &trace);
    ours = trace.tensors();
    ours["logits"] = Tensor::from_f32({(int64_t)tokens.size(), 96}, logits);
    const DiffExplanation e = explain_diff(ours, g, 1e-4, 0);
    CHECK(e.first == -1);
}
