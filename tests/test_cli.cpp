// test_cli.cpp — covers ref/cli/: the command-line contract. Runs the real `dsref` binary
// ($DSREF_BIN, set by `make test`) and checks outputs, exit codes (0 / 1 error / 2 usage) and that each
// error message names the file, tensor or field.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "test_util.h"

using namespace dsref;
using dsref_test::run_dsref;
using dsref_test::TempDir;

static const std::string kModel = "data/golden/llama/gqa2";

TEST_CASE("dsref forward writes logits and the dump; diff passes a file against itself and names a missing tensor", "[cli]") {
    TempDir t;
    std::string out;
    REQUIRE(run_dsref("forward --model " + kModel + " --tokens 1,2,3,4,5 --out " + t.file("f.safetensors") + " --dump", &out) == 0);
    TensorMap f = read_safetensors(t.file("f.safetensors"));
    CHECK(f.at("logits").shape == Shape{5, 80});
    CHECK(f.at("hidden.1").shape == Shape{5, 32});
    CHECK(f.at("attn.0").shape == Shape{5, 32});
    REQUIRE(run_dsref("forward --model " + kModel + " --tokens 1,2,3,4,5 --out " + t.file("l.safetensors") + " --last-only --dump-only hidden.0", &out) == 0);
    TensorMap l = read_safetensors(t.file("l.safetensors"));
    CHECK(l.size() == 2);
    CHECK(l.at("logits").shape == Shape{1, 80});
    CHECK(run_dsref("diff " + t.file("f.safetensors") + " " + t.file("f.safetensors"), &out) == 0);
    CHECK(run_dsref("diff " + t.file("f.safetensors") + " " + t.file("l.safetensors"), &out) == 1);
    CHECK_THAT(out, Catch::Contains("only in A"));
}

TEST_CASE("dsref generate prints exactly N ids on stdout and writes the chosen logits", "[cli]") {
    TempDir t;
    const std::string cmd = dsref_test::dsref_bin() + " generate --model " + kModel + " --tokens 3,1,4 --max-new 6 --out " +
                            t.file("g.safetensors") + " 2>/dev/null";
    FILE* p = popen(cmd.c_str(), "r");
    REQUIRE(p);
    char buf[256] = {0};
    size_t n = fread(buf, 1, sizeof buf - 1, p);
    REQUIRE(pclose(p) == 0);
    std::string line(buf, n);
    REQUIRE(!line.empty());
    CHECK(line.back() == '\n');
    int count = 0;
    for (std::string::size_type i = 0; i < line.size(); i++) count += line[i] == ' ';
    CHECK(count == 5);  // six ids, five separators, one line
    CHECK(line.find('\n') == line.size() - 1);
    CHECK(read_safetensors(t.file("g.safetensors")).at("logits").shape == Shape{6, 80});
}

TEST_CASE("dsref forward --repeat times the prefill and writes the logits of a plain run", "[cli]") {
    TempDir t;
    std::string out;
    REQUIRE(run_dsref("forward --model " + kModel + " --tokens 1,2,3,4,5 --out " + t.file("a.safetensors"), &out) == 0);
    REQUIRE(run_dsref("forward --model " + kModel + " --tokens 1,2,3,4,5 --repeat 3 --out " + t.file("r.safetensors"), &out) == 0);
    CHECK_THAT(out, Catch::Contains("prefill median ") && Catch::Contains(" ms over 3 runs (load "));
    // kept weights and three runs: the same bits as one run reading the layers one at a time
    CHECK(read_safetensors(t.file("a.safetensors")).at("logits").bytes == read_safetensors(t.file("r.safetensors")).at("logits").bytes);
    CHECK(run_dsref("forward --model " + kModel + " --tokens 1,2 --repeat 0 --out " + t.file("z.safetensors"), &out) == 2);
    CHECK(run_dsref("forward --model " + kModel + " --tokens 1,2 --repeat 2 --dump --out " + t.file("z.safetensors"), &out) == 2);
    CHECK_THAT(out, Catch::Contains("--repeat"));
    REQUIRE(run_dsref("generate --model " + kModel + " --tokens 3,1,4 --max-new 3", &out) == 0);
    CHECK_THAT(out, Catch::Contains("ms per token (") && Catch::Contains("tokens/s)"));
}

TEST_CASE("dsref info works on a directory with only config.json, and prints JSON", "[cli]") {
    TempDir t;
    std::system(("cp " + kModel + "/config.json " + t.path + "/").c_str());
    std::string out;
    CHECK(run_dsref("info --model " + t.path, &out) == 0);
    CHECK_THAT(out, Catch::Contains("architecture           llama"));
    CHECK(run_dsref("info --model " + t.path + " --json", &out) == 0);
    CHECK(nlohmann::json::parse(out)["architecture"] == "llama");
}

