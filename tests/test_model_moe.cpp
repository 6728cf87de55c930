// test_model_moe.cpp — covers the full DeepSeek-V2/V3 model with DeepSeekMoE layers (ref/model/model.cpp with
// ref/moe/moe.cpp), multi-token prediction (ref/model/mtp.h, `dsref forward --mtp`), FP8 checkpoints
// (ref/io/weights.cpp dequantization, ref/tools/init.cpp FP8 init) and the parameter counts of ref/tools/model_info.cpp:
//   - golden logits, hidden states, routing and mtp_logits from the independent float64 implementation
//     (data/golden/deepseek_moe: v3_moe FP8 in 3 shards with an MTP layer, v3_negbias, v2_moe,
//     v2_lite_moe), on both --attn paths;
//   - the MTP layer is never read without --mtp; layer L's own embedding/head or the main ones;
//   - FP8 block dequantization against hand-computed blocks, edge blocks, a scale in another shard;
//   - init of an FP8 config: the weight quantizer's bytes, forward == forward on the dequantized weights;
//   - bad input: a missing expert, a bias of the wrong length, num_experts_per_tok beyond topk_group;
//   - cached decode == prefill, greedy generate == argmax chain, thread independence, on MoE models;
//   - info on the real V3 / V2 / V2-Lite configs (data/configs).
#include <catch2/catch.hpp>
#include <cmath>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "core/linear.h"
#include "fp8/fp8_quant.h"
#include "io/checkpoint_layout.h"
#include "io/safetensors.h"
#include "model/generate.h"
#include "model/model.h"
#include "model/moe_block.h"
#include "model/mtp.h"
#include "model_test_util.h"
#include "test_util.h"
#include "tools/init.h"
#include "tools/model_info.h"

using namespace dsref;
using dsref_test::golden_tokens;
using dsref_test::max_diff_prefix;
using json = nlohmann::json;

namespace {

const char* kGoldenCases[] = {"v3_moe", "v3_negbias", "v2_moe", "v2_lite_moe"};

std::string golden_dir(const std::string& name) { return "data/golden/deepseek_moe/" + name; }

// The model options, plus whether the MTP module (model/mtp.h) is built on top.
struct Opts {
    ModelOptions model;
    bool mtp = false;
};
Opts opts(const std::string& attn, bool mtp = false, bool keep = false) {
    Opts o;
    o.model.fwd.attn = mla_path_from_name(attn);
    o.mtp = mtp;
    o.model.keep_weights = keep;
    return o;
}

std::string model_error(const std::string& dir, Opts o = opts("absorb")) {
    try {
        Model m(dir, o.model);
        if (o.mtp) Mtp mtp(m);
    } catch (const std::exception& e) {
        return e.what();
    }
    return "";
}

// Every tensor of a checkpoint directory, copied into memory.
TensorMap read_checkpoint(const std::string& dir) {
    Checkpoint ck(dir);
    TensorMap m;
    for (const std::string& n : ck.names()) m[n] = ck.get(n).copy();
    return m;
}

void copy_config(const std::string& from_dir, const std::string& to_dir) {
    std::ifstream f(from_dir + "/config.json");
    std::stringstream ss;
    ss << f.rdbuf();
    dsref_test::write_text(to_dir + "/config.json", ss.str());
}

// Compares the routing of one MoE layer with the golden file: identical experts on every token whose
// golden routing margin exceeds 1e-4 (below that, float32 and float64 may break a near-tie differently),
// weights close. Returns the tokens compared.
int64_t check_routing(const TensorMap& got, const TensorMap& g, int64_t layer) {
    const std::string i = std::to_string(layer);
    INFO("MoE layer " << layer);
    REQUIRE(got.count("topk_idx." + i));
    REQUIRE(got.count("topk_weight." + i));
    const Tensor& idx = got.at("topk_idx." + i);
    CHECK(idx.dtype == DType::I32);
    REQUIRE(idx.shape == g.at("topk_idx." + i).shape);
    const int64_t T = idx.shape[0], K = idx.shape[1];
    const std::vector<int64_t> want_idx = g.at("topk_idx." + i).to_i64();
    const std::vector<double> margin = g.at("margin." + i).to_f64();
    const std::vector<double> want_w = g.at("topk_weight." + i).to_f64();
    const std::vector<float> w = got.at("topk_weight." + i).to_f32();
    int64_t compared = 0;
    for (int64_t t = 0; t < T; t++) {
        if (!(margin[t] > 1e-4)) continue;  // a near-tie: float32 and float64 may legitimately differ
        compared++;
        for (int64_t k = 0; k < K; k++) {
            INFO("token " << t << ", slot " << k);
            CHECK(idx.i32()[t * K + k] == want_idx[t * K + k]);
            // 1e-5 relative: the weights are float32 scores (sigmoid/softmax of float32 logits, measured
            // ≤ 2e-6 at routed_scaling_factor 16) against float64
            CHECK(std::fabs(w[t * K + k] - want_w[t * K + k]) <= 1e-5 * std::max(1.0, std::fabs(want_w[t * K + k])));
        }
    }
    return compared;
}

}  // namespace

// ---- golden full models -------------------------------------------------------------------------------

