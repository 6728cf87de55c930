// test_train_cli.cpp — `dsref train` end to end on the tiny V3 of data/train/tiny_v3.config.json:
// its step-0 loss equals the cross-entropy of `dsref forward`'s logits on the same tokens (the trainer's
// forward is the model's), the loss falls, the CSV / SVG / checkpoint are written, the result is
// bit-identical at 1 and 2 threads, text through the tokenizer equals its ids, the held-out eval loss,
// --save-every and --resume (bit-identical to the uninterrupted run), --dtype bf16 (master weights), and bad
// input exits with a message.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/tensor.h"
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
// a CSV row without its i-th field (tokens_per_s is a timing)
std::string without_field(const std::string& line, int i) {
    std::stringstream ss(line);
    std::string x, out;
    for (int k = 0; std::getline(ss, x, ','); k++)
        if (k != i) out += x + ",";
    return out;
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
    CHECK(log[0] == "step,loss,ce,mtp,aux,lr,grad_norm,tokens_per_s,max_load_ratio");
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
                        " --seq-len 4 --mtp-lambda 0.3", &out) == 1);
    CHECK(out.find("MTP module") != std::string::npos);  // the tiny V3 config has no MTP layer
    CHECK(run_dsref("train --model " + t.file("init") + " --data " + t.file("ok.bin") + " --out " + t.file("o") +
                        " --seq-len 4 --schedule linear", &out) == 1);
}

TEST_CASE("dsref train --dtype bf16: float32 master weights, the forward through their bf16 rounding, a bf16 "
          "checkpoint, resume bit-identical", "[train][cli][resume]") {
    TempDir t;
    std::string out;
    // the same seed in float32 and in bf16: init rounds the float32 draw to nearest even
    REQUIRE(run_dsref("init --config data/train/tiny_v3.config.json --seed 5 --out " + t.file("i32"), &out) == 0);
    REQUIRE(run_dsref("init --config data/train/tiny_v3.config.json --seed 5 --dtype bf16 --out " + t.file("i16"),
                      &out) == 0);
    std::vector<uint32_t> ids;
    const std::string text = "bf16 weights, float32 masters. ";
    for (int r = 0; r < 8; r++)
        for (char ch : text) ids.push_back((uint32_t)(unsigned char)ch);
    write_ids(t.file("d.bin"), ids);
    const std::string common = " --data " + t.file("d.bin") + " --steps 4 --batch 2 --seq-len 12 --lr 1e-2"
                               " --bias-gamma 0.01 --aux-alpha 1e-3";
    REQUIRE(run_dsref("train --model " + t.file("i32") + " --dtype bf16" + common + " --out " + t.file("b") +
                          " --log " + t.file("b.csv") + " --save-every 2", &out) == 0);
    INFO(out);
    REQUIRE(run_dsref("train --model " + t.file("i16") + common + " --out " + t.file("r") + " --log " +
                          t.file("r.csv"), &out) == 0);
    REQUIRE(run_dsref("train --model " + t.file("i32") + common + " --out " + t.file("f") + " --log " +
                          t.file("f.csv"), &out) == 0);
    const auto b = lines(t.file("b.csv")), r = lines(t.file("r.csv")), f = lines(t.file("f.csv"));
    REQUIRE(b.size() == 5);
    REQUIRE(r.size() == 5);
    REQUIRE(f.size() == 5);
    // step 0 sees the bf16 rounding of the float32 init: exactly the float32 run on the bf16 init ...
    CHECK(field(b[1], 1) == field(r[1], 1));
    // ... and not the float32 run on the float32 init (the rounding moves the loss by ~1e-2 here)
    CHECK(field(b[1], 1) != field(f[1], 1));
    // later steps differ from the float32 run on the bf16 init: that one updates unrounded weights
    CHECK(field(b[4], 1) != field(r[4], 1));
    CHECK(field(b[4], 1) < field(b[1], 1));  // it learns
    // the checkpoint: BF16 weights (the router bias F32) that are the rounding of the master weights
    const auto m = dsref::read_safetensors(t.file("b/model.safetensors"));
    const auto opt = dsref::read_safetensors(t.file("b/optimizer.safetensors"));
    int64_t bf16_tensors = 0, unrounded_masters = 0;
    for (const auto& [name, ten] : m) {
        if (name.find("e_score_correction_bias") != std::string::npos) {
            CHECK(ten.dtype == dsref::DType::F32);
            continue;
        }
        REQUIRE(ten.dtype == dsref::DType::BF16);
        bf16_tensors++;
        const auto w = ten.to_f32(), master = opt.at("master." + name).to_f32();
        REQUIRE(w.size() == master.size());
        for (size_t i = 0; i < w.size(); i++) {
            if (w[i] != dsref::bf16_round(master[i])) FAIL(name << "[" << i << "] is not the master weight rounded");
            unrounded_masters += master[i] != w[i];
        }
    }
    CHECK(bf16_tensors > 10);
    CHECK(unrounded_masters > 1000);  // the masters keep the bits the bf16 weights lose
    CHECK(slurp(t.file("b/config.json")).find("\"torch_dtype\": \"bfloat16\"") != std::string::npos);
    // resume from step 2: the master weights come back from optimizer.safetensors
    REQUIRE(run_dsref("train --resume " + t.file("b/step-000002") + " --dtype bf16" + common + " --out " +
                          t.file("res"), &out) == 0);
    CHECK(slurp(t.file("res/model.safetensors")) == slurp(t.file("b/model.safetensors")));
    CHECK(slurp(t.file("res/optimizer.safetensors")) == slurp(t.file("b/optimizer.safetensors")));
    // resuming it as float32 is another run: refused, naming the option
    CHECK(run_dsref("train --resume " + t.file("b/step-000002") + common + " --out " + t.file("x"), &out) == 1);
    CHECK(out.find("dtype") != std::string::npos);
    REQUIRE(run_dsref("forward --model " + t.file("b") + " --tokens 98,102 --out " + t.file("fw.safetensors"), &out) == 0);
    CHECK(run_dsref("train --model " + t.file("i32") + " --dtype f16" + common + " --out " + t.file("y"), &out) != 0);
    CHECK(out.find("--dtype") != std::string::npos);
}

