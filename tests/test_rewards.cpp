// test_rewards.cpp — R1 rule-based rewards (ref/rl/rewards.h, op reward): hand-made nasty strings (nested
// braces, several boxes, missing tags, Unicode, invalid UTF-8) and fuzz cases whose expected rewards were
// computed by Python's `re`, str.count, fractions and unicodedata (data/grpo/make_grpo_golden.py).
#include <cmath>
#include <string>

#include <catch2/catch.hpp>

#include "core/error.h"
#include "io/safetensors.h"
#include "ops/op_registry.h"
#include "rl/rewards.h"

using namespace dsref;

TEST_CASE("answer extraction: first balanced \\boxed, then <answer>", "[rewards]") {
    std::string a;
    CHECK(extract_answer("so \\boxed{42}.", &a));
    CHECK(a == "42");
    CHECK(extract_answer("\\boxed{\\frac{1}{2}}", &a));  // nested braces
    CHECK(a == "\\frac{1}{2}");
    CHECK(extract_answer("first \\boxed{3} then \\boxed{4}", &a));  // several boxes: the first
    CHECK(a == "3");
    CHECK(extract_answer("\\boxed{3 and then \\boxed{4}", &a));  // the first never closes: the next one
    CHECK(a == "4");
    CHECK(extract_answer("\\boxed{\\{1,2\\}}", &a));  // escaped braces do not count
    CHECK(a == "\\{1,2\\}");
    CHECK(extract_answer("\\boxed {7}", &a));  // space before the brace
    CHECK(a == "7");
    CHECK(extract_answer("<answer>5</answer> and \\boxed{6}", &a));  // a box wins over the tags
    CHECK(a == "6");
    CHECK(extract_answer("<think>x</think><answer> 12 </answer>", &a));
    CHECK(a == " 12 ");
    CHECK(extract_answer("\\boxed{{a}{b}}", &a));
    CHECK(a == "{a}{b}");
    CHECK_FALSE(extract_answer("The answer is 12", &a));         // no box, no tags
    CHECK_FALSE(extract_answer("<answer>12", &a));               // unclosed tag
    CHECK_FALSE(extract_answer("\\boxed{12", &a));               // unclosed box, no tags
    CHECK_FALSE(extract_answer("\\boxedx{12}", &a));             // not a box
    CHECK_FALSE(extract_answer("</answer>12<answer>", &a));      // tags in the wrong order
    CHECK_FALSE(extract_answer("", &a));
}

TEST_CASE("accuracy reward: normalization and exact rational comparison", "[rewards]") {
    CHECK(accuracy_reward("\\boxed{42}", "42") == 1.0);
    CHECK(accuracy_reward("\\boxed{41}", "42") == 0.0);
    CHECK(accuracy_reward("\\boxed{\\frac{1}{2}}", "0.5") == 1.0);
    CHECK(accuracy_reward("\\boxed{\\dfrac{1}{2}}", "1/2") == 1.0);
    CHECK(accuracy_reward("\\boxed{0.50}", "\\frac12") == 0.0);  // \frac12 is not a supported form
    CHECK(accuracy_reward("\\boxed{-\\frac{3}{4}}", "-0.75") == 1.0);
    CHECK(accuracy_reward("\\boxed{\\frac{-3}{4}}", "-0.75") == 1.0);
    CHECK(accuracy_reward("\\boxed{0.333}", "1/3") == 0.0);  // exact, not approximate
    CHECK(accuracy_reward("\\boxed{3.0}", "3") == 1.0);
    CHECK(accuracy_reward("\\boxed{+3}", "3") == 1.0);
    CHECK(accuracy_reward("\\boxed{-0}", "0") == 1.0);
    CHECK(accuracy_reward("\\boxed{1,000}", "1000") == 1.0);   // thousands separator
    CHECK(accuracy_reward("\\boxed{1,00}", "100") == 0.0);     // not a thousands separator
    CHECK(accuracy_reward("\\boxed{1,2}", "12") == 0.0);       // a pair, compared as a string
    CHECK(accuracy_reward("\\boxed{ 1 2 }", "12") == 1.0);     // spaces are removed
    CHECK(accuracy_reward("\\boxed{$42$}", "42") == 1.0);
    CHECK(accuracy_reward("\\boxed{1\\,000}", "1000") == 1.0); // LaTeX thin space
    CHECK(accuracy_reward("\\boxed{x = 5}", "x=5") == 1.0);    // strings, spaces removed
    CHECK(accuracy_reward("\\boxed{2/4}", "0.5") == 1.0);
    CHECK(accuracy_reward("\\boxed{1/0}", "2/0") == 0.0);      // division by zero: compared as strings
    CHECK(accuracy_reward("\\boxed{.5}", "1/2") == 1.0);
    CHECK(accuracy_reward("\\boxed{5.}", "5") == 1.0);
    CHECK(accuracy_reward("\\boxed{}", "") == 0.0);              // an empty answer never matches
    CHECK(accuracy_reward("no answer here: 42", "42") == 0.0);
    CHECK(accuracy_reward("<answer>\n 7/2 \n</answer>", "3.5") == 1.0);
    CHECK(accuracy_reward("\\boxed{π}", "π") == 1.0);          // Unicode compared as strings
    CHECK(accuracy_reward("\\boxed{２}", "2") == 0.0);           // full-width digit is not 2
    CHECK(accuracy_reward("\\boxed{123456789012345678901234567890}", "123456789012345678901234567890") == 1.0);
    CHECK(accuracy_reward("\\boxed{0.1234567890123456789}", "0.1234567890123456788") == 0.0);
    CHECK(answers_equal("1e3", "1000") == false);  // scientific notation is not parsed
}