// Tolerance 1e-4: float32 compute against float64. Measured max |Δ| on these models is ≤ 8e-6
// (data/golden/deepseek_moe/README.md), so 1e-4 leaves > 10× headroom, while every wrong routing rule
// moves the logits by ≥ 0.26 (the generator's sensitivity table).
TEST_CASE("DeepSeek MoE models match the independent float64 implementation on both MLA paths",
          "[golden][model][moe]") {
    for (const char* name : kGoldenCases) {
        const std::string dir = golden_dir(name);
        const TensorMap g = read_safetensors(dir + "/expected.safetensors");
        const std::vector<int32_t> tokens = golden_tokens(g);
        const std::vector<double> want = g.at("logits").to_f64();
        for (const char* path : {"naive", "absorb"}) {
            INFO("case " << name << ", --attn " << path);
            Model model(dir, opts(path).model);
            const ModelConfig& c = model.config();
            const int64_t V = c.vocab_size, T = (int64_t)tokens.size(), d = c.hidden_size;
            Trace trace;
            const std::vector<float> logits = model.prefill(tokens, &trace);
            CHECK(max_diff_prefix(logits, want, T * V) <= 1e-4);
            int64_t moe_layers = 0, compared = 0;
            for (int64_t i = 0; i < c.num_hidden_layers; i++) {
                const std::string h = "hidden." + std::to_string(i);
                REQUIRE(trace.tensors().count(h));
                CHECK(max_diff_prefix(trace.tensors().at(h).to_f32(), g.at(h).to_f64(), T * d) <= 1e-4);
                const bool moe = c.is_moe_layer(i);
                CHECK(moe == (g.count("topk_idx." + std::to_string(i)) == 1));  // same layers are MoE
                CHECK(moe == (trace.tensors().count("topk_idx." + std::to_string(i)) == 1));
                if (!moe) continue;
                moe_layers++;
                compared += check_routing(trace.tensors(), g, i);
            }
            CHECK(moe_layers >= 1);
            CHECK(compared >= moe_layers * (T - 1));  // at most one near-tie token per layer in these files
            // by causality the first rows are the answer for a shorter prompt
            const std::vector<float> short_logits =
                model.prefill(std::vector<int32_t>(tokens.begin(), tokens.begin() + 5));
            CHECK(max_diff_prefix(short_logits, want, 5 * V) <= 1e-4);
        }
    }
}

TEST_CASE("the golden MoE cases cover FP8 shards, scales in other shards, edge blocks and MTP", "[golden][model][moe]") {
    // v3_moe: F8_E4M3 weights in 3 shards, every scale in another shard, edge blocks, an MTP layer
    Checkpoint ck(golden_dir("v3_moe"));
    CHECK(ck.n_files() == 3);
    const ModelConfig c = load_config(golden_dir("v3_moe"));
    CHECK(c.fp8_weights);
    CHECK(c.num_nextn_predict_layers == 1);
    int64_t fp8 = 0, row_edges = 0, col_edges = 0;
    for (const std::string& n : ck.names()) {
        const TensorRef& r = ck.get(n);
        if (r.dtype != DType::F8_E4M3) continue;
        fp8++;
        const TensorRef& s = ck.get(n + "_scale_inv");
        CHECK(s.file != r.file);
        if (r.shape[0] > 128 && r.shape[0] % 128) row_edges++;
        if (r.shape[1] > 128 && r.shape[1] % 128) col_edges++;
    }
    CHECK(fp8 > 100);
    CHECK(row_edges > 0);
    CHECK(col_edges > 0);
    CHECK(ck.get("model.layers.1.mlp.gate.e_score_correction_bias").dtype == DType::F32);
    CHECK(ck.get("model.layers.1.mlp.gate.weight").dtype == DType::BF16);
    // v3_negbias: every correction bias is negative
    Checkpoint nb(golden_dir("v3_negbias"));
    for (int64_t i = 0; i < 2; i++)
        for (float b : nb.get("model.layers." + std::to_string(i) + ".mlp.gate.e_score_correction_bias").to_f32())
            CHECK(b < 0.0f);
}

TEST_CASE("mtp_logits match the float64 implementation; the MTP layer is ignored without --mtp",
          "[golden][model][moe][mtp]") {
    const std::string dir = golden_dir("v3_moe");
    const TensorMap g = read_safetensors(dir + "/expected.safetensors");
    const std::vector<int32_t> tokens = golden_tokens(g);
    const int64_t T = (int64_t)tokens.size();
    for (const char* path : {"naive", "absorb"}) {
        INFO("--attn " << path);
        Model m(dir, opts(path).model);
        Mtp mtp_module(m);
        const ModelConfig& c = m.config();
        const int64_t V = c.vocab_size, L = c.num_hidden_layers, d = c.hidden_size;
        Trace trace({"hidden." + std::to_string(L), "topk_idx." + std::to_string(L), "topk_weight." + std::to_string(L)});
        const Mtp::Output r = mtp_module.forward(tokens, &trace);
        CHECK(max_diff_prefix(r.logits, g.at("logits").to_f64(), T * V) <= 1e-4);
        CHECK(r.logits == m.prefill(tokens));  // the main logits are the plain forward's
        const std::vector<float>& mtp = r.mtp_logits;
        CHECK(max_diff_prefix(mtp, g.at("mtp_logits").to_f64(), (T - 1) * V) <= 1e-4);  // as the main logits
        const std::string hL = "hidden." + std::to_string(L);
        REQUIRE(trace.tensors().count(hL));
        CHECK(trace.tensors().at(hL).shape == Shape{T - 1, d});
        CHECK(max_diff_prefix(trace.tensors().at(hL).to_f32(), g.at(hL).to_f64(), (T - 1) * d) <= 1e-4);
        CHECK(check_routing(trace.tensors(), g, L) == T - 1);
        // the layer's own embedding/head differ from the main ones, so the fallback result is different
        double moved = 0;
        const std::vector<double> fb = g.at("mtp_logits.fallback").to_f64();
        for (int64_t j = 0; j < (T - 1) * V; j++) moved = std::max(moved, std::fabs(mtp[j] - fb[j]));
        CHECK(moved > 0.1);
    }

    const TensorMap all = read_checkpoint(dir);
    const std::string pL = "model.layers.2.";
    {   // without the layer's own embed_tokens / shared_head.*, the main ones are used
        TensorMap w = all;
        for (const char* n : {"embed_tokens.weight", "shared_head.norm.weight", "shared_head.head.weight"})
            REQUIRE(w.erase(pL + n) == 1);
        dsref_test::TempDir t;
        write_checkpoint(t.path, w, 3);
        copy_config(dir, t.path);
        Model m(t.path, opts("absorb").model);
        const int64_t V = m.config().vocab_size;
        CHECK(max_diff_prefix(Mtp(m).forward(tokens).mtp_logits, g.at("mtp_logits.fallback").to_f64(), (T - 1) * V) <=
              1e-4);
    }
    {   // without any layer-L tensor: the default forward runs and gives the same logits bit for bit;
        // --mtp names the first missing MTP tensor
        TensorMap w;
        for (const auto& kv : all)
            if (kv.first.rfind(pL, 0) != 0) w[kv.first] = kv.second;
        CHECK(w.size() + 100 < all.size());  // the MTP layer is 124 tensors (with scales)
        dsref_test::TempDir t;
        write_checkpoint(t.path, w, 2);
        copy_config(dir, t.path);
        Model full(dir, opts("absorb").model), cut(t.path, opts("absorb").model);
        CHECK(full.prefill(tokens) == cut.prefill(tokens));
        CHECK_THAT(model_error(t.path, opts("absorb", true)), Catch::Contains("missing MTP tensor 'model.layers.2."));
    }
    {   // a malformed MTP tensor is never read without --mtp
        TensorMap w = all;
        w[pL + "eh_proj.weight"] = Tensor::zeros(DType::F32, {64, 64});
        dsref_test::TempDir t;
        write_checkpoint(t.path, w, 1);
        copy_config(dir, t.path);
        CHECK(model_error(t.path).empty());
        CHECK_THAT(model_error(t.path, opts("naive", true)),
                   Catch::Contains("tensor 'model.layers.2.eh_proj.weight' has shape [64, 64], expected [64, 128]"));
    }
}

