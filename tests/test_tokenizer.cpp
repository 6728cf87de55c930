// test_tokenizer.cpp — covers ref/text/: the HF tokenizer.json loader, byte-level BPE, the pre-tokenizers,
// added tokens and decoding, against HF tokenizers' own output (data/tokenizer/make_tokenizer_golden.py:
// two small tokenizers trained there, committed, so these tests never skip; and the real DeepSeek-V3 and
// DeepSeek-V4 tokenizer.json files, fetched by `make real-tokenizers` into build/tokenizers/, which skip
// with one line when absent). Ids must be equal exactly: tokenization has no tolerance.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "core/error.h"
#include "test_util.h"
#include "text/byte_level.h"
#include "text/tokenizer.h"
#include "text/utf8.h"

using namespace dsref;
using namespace dsref::text;
using dsref_test::run_dsref;
using dsref_test::TempDir;

namespace {
nlohmann::json read_json(const std::string& path) {
    std::ifstream in(path);
    REQUIRE(in);
    nlohmann::json j;
    in >> j;
    return j;
}

std::string to_hex(const std::string& s) {
    static const char* d = "0123456789abcdef";
    std::string h;
    for (unsigned char c : s) {
        h += d[c >> 4];
        h += d[c & 15];
    }
    return h;
}

// Every corpus case encodes to HF's ids and every id sequence decodes to HF's bytes.
// round_trip: also decode(encode(s)) == s (not for a tokenizer that adds prefix spaces or removes text).
void check_against_hf(Tokenizer& tok, const nlohmann::json& expected, const nlohmann::json& cases, bool round_trip) {
    const auto& enc = expected.at("encode");
    REQUIRE(enc.size() == cases.size());
    int bad = 0;
    for (size_t i = 0; i < cases.size(); i++) {
        const std::string s = cases[i].get<std::string>();
        const std::vector<int32_t> ids = tok.encode(s);
        const std::vector<int32_t> want = enc[i].get<std::vector<int32_t>>();
        if (ids != want && bad++ < 5) {
            INFO("case " << i << ": " << nlohmann::json(s).dump());
            CHECK(nlohmann::json(ids).dump() == nlohmann::json(want).dump());
        }
        // round trip: decode(encode(s)) == s for valid UTF-8 (lstrip/rstrip tokens swallow whitespace)
        const bool strips = s.find("<lstrip_tok>") != std::string::npos || s.find("<rstrip_tok>") != std::string::npos;
        if (round_trip && !strips && tok.decode(ids) != s && bad++ < 5) {
            INFO("round trip of case " << i << ": " << nlohmann::json(s).dump());
            CHECK(to_hex(tok.decode(ids)) == to_hex(s));
        }
    }
    CHECK(bad == 0);
    int bad_dec = 0;
    for (const auto& d : expected.at("decode")) {
        const std::vector<int32_t> ids = d.at("ids").get<std::vector<int32_t>>();
        const std::string got = to_hex(tok.decode(ids));
        if (got != d.at("hex").get<std::string>() && bad_dec++ < 5) {
            INFO("decode " << d.at("ids").dump());
            CHECK(got == d.at("hex").get<std::string>());
        }
    }
    CHECK(bad_dec == 0);
}

const std::string kDir = "data/tokenizer/";
}  // namespace

TEST_CASE("byte-to-unicode map: GPT-2's table by hand", "[text]") {
    const auto& m = byte_to_unicode();
    CHECK(m[' '] == 0x120);   // 'Ġ'
    CHECK(m['\n'] == 0x10A);  // 'Ċ'
    CHECK(m[0] == 0x100);
    CHECK(m['A'] == 'A');
    CHECK(m[0x7F] == 0x121);  // after the 33 bytes 0..32
    CHECK(m[0xAD] == 0x143);  // the last unprintable byte: 0x100 + 67
    CHECK(m[0xFF] == 0xFF);
    for (int b = 0; b < 256; b++) CHECK(unicode_to_byte(m[b]) == b);
    CHECK(unicode_to_byte(0x144) == -1);
    CHECK(unicode_to_byte('\n') == -1);
}

