// walkthrough/10_tokenizer — byte-level BPE as DeepSeek ships it, step by step.
//
// What this program shows (run: make walkthrough):
//   1. the byte-to-unicode map (ref/text/byte_level.h): ' ' → 'Ġ', '\n' → 'Ċ', printable bytes unchanged;
//   2. the DeepSeek-V3 pre-tokenizer (ref/text/pre_tokenizer.h) on one sentence, regex by regex:
//      digits in threes, CJK runs, then words / punctuation / whitespace;
//   3. BPE merges on one word of the committed small tokenizer (data/tokenizer/small_deepseek.json);
//   4. encode → decode round trip, and the decoding of a lone byte to U+FFFD.
#include <cstdio>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "text/byte_level.h"
#include "text/pre_tokenizer.h"
#include "text/tokenizer.h"

using namespace dsref::text;

static void show_pre(const char* title, const nlohmann::json& pre, const std::string& s) {
    PreTokenizer p(pre, "walkthrough");
    std::printf("%-34s", title);
    p.run(s.data(), s.size(), [](const std::string& w) { std::printf("[%s]", w.c_str()); });
    std::printf("\n");
}

int main() {
    std::printf("== 1. bytes -> printable code points ==\n");
    for (int b : {(int)' ', (int)'\n', (int)'\t', (int)'A', 0xE4})
        std::printf("byte 0x%02X -> U+%04X '%s'\n", b, byte_to_unicode()[b], byte_to_utf8()[b].c_str());

    std::printf("\n== 2. the DeepSeek-V3 pre-tokenizer, one Split at a time ==\n");
    const std::string s = "In 2024, 深度求索 trained 671000000000 params!\n";
    auto split = [](const std::string& re) {
        return nlohmann::json{{"type", "Split"}, {"pattern", {{"Regex", re}}}, {"behavior", "Isolated"}, {"invert", false}};
    };
    const nlohmann::json digits = split("\\p{N}{1,3}");
    const nlohmann::json cjk = split("[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+");
    const nlohmann::json words = split(
        "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+");
    show_pre("\\p{N}{1,3}:", digits, s);
    show_pre("+ CJK runs:", {{"type", "Sequence"}, {"pretokenizers", {digits, cjk}}}, s);
    show_pre("+ words, punctuation, spaces:", {{"type", "Sequence"}, {"pretokenizers", {digits, cjk, words}}}, s);
    show_pre("+ ByteLevel (what BPE sees):",
             {{"type", "Sequence"},
              {"pretokenizers", {digits, cjk, words, {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}},
             s);
    std::printf("Digit runs are cut in threes so numbers get a fixed, position-aligned segmentation\n"
                "(\"671000000000\" -> 671|000|000|000) instead of arbitrary merged chunks.\n");

    std::printf("\n== 3. BPE on one word (data/tokenizer/small_deepseek.json) ==\n");
    auto tok = Tokenizer::load("data/tokenizer/small_deepseek.json");
    for (const std::string w : {" quick", " world", " again"}) {
        std::printf("'%s' ->", w.c_str());
        for (int32_t id : tok->encode(w)) std::printf(" %d'%s'", id, tok->decode({id}).c_str());
        std::printf("\n");
    }

    std::printf("\n== 4. round trip and U+FFFD ==\n");
    const std::string t = "Hello 世界 👍🏽";
    const std::vector<int32_t> ids = tok->encode(t);
    std::printf("%zu ids, decode(encode(s)) == s: %s\n", ids.size(), tok->decode(ids) == t ? "yes" : "NO");
    const int32_t e4 = tok->token_id(byte_to_utf8()[0xE4]);  // the first byte of '世' alone
    std::printf("decode([id of byte 0xE4]) = '%s' (one U+FFFD, as HF's lossy UTF-8)\n", tok->decode({e4}).c_str());
    return 0;
}
