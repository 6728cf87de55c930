// test_bad_inputs.cpp — the bad-input battery: one table of malformed inputs across the commands
// (files, headers, checkpoints, config fields, tokens, op inputs, diff, sampling and output paths).
// Each row runs the real binary under a 30 s timeout and a 2 GB address-space limit (prlimit; skipped
// for a sanitizer build, whose shadow memory needs more) and must exit 1 (bad data) or 2 (bad command
// line) with a message naming the file, tensor or field: no exit 0, no crash, no hang.
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <functional>

#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "test_util.h"

using namespace dsref;
using dsref_test::TempDir;
using json = nlohmann::json;

namespace {

const std::string kModel = "data/golden/llama/gqa2";  // llama, d = 32, H = 4, H_kv = 2, V = 80

void write_raw(const std::string& path, const std::string& header, size_t nbuf, int64_t len = -1) {
    std::string s(8, '\0');
    const uint64_t n = len >= 0 ? (uint64_t)len : header.size();
    std::memcpy(&s[0], &n, 8);
    s += header + std::string(nbuf, '\0');
    dsref_test::write_text(path, s);
}

json read_json(const std::string& p) {
    std::ifstream f(p);
    return json::parse(f);
}

// A copy of the llama model in `dir` with its config edited by `edit` (and optionally its tensors).
void model_with(const std::string& dir, const std::function<void(json&)>& edit,
                const std::function<void(TensorMap&)>& edit_tensors = nullptr) {
    json c = read_json(kModel + "/config.json");
    edit(c);
    ::mkdir(dir.c_str(), 0700);
    dsref_test::write_text(dir + "/config.json", c.dump(2));
    if (edit_tensors) {
        TensorMap m = read_safetensors(kModel + "/model.safetensors");
        edit_tensors(m);
        write_safetensors(dir + "/model.safetensors", m);
    } else {
        std::system(("cp " + kModel + "/model.safetensors " + dir + "/").c_str());
    }
}

// A DeepSeek-V3 config file with one field changed (for `info`, which needs no weights).
std::string v3_with(const std::string& dir, const std::string& name, const std::function<void(json&)>& edit) {
    json c = read_json("data/configs/deepseek_v3.json");
    edit(c);
    const std::string p = dir + "/" + name + ".json";
    dsref_test::write_text(p, c.dump(2));
    return p;
}

struct Case {
    std::string what;    // the malformed input
    std::string args;    // dsref command line
    std::string expect;  // a part of the message that names the file, tensor or field
};

int run_limited(const std::string& args, const std::string& lim, std::string* out) {
    return dsref_test::run_cmd("timeout -k 5 30 " + lim + dsref_test::dsref_bin() + " " + args, out);
}

}  // namespace