TEST_CASE("format_r1: open-r1's regex with DOTALL and MULTILINE", "[rewards]") {
    CHECK(format_r1_reward("<think>\nreason\n</think>\n<answer>\n42\n</answer>") == 1.0);
    CHECK(format_r1_reward("<think>\nreason\n</think>\n<answer>\n42\n</answer>\nmore lines") == 1.0);  // $ at a line end
    CHECK(format_r1_reward("<think>\nreason\n</think>\n<answer>\n42\n</answer> trailing") == 0.0);
    CHECK(format_r1_reward("<think>\na\nb\nc\n</think>\n<answer>\nx\ny\n</answer>") == 1.0);  // DOTALL
    CHECK(format_r1_reward("<think>\n\n</think>\n<answer>\n\n</answer>") == 1.0);
    CHECK(format_r1_reward("<think>\n</think>\n<answer>\n42\n</answer>") == 0.0);  // needs two newlines
    CHECK(format_r1_reward("<think>reason\n</think>\n<answer>\n42\n</answer>") == 0.0);
    CHECK(format_r1_reward(" <think>\nreason\n</think>\n<answer>\n42\n</answer>") == 0.0);  // anchored
    CHECK(format_r1_reward("<think>\nreason\n</think><answer>\n42\n</answer>") == 0.0);
    CHECK(format_r1_reward("<think>\na\n</think>\nb\n</think>\n<answer>\nx\n</answer>") == 1.0);
    CHECK(format_r1_reward("<think>\na\n</answer>\n</think>\n<answer>\nx") == 0.0);  // close before middle
    CHECK(format_r1_reward("<think>\na\n</think>\n<answer>\nx\n</answer>y\n</answer>") == 1.0);
    CHECK(format_r1_reward("<think>\nreason\n</think>\n<answer>\n42\n</answer>\r\n") == 0.0);  // \r is not \n
    CHECK(format_r1_reward("") == 0.0);
}

TEST_CASE("think_format: TRL's regex", "[rewards]") {
    CHECK(think_format_reward("<think>abc</think>rest") == 1.0);
    CHECK(think_format_reward("<think></think>") == 1.0);
    CHECK(think_format_reward("<think>a\nb</think>\nanswer") == 1.0);
    CHECK(think_format_reward("<think>a<think>b</think>") == 0.0);  // a second <think>
    CHECK(think_format_reward("<think>a</think><think>") == 0.0);
    CHECK(think_format_reward(" <think>a</think>") == 0.0);         // must start the text
    CHECK(think_format_reward("<think>abc") == 0.0);                // never closed
    CHECK(think_format_reward("reasoning</think>answer") == 0.0);   // <think> prefilled by the template
    CHECK(think_format_reward("<think>a</think></think>") == 1.0);
}