TEST_CASE("dsref train --tokenizer: text trains exactly as its dsref tokenize ids; eval loss; tokenizer copied",
          "[train][cli][text]") {
    TempDir t;
    std::string out;
    // the tiny V3 with the demo tokenizer's 512 ids (data/demo_v3/tokenizer.json)
    std::string cfg = slurp("data/train/tiny_v3.config.json");
    const auto at = cfg.find("\"vocab_size\": 256");
    REQUIRE(at != std::string::npos);
    cfg.replace(at, 18, "\"vocab_size\": 512");
    std::ofstream(t.file("v512.json")) << cfg;
    REQUIRE(run_dsref("init --config " + t.file("v512.json") + " --seed 2 --out " + t.file("init"), &out) == 0);
    std::ofstream(t.file("d.txt")) << "MLA compresses the keys and values into a latent. The router picks 2 of 8 "
                                      "experts for each token, and the bias keeps their loads even.\n";
    std::ofstream(t.file("e.txt")) << "The shared expert sees every token; the routed experts see a few.\n";
    const std::string tk = " --tokenizer data/demo_v3/tokenizer.json";
    REQUIRE(run_dsref("tokenize" + tk + " --file " + t.file("d.txt"), &out) == 0);
    std::vector<uint32_t> ids;
    {
        std::stringstream ss(out.substr(0, out.find('\n')));
        for (std::string x; std::getline(ss, x, ',');) ids.push_back((uint32_t)std::stoul(x));
    }
    REQUIRE(ids.size() > 20);
    write_ids(t.file("d.bin"), ids);
    const std::string common = " --model " + t.file("init") + " --steps 6 --batch 2 --seq-len 8 --lr 1e-2";
    REQUIRE(run_dsref("train" + common + tk + " --data " + t.file("d.txt") + " --out " + t.file("o1") +
                          " --eval-data " + t.file("e.txt") + " --eval-every 4 --log " + t.file("l.csv"), &out) == 0);
    REQUIRE(run_dsref("train" + common + " --data " + t.file("d.bin") + " --out " + t.file("o2"), &out) == 0);
    CHECK(slurp(t.file("o1/model.safetensors")) == slurp(t.file("o2/model.safetensors")));
    CHECK(slurp(t.file("o1/tokenizer.json")) == slurp("data/demo_v3/tokenizer.json"));
    const auto ev = lines(t.file("l.eval.csv"));  // eval before steps 0 and 4, and after the last step
    REQUIRE(ev.size() == 4);
    CHECK(ev[0] == "step,eval_loss");
    CHECK(ev[1].rfind("0,", 0) == 0);
    CHECK(ev[2].rfind("4,", 0) == 0);
    CHECK(ev[3].rfind("6,", 0) == 0);
    CHECK(field(ev[1], 1) > 5.0);  // ~ log 512 = 6.2 at init
    CHECK(slurp(t.file("l.svg")).find("darkorange") != std::string::npos);  // the eval curve is plotted
    // the checkpoint generates from text with the copied tokenizer
    CHECK(run_dsref("generate --model " + t.file("o1") + " --text MLA --max-new 3", &out) == 0);
}