TEST_CASE("the bad-input battery: every malformed input exits 1 or 2 with a message naming what is wrong", "[cli][reliability]") {
    TempDir t;
    const std::string T = t.path + "/";
    const std::string ok = R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
    const std::string st = " --out " + T + "o.safetensors";

    // ---- safetensors files, given to `op rmsnorm --in` (read into memory) ----
    dsref_test::write_text(T + "trunc.safetensors", "abc");
    write_raw(T + "lying_len.safetensors", ok, 8, 1000);
    write_raw(T + "huge_len.safetensors", ok, 8, (int64_t)1 << 40);
    write_raw(T + "notjson.safetensors", "{not json", 0);
    write_raw(T + "array.safetensors", "[1,2]", 0);
    write_raw(T + "dtype.safetensors", R"({"x":{"dtype":"F33","shape":[2],"data_offsets":[0,8]}})", 8);
    write_raw(T + "dtype_num.safetensors", R"({"x":{"dtype":7,"shape":[2],"data_offsets":[0,8]}})", 8);
    write_raw(T + "numel.safetensors", R"({"x":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8);
    write_raw(T + "range.safetensors", R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 4);
    write_raw(T + "reversed.safetensors", R"({"x":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", 8);
    write_raw(T + "overlap.safetensors",
              R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"y":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12);
    write_raw(T + "hole.safetensors", R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8);
    write_raw(T + "trailing.safetensors", R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 8);
    write_raw(T + "dup.safetensors",
              R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"x":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8);
    write_raw(T + "negdim.safetensors", R"({"x":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4);
    write_raw(T + "floatdim.safetensors", R"({"x":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", 4);
    write_raw(T + "nooff.safetensors", R"({"x":{"dtype":"F32","shape":[1]}})", 4);
    write_raw(T + "negoff.safetensors", R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}})", 4);
    write_raw(T + "wrap.safetensors", R"({"x":{"dtype":"F32","shape":[4611686018427387904,4611686018427387904,16],"data_offsets":[0,0]}})", 0);
    write_raw(T + "tb.safetensors", R"({"x":{"dtype":"F32","shape":[262144,1048576],"data_offsets":[0,1099511627776]}})", 1024);
    write_raw(T + "meta.safetensors", R"({"__metadata__":{"a":1},"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 8);
    REQUIRE(::mkfifo((T + "fifo").c_str(), 0600) == 0);
    REQUIRE(::symlink((T + "loop").c_str(), (T + "loop").c_str()) == 0);
    ::mkdir((T + "adir").c_str(), 0700);

    // ---- op inputs (valid files, wrong for the op) ----
    write_safetensors(T + "rms_bad_w.safetensors", {{"x", Tensor::from_f32({2, 4}, std::vector<float>(8, 1))},
                                                     {"weight", Tensor::from_f32({3}, {1, 1, 1})}});
    write_safetensors(T + "rms_no_w.safetensors", {{"x", Tensor::from_f32({2, 4}, std::vector<float>(8, 1))}});
    write_safetensors(T + "rms_ok.safetensors", {{"x", Tensor::from_f32({2, 4}, std::vector<float>(8, 1))},
                                                  {"weight", Tensor::from_f32({4}, {1, 1, 1, 1})}});
    write_safetensors(T + "swiglu_bad.safetensors", {{"gate", Tensor::from_f32({2, 4}, std::vector<float>(8, 1))},
                                                      {"up", Tensor::from_f32({2, 3}, std::vector<float>(6, 1))}});
    write_safetensors(T + "attn_bad.safetensors", {{"q", Tensor::from_f32({2, 2, 4}, std::vector<float>(16, 1))},
                                                    {"k", Tensor::from_f32({2, 2, 3}, std::vector<float>(12, 1))},
                                                    {"v", Tensor::from_f32({2, 2, 4}, std::vector<float>(16, 1))}});
    write_safetensors(T + "a.safetensors", {{"logits", Tensor::from_f32({2, 3}, std::vector<float>(6, 1))}});
    write_safetensors(T + "b.safetensors", {{"logits", Tensor::from_f32({3, 2}, std::vector<float>(6, 1))}});
    write_safetensors(T + "c.safetensors", {{"other", Tensor::from_f32({2, 3}, std::vector<float>(6, 1))}});

    // ---- checkpoints ----
    model_with(T + "m_missing", [](json&) {}, [](TensorMap& m) { m.erase("model.norm.weight"); });
    model_with(T + "m_shape", [](json&) {}, [](TensorMap& m) { m["model.norm.weight"] = Tensor::from_f32({3}, {1, 1, 1}); });
    model_with(T + "m_int", [](json&) {}, [](TensorMap& m) { m["model.norm.weight"] = Tensor::from_i32({32}, std::vector<int32_t>(32, 1)); });
    model_with(T + "m_nan", [](json&) {}, [](TensorMap& m) {
        std::vector<float> v(32, 1.0f);
        v[7] = NAN;
        m["model.norm.weight"] = Tensor::from_f32({32}, v);
    });
    ::mkdir((T + "m_shard").c_str(), 0700);
    std::system(("cp " + kModel + "/config.json " + T + "m_shard/").c_str());
    dsref_test::write_text(T + "m_shard/model.safetensors.index.json", R"({"weight_map":{"model.norm.weight":"model-00001-of-00002.safetensors"}})");
    ::mkdir((T + "m_badindex").c_str(), 0700);
    std::system(("cp " + kModel + "/config.json " + T + "m_badindex/").c_str());
    dsref_test::write_text(T + "m_badindex/model.safetensors.index.json", "{oops");
    ::mkdir((T + "m_noweights").c_str(), 0700);
    std::system(("cp " + kModel + "/config.json " + T + "m_noweights/").c_str());
    ::mkdir((T + "m_dirconfig").c_str(), 0700);
    ::mkdir((T + "m_dirconfig/config.json").c_str(), 0700);

    // ---- config fields (llama, through info) ----
    auto cfg = [&](const std::string& name, const std::function<void(json&)>& edit) {
        json c = read_json(kModel + "/config.json");
        edit(c);
        dsref_test::write_text(T + name + ".json", c.dump(2));
        return T + name + ".json";
    };

    std::vector<Case> cases = {
        // safetensors files
        {"truncated file", "op rmsnorm --in " + T + "trunc.safetensors" + st, "truncated"},
        {"header length beyond the file", "op rmsnorm --in " + T + "lying_len.safetensors" + st, "bad header length 1000"},
        {"header length of 1 TB", "op rmsnorm --in " + T + "huge_len.safetensors" + st, "bad header length"},
        {"header not JSON", "op rmsnorm --in " + T + "notjson.safetensors" + st, "not valid JSON"},
        {"header a JSON array", "op rmsnorm --in " + T + "array.safetensors" + st, "not a JSON object"},
        {"unknown dtype", "op rmsnorm --in " + T + "dtype.safetensors" + st, "unknown dtype 'F33'"},
        {"dtype a number", "op rmsnorm --in " + T + "dtype_num.safetensors" + st, "tensor 'x': dtype is not a string"},
        {"shape product mismatch", "op rmsnorm --in " + T + "numel.safetensors" + st, "tensor 'x': 8 bytes for shape [3]"},
        {"offsets out of range", "op rmsnorm --in " + T + "range.safetensors" + st, "tensor 'x': data_offsets"},
        {"offsets reversed", "op rmsnorm --in " + T + "reversed.safetensors" + st, "tensor 'x': data_offsets [8, 0)"},
        {"overlapping offsets", "op rmsnorm --in " + T + "overlap.safetensors" + st, "overlaps"},
        {"hole in the buffer", "op rmsnorm --in " + T + "hole.safetensors" + st, "hole in the data buffer before tensor 'x'"},
        {"trailing bytes", "op rmsnorm --in " + T + "trailing.safetensors" + st, "trailing bytes"},
        {"duplicate names", "op rmsnorm --in " + T + "dup.safetensors" + st, "duplicate tensor name 'x'"},
        {"negative dimension", "op rmsnorm --in " + T + "negdim.safetensors" + st, "tensor 'x': shape entries"},
        {"fractional dimension", "op rmsnorm --in " + T + "floatdim.safetensors" + st, "tensor 'x': shape entries"},
        {"no data_offsets", "op rmsnorm --in " + T + "nooff.safetensors" + st, "tensor 'x' needs dtype, shape and data_offsets"},
        {"negative offset", "op rmsnorm --in " + T + "negoff.safetensors" + st, "tensor 'x': data_offsets must be"},
        {"element count wraps int64", "op fp8_quant_weight --in " + T + "wrap.safetensors" + st, "more than 2^63 elements"},
        {"1 TB tensor in 1 KB", "op rmsnorm --in " + T + "tb.safetensors" + st, "tensor 'x': data_offsets"},
        {"metadata value not a string", "op rmsnorm --in " + T + "meta.safetensors" + st, "__metadata__ value 'a'"},
        {"missing file", "op rmsnorm --in " + T + "nope.safetensors" + st, "nope.safetensors"},
        {"FIFO as input", "op rmsnorm --in " + T + "fifo" + st, "is a FIFO"},
        {"symlink loop as input", "op rmsnorm --in " + T + "loop" + st, "symbolic link loop"},
        {"directory as input", "op rmsnorm --in " + T + "adir" + st, "is a directory"},
        // op inputs and attributes
        {"rmsnorm weight of the wrong size", "op rmsnorm --in " + T + "rms_bad_w.safetensors" + st, "weight"},
        {"rmsnorm without weight", "op rmsnorm --in " + T + "rms_no_w.safetensors" + st, "weight"},
        {"swiglu gate/up shapes differ", "op swiglu --in " + T + "swiglu_bad.safetensors" + st, "up"},
        {"attention q/k widths differ", "op attention --in " + T + "attn_bad.safetensors" + st, "k"},
        {"unknown op", "op no_such_op --in " + T + "rms_ok.safetensors" + st, "no_such_op"},
        {"unknown op attribute", "op rmsnorm --in " + T + "rms_ok.safetensors --set epz=1" + st, "epz"},
        {"non-numeric op attribute", "op rmsnorm --in " + T + "rms_ok.safetensors --set eps=abc" + st, "eps"},
        {"malformed --set", "op rmsnorm --in " + T + "rms_ok.safetensors --set eps" + st, "eps"},
        {"unwritable --out (no such folder)", "op rmsnorm --in " + T + "rms_ok.safetensors --out " + T + "no/such/dir/o.safetensors", "no/such/dir"},
        {"--out is a directory", "op rmsnorm --in " + T + "rms_ok.safetensors --out " + T + "adir", "adir"},
        // diff
        {"diff: shapes differ", "diff " + T + "a.safetensors " + T + "b.safetensors", "logits"},
        {"diff: different tensor names", "diff " + T + "a.safetensors " + T + "c.safetensors", "only in A"},
        {"diff: missing file", "diff " + T + "a.safetensors " + T + "nope.safetensors", "nope.safetensors"},
        {"diff: negative atol", "diff " + T + "a.safetensors " + T + "a.safetensors --atol -1", "--atol"},
        // checkpoints
        {"missing tensor", "forward --model " + T + "m_missing --tokens 1,2" + st, "model.norm.weight"},
        {"tensor of the wrong shape", "forward --model " + T + "m_shape --tokens 1,2" + st, "model.norm.weight"},
        {"integer weight", "forward --model " + T + "m_int --tokens 1,2" + st, "model.norm.weight"},
        {"NaN weight", "forward --model " + T + "m_nan --tokens 1,2" + st, "model.norm.weight': element 7"},
        {"missing shard", "forward --model " + T + "m_shard --tokens 1,2" + st, "model-00001-of-00002.safetensors"},
        {"index not JSON", "forward --model " + T + "m_badindex --tokens 1,2" + st, "model.safetensors.index.json"},
        {"no weights at all", "forward --model " + T + "m_noweights --tokens 1,2" + st, "model.safetensors"},
        {"config.json a directory", "info --model " + T + "m_dirconfig", "config.json"},
        {"model directory missing", "info --model " + T + "nothing_here", "nothing_here"},
        // tokens
        {"empty token list", "forward --model " + kModel + " --tokens ''" + st, "--tokens"},
        {"non-numeric token", "forward --model " + kModel + " --tokens 1,x" + st, "--tokens"},
        {"negative token", "forward --model " + kModel + " --tokens 1,-2" + st, "--tokens"},
        {"token beyond int32", "forward --model " + kModel + " --tokens 4294967296" + st, "--tokens"},
        {"token outside the vocabulary", "forward --model " + kModel + " --tokens 1,80" + st, "80"},
        {"empty token in the list", "forward --model " + kModel + " --tokens 1,,2" + st, "--tokens"},
        // sampling and threads
        {"negative temperature", "generate --model " + kModel + " --tokens 1 --max-new 2 --temperature -1", "--temperature"},
        {"negative --max-new", "generate --model " + kModel + " --tokens 1 --max-new -2", "--max-new"},
        {"--threads 100000", "forward --model " + kModel + " --tokens 1 --threads 100000" + st, "--threads"},
        {"unknown command", "frobnicate", "subcommand"},
        {"unknown option", "forward --model " + kModel + " --tokens 1 --bogus" + st, "--bogus"},
        // config fields
        {"missing hidden_size", "info --model " + cfg("no_hidden", [](json& c) { c.erase("hidden_size"); }), "hidden_size"},
        {"hidden_size a string", "info --model " + cfg("str_hidden", [](json& c) { c["hidden_size"] = "32"; }), "hidden_size"},
        {"hidden_size zero", "info --model " + cfg("zero_hidden", [](json& c) { c["hidden_size"] = 0; }), "hidden_size"},
        {"hidden_size negative", "info --model " + cfg("neg_hidden", [](json& c) { c["hidden_size"] = -32; }), "hidden_size"},
        {"num_hidden_layers zero", "info --model " + cfg("zero_layers", [](json& c) { c["num_hidden_layers"] = 0; }), "num_hidden_layers"},
        {"vocab_size missing", "info --model " + cfg("no_vocab", [](json& c) { c.erase("vocab_size"); }), "vocab_size"},
        {"heads not dividing hidden_size", "info --model " + cfg("heads", [](json& c) { c["num_attention_heads"] = 5; c.erase("head_dim"); }), "num_attention_heads"},
        {"rms_norm_eps negative", "info --model " + cfg("eps", [](json& c) { c["rms_norm_eps"] = -1e-6; }), "rms_norm_eps"},
        {"rope_theta zero", "info --model " + cfg("theta", [](json& c) { c["rope_theta"] = 0; }), "rope_theta"},
        {"unknown architecture", "info --model " + cfg("arch", [](json& c) { c["model_type"] = "gpt2"; }), "model_type"},
        {"unknown config key", "info --model " + cfg("extra", [](json& c) { c["frobnication_factor"] = 2; }), "frobnication_factor"},
        {"config not JSON", "info --model " + [&] { dsref_test::write_text(T + "bad.json", "{"); return T + "bad.json"; }(), "bad.json"},
        {"config FIFO", "info --model " + T + "fifo", "is a FIFO"},
        // MoE fields (DeepSeek-V3 config)
        {"groups not dividing experts", "info --model " + v3_with(t.path, "v3_groups", [](json& c) { c["n_group"] = 7; }), "n_group"},
        {"topk_group > n_group", "info --model " + v3_with(t.path, "v3_topk_group", [](json& c) { c["topk_group"] = 9; }), "topk_group"},
        {"num_experts_per_tok > experts", "info --model " + v3_with(t.path, "v3_k", [](json& c) { c["num_experts_per_tok"] = 300; }), "num_experts_per_tok"},
        {"kv_lora_rank zero", "info --model " + v3_with(t.path, "v3_kv", [](json& c) { c["kv_lora_rank"] = 0; }), "kv_lora_rank"},
        {"unknown scoring_func", "info --model " + v3_with(t.path, "v3_score", [](json& c) { c["scoring_func"] = "relu"; }), "scoring_func"},
        {"unknown topk_method", "info --model " + v3_with(t.path, "v3_topk", [](json& c) { c["topk_method"] = "magic"; }), "topk_method"},
    };

    // Whether the address-space limit can be used with this binary (a sanitizer build reserves terabytes).
    const std::string lim = dsref_test::as_limit_prefix(2147483648ull);
    if (lim.empty()) WARN("prlimit --as not usable with " << dsref_test::dsref_bin() << "; running without it");

    int n = 0;
    for (const Case& c : cases) {
        std::string out;
        const int rc = run_limited(c.args, lim, &out);
        INFO(c.what << "\n  dsref " << c.args << "\n  exit " << rc << "\n" << out);
        CHECK((rc == 1 || rc == 2));
        CHECK_THAT(out, Catch::Contains(c.expect));
        n++;
    }
    CHECK(n >= 60);
    std::printf("report: bad-input battery: %d malformed inputs, each refused with exit 1 or 2\n", n);
}
