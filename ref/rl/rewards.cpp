// rewards.cpp — R1 rule-based rewards: accuracy, format_r1, think_format, tag_count, language
// (definitions in rewards.h). Plain string scanning; no std::regex (its ECMAScript flavour differs from
// Python's re in exactly the MULTILINE/DOTALL details these patterns depend on).
#include "rl/rewards.h"

#include <cctype>

#include "core/error.h"

namespace dsref {

// ---- answer extraction ---------------------------------------------------------------------------------

// LAB(rewards) task: the content of the first balanced \boxed{...} (whitespace allowed before the brace).
// LAB(rewards) hint: count brace depth; an escaped character (\{, \}) never opens or closes; unbalanced: try the next.
bool extract_boxed(const std::string& text, std::string* content) {
    // LAB(rewards): begin
    const std::string key = "\\boxed";
    for (size_t at = text.find(key); at != std::string::npos; at = text.find(key, at + 1)) {
        size_t i = at + key.size();
        while (i < text.size() && (text[i] == ' ' || text[i] == '\t' || text[i] == '\n')) i++;
        if (i >= text.size() || text[i] != '{') continue;  // e.g. "\boxedfoo": not a box
        const size_t begin = i + 1;
        int depth = 1;
        for (i = begin; i < text.size(); i++) {
            if (text[i] == '\\') {  // \{ \} \\ : an escaped character never opens or closes a group
                i++;
                continue;
            }
            if (text[i] == '{') depth++;
            if (text[i] == '}' && --depth == 0) break;
        }
        if (depth == 0) {
            *content = text.substr(begin, i - begin);
            return true;
        }
        // unbalanced: try the next \boxed (which then lies inside this unclosed one)
    }
    return false;
    // LAB(rewards): end
}

bool extract_answer(const std::string& completion, std::string* answer) {
    if (extract_boxed(completion, answer)) return true;
    const size_t open = completion.find("<answer>");
    if (open == std::string::npos) return false;
    const size_t begin = open + 8;
    const size_t close = completion.find("</answer>", begin);
    if (close == std::string::npos) return false;
    *answer = completion.substr(begin, close - begin);
    return true;
}

static void replace_all(std::string& s, const std::string& from, const std::string& to) {
    for (size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size())) s.replace(p, from.size(), to);
}

std::string normalize_answer(const std::string& s) {
    std::string t = s;
    for (const char* sp : {"\\,", "\\;", "\\:", "\\!", "\\ "}) replace_all(t, sp, "");  // LaTeX spacing
    std::string u;
    for (char c : t)
        if (!std::isspace((unsigned char)c)) u += c;
    if (u.size() >= 2 && u.front() == '$' && u.back() == '$') u = u.substr(1, u.size() - 2);
    replace_all(u, "\\dfrac", "\\frac");
    replace_all(u, "\\tfrac", "\\frac");
    return u;
}

// ---- exact rational numbers ------------------------------------------------------------------------------
// Each decimal has at most 18 significant digits and 18 decimals, so numerator and denominator stay
// below 10^18 and the cross products of a fraction (< 10^36) fit in 128 bits.
using u128 = unsigned __int128;

struct Rational {
    bool negative = false;
    u128 num = 0;
    u128 den = 1;
};

static u128 gcd128(u128 a, u128 b) {
    while (b != 0) {
        const u128 r = a % b;
        a = b;
        b = r;
    }
    return a;
}

static bool reduce(Rational* r) {
    if (r->den == 0) return false;
    if (r->num == 0) {
        *r = Rational();
        return true;
    }
    const u128 g = gcd128(r->num, r->den);
    r->num /= g;
    r->den /= g;
    return true;
}