TEST_CASE("dsref train --resume continues bit-identically; --save-every; a mismatched resume is refused",
          "[train][cli][resume]") {
    TempDir t;
    std::string out;
    REQUIRE(run_dsref("init --config data/train/tiny_v3.config.json --seed 7 --out " + t.file("init"), &out) == 0);
    std::vector<uint32_t> ids;
    const std::string text = "a resumed run is the same run. ";
    for (int r = 0; r < 8; r++)
        for (char ch : text) ids.push_back((uint32_t)(unsigned char)ch);
    write_ids(t.file("d.bin"), ids);
    // cosine schedule, warmup, clipping, the bias update and the balance loss: all state that must survive
    const std::string common = " --data " + t.file("d.bin") + " --steps 10 --batch 2 --seq-len 12 --lr 1e-2"
                               " --warmup 2 --schedule cosine --bias-gamma 0.01 --aux-alpha 1e-3 --clip 0.5";
    REQUIRE(run_dsref("train --model " + t.file("init") + common + " --out " + t.file("full") + " --log " +
                          t.file("full.csv") + " --save-every 4", &out) == 0);
    CHECK(run_dsref("info --model " + t.file("full/step-000004"), &out) == 0);
    CHECK(run_dsref("info --model " + t.file("full/step-000008"), &out) == 0);
    // resume from step 4 (its weights, moments and log), with --model naming the same config
    REQUIRE(run_dsref("train --model " + t.file("init") + " --resume " + t.file("full/step-000004") + common +
                          " --out " + t.file("res") + " --log " + t.file("res.csv"), &out) == 0);
    INFO(out);
    CHECK(slurp(t.file("res/model.safetensors")) == slurp(t.file("full/model.safetensors")));
    CHECK(slurp(t.file("res/optimizer.safetensors")) == slurp(t.file("full/optimizer.safetensors")));
    const auto a = lines(t.file("full.csv")), b = lines(t.file("res.csv"));
    REQUIRE(a.size() == 11);
    REQUIRE(b.size() == 11);
    for (size_t i = 0; i < a.size(); i++) CHECK(without_field(a[i], 7) == without_field(b[i], 7));
    // resuming the resumed run's intermediate state twice gives the same again (from step 8)
    REQUIRE(run_dsref("train --resume " + t.file("full/step-000008") + common + " --out " + t.file("res8"), &out) == 0);
    CHECK(slurp(t.file("res8/model.safetensors")) == slurp(t.file("full/model.safetensors")));
    // another option than the saved run's: refused, naming it
    std::string other = common;
    other.replace(other.find("--lr 1e-2"), 9, "--lr 2e-2");
    CHECK(run_dsref("train --resume " + t.file("full/step-000004") + other + " --out " + t.file("x"), &out) == 1);
    CHECK(out.find("lr") != std::string::npos);
    // another config (a different vocabulary) than --model: refused
    std::string cfg = slurp("data/train/tiny_v3.config.json");
    cfg.replace(cfg.find("\"vocab_size\": 256"), 18, "\"vocab_size\": 300");
    std::ofstream(t.file("v300.json")) << cfg;
    REQUIRE(run_dsref("init --config " + t.file("v300.json") + " --seed 7 --out " + t.file("init300"), &out) == 0);
    CHECK(run_dsref("train --model " + t.file("init300") + " --resume " + t.file("full/step-000004") + common +
                        " --out " + t.file("y"), &out) == 1);
    CHECK(out.find("another config") != std::string::npos);
    // a directory that is no dsref train checkpoint
    CHECK(run_dsref("train --resume " + t.file("init") + common + " --out " + t.file("z"), &out) == 1);
    CHECK(out.find("trainer_state.json") != std::string::npos);
}

