// rewards.h — rule-based rewards of DeepSeek-R1 / R1-Zero (arXiv 2501.12948 §2.2.2 accuracy and format
// rewards, §2.2.3 Table 1 template, §2.3.2 language consistency) as pure functions of the completion
// text, with the patterns of open-r1 (src/open_r1/rewards.py: format_reward, tag_count_reward) and
// TRL (trl/rewards/format_rewards.py: think_format_reward).
//
// accuracy      1 if the extracted answer equals the ground truth, else 0. The answer is the content
//               of the first \boxed{...} whose braces balance (a backslash escapes the next character,
//               so \{ and \} do not count); without one, the content of the first <answer>...</answer>;
//               without either there is no answer and the reward is 0. Both sides are normalized:
//               LaTeX spacing (\, \; \: \! and backslash-space) and whitespace removed, one enclosing
//               $...$ stripped, \dfrac and \tfrac read as \frac. Integers, decimals (1,000 thousands
//               separators allowed), a/b and \frac{a}{b} of those are compared exactly as rational
//               numbers (so 0.5 = 1/2 = \frac{1}{2} = 0.50, and 0.333 != 1/3); anything else is
//               compared as a string. An empty answer never matches. This is a small, documented
//               subset of math_verify (which TRL and open-r1 use): no symbolic algebra.
// format_r1     open-r1's format_reward: 1 iff re.match(r"^<think>\n.*?\n</think>\n<answer>\n.*?\n</answer>$",
//               flags DOTALL|MULTILINE). re.match anchors at the start; with MULTILINE, `$` also
//               matches before any "\n", so lines after "</answer>" still pass.
// think_format  TRL's think_format_reward: 1 iff re.match(r"^<think>(?!.*<think>)(.*?)</think>.*$", DOTALL|
//               MULTILINE): the text starts with <think>, has no second <think>, and has a later </think>.
// tag_count     open-r1: 0.25 for each of "<think>\n", "\n</think>\n", "\n<answer>\n", "\n</answer>" that
//               occurs exactly once (non-overlapping count, like Python's str.count).
// language      R1's language-consistency reward: the fraction of words of the chain of thought written
//               in the target script. A word is a maximal run of letters of one script (combining marks
//               continue it; digits and punctuation end it); each Han character is a word of its own.
//               No words: 0. The chain of thought is the text between the first <think> and the next
//               </think>; the text before </think> when <think> is missing (prefilled by the chat
//               template); the text after an unclosed <think>; otherwise the whole completion.
//
// Text is UTF-8, decoded by hand; an invalid byte decodes to U+FFFD (not a letter) and never throws.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace dsref {

double accuracy_reward(const std::string& completion, const std::string& truth);
double format_r1_reward(const std::string& completion);
double think_format_reward(const std::string& completion);
double tag_count_reward(const std::string& completion);

enum class Script { Latin, Greek, Cyrillic, Hebrew, Arabic, Devanagari, Thai, Hangul, Kana, Han, Other };
Script script_from_name(const std::string& s);  // latin|greek|cyrillic|...|han; UsageError otherwise
const char* script_name(Script s);
double language_reward(const std::string& completion, Script target);

// ---- building blocks (exposed for the tests and the walkthrough) ----
// First balanced \boxed{...}, then <answer>...</answer>; false when there is neither.
bool extract_answer(const std::string& completion, std::string* answer);
bool extract_boxed(const std::string& text, std::string* content);
std::string normalize_answer(const std::string& s);
bool answers_equal(const std::string& answer, const std::string& truth);

std::vector<char32_t> utf8_decode(const std::string& s);
// The script of a letter; Other for a letter of another script; `is_letter` false for non-letters
// (combining marks report is_letter false and is_mark true).
Script char_script(char32_t c, bool* is_letter, bool* is_mark);
struct WordCount {
    int64_t target = 0;
    int64_t total = 0;
};
WordCount count_words(const std::string& text, Script target);
std::string chain_of_thought(const std::string& completion);

}  // namespace dsref