// [+-]? digits [. digits*] | [+-]? . digits, with optional 1,000-style thousands separators.
static bool parse_decimal(const std::string& s, Rational* out) {
    size_t i = 0;
    Rational r;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) r.negative = s[i++] == '-';
    size_t start = i;
    while (i < s.size() && (std::isdigit((unsigned char)s[i]) || s[i] == ',')) i++;
    std::string int_part = s.substr(start, i - start);
    if (int_part.find(',') != std::string::npos) {  // 1,234,567: a group of 1-3 digits, then groups of 3
        std::string digits;
        size_t group = 0, groups = 0;
        for (size_t k = 0; k <= int_part.size(); k++) {
            if (k == int_part.size() || int_part[k] == ',') {
                if (group == 0 || group > 3 || (groups > 0 && group != 3)) return false;
                groups++;
                group = 0;
            } else {
                digits += int_part[k];
                group++;
            }
        }
        int_part = digits;
    }
    std::string frac;
    if (i < s.size() && s[i] == '.') {
        start = ++i;
        while (i < s.size() && std::isdigit((unsigned char)s[i])) i++;
        frac = s.substr(start, i - start);
    }
    if (i != s.size() || (int_part.empty() && frac.empty())) return false;
    while (!frac.empty() && frac.back() == '0') frac.pop_back();
    std::string mant = int_part + frac;
    size_t nz = 0;
    while (nz < mant.size() && mant[nz] == '0') nz++;
    mant = mant.substr(nz);
    if (mant.size() > 18 || frac.size() > 18) return false;
    for (char c : mant) r.num = r.num * 10 + (u128)(c - '0');
    for (size_t k = 0; k < frac.size(); k++) r.den *= 10;
    if (!reduce(&r)) return false;
    *out = r;
    return true;
}

static bool divide(const Rational& a, const Rational& b, Rational* out) {
    Rational r;
    r.negative = a.negative != b.negative;
    r.num = a.num * b.den;
    r.den = a.den * b.num;
    if (!reduce(&r)) return false;  // division by zero: not a number
    *out = r;
    return true;
}

// An integer, a decimal, a/b, or [+-]\frac{a}{b}, with a and b decimals.
static bool parse_rational(const std::string& s, Rational* out) {
    if (parse_decimal(s, out)) return true;
    const size_t slash = s.find('/');
    if (slash != std::string::npos && s.find('/', slash + 1) == std::string::npos) {
        Rational a, b;
        return parse_decimal(s.substr(0, slash), &a) && parse_decimal(s.substr(slash + 1), &b) && divide(a, b, out);
    }
    size_t i = 0;
    bool negative = false;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) negative = s[i++] == '-';
    if (s.compare(i, 6, "\\frac{") != 0) return false;
    const size_t mid = s.find("}{", i + 6);
    if (mid == std::string::npos || s.back() != '}') return false;
    Rational a, b;
    if (!parse_decimal(s.substr(i + 6, mid - (i + 6)), &a)) return false;
    if (!parse_decimal(s.substr(mid + 2, s.size() - 1 - (mid + 2)), &b)) return false;
    if (!divide(a, b, out)) return false;
    if (negative && out->num != 0) out->negative = !out->negative;
    return true;
}

bool answers_equal(const std::string& answer, const std::string& truth) {
    const std::string a = normalize_answer(answer), b = normalize_answer(truth);
    if (a.empty() || b.empty()) return false;
    Rational ra, rb;
    if (parse_rational(a, &ra) && parse_rational(b, &rb))
        return ra.negative == rb.negative && ra.num == rb.num && ra.den == rb.den;
    return a == b;
}

double accuracy_reward(const std::string& completion, const std::string& truth) {
    std::string answer;
    if (!extract_answer(completion, &answer)) return 0.0;
    return answers_equal(answer, truth) ? 1.0 : 0.0;
}

// ---- format rewards ------------------------------------------------------------------------------------

double format_r1_reward(const std::string& s) {
    // ^<think>\n  .*?  \n</think>\n<answer>\n  .*?  \n</answer>$   (DOTALL: . matches \n; MULTILINE:
    // $ matches at the end or before any \n). The earliest middle marker leaves the most room for the
    // closing one, so one scan decides whether any match exists.
    const std::string open = "<think>\n", middle = "\n</think>\n<answer>\n", close = "\n</answer>";
    if (s.compare(0, open.size(), open) != 0) return 0.0;
    const size_t p = s.find(middle, open.size());
    if (p == std::string::npos) return 0.0;
    for (size_t c = s.find(close, p + middle.size()); c != std::string::npos; c = s.find(close, c + 1)) {
        const size_t end = c + close.size();
        if (end == s.size() || s[end] == '\n') return 1.0;
    }
    return 0.0;
}

double think_format_reward(const std::string& s) {
    // ^<think>(?!.*<think>)(.*?)</think>.*$ with DOTALL|MULTILINE, anchored at the start.
    if (s.compare(0, 7, "<think>") != 0) return 0.0;
    if (s.find("<think>", 7) != std::string::npos) return 0.0;
    return s.find("</think>", 7) != std::string::npos ? 1.0 : 0.0;
}