TEST_CASE("the shipped demo model (data/demo_v3/model) loads, learned its text, and generates from text",
          "[train][cli][demo]") {
    TempDir t;
    std::string out;
    // one step at lr 0: the loss on the held-out eval.txt, before any update
    REQUIRE(run_dsref("train --model data/demo_v3/model --tokenizer data/demo_v3/model --data data/demo_v3/eval.txt"
                      " --steps 1 --batch 4 --seq-len 64 --lr 0 --out " + t.file("o") + " --log " + t.file("l.csv"),
                      &out) == 0);
    const auto log = lines(t.file("l.csv"));
    REQUIRE(log.size() == 2);
    // a random init starts at ~log 512 = 6.2 (data/demo_v3/train_log.eval.csv, step 0); the shipped
    // model is far below on text it never saw (the same file, last row)
    CHECK(field(log[1], 2) < 5.5);
    REQUIRE(run_dsref("generate --model data/demo_v3/model --text \"The router\" --max-new 8 --print-text", &out) == 0);
}

TEST_CASE("the shipped demo model is an HF checkpoint: dsref forward equals transformers' logits",
          "[train][cli][demo][golden]") {
    // data/demo_v3/make_hf_logits.py: DeepseekV3ForCausalLM.from_pretrained(data/demo_v3/model), float64
    TempDir t;
    std::string out;
    const auto gold = dsref::read_safetensors("data/demo_v3/hf_logits.safetensors");
    const auto tok = gold.at("tokens");
    std::string toks;
    for (int64_t i = 0; i < tok.shape[0]; i++)
        toks += (i ? "," : "") + std::to_string(tok.i32()[i]);
    REQUIRE(run_dsref("forward --model data/demo_v3/model --tokens " + toks + " --out " + t.file("f.safetensors"),
                      &out) == 0);
    const auto mine = dsref::read_safetensors(t.file("f.safetensors")).at("logits").to_f32();
    const auto ref = gold.at("logits").to_f32();
    REQUIRE(mine.size() == ref.size());
    double worst = 0;
    for (size_t i = 0; i < ref.size(); i++) worst = std::max(worst, std::fabs((double)mine[i] - ref[i]));
    // float32 against float64 through 3 layers, logits up to ~12: 1e-4 absolute (measured 9.5e-6)
    CHECK(worst <= 1e-4);
}