// ---- FP8 dequantization -------------------------------------------------------------------------------

TEST_CASE("FP8 block dequantization: hand-computed blocks, partial edge blocks, scale in another shard",
          "[fp8][weights]") {
    // A [130, 260] weight: a 2 × 3 grid whose last row block has 2 rows and last column block 4 columns.
    const int64_t R = 130, C = 260;
    // Codes and their E4M3FN values, decoded by hand: S.EEEE.MMM, bias 7.
    //   0x38 = 0.0111.000 = 1.0      0x40 = 0.1000.000 = 2.0     0x3C = 0.0111.100 = 1.5
    //   0xB8 = 1.0111.000 = -1.0     0x30 = 0.0110.000 = 0.5     0x01 = subnormal 1/8·2^-6 = 2^-9
    //   0x7E = 0.1111.110 = 1.75·2^8 = 448
    const uint8_t codes[7] = {0x38, 0x40, 0x3C, 0xB8, 0x30, 0x01, 0x7E};
    const double values[7] = {1.0, 2.0, 1.5, -1.0, 0.5, 1.0 / 512, 448.0};
    std::vector<uint8_t> q(R * C);
    std::vector<int> which(R * C);
    for (int64_t r = 0; r < R; r++)
        for (int64_t c = 0; c < C; c++) {
            which[r * C + c] = (int)((r * 2 + c * 3) % 7);
            q[r * C + c] = codes[which[r * C + c]];
        }
    // scale_inv[i][j] = 0.25·(1 + 3i + j): every block has its own scale
    std::vector<float> s(2 * 3);
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++) s[i * 3 + j] = 0.25f * (1 + 3 * i + j);

    Tensor wq;
    wq.dtype = DType::F8_E4M3;
    wq.shape = {R, C};
    wq.bytes = q;
    dsref_test::TempDir t;
    write_checkpoint(t.path, {{"w.weight", wq}, {"w.weight_scale_inv", Tensor::from_f32({2, 3}, s)}}, 2);
    Checkpoint ck(t.path);
    REQUIRE(ck.get("w.weight").file != ck.get("w.weight_scale_inv").file);  // another shard
    ModelConfig cfg;
    WeightLoader loader(ck, cfg);
    const std::vector<float> w = loader.load("w.weight", {R, C});
    // every element: value × its block's scale (exact in float32: ≤ 4 significant bits × ≤ 3 bits)
    int64_t bad = 0;
    for (int64_t r = 0; r < R; r++)
        for (int64_t c = 0; c < C; c++)
            if (w[r * C + c] != (float)(values[which[r * C + c]] * 0.25 * (1 + 3 * (r / 128) + c / 128))) bad++;
    CHECK(bad == 0);
    // spot checks, by hand: (2r + 3c) % 7 picks the code
    CHECK(w[0 * C + 0] == 0.25f);               // 0x38 = 1.0, block (0, 0): s = 0.25
    CHECK(w[0 * C + 1] == -0.25f);              // 3: 0xB8 = -1.0
    CHECK(w[127 * C + 128] == 1.0f);            // (254 + 384) % 7 = 1: 0x40 = 2.0, block (0, 1): s = 0.5
    CHECK(w[128 * C + 0] == 0.5f);              // 256 % 7 = 4: 0x30 = 0.5, edge row block (1, 0): s = 1.0
    CHECK(w[129 * C + 1] == 1.5f);              // 261 % 7 = 2: 0x3C = 1.5, s = 1.0
    CHECK(w[0 * C + 256] == 0.75f / 512);       // 768 % 7 = 5: 0x01 = 2^-9, edge column block (0, 2): s = 0.75
    CHECK(w[129 * C + 259] == 672.0f);          // 1035 % 7 = 6: 0x7E = 448, corner block (1, 2): s = 1.5

    // other block sizes (weight_block_size [64, 32]) use the same rule on their own grid
    const std::vector<float> s2 = dsref_test::randn(3 * 9, 5, 1.0f);  // [ceil(130/64), ceil(260/32)] = [3, 9]
    std::vector<float> w2(R * C);
    fp8_dequant_weight(w2.data(), q.data(), s2.data(), R, C, 64, 32);
    CHECK(w2[129 * C + 259] == (float)values[which[129 * C + 259]] * s2[2 * 9 + 8]);
    CHECK(w2[64 * C + 31] == (float)values[which[64 * C + 31]] * s2[1 * 9 + 0]);

    // bad scales are refused with the tensor named
    dsref_test::TempDir t2;
    write_checkpoint(t2.path, {{"w.weight", wq}, {"w.weight_scale_inv", Tensor::from_f32({2, 2}, {1, 1, 1, 1})}}, 1);
    Checkpoint ck2(t2.path);
    WeightLoader l2(ck2, cfg);
    CHECK_THROWS_WITH(l2.load("w.weight", {R, C}), Catch::Contains("'w.weight_scale_inv' has shape [2, 2], expected [2, 3]"));
    dsref_test::TempDir t3;
    write_checkpoint(t3.path, {{"w.weight", wq}}, 1);
    Checkpoint ck3(t3.path);
    WeightLoader l3(ck3, cfg);
    CHECK_THROWS_WITH(l3.load("w.weight", {R, C}), Catch::Contains("FP8 tensor 'w.weight' has no 'w.weight_scale_inv'"));

    // The model reads FP8 through the same dequantizer as op fp8_dequant, with its NaN policy
    // (fp8/fp8_quant.h): a NaN code names the tensor, the element and its block; so does a NaN scale.
    Tensor wn = wq;
    wn.bytes[129 * C + 259] = 0xFF;  // -NaN in E4M3FN
    dsref_test::TempDir t4;
    write_checkpoint(t4.path, {{"w.weight", wn}, {"w.weight_scale_inv", Tensor::from_f32({2, 3}, s)}}, 1);
    Checkpoint ck4(t4.path);
    CHECK_THROWS_WITH(WeightLoader(ck4, cfg).load("w.weight", {R, C}),
                      Catch::Contains("tensor 'w.weight': fp8_dequant_weight: q[129, 259] (block [1, 2]) is the E4M3 NaN code"));
    std::vector<float> s_nan = s;
    s_nan[4] = NAN;
    dsref_test::TempDir t5;
    write_checkpoint(t5.path, {{"w.weight", wq}, {"w.weight_scale_inv", Tensor::from_f32({2, 3}, s_nan)}}, 1);
    Checkpoint ck5(t5.path);
    CHECK_THROWS_WITH(WeightLoader(ck5, cfg).load("w.weight", {R, C}),
                      Catch::Contains("tensor 'w.weight': fp8_dequant_weight: scale [1, 1] = nan is not finite"));
}