TEST_CASE("UTF-8: validation offsets and U+FFFD for maximal subparts", "[text]") {
    CHECK(first_invalid_utf8("abc") == std::string::npos);
    CHECK(first_invalid_utf8("a\xC3\xA9z") == std::string::npos);
    CHECK(first_invalid_utf8("ab\xFFz") == 2);
    CHECK(first_invalid_utf8("ab\xE4\xB8") == 2);            // truncated 3-byte sequence
    CHECK(first_invalid_utf8("\xED\xA0\x80") == 0);          // a surrogate
    CHECK(first_invalid_utf8("\xC0\xAF") == 0);              // overlong
    const std::string R = "\xEF\xBF\xBD";
    // Unicode Standard section 3.9, "U+FFFD substitution of maximal subparts", its worked examples
    CHECK(utf8_lossy("\x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64") == "a" + R + R + R + "b" + R + "c" + R + R + "d");
    CHECK(utf8_lossy("\xC0\xAF") == R + R);
    CHECK(utf8_lossy("\xE0\x80\xAF") == R + R + R);
    CHECK(utf8_lossy("\xED\xA0\x80") == R + R + R);
    CHECK(utf8_lossy("\xF4\x90\x80\x80") == R + R + R + R);
    CHECK(utf8_lossy("\xE4\xB8") == R);
    CHECK(utf8_lossy("\xE4\xB8\xAD") == "\xE4\xB8\xAD");
}

TEST_CASE("BPE by hand: lowest rank first, leftmost on ties, both merge forms", "[text]") {
    // vocab a b c ab bc abc; merges "b c" (rank 0) then "a bc" → "abc" for "abc"; "a b" would give "ab c".
    for (const char* merges : {R"(["b c", "a bc", "a b"])", R"([["b","c"], ["a","bc"], ["a","b"]])"}) {
        const std::string j = std::string(R"({"model": {"type": "BPE", "vocab": {"a":0,"b":1,"c":2,"ab":3,"bc":4,"abc":5}, "merges": )") +
                              merges + "}}";
        Tokenizer tok(j, "hand.json");
        CHECK(tok.encode("abc") == std::vector<int32_t>{5});
        CHECK(tok.encode("ab") == std::vector<int32_t>{3});
        CHECK(tok.encode("abab") == std::vector<int32_t>{3, 3});
        CHECK(tok.encode("cab") == std::vector<int32_t>{2, 3});
        CHECK(tok.encode("abcabcabcabc") == std::vector<int32_t>{5, 5, 5, 5});  // the heap path (> 8 symbols)
        CHECK(tok.encode("") == std::vector<int32_t>{});
    }
    // "b b" on "bbb": leftmost first → "bb b"
    Tokenizer t2(R"({"model": {"type": "BPE", "vocab": {"b":0,"bb":1}, "merges": ["b b"]}})", "hand.json");
    CHECK(t2.encode("bbb") == std::vector<int32_t>{1, 0});
    CHECK(t2.encode("bbbbbbbbbbb") == std::vector<int32_t>{1, 1, 1, 1, 1, 0});
}

TEST_CASE("small trained tokenizers equal HF tokenizers on the corpus and on decode", "[text]") {
    const nlohmann::json corpus = read_json(kDir + "corpus.json");
    const nlohmann::json expected = read_json(kDir + "expected_small.json");
    for (const char* name : {"deepseek", "gpt2"}) {
        INFO("small_" << name << ".json");
        auto tok = Tokenizer::load(kDir + "small_" + name + ".json");
        check_against_hf(*tok, expected.at(name), corpus.at("cases"), std::string(name) == "deepseek");
    }
}

TEST_CASE("the real DeepSeek-V3 and V4 tokenizers equal HF tokenizers", "[text]") {
    const nlohmann::json corpus = read_json(kDir + "corpus.json");
    const nlohmann::json expected = read_json(kDir + "expected_real.json");
    for (const char* name : {"deepseek-v3", "deepseek-v4"}) {
        const std::string path = std::string("build/tokenizers/") + name + "/tokenizer.json";
        if (!std::filesystem::exists(path)) {
            std::printf("SKIP %s: %s is absent (run `make real-tokenizers`)\n", name, path.c_str());
            continue;
        }
        INFO(path);
        auto tok = Tokenizer::load(path);
        if (std::string(name) == "deepseek-v3") {
            CHECK(tok->vocab_size() == 128000);
            CHECK(tok->merges_size() == 127741);
            CHECK(tok->added_tokens().size() == 818);
        }
        CHECK(tok->token_id("<\uFF5Cbegin\u2581of\u2581sentence\uFF5C>") == 0);
        check_against_hf(*tok, expected.at(name), corpus.at("cases"), true);
    }
}

