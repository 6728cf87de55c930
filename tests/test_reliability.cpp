// test_reliability.cpp — hostile files: claims of huge shapes or offsets, element counts that wrap,
// headers of very many tensors, and files that are not regular files (FIFO, directory, symlink loop).
// Each is refused with a message naming the file and the tensor or field, without allocating in
// proportion to what the file claims (checked under `prlimit --as`), and without hanging.
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cmath>

#include "core/error.h"
#include "io/config.h"
#include "io/safetensors.h"
#include "io/weights.h"
#include "test_util.h"

using namespace dsref;
using dsref_test::run_dsref;
using dsref_test::TempDir;

namespace {

// A safetensors file: 8-byte length, `header`, then `nbuf` zero bytes.
void write_raw(const std::string& path, const std::string& header, size_t nbuf) {
    std::string s(8, '\0');
    const uint64_t n = header.size();
    std::memcpy(&s[0], &n, 8);
    s += header;
    s += std::string(nbuf, '\0');
    dsref_test::write_text(path, s);
}

std::string error_of(const std::string& path) {
    try {
        SafetensorsFile f(path);
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

}  // namespace

TEST_CASE("an element count that wraps is refused at the shape, before the byte check", "[reliability]") {
    TempDir d;
    const std::string p = d.file("wrap.safetensors");
    // 2^62 · 2^62 · 16 · 4 bytes = 2^130 ≡ 0 (mod 2^128): a 128-bit byte check alone passes it with 0 bytes.
    write_raw(p, R"({"w":{"dtype":"F32","shape":[4611686018427387904,4611686018427387904,16],"data_offsets":[0,0]}})", 0);
    CHECK_THAT(error_of(p), Catch::Contains("tensor 'w'") && Catch::Contains("more than 2^63 elements"));
    // A shape entry above INT64_MAX (it would read as negative).
    write_raw(p, R"({"w":{"dtype":"U8","shape":[9223372036854775808],"data_offsets":[0,0]}})", 0);
    CHECK_THAT(error_of(p), Catch::Contains("tensor 'w'") && Catch::Contains("non-negative integers"));
    // An empty tensor whose other dimensions overflow is refused too: products over a prefix of the shape
    // ([2^62, 2^62] of [2^62, 2^62, 0]) would still wrap. Empty tensors of sane shapes are fine.
    write_raw(p, R"({"e":{"dtype":"F32","shape":[4611686018427387904,4611686018427387904,0],"data_offsets":[0,0]}})", 0);
    CHECK_THAT(error_of(p), Catch::Contains("tensor 'e'") && Catch::Contains("more than 2^63 elements"));
    write_raw(p, R"({"e":{"dtype":"F32","shape":[0,4611686018427387904],"data_offsets":[0,0]}})", 0);
    CHECK(error_of(p).empty());
    // Same wrap through the CLI: the op refuses the file instead of running on it.
    CHECK(run_dsref("op fp8_quant_weight --in " + p + " --out " + d.file("o.safetensors")) == 1);
}

TEST_CASE("a 1 TB tensor claimed in a 1 KB file is refused under a 1 GB address-space limit", "[reliability]") {
    TempDir d;
    const std::string p = d.file("huge.safetensors");
    // 2^38 F32 values = 1 TiB, offsets claiming the same; the file has 1 KB of buffer.
    write_raw(p, R"({"x":{"dtype":"F32","shape":[262144,1048576],"data_offsets":[0,1099511627776]}})", 1024);
    CHECK_THAT(error_of(p), Catch::Contains("tensor 'x'") && Catch::Contains("out of range"));
    // The same claim with offsets that fit the buffer: the shape disagrees with the bytes.
    const std::string q = d.file("huge2.safetensors");
    write_raw(q, R"({"x":{"dtype":"F32","shape":[262144,1048576],"data_offsets":[0,1024]}})", 1024);
    CHECK_THAT(error_of(q), Catch::Contains("tensor 'x'") && Catch::Contains("1024 bytes for shape [262144, 1048576]"));
    // Through the CLI, under prlimit: op (reads the file into memory), diff, forward (maps a checkpoint).
    // 1 GB of address space is ample for dsref on these inputs and far below the 1 TB claimed.
    const std::string lim = dsref_test::as_limit_prefix(1073741824ull);
    if (lim.empty()) WARN("prlimit --as not usable with " << dsref_test::dsref_bin() << "; running without it");
    std::system(("cp data/golden/llama/gqa2/config.json " + d.path + "/ && cp " + p + " " + d.file("model.safetensors")).c_str());
    for (const std::string& args : {"op rmsnorm --in " + p + " --out " + d.file("o.safetensors"),
                                    "diff " + p + " " + q, "forward --model " + d.path + " --tokens 1,2 --out " + d.file("f.safetensors")}) {
        std::string out;
        const int rc = dsref_test::run_cmd("timeout -k 5 30 " + lim + dsref_test::dsref_bin() + " " + args, &out);
        INFO(args << "\n" << out);
        CHECK(rc == 1);
        CHECK_THAT(out, Catch::Contains("tensor 'x'"));
    }
}

TEST_CASE("a header of 100k tensors parses in linear time", "[reliability]") {
    // 100k zero-size tensors: the duplicate-name check used to be quadratic (over 120 s here). The test
    // has no timer; a regression shows as the test binary's timeout in tests/run_tests.sh.
    TempDir d;
    std::string h = "{";
    for (int i = 0; i < 100000; i++)
        h += (i ? "," : "") + std::string("\"t") + std::to_string(i) + R"(":{"dtype":"F32","shape":[0],"data_offsets":[0,0]})";
    h += "}";
    write_raw(d.file("many.safetensors"), h, 0);
    SafetensorsFile f(d.file("many.safetensors"));
    CHECK(f.tensors().size() == 100000);
    // The duplicate check still works, and names the first repeated name.
    write_raw(d.file("dup.safetensors"), h.substr(0, h.size() - 1) + R"(,"t7":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}})", 0);
    CHECK_THAT(error_of(d.file("dup.safetensors")), Catch::Contains("duplicate tensor name 't7'"));
}

TEST_CASE("a FIFO, a directory or a symlink loop where a file is expected is refused, naming the path", "[reliability]") {
    TempDir d;
    const std::string fifo = d.file("fifo");
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    // A FIFO would block open() for ever; it is refused at once.
    CHECK_THAT(error_of(fifo), Catch::Contains(fifo) && Catch::Contains("is a FIFO"));
    CHECK_THROWS_WITH(load_config(fifo), Catch::Contains(fifo) && Catch::Contains("is a FIFO"));
    // A directory named config.json inside the model directory.
    TempDir m;
    REQUIRE(::mkdir(m.file("config.json").c_str(), 0700) == 0);
    CHECK_THROWS_WITH(load_config(m.path), Catch::Contains("config.json") && Catch::Contains("is a directory"));
    // A symlink loop.
    const std::string loop = d.file("loop");
    REQUIRE(::symlink(loop.c_str(), loop.c_str()) == 0);
    CHECK_THAT(error_of(loop), Catch::Contains("symbolic link loop"));
    // Shards that are a directory, a FIFO, a loop: each named, none reported as "does not exist".
    write_safetensors(d.file("s1.safetensors"), {{"a", Tensor::scalar(1)}});
    const std::string idx = d.file("model.safetensors.index.json");
    dsref_test::write_text(idx, R"({"weight_map": {"a": "s1.safetensors", "b": "fifo"}})");
    CHECK_THROWS_WITH(Checkpoint(d.path), Catch::Contains("fifo") && Catch::Contains("is a FIFO"));
    dsref_test::write_text(idx, R"({"weight_map": {"a": "s1.safetensors", "b": "loop"}})");
    CHECK_THROWS_WITH(Checkpoint(d.path), Catch::Contains("symbolic link loop"));
    REQUIRE(::mkdir(d.file("sub").c_str(), 0700) == 0);
    dsref_test::write_text(idx, R"({"weight_map": {"a": "s1.safetensors", "b": "sub"}})");
    CHECK_THROWS_WITH(Checkpoint(d.path), Catch::Contains("sub") && Catch::Contains("is a directory"));
    dsref_test::write_text(idx, R"({"weight_map": {"a": ".."}})");
    CHECK_THROWS_WITH(Checkpoint(d.path), Catch::Contains("shard name '..'"));
    // The index itself as a FIFO.
    ::unlink(idx.c_str());
    REQUIRE(::mkfifo(idx.c_str(), 0600) == 0);
    CHECK_THROWS_WITH(Checkpoint(d.path), Catch::Contains("model.safetensors.index.json") && Catch::Contains("is a FIFO"));
}

TEST_CASE("--threads far above the core count is a usage error, not a libgomp crash", "[reliability]") {
    std::string out;
    CHECK(run_dsref("forward --model data/golden/llama/gqa2 --tokens 1,2 --threads 100000 --out /dev/null", &out) == 2);
    CHECK_THAT(out, Catch::Contains("--threads"));
}

TEST_CASE("a NaN or Inf weight is refused when loaded, naming the tensor and the first bad element", "[reliability]") {
    const std::string model = "data/golden/llama/gqa2";
    for (const char* name : {"model.layers.0.mlp.down_proj.weight", "model.embed_tokens.weight"}) {
        for (float bad : {NAN, INFINITY}) {
            TempDir d;
            std::system(("cp " + model + "/config.json " + d.path + "/").c_str());
            TensorMap m = read_safetensors(model + "/model.safetensors");
            Tensor& t = m.at(name);
            std::vector<float> v = t.to_f32();
            // Embedding rows are loaded for the tokens given: poison token 2's row, element 5 of it.
            const size_t at = std::string(name) == "model.embed_tokens.weight" ? 2 * 32 + 5 : 37;
            v[at] = bad;
            t = Tensor::encode_f32(t.shape, v, t.dtype);
            write_safetensors(d.file("model.safetensors"), m);
            std::string out;
            INFO(name << " " << bad);
            CHECK(run_dsref("forward --model " + d.path + " --tokens 1,2,3 --out " + d.file("o.safetensors"), &out) == 1);
            CHECK_THAT(out, Catch::Contains(name) && Catch::Contains("element " + std::to_string(at)) &&
                                Catch::Contains("must be finite"));
            CHECK(::access(d.file("o.safetensors").c_str(), F_OK) != 0);  // no output written
        }
    }
}

TEST_CASE("an FP8 weight with a NaN code, or a negative or non-finite scale, is refused naming the tensor", "[reliability]") {
    auto try_load = [](uint8_t code, float scale) -> std::string {
        TensorMap in;
        in["w"] = Tensor::from_u8({2, 2}, {0x38, code, 0x40, 0x48}, DType::F8_E4M3);
        in["w_scale_inv"] = Tensor::from_f32({1, 1}, {scale});
        TensorMapSource src(in, "test");
        try {
            WeightLoader(src).load("w", {2, 2});
        } catch (const Error& e) {
            return e.what();
        }
        return "";
    };
    CHECK(try_load(0x38, 0.5f).empty());
    CHECK(try_load(0x38, 0.0f).empty());  // an all-zero block quantizes with scale 0
    CHECK_THAT(try_load(0x7F, 0.5f), Catch::Contains("'w'") && Catch::Contains("NaN code"));
    CHECK_THAT(try_load(0x38, -0.5f), Catch::Contains("'w_scale_inv'") && Catch::Contains("must not be negative"));
    CHECK_THAT(try_load(0x38, NAN), Catch::Contains("'w'") && Catch::Contains("not finite"));
    CHECK_THAT(try_load(0x38, INFINITY), Catch::Contains("'w'") && Catch::Contains("not finite"));
}

TEST_CASE("an integer config field beyond int64 is refused naming the field (fuzz finding)", "[reliability]") {
    std::ifstream f("data/golden/llama/gqa2/config.json");
    nlohmann::json c = nlohmann::json::parse(f);
    for (const nlohmann::json& bad : {nlohmann::json(4.44444e59), nlohmann::json(18446744073709551615ull)}) {
        c["hidden_size"] = bad;
        CHECK_THROWS_WITH(parse_config(c, "cfg.json"), Catch::Contains("hidden_size") && Catch::Contains("must be an integer"));
    }
}

namespace {
// A copy of the llama model in `dir` with every element of tensor `name` set to `v`.
void poisoned_model(const std::string& dir, const std::string& name, float v) {
    const std::string model = "data/golden/llama/gqa2";
    std::system(("cp " + model + "/config.json " + dir + "/").c_str());
    TensorMap m = read_safetensors(model + "/model.safetensors");
    Tensor& t = m.at(name);
    t = Tensor::encode_f32(t.shape, std::vector<float>((size_t)t.numel(), v), t.dtype);
    write_safetensors(dir + "/model.safetensors", m);
}
}  // namespace

TEST_CASE("a NaN/Inf activation from finite weights is an error naming the first trace point", "[reliability]") {
    // 3e38 is finite (below FLT_MAX, representable in bf16), so the weight check passes it; the
    // normalized activations times 3e38 overflow in the next products.
    struct Row {
        const char* tensor;
        const char* point;  // where the first non-finite value must be reported
    };
    for (const Row& r : {Row{"model.layers.1.post_attention_layernorm.weight", "hidden.1"},
                         Row{"model.layers.0.input_layernorm.weight", "attn.0"}}) {
        TempDir d;
        poisoned_model(d.path, r.tensor, 3e38f);
        std::string out;
        INFO(r.tensor);
        const std::string o = d.file("o.safetensors");
        CHECK(run_dsref("forward --model " + d.path + " --tokens 1,2,3 --out " + o, &out) == 1);
        CHECK_THAT(out, Catch::Contains(std::string("forward: ") + r.point + " is the first trace point") &&
                            Catch::Contains("--allow-nonfinite"));
        CHECK(::access(o.c_str(), F_OK) != 0);  // nothing written
        CHECK(run_dsref("generate --model " + d.path + " --tokens 1,2,3 --max-new 2", &out) == 1);
        CHECK_THAT(out, Catch::Contains(r.point));
        // --allow-nonfinite: one warning naming the same point, and the outputs are written.
        CHECK(run_dsref("forward --model " + d.path + " --tokens 1,2,3 --dump --allow-nonfinite --out " + o, &out) == 0);
        CHECK_THAT(out, Catch::Contains(std::string("warning: forward: ") + r.point + " is the first trace point"));
        CHECK(out.find("warning") == out.rfind("warning"));  // reported once
        const TensorMap res = read_safetensors(o);
        const std::vector<float> v = res.at(r.point).to_f32();
        CHECK(std::any_of(v.begin(), v.end(), [](float x) { return !std::isfinite(x); }));
    }
    // The unpoisoned model runs without a warning.
    std::string out;
    TempDir d;
    CHECK(run_dsref("forward --model data/golden/llama/gqa2 --tokens 1,2,3 --out " + d.file("o.safetensors"), &out) == 0);
    CHECK(out.find("warning") == std::string::npos);
}

TEST_CASE("--out is atomic: a run killed mid-write or a failed run leaves the old file whole", "[reliability]") {
    TempDir d;
    const std::string o = d.file("o.safetensors");
    dsref_test::write_text(o, "old contents");
    const std::string args = "forward --model data/golden/llama/gqa2 --tokens 1,2,3,4,5,6,7,8 --dump --out " + o;
    // RLIMIT_FSIZE kills the process (SIGXFSZ) when a write passes 1000 bytes: a kill in mid-write.
    // The dump is far larger (8 rows of logits alone are 2560 bytes).
    std::string out;
    const int rc = dsref_test::run_cmd("prlimit --fsize=1000 --core=0 " + dsref_test::dsref_bin() + " " + args, &out);
    INFO(out);
    CHECK(rc == 128 + SIGXFSZ);
    std::ifstream f(o);
    std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    CHECK(s == "old contents");  // the old file is untouched, not truncated
    // What the killed run left is only its hidden temporary file; a complete run replaces the old file.
    CHECK(dsref_test::run_cmd("ls -A " + d.path + " | grep -c '^\\.o\\.safetensors\\..*\\.tmp$'", &out) == 0);
    CHECK(out == "1\n");
    CHECK(run_dsref(args) == 0);
    CHECK(read_safetensors(o).count("logits") == 1);
    // Failed runs leave no temporary file: a missing folder, a directory, an empty path.
    for (const std::string& bad : {d.file("no/such/dir/o.safetensors"), d.path, std::string("''")}) {
        INFO(bad);
        CHECK(run_dsref("forward --model data/golden/llama/gqa2 --tokens 1 --out " + bad, &out) == 2);
        CHECK_THAT(out, Catch::Contains("--out"));
    }
    CHECK(dsref_test::run_cmd("ls -A " + d.path + " | wc -l", &out) == 0);
    CHECK(out == "2\n");  // o.safetensors and the killed run's temporary file
}

TEST_CASE("init refuses a folder that already holds a checkpoint (a stale index would win)", "[reliability]") {
    TempDir d;
    const std::string ck = d.file("ck");
    std::string out;
    CHECK(run_dsref("init --config data/golden/llama/gqa2/config.json --seed 1 --shards 2 --out " + ck) == 0);
    CHECK(run_dsref("init --config data/golden/llama/gqa2/config.json --seed 2 --out " + ck, &out) == 1);
    CHECK_THAT(out, Catch::Contains(ck) && Catch::Contains("already holds a checkpoint"));
    CHECK(::access((ck + "/model.safetensors").c_str(), F_OK) != 0);  // nothing written beside the old shards
    // An empty existing folder is fine.
    REQUIRE(::mkdir(d.file("empty").c_str(), 0700) == 0);
    CHECK(run_dsref("init --config data/golden/llama/gqa2/config.json --seed 1 --out " + d.file("empty")) == 0);
}

TEST_CASE("options that do not apply, and seeds that would wrap, are usage errors", "[reliability]") {
    const std::string llama = "data/golden/llama/gqa2";
    std::string out;
    TempDir d;
    CHECK(run_dsref("forward --model " + llama + " --tokens 1,2 --attn naive --out " + d.file("o.safetensors"), &out) == 2);
    CHECK_THAT(out, Catch::Contains("--attn") && Catch::Contains("llama"));
    CHECK(run_dsref("forward --model " + llama + " --tokens 1,2 --indexer fp8 --out " + d.file("o.safetensors"), &out) == 2);
    CHECK_THAT(out, Catch::Contains("--indexer"));
    CHECK(run_dsref("generate --model " + llama + " --tokens 1,2 --max-new 1 --attn absorb", &out) == 2);
    CHECK_THAT(out, Catch::Contains("--attn"));
    for (const char* seed : {"-1", "18446744073709551616", "99999999999999999999999", "1e3", "0x10"}) {
        INFO(seed);
        CHECK(run_dsref(std::string("generate --model ") + llama + " --tokens 1,2 --max-new 1 --seed " + seed, &out) == 2);
        CHECK_THAT(out, Catch::Contains("--seed"));
    }
    CHECK(run_dsref("generate --model " + llama + " --tokens 1,2 --max-new 1 --seed 18446744073709551615") == 0);
}

TEST_CASE("diff fails beyond atol and rtol, on NaN, Inf and shape mismatch, and on argmax with --require-argmax", "[reliability]") {
    TempDir d;
    auto file = [&](const std::string& name, const Shape& s, const std::vector<float>& v) {
        write_safetensors(d.file(name), {{"logits", Tensor::from_f32(s, v)}});
        return d.file(name);
    };
    const std::string a = file("a", {2, 3}, {1, 2, 3, 3, 2, 1});
    std::string out;
    // |Δ| = 0.01 on one element: fails at atol 1e-3, passes at atol 0.02, passes at rtol 0.01 (|b| = 1).
    const std::string b = file("b", {2, 3}, {1.01f, 2, 3, 3, 2, 1});
    CHECK(run_dsref("diff " + b + " " + a + " --atol 1e-3", &out) == 1);
    CHECK_THAT(out, Catch::Contains("FAIL"));
    CHECK(run_dsref("diff " + b + " " + a + " --atol 0.02") == 0);
    CHECK(run_dsref("diff " + b + " " + a + " --atol 0 --rtol 0.011") == 0);
    CHECK(run_dsref("diff " + b + " " + a + " --atol 0 --rtol 0.009") == 1);
    // NaN and Inf fail against finite values at any tolerance; NaN matches only NaN.
    const std::string n = file("n", {2, 3}, {NAN, 2, 3, 3, 2, 1}), inf = file("i", {2, 3}, {INFINITY, 2, 3, 3, 2, 1});
    CHECK(run_dsref("diff " + n + " " + a + " --atol 1e30") == 1);
    CHECK(run_dsref("diff " + inf + " " + a + " --atol 1e30") == 1);
    CHECK(run_dsref("diff " + n + " " + n) == 0);
    // Shape mismatch with the same element count.
    CHECK(run_dsref("diff " + file("s", {3, 2}, {1, 2, 3, 3, 2, 1}) + " " + a, &out) == 1);
    // Row 0's argmax moves (3 at column 2 -> column 1) within atol: passes unless --require-argmax.
    const std::string m = file("m", {2, 3}, {1, 3.05f, 3, 3, 2, 1});
    CHECK(run_dsref("diff " + m + " " + a + " --atol 2") == 0);
    CHECK(run_dsref("diff " + m + " " + a + " --atol 2 --require-argmax", &out) == 1);
    CHECK_THAT(out, Catch::Contains("1/2"));
    // Tolerances must be finite numbers; the message is short (no 309-digit DBL_MAX).
    for (const char* tol : {"nan", "inf", "-1", "1e999"}) {
        INFO(tol);
        CHECK(run_dsref("diff " + a + " " + a + " --atol " + tol, &out) == 2);
        CHECK_THAT(out, Catch::Contains("--atol"));
        CHECK(out.size() < 200);
    }
}

TEST_CASE("op attributes and inputs are validated as config.json is", "[reliability]") {
    TempDir d;
    const std::string x = d.file("x.safetensors");
    write_safetensors(x, {{"x", Tensor::from_f32({2, 4}, {1, 2, 3, 4, 5, 6, 7, 8})},
                          {"weight", Tensor::from_f32({4}, {1, 1, 1, 1})}});
    const std::string o = " --out " + d.file("o.safetensors");
    std::string out;
    for (const char* eps : {"0", "-1e-6", "nan", "inf"}) {
        INFO(eps);
        CHECK(run_dsref("op rmsnorm --in " + x + " --set eps=" + eps + o, &out) == 2);
        CHECK_THAT(out, Catch::Contains("eps"));
    }
    CHECK(run_dsref("op rope --in " + x + " --set theta=0" + o, &out) == 2);
    CHECK_THAT(out, Catch::Contains("theta"));
    write_safetensors(d.file("pos.safetensors"), {{"x", Tensor::from_f32({2, 4}, {1, 2, 3, 4, 5, 6, 7, 8})},
                                                  {"positions", Tensor::from_f32({2}, {0, 1})}});
    CHECK(run_dsref("op rope --in " + d.file("pos.safetensors") + o, &out) == 1);
    CHECK_THAT(out, Catch::Contains("'positions' must be an integer tensor"));
    std::vector<float> q = dsref_test::randn(2 * 2 * 4, 1);
    q[5] = NAN;
    write_safetensors(d.file("att.safetensors"), {{"q", Tensor::from_f32({2, 2, 4}, q)},
                                                  {"k", Tensor::from_f32({2, 2, 4}, dsref_test::randn(16, 2))},
                                                  {"v", Tensor::from_f32({2, 2, 4}, dsref_test::randn(16, 3))}});
    CHECK(run_dsref("op attention --in " + d.file("att.safetensors") + o, &out) == 1);
    CHECK_THAT(out, Catch::Contains("'q' element 5"));
    CHECK(::access(d.file("o.safetensors").c_str(), F_OK) != 0);
}

TEST_CASE("tensors the config does not use are named in a warning", "[reliability]") {
    TempDir d;
    std::system(("cp data/golden/llama/gqa2/config.json " + d.path + "/").c_str());
    TensorMap m = read_safetensors("data/golden/llama/gqa2/model.safetensors");
    m["model.layers.1.bogus.weight"] = Tensor::from_f32({2}, {1, 2});
    write_safetensors(d.file("model.safetensors"), m);
    std::string out;
    CHECK(run_dsref("forward --model " + d.path + " --tokens 1,2 --out " + d.file("o.safetensors"), &out) == 0);
    CHECK_THAT(out, Catch::Contains("warning") && Catch::Contains("1 tensor(s) not used") &&
                        Catch::Contains("model.layers.1.bogus.weight"));
    // A layer beyond num_hidden_layers is an error (tested in the battery); so is one far beyond it.
    m.erase("model.layers.1.bogus.weight");
    m["model.layers.99.bogus.weight"] = Tensor::from_f32({2}, {1, 2});
    write_safetensors(d.file("model.safetensors"), m);
    CHECK(run_dsref("forward --model " + d.path + " --tokens 1,2 --out " + d.file("o.safetensors"), &out) == 1);
    CHECK_THAT(out, Catch::Contains("model.layers.99.bogus.weight") && Catch::Contains("layer count"));
}