// ---- init of FP8 / MTP / negative-bias configs ----------------------------------------------------------

namespace {
// A small V3 MoE config: layer 0 dense (160 wide, so FP8 edge blocks exist), layer 1 MoE, one MTP layer.
json small_moe_v3(bool fp8) {
    json j = {{"architectures", {"DeepseekV3ForCausalLM"}}, {"model_type", "deepseek_v3"}, {"hidden_size", 32},
              {"intermediate_size", 160}, {"num_hidden_layers", 2}, {"num_attention_heads", 2}, {"vocab_size", 50},
              {"q_lora_rank", 24}, {"kv_lora_rank", 16}, {"qk_nope_head_dim", 8}, {"qk_rope_head_dim", 4},
              {"v_head_dim", 8}, {"rms_norm_eps", 1e-6}, {"rope_theta", 10000},
              {"rope_scaling", {{"type", "yarn"}, {"factor", 4}, {"original_max_position_embeddings", 16},
                                {"mscale", 1.0}, {"mscale_all_dim", 1.0}}},
              {"n_routed_experts", 8}, {"n_shared_experts", 1}, {"num_experts_per_tok", 2},
              {"moe_intermediate_size", 16}, {"n_group", 4}, {"topk_group", 2}, {"first_k_dense_replace", 1},
              {"moe_layer_freq", 1}, {"routed_scaling_factor", 2.5}, {"scoring_func", "sigmoid"},
              {"topk_method", "noaux_tc"}, {"norm_topk_prob", true}, {"num_nextn_predict_layers", 1},
              {"eos_token_id", 1}};
    if (fp8)
        j["quantization_config"] = {{"quant_method", "fp8"}, {"fmt", "e4m3"}, {"activation_scheme", "dynamic"},
                                    {"weight_block_size", {128, 128}}};
    return j;
}

void write_config(const std::string& dir, const json& j) { dsref_test::write_text(dir + "/config.json", j.dump(2)); }
}  // namespace