TEST_CASE("dsref train --mtp-lambda: the step-0 MTP loss is the CE of dsref forward --mtp; the MTP layer trains",
          "[train][cli][mtp]") {
    TempDir t;
    std::string out;
    std::string cfg = slurp("data/train/tiny_v3.config.json");
    const auto at = cfg.find("\"num_nextn_predict_layers\": 0");
    REQUIRE(at != std::string::npos);
    cfg.replace(at, 29, "\"num_nextn_predict_layers\": 1");
    std::ofstream(t.file("mtp.json")) << cfg;
    REQUIRE(run_dsref("init --config " + t.file("mtp.json") + " --seed 4 --out " + t.file("init"), &out) == 0);
    const int64_t S = 12;
    std::vector<uint32_t> ids;
    for (int64_t i = 0; i < S + 2; i++) ids.push_back((uint32_t)((i * 53 + 7) % 256));
    write_ids(t.file("d.bin"), ids);  // N = S + 2: every step reads the row at offset 0
    REQUIRE(run_dsref("train --model " + t.file("init") + " --data " + t.file("d.bin") + " --out " + t.file("o") +
                          " --steps 8 --batch 1 --seq-len 12 --lr 1e-2 --mtp-lambda 0.3 --bias-gamma 0.01 --log " +
                          t.file("l.csv"),
                      &out) == 0);
    const auto log = lines(t.file("l.csv"));
    REQUIRE(log.size() == 9);
    const double mtp0 = field(log[1], 3);
    // the loss column is ce + λ·mtp (+ aux, 0 here)
    CHECK(field(log[1], 1) == Approx(field(log[1], 2) + 0.3 * mtp0).epsilon(1e-6));
    CHECK(field(log[8], 3) < mtp0);  // the MTP module learns
    // the inference forward's MTP head on the same tokens gives the same loss (targets t_{i+2})
    std::string toks;
    for (int64_t i = 0; i < S; i++) toks += (i ? "," : "") + std::to_string(ids[i]);
    REQUIRE(run_dsref("forward --model " + t.file("init") + " --mtp --tokens " + toks + " --out " +
                          t.file("f.safetensors"), &out) == 0);
    const auto f = dsref::read_safetensors(t.file("f.safetensors"));
    const auto ml = f.at("mtp_logits").to_f32();
    std::vector<int32_t> tg(ids.begin() + 2, ids.begin() + 1 + S);  // t_2 .. t_S
    const double ce = dsref::xent_fwd_bwd<float>(nullptr, ml.data(), tg.data(), S - 1, 256, 1.0);
    // float32 both, different product orders, 9 printed digits: as the main-loss test, 1e-5 relative
    CHECK(mtp0 == Approx(ce).epsilon(1e-5));
    // the MTP layer's weights and its router bias moved; the checkpoint still loads with --mtp
    const auto a = dsref::read_safetensors(t.file("init/model.safetensors"));
    const auto b = dsref::read_safetensors(t.file("o/model.safetensors"));
    for (const char* name : {"model.layers.2.eh_proj.weight", "model.layers.2.shared_head.head.weight",
                             "model.layers.2.mlp.gate.e_score_correction_bias"}) {
        INFO(name);
        CHECK(a.at(name).to_f32() != b.at(name).to_f32());
    }
    CHECK(run_dsref("forward --model " + t.file("o") + " --mtp --tokens " + toks + " --out " + t.file("g.safetensors"),
                    &out) == 0);
}

TEST_CASE("dsref train: SIGINT stops after the current step and saves that step's checkpoint", "[train][cli][resume]") {
    TempDir t;
    std::string out;
    REQUIRE(run_dsref("init --config data/train/tiny_v3.config.json --seed 9 --out " + t.file("init"), &out) == 0);
    std::vector<uint32_t> ids;
    for (int i = 0; i < 400; i++) ids.push_back((uint32_t)((i * 29 + 3) % 256));
    write_ids(t.file("d.bin"), ids);
    // constant LR: the first k steps of any run are the same, whatever --steps says
    const std::string common = " --model " + t.file("init") + " --data " + t.file("d.bin") +
                               " --batch 2 --seq-len 32 --lr 1e-2 --bias-gamma 0.01";
    // a long run, interrupted once its log has 3 rows (the handler is installed before the first step;
    // the wait gives up after 30 s so a broken trainer fails the test instead of hanging it)
    const std::string sh = "(" + dsref_test::dsref_bin() + " train" + common + " --steps 100000 --out " + t.file("int") +
                           " --log " + t.file("int.csv") + " 2>/dev/null & p=$!; i=0; while [ $i -lt 3000 ] && { [ ! -f " + t.file("int.csv") +
                           " ] || [ $(wc -l < " + t.file("int.csv") + ") -lt 4 ]; }; do sleep 0.01; i=$((i+1)); done; "
                           "kill -INT $p; "
                           "wait $p; echo $? > " + t.file("rc.txt") + ")";
    REQUIRE(std::system(sh.c_str()) == 0);
    CHECK(slurp(t.file("rc.txt")) == "130\n");
    std::ifstream js(t.file("int/trainer_state.json"));
    REQUIRE(js);
    nlohmann::json st;
    js >> st;
    const int64_t k0 = st.at("step").get<int64_t>();
    CHECK(k0 >= 3);
    CHECK(k0 == (int64_t)st.at("log_rows").size());
    // the saved weights are those of an uninterrupted k0-step run
    REQUIRE(run_dsref("train" + common + " --steps " + std::to_string(k0) + " --out " + t.file("ref"), &out) == 0);
    CHECK(slurp(t.file("int/model.safetensors")) == slurp(t.file("ref/model.safetensors")));
    CHECK(slurp(t.file("int/optimizer.safetensors")) == slurp(t.file("ref/optimizer.safetensors")));
}

