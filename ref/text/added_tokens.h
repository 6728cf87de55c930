// added_tokens.h — tokenizer.json's "added_tokens": special and other tokens that are cut out of the
// text before pre-tokenization, as HF tokenizers' AddedVocabulary does
// (huggingface/tokenizers tokenizers/src/tokenizer/added_vocabulary.rs `extract_and_normalize`,
// `find_matches`):
//   1. the tokens with normalized=false are searched in the raw text, leftmost-longest, non-overlapping;
//   2. the tokens with normalized=true are searched the same way in the text between those (after the
//      normalizer, which dsref supports only as the identity);
//   single_word: a match is skipped when a word character (Rust regex \w) touches it on either side;
//   lstrip / rstrip: the token absorbs the whitespace (\s) before / after it.
// A skipped match is not searched again at a later start (as the Aho-Corasick iteration of HF).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "text/regex.h"

namespace dsref::text {

struct AddedToken {
    int32_t id;
    std::string content;
    bool special, lstrip, rstrip, single_word, normalized;
};

// A piece of the input: either plain text [b, e) to pre-tokenize, or one added token (id >= 0).
struct TextPiece {
    size_t b, e;
    int32_t id;
};

class AddedTokens {
public:
    // arr: the "added_tokens" array (or null); file names the file in errors.
    AddedTokens(const nlohmann::json& arr, const std::string& file);
    ~AddedTokens();
    // Cuts s into pieces (pieces of plain text are non-empty).
    std::vector<TextPiece> split(const std::string& s) const;
    const std::vector<AddedToken>& tokens() const { return tokens_; }
    const AddedToken* by_id(int32_t id) const;

private:
    struct Trie;
    void split_with(const Trie& trie, const std::string& s, size_t b, size_t e, std::vector<TextPiece>& out) const;
    std::vector<AddedToken> tokens_;
    std::unordered_map<int32_t, size_t> by_id_;
    std::unique_ptr<Trie> raw_, normalized_;
    std::unique_ptr<Regex> word_start_, word_end_, space_start_, space_end_;
};

}  // namespace dsref::text