TEST_CASE("init of an FP8 config writes the weight quantizer's blocks and runs through forward", "[init][fp8][moe]") {
    const ModelConfig c8 = parse_config(small_moe_v3(true), "fp8 config");
    const ModelConfig c32 = parse_config(small_moe_v3(false), "f32 config");
    InitOptions o;
    o.seed = 7;
    o.dtype = DType::BF16;
    o.shards = 3;
    dsref_test::TempDir t8;
    init_checkpoint(c8, o, t8.path);
    o.dtype = DType::F32;
    o.shards = 1;
    const TensorMap f32 = init_weights(c32, o);  // same seed: the same values before quantization
    Checkpoint ck(t8.path);
    CHECK(ck.n_files() == 3);
    int64_t fp8 = 0, edge = 0;
    for (const WeightSpec& s : checkpoint_layout(c8)) {
        INFO(s.name);
        REQUIRE(ck.has(s.name));
        const TensorRef& r = ck.get(s.name);
        if (!s.fp8) {
            CHECK(r.dtype == (s.kind == InitKind::Bias ? DType::F32 : DType::BF16));
            CHECK_FALSE(ck.has(s.name + "_scale_inv"));
            continue;
        }
        fp8++;
        REQUIRE(r.dtype == DType::F8_E4M3);
        const int64_t R = s.shape[0], C = s.shape[1];
        const TensorRef& sc = ck.get(s.name + "_scale_inv");
        CHECK(sc.shape == Shape{(R + 127) / 128, (C + 127) / 128});
        CHECK(sc.file != r.file);
        if (R > 128 || C > 128) edge++;
        // the bytes fp8_quant.h's weight quantizer gives for the float32 draw
        std::vector<uint8_t> q(R * C);
        std::vector<float> scale(sc.shape[0] * sc.shape[1]);
        fp8_quant_weight(q.data(), scale.data(), f32.at(s.name).to_f32().data(), R, C, Fp8ScaleFmt::Fp32);
        CHECK(std::equal(q.begin(), q.end(), r.data));
        CHECK(sc.to_f32() == scale);
    }
    CHECK(fp8 > 50);
    CHECK(edge >= 3);  // layer 0's gate/up [160, 32] and down [32, 160]
    CHECK(ck.has("model.layers.2.eh_proj.weight"));  // the MTP layer is written

    // forward on the FP8 checkpoint == forward on an F32 checkpoint holding decode(q)·scale_inv:
    // weight-only FP8, dequantized in float32 and nothing else changes
    TensorMap deq;
    WeightLoader loader(ck, c8);
    for (const WeightSpec& s : checkpoint_layout(c8)) deq[s.name] = Tensor::from_f32(s.shape, loader.load(s.name, s.shape));
    dsref_test::TempDir td;
    write_checkpoint(td.path, deq, 1);
    write_config(td.path, small_moe_v3(false));
    const std::vector<int32_t> tokens = {3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3};
    for (const char* path : {"naive", "absorb"}) {
        INFO(path);
        Model a(t8.path, opts(path).model), b(td.path, opts(path).model);
        const Mtp::Output ra = Mtp(a).forward(tokens), rb = Mtp(b).forward(tokens);
        const std::vector<float>& la = ra.logits;
        CHECK(la == rb.logits);
        CHECK(ra.mtp_logits == rb.mtp_logits);
        for (float v : la) REQUIRE(std::isfinite(v));
    }
    // another weight_block_size ([64, 32]) gives its own grid, and every dequantized element is within
    // half an E4M3 step of the float32 draw: |w − deq| ≤ |w|/16, or half the subnormal step s·2^-10
    {
        json j = small_moe_v3(true);
        j["quantization_config"]["weight_block_size"] = {64, 32};
        const ModelConfig cb = parse_config(j, "block config");
        const TensorMap m = init_weights(cb, InitOptions{7, DType::F32, 1});
        const std::string n = "model.layers.0.mlp.down_proj.weight";  // [32, 160]
        CHECK(m.at(n + "_scale_inv").shape == Shape{1, 5});
        CHECK(m.at("model.layers.0.mlp.gate_proj.weight_scale_inv").shape == Shape{3, 1});  // [160, 32]
        const std::vector<float> s = m.at(n + "_scale_inv").to_f32();
        std::vector<float> deq(32 * 160);
        fp8_dequant_weight(deq.data(), m.at(n).bytes.data(), s.data(), 32, 160, 64, 32);
        const std::vector<float> w = f32.at(n).to_f32();
        int64_t far = 0;
        for (int64_t r = 0; r < 32; r++)
            for (int64_t c = 0; c < 160; c++) {
                const double err = std::fabs((double)w[r * 160 + c] - deq[r * 160 + c]);
                if (err > std::max(std::fabs(w[r * 160 + c]) / 16.0, s[c / 32] * std::ldexp(1.0, -10)) * (1 + 1e-6)) far++;
            }
        CHECK(far == 0);
    }
    // FP8 storage moves the model (it is not silently the F32 one): the F32 init's logits differ
    dsref_test::TempDir tf;
    init_checkpoint(c32, InitOptions{7, DType::F32, 1}, tf.path);
    Model a(t8.path, opts("absorb").model), f(tf.path, opts("absorb").model);
    CHECK(dsref_test::max_abs_diff(a.prefill(tokens), f.prefill(tokens)) > 1e-3);
}

TEST_CASE("init --bias-offset makes a negative-bias V3 model; init honours num_nextn_predict_layers",
          "[init][moe][cli]") {
    using dsref_test::run_dsref;
    dsref_test::TempDir t;
    write_config(t.path, small_moe_v3(false));
    std::string out;
    REQUIRE(run_dsref("init --config " + t.path + " --seed 3 --out " + t.file("m") + " --bias-offset -1", &out) == 0);
    Checkpoint ck(t.file("m"));
    for (int64_t layer : {1, 2}) {  // the MoE layer and the MTP layer
        const TensorRef& b = ck.get("model.layers." + std::to_string(layer) + ".mlp.gate.e_score_correction_bias");
        CHECK(b.dtype == DType::F32);
        double mean = 0;
        for (float v : b.to_f32()) {
            CHECK(v < 0.0f);  // -1 + 0.1·N(0,1): below 0 unless a draw passes 10 sigma
            mean += v / 8;
        }
        CHECK(mean == Approx(-1.0).margin(0.15));
    }
    CHECK(run_dsref("forward --model " + t.file("m") + " --tokens 1,2,3 --out " + t.file("o") + " --mtp", &out) == 0);
    const TensorMap o = read_safetensors(t.file("o"));
    CHECK(o.at("mtp_logits").shape == Shape{2, 50});
    CHECK(run_dsref("init --help", &out) == 0);
    CHECK_THAT(out, Catch::Contains("--bias-offset") && Catch::Contains("weight_scale_inv"));
}

// ---- bad input ------------------------------------------------------------------------------------------