TEST_CASE("dsref op runs a registered op and documents it", "[cli][op]") {
    TempDir t;
    write_safetensors(t.file("in.safetensors"), {{"x", Tensor::from_f32({1, 4}, {1, 2, 3, 4})},
                                                {"weight", Tensor::from_f32({4}, {1, 1, 1, 1})}});
    std::string out;
    REQUIRE(run_dsref("op rmsnorm --in " + t.file("in.safetensors") + " --out " + t.file("out.safetensors") + " --set eps=5e-1", &out) == 0);
    std::vector<float> y = read_safetensors(t.file("out.safetensors")).at("y").to_f32();
    CHECK(y[3] == Approx(4 / std::sqrt(8.0)).epsilon(1e-6));  // mean(x²) = 7.5, + eps 0.5 = 8
    CHECK(run_dsref("op --list", &out) == 0);
    CHECK_THAT(out, Catch::Contains("rmsnorm") && Catch::Contains("rope") && Catch::Contains("attention"));
    CHECK(run_dsref("op rope --help", &out) == 0);
    CHECK_THAT(out, Catch::Contains("layout"));
    CHECK(run_dsref("op rmsnorm --in " + t.file("in.safetensors") + " --out " + t.file("o.safetensors") + " --set epsilon=1", &out) == 2);
    CHECK_THAT(out, Catch::Contains("unknown attribute 'epsilon'"));
    CHECK(run_dsref("op rmsnorm --in " + t.file("in.safetensors") + " --out " + t.file("o.safetensors") + " --set eps=abc", &out) == 2);
    CHECK_THAT(out, Catch::Contains("eps='abc' is not a number"));
    CHECK(run_dsref("op nosuchop --in a --out b", &out) == 2);
    write_safetensors(t.file("bad.safetensors"), {{"x", Tensor::from_f32({1, 4}, {1, 2, 3, 4})}});
    CHECK(run_dsref("op rmsnorm --in " + t.file("bad.safetensors") + " --out " + t.file("o.safetensors"), &out) == 1);
    CHECK_THAT(out, Catch::Contains("missing input tensor 'weight'"));
}

TEST_CASE("every command has --help and bad input exits 1 or 2 with a named cause", "[cli][errors]") {
    TempDir t;
    std::string out;
    for (const char* c : {"info", "forward", "generate", "init", "diff", "op"}) {
        INFO(c);
        CHECK(run_dsref(std::string(c) + " --help", &out) == 0);
        CHECK_THAT(out, Catch::Contains("--"));
    }
    CHECK(run_dsref("", &out) == 2);
    CHECK(run_dsref("frobnicate", &out) == 2);
    CHECK(run_dsref("forward --model " + kModel + " --tokens 1,x,3 --out " + t.file("o"), &out) == 2);
    CHECK_THAT(out, Catch::Contains("'x' is not a token id"));
    CHECK(run_dsref("forward --model " + kModel + " --tokens 1,999 --out " + t.file("o"), &out) == 1);
    CHECK_THAT(out, Catch::Contains("token id 999 is outside the vocabulary"));
    CHECK(run_dsref("forward --model " + t.path + " --tokens 1 --out " + t.file("o"), &out) == 1);
    CHECK_THAT(out, Catch::Contains("config.json: cannot open"));
    dsref_test::write_text(t.file("config.json"), "{\"model_type\": \"llama\"");
    CHECK(run_dsref("info --model " + t.path, &out) == 1);
    CHECK_THAT(out, Catch::Contains("not valid JSON"));
    dsref_test::write_text(t.file("trunc.safetensors"), "1234");
    CHECK(run_dsref("diff " + t.file("trunc.safetensors") + " " + t.file("trunc.safetensors"), &out) == 1);
    CHECK_THAT(out, Catch::Contains("trunc.safetensors: truncated"));
    CHECK(run_dsref("forward --model " + kModel + " --tokens 1 --out " + t.file("o") + " --dump-only nothere", &out) == 2);
    CHECK_THAT(out, Catch::Contains("no intermediate named 'nothere'"));
    CHECK(run_dsref("generate --model " + kModel + " --tokens 1 --max-new 2 --top-p 1.5", &out) == 2);
    CHECK(run_dsref("init --config " + kModel + "/config.json --seed 1 --out " + t.file("m") + " --dtype f8", &out) == 2);
}
