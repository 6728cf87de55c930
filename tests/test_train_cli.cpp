// test_train_cli.cpp — `dsref train` end to end on the tiny V3 of data/train/tiny_v3.config.json:
// its step-0 loss equals the cross-entropy of `dsref forward`'s logits on the same tokens (the trainer's
// forward is the model's), the loss falls, the CSV / SVG / checkpoint are written, the result is
// bit-identical at 1 and 2 threads, and bad input exits with a message.
#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>

#include "io/safetensors.h"
#include "test_util.h"
#include "train/loss_backward.h"

using dsref_test::run_dsref;
using dsref_test::TempDir;

namespace {
void write_ids(const std::string& path, const std::vector<uint32_t>& ids) {
    std::ofstream f(path, std::ios::binary);
    for (uint32_t v : ids) {
        const unsigned char b[4] = {(unsigned char)(v & 255), (unsigned char)((v >> 8) & 255),
                                    (unsigned char)((v >> 16) & 255), (unsigned char)(v >> 24)};
        f.write((const char*)b, 4);
    }
}
std::vector<std::string> lines(const std::string& path) {
    std::ifstream f(path);
    std::vector<std::string> out;
    for (std::string l; std::getline(f, l);) out.push_back(l);
    return out;
}
double field(const std::string& line, int i) {
    std::stringstream ss(line);
    std::string x;
    for (int k = 0; k <= i; k++) std::getline(ss, x, ',');
    return std::stod(x);
}
std::string slurp(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}
}  // namespace

TEST_CASE("dsref train: step-0 loss is the CE of dsref forward's logits", "[train][cli]") {
    TempDir t;
    std::string out;
    REQUIRE(run_dsref("init --config data/train/tiny_v3.config.json --seed 5 --out " + t.file("init"), &out) == 0);
    const int64_t S = 12;
    std::vector<uint32_t> ids;
    for (int64_t i = 0; i < S + 2; i++) ids.push_back((uint32_t)((i * 37 + 11) % 256));
    write_ids(t.file("d.bin"), ids);  // N = S + 2: the only row starts at offset 0
    REQUIRE(run_dsref("train --model " + t.file("init") + " --data " + t.file("d.bin") + " --out " + t.file("o") +
                          " --steps 1 --batch 1 --seq-len 12 --log " + t.file("log.csv"),
                      &out) == 0);
    const auto log = lines(t.file("log.csv"));
    REQUIRE(log.size() == 2);
    CHECK(log[0] == "step,loss,ce,mtp,aux,lr,grad_norm,tokens_per_s");
    const double loss0 = field(log[1], 1);
    std::string toks;
    for (int64_t i = 0; i < S; i++) toks += (i ? "," : "") + std::to_string(ids[i]);
    REQUIRE(run_dsref("forward --model " + t.file("init") + " --tokens " + toks + " --out " + t.file("f.safetensors"),
                      &out) == 0);
    const auto f = dsref::read_safetensors(t.file("f.safetensors"));
    const auto logits = f.at("logits").to_f32();
    std::vector<int32_t> tg(ids.begin() + 1, ids.begin() + 1 + S);
    const double ce = dsref::xent_fwd_bwd<float>(nullptr, logits.data(), tg.data(), S, 256, 1.0);
    // both float32, products in different orders (tiled Eigen vs plain loops) through 2 layers, and
    // the CSV prints 9 digits: 1e-5 relative
    CHECK(loss0 == Approx(ce).epsilon(1e-5));
}

TEST_CASE("dsref train: the loss falls; CSV, SVG, a loadable checkpoint; bit-identical at 1 and 2 threads",
          "[train][cli][threads]") {
    TempDir t;
    std::string out;
    REQUIRE(run_dsref("init --config data/train/tiny_v3.config.json --seed 5 --out " + t.file("init"), &out) == 0);
    std::vector<uint32_t> ids;
    const std::string text = "the quick brown fox jumps over the lazy dog. ";
    for (int r = 0; r < 12; r++)
        for (char ch : text) ids.push_back((uint32_t)(unsigned char)ch);
    write_ids(t.file("d.bin"), ids);
    const std::string common = " --data " + t.file("d.bin") + " --steps 25 --batch 2 --seq-len 16 --lr 1e-2 --warmup 3"
                               " --schedule cosine --bias-gamma 0.001 --aux-alpha 1e-3 --clip 1.0";
    REQUIRE(run_dsref("train --model " + t.file("init") + " --out " + t.file("o1") + " --log " + t.file("l1.csv") +
                          " --threads 1" + common, &out) == 0);
    INFO(out);
    REQUIRE(run_dsref("train --model " + t.file("init") + " --out " + t.file("o2") + " --log " + t.file("l2.csv") +
                          " --threads 2" + common, &out) == 0);
    const auto l1 = lines(t.file("l1.csv"));
    REQUIRE(l1.size() == 26);
    CHECK(field(l1[1], 1) > 3.0);                               // ~ log 256 = 5.5 at init
    CHECK(field(l1[25], 1) < 0.6 * field(l1[1], 1));            // a repeated sentence is being learned
    CHECK(field(l1[1], 5) == Approx(1e-2 / 3).epsilon(1e-6));  // warmup: lr·(0+1)/3
    CHECK(field(l1[1], 4) > 0);                                 // the balance loss is reported
    CHECK(slurp(t.file("l1.svg")).rfind("<svg", 0) == 0);
    CHECK(slurp(t.file("o1/model.safetensors")) == slurp(t.file("o2/model.safetensors")));  // bit-identical
    REQUIRE(run_dsref("forward --model " + t.file("o1") + " --tokens 116,104,101 --out " + t.file("f.safetensors"),
                      &out) == 0);
}

TEST_CASE("dsref train: bad input exits with a message", "[train][cli]") {
    TempDir t;
    std::string out;
    REQUIRE(run_dsref("init --config data/train/tiny_v3.config.json --seed 5 --out " + t.file("init"), &out) == 0);
    write_ids(t.file("short.bin"), {1, 2, 3});
    CHECK(run_dsref("train --model " + t.file("init") + " --data " + t.file("short.bin") + " --out " + t.file("o") +
                        " --seq-len 4", &out) == 1);
    CHECK(out.find("need at least") != std::string::npos);
    write_ids(t.file("big.bin"), {1, 2, 3, 4, 5, 300, 7, 8});
    CHECK(run_dsref("train --model " + t.file("init") + " --data " + t.file("big.bin") + " --out " + t.file("o") +
                        " --seq-len 4", &out) == 1);
    CHECK(out.find("at offset 5") != std::string::npos);
    write_ids(t.file("ok.bin"), {1, 2, 3, 4, 5, 6, 7, 8});
    CHECK(run_dsref("train --model " + t.file("init") + " --data " + t.file("ok.bin") + " --out " + t.file("o") +
                        " --seq-len 4 --mtp-lambda 0.3", &out) == 2);
    CHECK(out.find("MTP") != std::string::npos);
    CHECK(run_dsref("train --model " + t.file("init") + " --data " + t.file("ok.bin") + " --out " + t.file("o") +
                        " --seq-len 4 --schedule linear", &out) == 1);
}