TEST_CASE("a missing expert, a bias of the wrong length and an unreachable top-K are refused",
          "[model][moe][errors]") {
    const std::string dir = golden_dir("v3_negbias");
    const TensorMap all = read_checkpoint(dir);
    {
        TensorMap w = all;
        REQUIRE(w.erase("model.layers.1.mlp.experts.5.down_proj.weight") == 1);
        dsref_test::TempDir t;
        write_checkpoint(t.path, w, 1);
        copy_config(dir, t.path);
        CHECK_THAT(model_error(t.path), Catch::Contains("missing tensor 'model.layers.1.mlp.experts.5.down_proj.weight'"));
    }
    {
        TensorMap w = all;
        w["model.layers.0.mlp.gate.e_score_correction_bias"] = Tensor::from_f32({15}, std::vector<float>(15, -0.5f));
        dsref_test::TempDir t;
        write_checkpoint(t.path, w, 1);
        copy_config(dir, t.path);
        CHECK_THAT(model_error(t.path), Catch::Contains("'model.layers.0.mlp.gate.e_score_correction_bias' has shape "
                                                        "[15], expected [16]"));
    }
    {   // 16 experts in 4 groups, topk_group 2 → at most 8 reachable experts
        json j = json::parse(std::ifstream(dir + "/config.json"));
        j["num_experts_per_tok"] = 9;
        dsref_test::TempDir t;
        write_checkpoint(t.path, all, 1);
        write_config(t.path, j);
        CHECK_THAT(model_error(t.path), Catch::Contains("num_experts_per_tok = 9 is larger than the 8 experts that "
                                                        "topk_group = 2 groups of 4 hold"));
        j["num_experts_per_tok"] = 4;
        j["topk_method"] = "top2";
        write_config(t.path, j);
        CHECK_THAT(model_error(t.path), Catch::Contains("topk_method 'top2' is not supported"));
    }
    // --mtp on a model without an MTP layer, and with fewer than 2 tokens
    CHECK_THAT(model_error(dir, opts("absorb", true)), Catch::Contains("num_nextn_predict_layers = 0"));
    using dsref_test::run_dsref;
    std::string out;
    dsref_test::TempDir t;
    CHECK(run_dsref("forward --model " + dir + " --tokens 1,2 --out " + t.file("o") + " --mtp", &out) == 1);
    CHECK_THAT(out, Catch::Contains("--mtp needs a multi-token-prediction layer"));
    CHECK(run_dsref("forward --model " + golden_dir("v3_moe") + " --tokens 5 --out " + t.file("o") + " --mtp", &out) == 2);
    CHECK_THAT(out, Catch::Contains("needs at least 2 tokens"));
}

// ---- decode, generation, threads --------------------------------------------------------------------------

// 1e-5 absolute on logits of magnitude ~3: decode multiplies 1-row tiles where the prefill multiplies
// larger tiles (float32 rounding, measured ≤ 2e-6); routing margins here are ≥ 4e-5, far above that.
TEST_CASE("cached decode equals a full prefill, and greedy generate follows the argmax chain, on MoE models",
          "[model][moe][cache][generate]") {
    for (const char* name : {"v3_moe", "v2_moe"}) {
        const std::string dir = golden_dir(name);
        const TensorMap g = read_safetensors(dir + "/expected.safetensors");
        const std::vector<int32_t> tokens = golden_tokens(g);
        for (const char* path : {"naive", "absorb"}) {
            INFO(name << ", --attn " << path);
            Model m(dir, opts(path, false, true).model);
            const int64_t V = m.config().vocab_size, T = (int64_t)tokens.size();
            const std::vector<float> full = m.prefill(tokens);
            KVCache cache;
            const std::vector<float> got = dsref_test::prefill_then_decode(m, tokens, 20, cache);
            CHECK(dsref_test::max_abs_diff(got, full) < 1e-5);
            CHECK(max_diff_prefix(got, g.at("logits").to_f64(), T * V) <= 1e-4);

            const std::vector<int32_t> prompt(tokens.begin(), tokens.begin() + 4);
            const int64_t N = 8;
            const GenerateResult r = generate(m, prompt, N, SamplingParams{}, false);
            REQUIRE(r.tokens.size() == (size_t)N);
            std::vector<int32_t> seq = prompt;
            for (int64_t n = 0; n < N; n++) {
                const std::vector<float> last = m.prefill(seq, nullptr, true);
                CHECK(argmax_lowest(last.data(), V) == r.tokens[n]);
                const std::vector<float> chosen(r.logits.begin() + n * V, r.logits.begin() + (n + 1) * V);
                CHECK(dsref_test::max_abs_diff(chosen, last) < 1e-5);
                seq.push_back(r.tokens[n]);
            }
        }
    }
}

TEST_CASE("an MoE forward (and MTP) is bit-identical at 1 and 2 threads", "[model][moe][threads]") {
    const std::string dir = golden_dir("v3_moe");
    const std::vector<int32_t> tokens = golden_tokens(read_safetensors(dir + "/expected.safetensors"));
    Model m(dir, opts("absorb").model);
    Mtp mtp(m);
    std::vector<float> a, b, ma, mb;
    for (int threads : {1, 2}) {
        dsref_test::ThreadScope s(threads);
        Mtp::Output r = mtp.forward(tokens);
        (threads == 1 ? a : b) = std::move(r.logits);
        (threads == 1 ? ma : mb) = std::move(r.mtp_logits);
    }
    CHECK(a == b);
    CHECK(ma == mb);
}

// ---- command line and info ------------------------------------------------------------------------------