static int64_t count_nonoverlapping(const std::string& s, const std::string& pat) {
    int64_t n = 0;
    for (size_t p = s.find(pat); p != std::string::npos; p = s.find(pat, p + pat.size())) n++;
    return n;
}

double tag_count_reward(const std::string& s) {
    double r = 0.0;
    for (const char* tag : {"<think>\n", "\n</think>\n", "\n<answer>\n", "\n</answer>"})
        if (count_nonoverlapping(s, tag) == 1) r += 0.25;
    return r;
}

// ---- UTF-8 and scripts -----------------------------------------------------------------------------------

std::vector<char32_t> utf8_decode(const std::string& s) {
    std::vector<char32_t> out;
    const size_t n = s.size();
    auto cont = [&](size_t k) { return k < n && ((unsigned char)s[k] & 0xC0) == 0x80; };
    for (size_t i = 0; i < n;) {
        const unsigned char b = (unsigned char)s[i];
        char32_t cp = 0xFFFD;
        size_t len = 1;
        if (b < 0x80) {
            cp = b;
        } else if (b >= 0xC2 && b <= 0xDF && cont(i + 1)) {
            cp = ((char32_t)(b & 0x1F) << 6) | ((unsigned char)s[i + 1] & 0x3F);
            len = 2;
        } else if (b >= 0xE0 && b <= 0xEF && cont(i + 1) && cont(i + 2)) {
            const unsigned char b1 = (unsigned char)s[i + 1];
            const bool ok = !(b == 0xE0 && b1 < 0xA0) && !(b == 0xED && b1 > 0x9F);  // overlong, surrogate
            if (ok) {
                cp = ((char32_t)(b & 0x0F) << 12) | ((char32_t)(b1 & 0x3F) << 6) | ((unsigned char)s[i + 2] & 0x3F);
                len = 3;
            }
        } else if (b >= 0xF0 && b <= 0xF4 && cont(i + 1) && cont(i + 2) && cont(i + 3)) {
            const unsigned char b1 = (unsigned char)s[i + 1];
            const bool ok = !(b == 0xF0 && b1 < 0x90) && !(b == 0xF4 && b1 > 0x8F);  // overlong, > U+10FFFF
            if (ok) {
                cp = ((char32_t)(b & 0x07) << 18) | ((char32_t)(b1 & 0x3F) << 12) |
                     ((char32_t)((unsigned char)s[i + 2] & 0x3F) << 6) | ((unsigned char)s[i + 3] & 0x3F);
                len = 4;
            }
        }
        out.push_back(cp);  // an invalid byte becomes U+FFFD and decoding resumes at the next byte
        i += len;
    }
    return out;
}