namespace {
// a tiny deepseek_v2: MLA with q_proj (q_lora_rank null, as V2-Lite), YaRN with mscale = mscale_all_dim,
// DeepSeekMoE with softmax gating, device-limited routing over n_group = 2 devices (topk_group = 1), no
// bias (data/configs/deepseek_v2.json's rules, scaled down)
std::string tiny_v2_config(int n_group, const std::string& topk_method) {
    return std::string(R"({
  "architectures": ["DeepseekV2ForCausalLM"], "model_type": "deepseek_v2",
  "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 2,
  "num_key_value_heads": 2, "q_lora_rank": null, "kv_lora_rank": 16, "qk_nope_head_dim": 8,
  "qk_rope_head_dim": 8, "v_head_dim": 8, "vocab_size": 256, "max_position_embeddings": 256,
  "rms_norm_eps": 1e-06, "rope_theta": 10000,
  "rope_scaling": {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64, "beta_fast": 32,
                   "beta_slow": 1, "mscale": 0.707, "mscale_all_dim": 0.707},
  "hidden_act": "silu", "attention_bias": false, "tie_word_embeddings": false, "torch_dtype": "float32",
  "bos_token_id": 0, "eos_token_id": 1, "first_k_dense_replace": 1, "moe_layer_freq": 1,
  "n_routed_experts": 8, "n_shared_experts": 1, "num_experts_per_tok": 2, "moe_intermediate_size": 16,
  "scoring_func": "softmax", "norm_topk_prob": false, "routed_scaling_factor": 2.0,
  "n_group": )") + std::to_string(n_group) + R"(, "topk_group": 1, "topk_method": ")" + topk_method + R"("
})";
}
}  // namespace