TEST_CASE("bad tokenizer.json: errors name the file and the field", "[text]") {
    auto err = [](const std::string& j) {
        try {
            Tokenizer t(j, "bad.json");
        } catch (const Error& e) {
            return std::string(e.what());
        }
        return std::string("no error");
    };
    const std::string vocab = R"("vocab": {"a":0,"b":1,"ab":2})";
    CHECK_THAT(err("{not json"), Catch::Contains("bad.json") && Catch::Contains("not valid JSON"));
    CHECK_THAT(err(R"({"model": {"type": "WordPiece"}})"), Catch::Contains("bad.json: model.type"));
    CHECK_THAT(err(R"({"model": {"type": "BPE", )" + vocab + R"(, "merges": ["a c"]}})"),
               Catch::Contains("merges[0]") && Catch::Contains("\"c\" is not in the vocab"));
    CHECK_THAT(err(R"({"model": {"type": "BPE", )" + vocab + R"(, "merges": ["b b"]}})"),
               Catch::Contains("merged token \"bb\""));
    CHECK_THAT(err(R"({"model": {"type": "BPE", )" + vocab + R"(, "merges": []}, "pre_tokenizer": {"type": "Metaspace"}})"),
               Catch::Contains("pre_tokenizer.type \"Metaspace\""));
    CHECK_THAT(err(R"({"model": {"type": "BPE", )" + vocab +
                   R"(, "merges": []}, "pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": "(a"}, "behavior": "Isolated"}]}})"),
               Catch::Contains("pre_tokenizer.pretokenizers[0].pattern.Regex: PCRE2 rejects"));
    CHECK_THAT(err(R"({"model": {"type": "BPE", )" + vocab + R"(, "merges": []}, "normalizer": {"type": "NFKC"}})"),
               Catch::Contains("bad.json: normalizer") && Catch::Contains("not supported"));
    CHECK_THAT(err(R"({"model": {"type": "BPE", )" + vocab + R"(, "merges": []}, "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "a"}, "behavior": "Sideways"}})"),
               Catch::Contains("pre_tokenizer.behavior"));
    Tokenizer ok(R"({"model": {"type": "BPE", )" + vocab + R"(, "merges": ["a b"]}})", "ok.json");
    CHECK_THROWS_WITH(ok.encode("ab\xFF"), Catch::Contains("byte offset 2"));
    CHECK_THROWS_WITH(ok.decode({0, 7}), Catch::Contains("position 1"));
}

