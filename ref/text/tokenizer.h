// tokenizer.h — an HF tokenizer.json (byte-level BPE, as DeepSeek's checkpoints ship it): encode text to
// ids and decode ids to bytes exactly as HF tokenizers does.
//
// encode (huggingface/tokenizers tokenizers/src/tokenizer/mod.rs `encode_single_sequence`):
//   added tokens are cut out first (text/added_tokens.h); each remaining piece goes through the
//   normalizer (only the identity is supported: null or an empty Sequence), the pre-tokenizer
//   (text/pre_tokenizer.h) and BPE (text/bpe.h). The post-processor adds no ids here: ByteLevel's only
//   changes offsets, TemplateProcessing is refused; --add-bos is the CLI's explicit choice.
// decode (mod.rs `decode`, decoders ByteLevel `decode_chain`): each id becomes its token string (added
//   tokens first, then the vocabulary); a token whose every character is a byte-level character becomes
//   those bytes, any other token its own UTF-8; the concatenation is decoded lossily (text/utf8.h).
//   decode_bytes returns the bytes before that last step.
// Walkthrough: walkthrough/10_tokenizer.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "text/added_tokens.h"
#include "text/bpe.h"
#include "text/pre_tokenizer.h"

namespace dsref::text {

class Tokenizer {
public:
    // path: a tokenizer.json, or a directory holding one.
    static std::unique_ptr<Tokenizer> load(const std::string& path);
    // json_text: the content of a tokenizer.json; file names it in errors.
    Tokenizer(const std::string& json_text, const std::string& file);

    // Ids of a UTF-8 text (invalid UTF-8 is an error naming the byte offset).
    std::vector<int32_t> encode(const std::string& text);
    // The decoded text, valid UTF-8, invalid byte sequences as U+FFFD. An id that is no token is an
    // error naming its position.
    std::string decode(const std::vector<int32_t>& ids) const;
    // The raw bytes the tokens stand for (before the lossy UTF-8 step).
    std::string decode_bytes(const std::vector<int32_t>& ids) const;

    // One past the largest id of the vocabulary and the added tokens.
    int32_t id_space() const;
    size_t vocab_size() const { return bpe_->vocab_size(); }
    size_t merges_size() const { return bpe_->merges_size(); }
    const std::vector<AddedToken>& added_tokens() const { return added_->tokens(); }
    int32_t token_id(const std::string& token) const;  // added tokens first; -1 when absent
    const std::string& file() const { return file_; }
    // The BOS id: tokenizer_config.json's "bos_token" next to the tokenizer file when there is one, else
    // the token <｜begin▁of▁sentence｜>; an error when neither names a token.
    int32_t bos_id() const;

private:
    std::string file_;
    std::unique_ptr<Bpe> bpe_;
    std::unique_ptr<PreTokenizer> pre_;
    std::unique_ptr<AddedTokens> added_;
    bool byte_level_decoder_ = false;
};

}  // namespace dsref::text