TEST_CASE("dsref forward --dump writes the routing and --mtp the mtp_logits; --help documents them", "[cli][moe]") {
    using dsref_test::run_dsref;
    const std::string dir = golden_dir("v3_moe");
    const TensorMap g = read_safetensors(dir + "/expected.safetensors");
    std::string toks;
    for (int32_t id : golden_tokens(g)) toks += (toks.empty() ? "" : ",") + std::to_string(id);
    dsref_test::TempDir t;
    std::string out;
    REQUIRE(run_dsref("forward --model " + dir + " --tokens " + toks + " --out " + t.file("a") + " --dump --mtp", &out) == 0);
    const TensorMap o = read_safetensors(t.file("a"));
    CHECK(max_diff_prefix(o.at("logits").to_f32(), g.at("logits").to_f64(), 32 * 80) <= 1e-4);
    CHECK(max_diff_prefix(o.at("mtp_logits").to_f32(), g.at("mtp_logits").to_f64(), 31 * 80) <= 1e-4);
    CHECK(o.at("topk_idx.1").dtype == DType::I32);
    CHECK(o.at("topk_idx.1").shape == Shape{32, 3});
    CHECK(o.at("topk_weight.2").shape == Shape{31, 3});  // the MTP layer, L = 2
    CHECK_FALSE(o.count("topk_idx.0"));                     // layer 0 is dense
    // without --mtp: no mtp_logits, no layer-2 intermediates
    REQUIRE(run_dsref("forward --model " + dir + " --tokens " + toks + " --out " + t.file("b") + " --dump", &out) == 0);
    const TensorMap ob = read_safetensors(t.file("b"));
    CHECK_FALSE(ob.count("mtp_logits"));
    CHECK_FALSE(ob.count("hidden.2"));
    CHECK(ob.at("logits").to_f32() == o.at("logits").to_f32());
    REQUIRE(run_dsref("forward --model " + dir + " --tokens " + toks + " --out " + t.file("c") +
                      " --dump-only topk_idx.1,topk_weight.1", &out) == 0);
    CHECK(read_safetensors(t.file("c")).size() == 3);
    CHECK(run_dsref("forward --help", &out) == 0);
    CHECK_THAT(out, Catch::Contains("topk_idx.{i}") && Catch::Contains("topk_weight.{i}") &&
                        Catch::Contains("ties to the lower expert id") && Catch::Contains("mtp_logits") &&
                        Catch::Contains("follows vLLM") && Catch::Contains("embedding first"));
}

TEST_CASE("info counts 671B/37B for V3, 236B/21B for V2, 15.7B/2.4B for V2-Lite from config.json alone",
          "[info][moe]") {
    struct Want {
        const char* file;
        int64_t total, active, mtp;
    };
    // Convention (model_info.h): total = every main-model tensor; active = total − unused routed experts −
    // the embedding table; MTP apart without its copies of embedding and head.
    const Want wants[] = {{"deepseek_v3", 671026419200, 36625618432, 11610068224},
                          {"deepseek_v2", 235741434880, 20851512320, 0},
                          {"deepseek_v2_lite", 15706484224, 2451435008, 0}};
    for (const Want& w : wants) {
        INFO(w.file);
        const ModelConfig c = load_config(std::string("data/configs/") + w.file + ".json");
        const ParamCounts p = count_params(c);
        CHECK(p.total == w.total);
        CHECK(p.active == w.active);
        CHECK(p.mtp_total == w.mtp);
    }
    // the papers' figures, rounded as they print them
    const ParamCounts v3 = count_params(load_config("data/configs/deepseek_v3.json"));
    CHECK(std::round(v3.total / 1e9) == 671);
    CHECK(std::round(v3.active / 1e9) == 37);
    CHECK(std::round(v3.mtp_total / 1e8) == 116);  // "11.5B unique" (V3 README_WEIGHTS), 11.6B here
    CHECK(std::round(count_params(load_config("data/configs/deepseek_v2.json")).total / 1e9) == 236);
    CHECK(std::round(count_params(load_config("data/configs/deepseek_v2.json")).active / 1e9) == 21);
    const ParamCounts lite = count_params(load_config("data/configs/deepseek_v2_lite.json"));
    CHECK(std::round(lite.total / 1e8) == 157);
    CHECK(std::floor(lite.active / 1e8) == 24);
    // The real V3 checkpoint's tensor listing (its model.safetensors.index.json): 91,991 tensors, 684,531,386,000 elements
    // (weights, MTP layer with its copies, and every weight_scale_inv).
    const json info = model_info(load_config("data/configs/deepseek_v3.json"));
    CHECK(info["parameters"]["stored_tensors"] == 91991);
    CHECK(info["parameters"]["stored_elements_with_scales"] == 684531386000);
    CHECK(info["parameters"]["stored_total"] == 671026419200 + 11610068224 + 2 * 129280 * 7168);

    // `dsref info` on a directory that holds only config.json
    using dsref_test::run_dsref;
    dsref_test::TempDir t;
    std::ifstream f("data/configs/deepseek_v3.json");
    std::stringstream ss;
    ss << f.rdbuf();
    dsref_test::write_text(t.file("config.json"), ss.str());
    std::string out;
    REQUIRE(run_dsref("info --model " + t.path, &out) == 0);
    CHECK_THAT(out, Catch::Contains("671026419200 (671.03B)") && Catch::Contains("36625618432 (36.63B)") &&
                        Catch::Contains("11610068224 (11.61B)") && Catch::Contains("684531386000"));
}

// ---- streamed experts and streamed init ------------------------------------------------------------------

namespace {
std::string file_bytes(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}
}  // namespace

