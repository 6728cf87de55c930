// pre_tokenizer.h — the pre-tokenizers of an HF tokenizer.json: `Split` and `ByteLevel`, alone or in a
// `Sequence`. They cut a piece of text into pre-tokens (the words BPE encodes), each stage applied to every
// piece the previous stage produced.
//
// Split(pattern, behavior, invert) (huggingface/tokenizers tokenizers/src/pre_tokenizers/split.rs and
// tokenizers/src/tokenizer/normalizer.rs `split`): the regex cuts the piece into matches and the text
// between them (invert swaps the two), then
//   Removed: drop the matches;           Isolated: every part is a pre-token;
//   MergedWithPrevious: a match joins the part before it;   MergedWithNext: ... the part after it;
//   Contiguous: consecutive matches (or non-matches) join.   Empty parts are dropped.
// ByteLevel(add_prefix_space, use_regex) (tokenizers/src/pre_tokenizers/byte_level.rs): a " " is put in
// front of a piece that does not start with one, the piece is split by GPT-2's regex when use_regex, and
// every byte is replaced by its byte-level character (text/byte_level.h).
// The DeepSeek-V3 tokenizer: Split(\p{N}{1,3}), Split(CJK runs), Split(the word regex), all Isolated,
// then ByteLevel without prefix space or regex. Walkthrough: walkthrough/10_tokenizer.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "text/regex.h"

namespace dsref::text {

class PreTokenizer {
public:
    // pre: the "pre_tokenizer" object (or null: the whole piece is one pre-token); file names the file.
    PreTokenizer(const nlohmann::json& pre, const std::string& file);
    ~PreTokenizer();
    // Calls emit(pre_token) for each pre-token of s[0, n) (valid UTF-8), in order.
    void run(const char* s, size_t n, const std::function<void(const std::string&)>& emit) const;

private:
    struct Stage;
    void add_stage(const nlohmann::json& p, const std::string& where);
    void run_from(size_t stage, const char* s, size_t n, const std::function<void(const std::string&)>& emit) const;
    std::vector<std::unique_ptr<Stage>> stages_;
};

}  // namespace dsref::text
