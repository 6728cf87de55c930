// regex.h — the one regex engine of the tokenizer: PCRE2 (8-bit) compiled with UTF and UCP, so \p{L},
// \p{N}, \s, \w ... follow the Unicode properties of the installed PCRE2, and lookaheads such as
// `\s+(?!\S)` work as in HF tokenizers' Oniguruma. JIT-compiled when PCRE2 has a JIT.
//
// find_all reproduces the match iteration of HF tokenizers (tokenizers/src/utils/onig.rs,
// `Pattern for &SysRegex`, over onig's `find_iter`): left to right, non-overlapping, each search starting
// where the previous match ended; an empty match right where the previous match ended is skipped by
// searching again one character further. The subject is exactly the piece (lookarounds see its ends).
#pragma once
#include <cstddef>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace dsref::text {

class Regex {
public:
    // `what` names the pattern in errors (file and field). literal: the pattern is a plain string.
    Regex(const std::string& pattern, bool literal, const std::string& what);
    ~Regex();
    Regex(const Regex&) = delete;
    Regex& operator=(const Regex&) = delete;
    // Matches in s[0, n) (valid UTF-8) as [begin, end) byte offsets, appended to out.
    void find_all(const char* s, size_t n, std::vector<std::pair<size_t, size_t>>& out) const;
    // Whether the pattern matches somewhere in s[0, n).
    bool matches(const char* s, size_t n) const;
    // The first match in s[0, n) as [begin, end); false when none.
    bool find(const char* s, size_t n, size_t* begin, size_t* end) const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace dsref::text