TEST_CASE("tag_count: 0.25 per tag that appears exactly once (non-overlapping)", "[rewards]") {
    CHECK(tag_count_reward("<think>\nr\n</think>\n<answer>\nx\n</answer>") == 1.0);
    CHECK(tag_count_reward("<think>\nr\n</think>\n<answer>\nx\n</answer>\n</answer>") == 0.75);
    CHECK(tag_count_reward("<think>\nr\n</think>\n") == 0.5);
    CHECK(tag_count_reward("\n</think>\n</think>\n") == 0.25);  // overlapping occurrences count once
    CHECK(tag_count_reward("no tags") == 0.0);
    CHECK(tag_count_reward("<think>\n<think>\n\n</answer>") == 0.25);
}

TEST_CASE("UTF-8 decoding by hand", "[rewards]") {
    CHECK(utf8_decode("aé中😀") == std::vector<char32_t>{U'a', U'é', U'中', U'😀'});
    CHECK(utf8_decode("\xC0\xAF") == std::vector<char32_t>{0xFFFD, 0xFFFD});              // overlong
    CHECK(utf8_decode("\xED\xA0\x80") == std::vector<char32_t>{0xFFFD, 0xFFFD, 0xFFFD});  // surrogate
    CHECK(utf8_decode("\xE4\xB8") == std::vector<char32_t>{0xFFFD, 0xFFFD});              // truncated
    CHECK(utf8_decode("\xF4\x90\x80\x80").size() == 4);                                   // > U+10FFFF
    CHECK(utf8_decode("\xFF" "a") == std::vector<char32_t>{0xFFFD, U'a'});
}

TEST_CASE("language reward: fraction of chain-of-thought words in the target script", "[rewards]") {
    CHECK(language_reward("<think>This is English.</think>", Script::Latin) == 1.0);
    // 我 and 们 are one word each; need, to, compute are three Latin words.
    CHECK(language_reward("<think>我们 need to compute</think>", Script::Latin) == Approx(0.6).epsilon(1e-15));
    CHECK(language_reward("<think>我们 need to compute</think>", Script::Han) == Approx(0.4).epsilon(1e-15));
    CHECK(language_reward("<think>我们需要计算</think>", Script::Han) == 1.0);
    CHECK(count_words("我们需要计算", Script::Han).total == 6);
    CHECK(count_words("café naïve", Script::Latin).target == 2);
    CHECK(count_words("cafe\xCC\x81 ok", Script::Latin).total == 2);  // e + combining acute: one word
    CHECK(count_words("abcабв", Script::Cyrillic).total == 2);         // a script change ends a word
    CHECK(count_words("Привет, мир!", Script::Cyrillic).target == 2);
    CHECK(count_words("これはペンです", Script::Kana).total == 1);     // kana run: one word
    CHECK(count_words("x2y don't", Script::Latin).total == 4);        // digits and ' end words: x y don t
    CHECK(language_reward("<think>123 + 456 = 579</think>", Script::Latin) == 0.0);  // no words
    CHECK(language_reward("", Script::Latin) == 0.0);
    CHECK(language_reward("<think>\xFF\xFE abc 😀</think>", Script::Latin) == 1.0);  // invalid bytes, emoji
    // Chain of thought: between the tags; before </think> when <think> is prefilled; the whole text.
    CHECK(chain_of_thought("pre <think>in</think> post") == "in");
    CHECK(chain_of_thought("reasoning</think>answer") == "reasoning");
    CHECK(chain_of_thought("<think>never closed") == "never closed");
    CHECK(chain_of_thought("plain") == "plain");
    CHECK(language_reward("abc 中文</think>answer words here", Script::Latin) == Approx(1.0 / 3.0).epsilon(1e-15));
    CHECK_THROWS_AS(script_from_name("klingon"), UsageError);
}

static Tensor text_tensor(const std::string& s) {
    return Tensor::from_u8({(int64_t)s.size()}, std::vector<uint8_t>(s.begin(), s.end()));
}