TEST_CASE("dsref tokenize / detokenize: ids on one line, bytes exactly, errors exit 1", "[text][cli]") {
    TempDir t;
    const std::string tj = kDir + "small_deepseek.json";
    auto tok = Tokenizer::load(tj);
    const std::string text = "Hello 12345 深度求索 <｜begin▁of▁sentence｜>cat!";
    std::string want;
    for (int32_t id : tok->encode(text)) want += (want.empty() ? "" : ",") + std::to_string(id);
    dsref_test::write_text(t.file("in.txt"), text);
    std::string out;
    REQUIRE(run_dsref("tokenize --tokenizer " + tj + " --file " + t.file("in.txt"), &out) == 0);
    CHECK(out == want + "\n");
    REQUIRE(run_dsref("tokenize --tokenizer " + tj + " --file " + t.file("in.txt") + " --add-bos", &out) == 0);
    CHECK(out == std::to_string(tok->token_id("<\uFF5Cbegin\u2581of\u2581sentence\uFF5C>")) + "," + want + "\n");
    REQUIRE(run_dsref("detokenize --tokenizer " + tj + " --tokens " + want + " --out " + t.file("out.txt"), &out) == 0);
    std::ifstream in(t.file("out.txt"), std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    CHECK(ss.str() == text);
    dsref_test::write_text(t.file("bad.txt"), "ok\xC3(");
    CHECK(run_dsref("tokenize --tokenizer " + tj + " --file " + t.file("bad.txt"), &out) == 1);
    CHECK_THAT(out, Catch::Contains("byte offset 2"));
    CHECK(run_dsref("detokenize --tokenizer " + tj + " --tokens 1,99999", &out) == 1);
    CHECK_THAT(out, Catch::Contains("position 1"));
    CHECK(run_dsref("tokenize --tokenizer " + t.file("missing.json") + " --text hi", &out) == 1);
    CHECK_THAT(out, Catch::Contains("missing.json"));
}

TEST_CASE("dsref generate --text equals generate --tokens of the same ids", "[text][cli]") {
    const std::string tj = kDir + "small_deepseek.json";
    std::string by_text, by_ids, ids;
    REQUIRE(run_dsref("tokenize --tokenizer " + tj + " --text 'The quick brown fox'", &ids) == 0);
    ids.pop_back();  // the newline
    REQUIRE(run_dsref("generate --model data/tiny/llama --tokenizer " + tj + " --text 'The quick brown fox' --max-new 4 --print-text", &by_text) == 0);
    REQUIRE(run_dsref("generate --model data/tiny/llama --tokens " + ids + " --max-new 4", &by_ids) == 0);
    const std::string first = by_ids.substr(0, by_ids.find('\n') + 1);  // the ids line
    REQUIRE(by_text.substr(0, first.size()) == first);
    // with --print-text the decoded new tokens follow the ids line on stdout
    std::vector<int32_t> gen;
    for (const auto& x : nlohmann::json::parse("[" + std::regex_replace(first.substr(0, first.size() - 1), std::regex(" "), ",") + "]")) gen.push_back(x.get<int32_t>());
    CHECK(by_text.substr(first.size(), Tokenizer::load(tj)->decode(gen).size()) == Tokenizer::load(tj)->decode(gen));
    std::string out;
    CHECK(run_dsref("generate --model data/tiny/llama --tokenizer " + tj + " --text '<|endoftext|>' --max-new 1", &out) == 1);
    CHECK_THAT(out, Catch::Contains("outside the model's vocab_size 512"));
}

TEST_CASE("dsref info --tokenizer reports the tokenizer and whether its ids fit vocab_size", "[text][cli]") {
    std::string out;
    REQUIRE(run_dsref("info --model data/tiny/llama --tokenizer " + kDir + "small_deepseek.json --json 2>/dev/null", &out) == 0);
    const nlohmann::json t = nlohmann::json::parse(out).at("tokenizer");
    auto tok = Tokenizer::load(kDir + "small_deepseek.json");
    CHECK(t.at("merges") == 300);
    CHECK(t.at("id_space") == tok->id_space());
    CHECK(t.at("fits_vocab_size") == (tok->id_space() <= 512));  // data/tiny/llama has vocab_size 512
    CHECK(t.at("special_tokens") == 5);  // the five special=True tokens of make_tokenizer_golden.py
}

TEST_CASE("dsref forward --text gives the same logits as --tokens of its ids", "[text][cli]") {
    TempDir t;
    const std::string tj = kDir + "small_deepseek.json";
    std::string ids, out;
    REQUIRE(run_dsref("tokenize --tokenizer " + tj + " --text 'The quick brown fox'", &ids) == 0);
    ids.pop_back();
    dsref_test::write_text(t.file("p.txt"), "The quick brown fox");
    REQUIRE(run_dsref("forward --model data/tiny/llama --tokenizer " + tj + " --prompt-file " + t.file("p.txt") + " --out " + t.file("a.safetensors"), &out) == 0);
    REQUIRE(run_dsref("forward --model data/tiny/llama --tokens " + ids + " --out " + t.file("b.safetensors"), &out) == 0);
    CHECK(run_dsref("diff " + t.file("a.safetensors") + " " + t.file("b.safetensors") + " --atol 0", &out) == 0);
    CHECK(run_dsref("forward --model data/tiny/llama --text hi --out " + t.file("c.safetensors"), &out) == 1);  // no tokenizer.json there
    CHECK_THAT(out, Catch::Contains("tokenizer.json"));
}