TEST_CASE("streamed experts give the held-weights forward bit for bit (FP8 shards, both MLA paths, threads)",
          "[model][moe][stream]") {
    // v3_moe: FP8 experts in 3 shards with their scales in other shards, an MTP layer.
    for (const char* name : {"v3_moe", "v2_moe"}) {
        const std::string dir = golden_dir(name);
        const std::vector<int32_t> tokens = golden_tokens(read_safetensors(dir + "/expected.safetensors"));
        for (const char* path : {"naive", "absorb"}) {
            INFO(name << " --attn " << path);
            Opts held = opts(path), kept = opts(path, false, true);
            held.model.fwd.stream_experts = false;
            Model mh(dir, held.model), mk(dir, kept.model);
            const std::vector<float> want = mh.prefill(tokens);
            CHECK(mk.prefill(tokens) == want);
            for (int threads : {1, 2}) {
                dsref_test::ThreadScope s(threads);
                Model ms(dir, opts(path).model);  // streaming is the default
                const int64_t before = moe_stream_stats().experts;
                Trace ts, th;
                CHECK(ms.prefill(tokens, &ts) == want);
                mh.prefill(tokens, &th);
                CHECK(moe_stream_stats().experts > before);  // the experts were indeed streamed
                CHECK(ts.tensors().size() == th.tensors().size());
                for (const auto& kv : th.tensors()) {
                    INFO(kv.first);
                    CHECK(ts.tensors().at(kv.first).bytes == kv.second.bytes);
                }
            }
        }
    }
    // The head in slices is the one product over the whole head, bit for bit (a vocabulary of several
    // slices: 20000 rows > 8192 per slice, with a partial last tile).
    {
        dsref_test::TempDir t;
        json j = small_moe_v3(false);
        j["vocab_size"] = 20000;
        j["tie_word_embeddings"] = false;
        InitOptions o;
        o.seed = 2;
        init_checkpoint(parse_config(j, "config"), o, t.path);
        Model m(t.path, opts("absorb").model);
        const int64_t d = m.config().hidden_size, V = 20000;
        const std::vector<float> x = dsref_test::randn(3 * d, 5);
        const std::vector<float> w = m.checkpoint().get("lm_head.weight").to_f32();
        std::vector<float> want(3 * V);
        linear_forward(want.data(), x.data(), w.data(), 3, d, V);
        CHECK(m.lm_head(x.data(), 3) == want);
    }
    // A token routed to few experts: only those are read (2 tokens, top-K each, per MoE layer).
    const std::string dir = golden_dir("v3_moe");
    Model ms(dir, opts("absorb").model);
    const ModelConfig& c = ms.config();
    int64_t moe_layers = 0;
    for (int64_t i = 0; i < c.num_hidden_layers; i++) moe_layers += c.is_moe_layer(i);
    const int64_t before = moe_stream_stats().experts;
    ms.prefill({1, 2});
    CHECK(moe_stream_stats().experts - before <= moe_layers * 2 * c.num_experts_per_tok);
    CHECK(moe_stream_stats().experts - before < moe_layers * c.n_routed_experts);
}

TEST_CASE("init writes tensor by tensor the bytes of write_checkpoint(init_weights)", "[init][stream]") {
    // The streamed writer against the in-memory one: FP8 with edge blocks and 3 shards, bf16, f32.
    // Small slices, so that every tensor of the golden v3_moe layout (FP8 weights of more than 128 rows,
    // edge blocks) is written in several slices.
    struct Case {
        bool fp8;
        DType dt;
        int shards;
        int64_t slice;
    };
    for (const Case& k : {Case{true, DType::BF16, 3, 1000}, Case{true, DType::BF16, 1, 16 << 20},
                          Case{false, DType::F32, 1, 37}, Case{false, DType::BF16, 2, 1000}}) {
        INFO("fp8 " << k.fp8 << " shards " << k.shards << " slice " << k.slice);
        const ModelConfig c = k.fp8 ? load_config(golden_dir("v3_moe")) : parse_config(small_moe_v3(false), "config");
        InitOptions o;
        o.seed = 11;
        o.dtype = k.dt;
        o.shards = k.shards;
        o.slice_elems = k.slice;
        dsref_test::TempDir a, b;
        init_checkpoint(c, o, a.path);
        write_checkpoint(b.path, init_weights(c, o), k.shards);
        std::vector<std::string> files = {"model.safetensors"};
        if (k.shards > 1) {
            files = {"model.safetensors.index.json"};
            for (int s = 1; s <= k.shards; s++) {
                char n[64];
                std::snprintf(n, sizeof n, "model-%05d-of-%05d.safetensors", s, k.shards);
                files.push_back(n);
            }
        }
        for (const std::string& f : files) {
            INFO(f);
            const std::string x = file_bytes(a.file(f));
            CHECK(!x.empty());
            CHECK(x == file_bytes(b.file(f)));
        }
    }
}

TEST_CASE("info's forward estimate reads what the checkpoint stores, and the streamed forward reads that",
          "[info][stream]") {
    // With T·K >= E every expert may be read: the estimate is then the stored bytes of layers 0..L-1,
    // model.norm, the head and T embedding rows, summed here from a written FP8 checkpoint's tensors.
    const ModelConfig c = load_config(golden_dir("v3_moe"));
    dsref_test::TempDir t;
    InitOptions o;
    o.seed = 3;
    o.dtype = DType::BF16;
    init_checkpoint(c, o, t.path);
    const ModelConfig cw = load_config(t.path);  // torch_dtype bfloat16
    Checkpoint ck(t.path);
    const int64_t T = c.n_routed_experts, L = c.num_hidden_layers;
    double want = 0;
    for (const std::string& n : ck.names()) {
        const TensorRef& r = ck.get(n);
        if (n.rfind("model.layers.", 0) == 0 && std::stoll(n.substr(13)) >= L) continue;  // MTP
        if (n == "model.embed_tokens.weight" && !c.tie_word_embeddings)
            want += (double)r.nbytes * (double)T / (double)c.vocab_size;
        else
            want += (double)r.nbytes;
    }
    const ForwardEstimate e = estimate_forward(cw, T, 2);
    CHECK(std::fabs(e.bytes_read - want) <= 1e-9 * want);
    CHECK(e.peak > e.anonymous);
    CHECK(e.anonymous > 0);
    // T = 1: K experts per MoE layer at most, so fewer bytes.
    CHECK(estimate_forward(cw, 1, 2).bytes_read < e.bytes_read);
    // The real V3 cut to 2 layers (layer 1 MoE, FP8): T = 4 stays within 6 GB resident, 3 GB anonymous
    // (what a 24 GB machine shared by several runs leaves to one).
    json v3 = load_config("data/configs/deepseek_v3.json").raw;
    v3["num_hidden_layers"] = 2;
    v3["first_k_dense_replace"] = 1;
    v3["torch_dtype"] = "bfloat16";
    const ForwardEstimate e3 = estimate_forward(parse_config(v3, "v3 cut"), 4, 2);
    INFO("peak " << e3.peak / 1e9 << " GB, anonymous " << e3.anonymous / 1e9 << " GB, read " << e3.bytes_read / 1e9);
    CHECK(e3.peak < 6e9);
    CHECK(e3.anonymous < 3e9);
}