struct ScriptRange {
    char32_t lo, hi;
    Script script;
};
// Letter ranges (a readable subset of Unicode's Script and Letter properties).
static const ScriptRange kLetters[] = {
    {0x41, 0x5A, Script::Latin},       {0x61, 0x7A, Script::Latin},       {0xAA, 0xAA, Script::Latin},
    {0xBA, 0xBA, Script::Latin},       {0xC0, 0xD6, Script::Latin},       {0xD8, 0xF6, Script::Latin},
    {0xF8, 0x24F, Script::Latin},      {0x1E00, 0x1EFF, Script::Latin},   {0x2C60, 0x2C7F, Script::Latin},
    {0xA720, 0xA7FF, Script::Latin},   {0xFF21, 0xFF3A, Script::Latin},   {0xFF41, 0xFF5A, Script::Latin},
    {0x386, 0x386, Script::Greek},     {0x388, 0x3FF, Script::Greek},     {0x1F00, 0x1FFF, Script::Greek},
    {0x400, 0x481, Script::Cyrillic},  {0x48A, 0x52F, Script::Cyrillic},  {0x531, 0x556, Script::Other},
    {0x561, 0x587, Script::Other},     {0x5D0, 0x5EA, Script::Hebrew},    {0x5EF, 0x5F2, Script::Hebrew},
    {0x620, 0x64A, Script::Arabic},    {0x66E, 0x66F, Script::Arabic},    {0x671, 0x6D3, Script::Arabic},
    {0x6D5, 0x6D5, Script::Arabic},    {0x6FA, 0x6FC, Script::Arabic},    {0x904, 0x939, Script::Devanagari},
    {0x93D, 0x93D, Script::Devanagari}, {0x950, 0x950, Script::Devanagari}, {0x958, 0x961, Script::Devanagari},
    {0x972, 0x97F, Script::Devanagari}, {0xE01, 0xE30, Script::Thai},     {0xE32, 0xE33, Script::Thai},
    {0xE40, 0xE46, Script::Thai},      {0x10A0, 0x10FF, Script::Other},   {0x1100, 0x11FF, Script::Hangul},
    {0x3131, 0x318E, Script::Hangul},  {0xAC00, 0xD7A3, Script::Hangul},  {0x3041, 0x3096, Script::Kana},
    {0x309D, 0x309F, Script::Kana},    {0x30A1, 0x30FA, Script::Kana},    {0x30FC, 0x30FF, Script::Kana},
    {0x31F0, 0x31FF, Script::Kana},    {0x3005, 0x3005, Script::Han},     {0x3007, 0x3007, Script::Han},
    {0x3400, 0x4DBF, Script::Han},     {0x4E00, 0x9FFF, Script::Han},     {0xF900, 0xFAFF, Script::Han},
    {0x20000, 0x3134F, Script::Han},
};
// Combining marks: they continue the word they follow.
static const ScriptRange kMarks[] = {
    {0x300, 0x36F, Script::Other},  {0x591, 0x5C7, Script::Other},  {0x64B, 0x65F, Script::Other},
    {0x670, 0x670, Script::Other},  {0x900, 0x903, Script::Other},  {0x93A, 0x94F, Script::Other},
    {0x951, 0x957, Script::Other},  {0x962, 0x963, Script::Other},  {0xE31, 0xE31, Script::Other},
    {0xE34, 0xE3A, Script::Other},  {0xE47, 0xE4E, Script::Other},  {0x1AB0, 0x1AFF, Script::Other},
    {0x1DC0, 0x1DFF, Script::Other}, {0x20D0, 0x20FF, Script::Other}, {0x3099, 0x309A, Script::Other},
    {0xFE20, 0xFE2F, Script::Other},
};

Script char_script(char32_t c, bool* is_letter, bool* is_mark) {
    *is_letter = false;
    *is_mark = false;
    for (const ScriptRange& r : kLetters)
        if (c >= r.lo && c <= r.hi) {
            *is_letter = true;
            return r.script;
        }
    for (const ScriptRange& r : kMarks)
        if (c >= r.lo && c <= r.hi) *is_mark = true;
    return Script::Other;
}

static const char* const kScriptNames[] = {"latin", "greek",  "cyrillic", "hebrew", "arabic", "devanagari",
                                           "thai",  "hangul", "kana",     "han",    "other"};
const char* script_name(Script s) { return kScriptNames[(int)s]; }
Script script_from_name(const std::string& s) {
    for (int k = 0; k < 10; k++)
        if (s == kScriptNames[k]) return (Script)k;
    usage_fail("script='", s, "' must be one of latin|greek|cyrillic|hebrew|arabic|devanagari|thai|hangul|kana|han");
}

WordCount count_words(const std::string& text, Script target) {
    WordCount wc;
    bool in_word = false;
    Script word_script = Script::Other;
    for (char32_t c : utf8_decode(text)) {
        bool letter = false, mark = false;
        const Script sc = char_script(c, &letter, &mark);
        if (mark && in_word) continue;  // a combining mark continues the current word
        if (!letter) {
            in_word = false;
            continue;
        }
        // A new word starts at the first letter, at a change of script, and at every Han character.
        if (!in_word || sc != word_script || sc == Script::Han) {
            wc.total++;
            if (sc == target) wc.target++;
        }
        in_word = true;
        word_script = sc;
    }
    return wc;
}

std::string chain_of_thought(const std::string& completion) {
    const size_t open = completion.find("<think>");
    if (open != std::string::npos) {
        const size_t close = completion.find("</think>", open + 7);
        if (close == std::string::npos) return completion.substr(open + 7);  // unclosed <think>
        return completion.substr(open + 7, close - (open + 7));
    }
    const size_t close = completion.find("</think>");
    if (close != std::string::npos) return completion.substr(0, close);  // <think> prefilled by the template
    return completion;
}

double language_reward(const std::string& completion, Script target) {
    const WordCount wc = count_words(chain_of_thought(completion), target);
    return wc.total == 0 ? 0.0 : (double)wc.target / (double)wc.total;
}

}  // namespace dsref
