// test_determinism.cpp — outputs are bit-identical at any thread count (ref/README.md: OpenMP only on
// outer loops, products through core/linear.h's fixed tiles, no thread-count-dependent reductions).
// `forward --dump`, `generate --out` and `op` run on a tiny model of every architecture at --threads 1
// and 3 and with OMP_NUM_THREADS unset (all cores: 2 on the CI machine); the output files must be equal
// byte for byte. Three threads split the tiles unevenly, which is where a thread-dependent reduction
// would show. (Each setting is a process start; four settings doubled the test's time for little.)
#include <catch2/catch.hpp>

#include <cstdlib>
#include <fstream>
#include <iterator>

#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "test_util.h"

using namespace dsref;
using dsref_test::TempDir;

namespace {

std::string file_bytes(const std::string& p) {
    std::ifstream f(p, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

// Runs `dsref ARGS --out DIR/<tag>.safetensors` at each thread setting; returns the files' bytes.
// setting 0 = no --threads and OMP_NUM_THREADS unset.
std::vector<std::string> outputs_at_threads(const std::string& args, const TempDir& d, const std::string& tag) {
    std::vector<std::string> bytes;
    for (int th : {1, 3, 0}) {
        const std::string out = d.file(tag + "_" + std::to_string(th) + ".safetensors");
        const std::string cmd = std::string(th == 0 ? "env -u OMP_NUM_THREADS " : "") + dsref_test::dsref_bin() + " " +
                                args + (th ? " --threads " + std::to_string(th) : "") + " --out " + out;
        std::string log;
        const int rc = dsref_test::run_cmd(cmd, &log);
        INFO(cmd << "\n" << log);
        REQUIRE(rc == 0);
        bytes.push_back(file_bytes(out));
        REQUIRE(!bytes.back().empty());
    }
    return bytes;
}

void check_all_equal(const std::vector<std::string>& b, const std::string& what) {
    INFO(what);
    for (size_t i = 1; i < b.size(); i++) CHECK(b[i] == b[0]);
}

// One layer's tensors from a checkpoint, with `prefix` stripped (the op's input names), plus x [T, d].
void op_inputs_from_checkpoint(const std::string& model, const std::string& prefix, int64_t T, int64_t d,
                               const std::string& path) {
    Checkpoint ck(model);
    TensorMap m;
    for (const std::string& n : ck.names())
        if (n.compare(0, prefix.size(), prefix) == 0) {
            const Shape s = ck.get(n).shape;
            m[n.substr(prefix.size())] = Tensor::from_f32(s, ck.load_f32(n, s));
        }
    m["x"] = Tensor::from_f32({T, d}, dsref_test::randn((size_t)(T * d), 7));
    write_safetensors(path, m);
}

}  // namespace

TEST_CASE("forward --dump and generate --out are bit-identical at 1 and 3 threads and all cores", "[threads]") {
    const char* models[] = {"data/golden/llama/gqa2",         "data/golden/hf/qwen2_tied", "data/golden/deepseek/v2",
                            "data/golden/deepseek_moe/v3_moe", "data/golden/dsa/model"};
    TempDir d;
    int n = 0;
    for (const char* m : models) {
        const std::string tokens = " --tokens 1,5,2,7,3,9,4,11,6";
        check_all_equal(outputs_at_threads(std::string("forward --model ") + m + tokens + " --dump", d, "f"), m);
        check_all_equal(outputs_at_threads(std::string("generate --model ") + m + tokens + " --max-new 4", d, "g"), m);
        n++;
    }
    CHECK(n == 5);
    // Sampling draws from the same distribution at any thread count.
    check_all_equal(outputs_at_threads("generate --model data/golden/llama/gqa2 --tokens 1,5,2 --max-new 6 --temperature 0.8 "
                                       "--top-p 0.9 --seed 3",
                                       d, "s"),
                    "sampled generate");
}

TEST_CASE("op outputs are bit-identical at 1 and 3 threads and all cores", "[threads]") {
    TempDir d;
    // op moe on the MoE layer of the tiny V3 (d = 64, 16 experts, groups, noaux_tc), op mla on a V3 layer.
    op_inputs_from_checkpoint("data/golden/deepseek_moe/v3_moe", "model.layers.1.mlp.", 9, 64, d.file("moe_in.safetensors"));
    check_all_equal(outputs_at_threads("op moe --in " + d.file("moe_in.safetensors") +
                                           " --set num_experts_per_tok=3 --set n_group=4 --set topk_group=2"
                                           " --set scoring_func=sigmoid --set topk_method=noaux_tc"
                                           " --set norm_topk_prob=true --set routed_scaling_factor=2.5",
                                       d, "moe"),
                    "op moe");
    const std::string cfg = "data/golden/deepseek/v3/config.json";
    std::ifstream cf(cfg);
    const nlohmann::json c = nlohmann::json::parse(cf);
    op_inputs_from_checkpoint("data/golden/deepseek/v3", "model.layers.0.self_attn.", 9, c["hidden_size"].get<int64_t>(),
                              d.file("mla_in.safetensors"));
    std::string sets;
    for (const char* k : {"num_attention_heads", "q_lora_rank", "kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim"})
        sets += std::string(" --set ") + k + "=" + c[k].dump();
    for (const char* path : {"naive", "absorb"})
        check_all_equal(outputs_at_threads("op mla --in " + d.file("mla_in.safetensors") + sets + " --set path=" + path, d, "mla"),
                        std::string("op mla ") + path);
    // attention and fp8_gemm on random inputs (sizes that do not divide the tiles evenly).
    write_safetensors(d.file("att_in.safetensors"), {{"q", Tensor::from_f32({37, 4, 16}, dsref_test::randn(37 * 4 * 16, 1))},
                                                     {"k", Tensor::from_f32({37, 2, 16}, dsref_test::randn(37 * 2 * 16, 2))},
                                                     {"v", Tensor::from_f32({37, 2, 8}, dsref_test::randn(37 * 2 * 8, 3))}});
    check_all_equal(outputs_at_threads("op attention --in " + d.file("att_in.safetensors"), d, "att"), "op attention");
}