TEST_CASE("dsref train on deepseek_v2: three balance losses, forward's CE, V2 checkpoint, refusals",
          "[train][cli][v2]") {
    // V2's losses (aux), the step-0 CE is dsref forward's, the checkpoint keeps the V2 layout, and the
    // V3-only options (and the V2 losses where they are undefined) are refused naming the option
    TempDir t;
    std::string out;
    std::ofstream(t.file("v2.json")) << tiny_v2_config(2, "group_limited_greedy");
    REQUIRE(run_dsref("init --config " + t.file("v2.json") + " --seed 3 --out " + t.file("init"), &out) == 0);
    const int64_t S = 12;
    std::vector<uint32_t> ids;
    for (int64_t i = 0; i < 60; i++) ids.push_back((uint32_t)((i * 37 + 11) % 256));
    write_ids(t.file("d.bin"), ids);
    const std::string common = "train --model " + t.file("init") + " --data " + t.file("d.bin") +
                               " --batch 2 --seq-len 12 --lr 1e-2";
    REQUIRE(run_dsref(common + " --steps 4 --aux-alpha 0.01 --aux-device-alpha 0.02 --aux-comm-alpha 0.03 --out " +
                          t.file("o") + " --log " + t.file("l.csv"),
                      &out) == 0);
    INFO(out);
    const auto log = lines(t.file("l.csv"));
    REQUIRE(log.size() == 5);
    CHECK(log[0] == "step,loss,ce,mtp,aux,lr,grad_norm,tokens_per_s,max_load_ratio");
    const double aux_all = field(log[1], 4);
    CHECK(aux_all > 0);
    CHECK(field(log[1], 1) == Approx(field(log[1], 2) + aux_all).epsilon(1e-6));  // loss = ce + aux
    CHECK(field(log[4], 1) < field(log[1], 1));                                   // it learns
    // the same step 0 with the expert-level loss alone: the same CE, a smaller aux (α2, α3 are in aux)
    REQUIRE(run_dsref(common + " --steps 1 --aux-alpha 0.01 --out " + t.file("o1") + " --log " + t.file("l1.csv"),
                      &out) == 0);
    const auto log1 = lines(t.file("l1.csv"));
    REQUIRE(log1.size() == 2);
    CHECK(field(log1[1], 2) == field(log[1], 2));
    CHECK(field(log1[1], 4) > 0);
    CHECK(aux_all > field(log1[1], 4) + 1e-3);
    // the trainer's forward is the V2 inference forward: the step-0 CE of a single row at offset 0
    write_ids(t.file("one.bin"), std::vector<uint32_t>(ids.begin(), ids.begin() + S + 2));
    REQUIRE(run_dsref("train --model " + t.file("init") + " --data " + t.file("one.bin") + " --out " + t.file("o2") +
                          " --steps 1 --batch 1 --seq-len 12 --log " + t.file("l2.csv"),
                      &out) == 0);
    std::string toks;
    for (int64_t i = 0; i < S; i++) toks += (i ? "," : "") + std::to_string(ids[i]);
    REQUIRE(run_dsref("forward --model " + t.file("init") + " --tokens " + toks + " --out " + t.file("f.safetensors"),
                      &out) == 0);
    const auto logits = dsref::read_safetensors(t.file("f.safetensors")).at("logits").to_f32();
    std::vector<int32_t> tg(ids.begin() + 1, ids.begin() + 1 + S);
    // the tolerance of the V3 test above: float32 both, different product orders, 9 printed digits
    CHECK(field(lines(t.file("l2.csv"))[1], 2) ==
          Approx(dsref::xent_fwd_bwd<float>(nullptr, logits.data(), tg.data(), S, 256, 1.0)).epsilon(1e-5));
    // the checkpoint: model_type deepseek_v2, no e_score_correction_bias, the router moved; it loads in forward
    std::ifstream cf(t.file("o/config.json"));
    const nlohmann::json cfg = nlohmann::json::parse(cf);
    CHECK(cfg["model_type"] == "deepseek_v2");
    const auto a = dsref::read_safetensors(t.file("init/model.safetensors"));
    const auto b = dsref::read_safetensors(t.file("o/model.safetensors"));
    CHECK(a.size() == b.size());
    for (const auto& [name, ten] : b) CHECK(name.find("e_score_correction_bias") == std::string::npos);
    CHECK(b.count("model.layers.0.self_attn.q_proj.weight") == 1);
    CHECK(a.at("model.layers.1.mlp.gate.weight").to_f32() != b.at("model.layers.1.mlp.gate.weight").to_f32());
    CHECK(run_dsref("forward --model " + t.file("o") + " --tokens " + toks + " --out " + t.file("g.safetensors"),
                    &out) == 0);
    // refusals, each naming its option
    const std::string bad = common + " --steps 1 --out " + t.file("bad");
    CHECK(run_dsref(bad + " --bias-gamma 0.001", &out) == 1);
    CHECK(out.find("--bias-gamma") != std::string::npos);
    CHECK(out.find("e_score_correction_bias") != std::string::npos);
    CHECK(run_dsref(bad + " --mtp-lambda 0.3", &out) == 1);
    CHECK(out.find("--mtp-lambda") != std::string::npos);
    CHECK(out.find("deepseek_v2 has no MTP module") != std::string::npos);
    // one device (n_group = 1): no device-level or communication loss
    std::ofstream(t.file("v2g1.json")) << tiny_v2_config(1, "greedy");
    REQUIRE(run_dsref("init --config " + t.file("v2g1.json") + " --seed 3 --out " + t.file("init1"), &out) == 0);
    const std::string bad1 = "train --model " + t.file("init1") + " --data " + t.file("d.bin") +
                             " --steps 1 --batch 1 --seq-len 12 --out " + t.file("bad");
    CHECK(run_dsref(bad1 + " --aux-comm-alpha 0.01", &out) == 1);
    CHECK(out.find("--aux-comm-alpha") != std::string::npos);
    CHECK(out.find("n_group >= 2") != std::string::npos);
    CHECK(run_dsref(bad1 + " --aux-alpha 0.01", &out) == 0);  // the expert-level loss needs no devices
    // sigmoid scoring (the tiny V3): the V2 losses are defined on softmax affinities
    REQUIRE(run_dsref("init --config data/train/tiny_v3.config.json --seed 5 --out " + t.file("v3"), &out) == 0);
    CHECK(run_dsref("train --model " + t.file("v3") + " --data " + t.file("d.bin") +
                        " --steps 1 --batch 1 --seq-len 12 --aux-device-alpha 0.01 --out " + t.file("bad"),
                    &out) == 1);
    CHECK(out.find("--aux-device-alpha") != std::string::npos);
    CHECK(out.find("softmax") != std::string::npos);
}