TEST_CASE("reward op: every kind, attributes accepted and ignored where they do not apply", "[rewards][op]") {
    const std::string good = "<think>\nWe add 我们.\n</think>\n<answer>\n\\boxed{\\frac{6}{4}}\n</answer>";
    TensorMap in;
    in["text"] = text_tensor(good);
    in["truth"] = text_tensor("1.5");
    auto run = [&](const std::string& kind, const std::string& script) {
        OpAttrs a;
        a.set("kind", kind);
        a.set("script", script);  // accepted for every kind
        const TensorMap out = run_op("reward", in, a);
        REQUIRE(out.at("reward").rank() == 0);
        REQUIRE(out.at("reward").dtype == DType::F32);
        return (double)out.at("reward").f32()[0];
    };
    CHECK(run("accuracy", "han") == 1.0);
    CHECK(run("format_r1", "latin") == 1.0);
    CHECK(run("think_format", "latin") == 1.0);
    CHECK(run("tag_count", "latin") == 1.0);
    CHECK(run("language", "latin") == Approx(0.5));  // We, add | 我, 们
    CHECK(run("language", "han") == Approx(0.5));
    TensorMap no_truth = in;
    no_truth.erase("truth");
    OpAttrs acc;
    acc.set("kind", "accuracy");
    CHECK_THROWS_WITH(run_op("reward", no_truth, acc), Catch::Contains("truth"));
    OpAttrs fmt;
    fmt.set("kind", "format_r1");
    CHECK(run_op("reward", no_truth, fmt).at("reward").f32()[0] == 1.0f);  // truth not needed
    OpAttrs bad;
    bad.set("kind", "length");
    CHECK_THROWS_AS(run_op("reward", in, bad), UsageError);
    TensorMap wrong = in;
    wrong["text"] = Tensor::from_f32({2}, {1.0f, 2.0f});
    CHECK_THROWS_WITH(run_op("reward", wrong, fmt), Catch::Contains("text"));
}

TEST_CASE("rewards match Python re / str.count / fractions / unicodedata on fuzz strings", "[rewards][golden]") {
    // data/grpo/reward_cases.safetensors: text_NNN and truth_NNN (U8), expected F32 [n] per kind.
    const TensorMap m = read_safetensors("data/grpo/reward_cases.safetensors");
    const std::vector<float> fmt = m.at("format_r1").to_f32(), think = m.at("think_format").to_f32(),
                             tags = m.at("tag_count").to_f32(), acc = m.at("accuracy").to_f32(),
                             lat = m.at("language_latin").to_f32(), han = m.at("language_han").to_f32();
    const int64_t n = (int64_t)fmt.size();
    REQUIRE(n >= 100);
    int nonzero[4] = {0, 0, 0, 0};
    for (int64_t k = 0; k < n; k++) {
        char key[32];
        std::snprintf(key, sizeof key, "text_%03d", (int)k);
        const Tensor& t = m.at(key);
        const std::string text(t.bytes.begin(), t.bytes.end());
        std::snprintf(key, sizeof key, "truth_%03d", (int)k);
        const Tensor& u = m.at(key);
        const std::string truth(u.bytes.begin(), u.bytes.end());
        INFO("case " << k << ": " << text << " | truth " << truth);
        CHECK(format_r1_reward(text) == fmt[k]);
        CHECK(think_format_reward(text) == think[k]);
        CHECK(tag_count_reward(text) == tags[k]);
        CHECK(accuracy_reward(text, truth) == acc[k]);
        // Expected fractions were stored as float32: compare at float32 resolution.
        CHECK(std::fabs(language_reward(text, Script::Latin) - lat[k]) <= 1e-7);
        CHECK(std::fabs(language_reward(text, Script::Han) - han[k]) <= 1e-7);
        nonzero[0] += fmt[k] != 0;
        nonzero[1] += think[k] != 0;
        nonzero[2] += acc[k] != 0;
        nonzero[3] += lat[k] != 0 && lat[k] != 1;
    }
    for (int c : nonzero) CHECK(c >= 5);  // the fuzz set exercises both outcomes of every reward
}
