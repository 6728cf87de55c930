// utf8.h — UTF-8 helpers of the tokenizer: validation (the byte offset of the first invalid byte), the
// code point at a position, and the lossy decoding of arbitrary bytes.
//
// utf8_lossy follows the Unicode Standard's "substitution of maximal subparts" (chapter 3, section 3.9,
// U+FFFD substitution; the well-formed byte sequences of Table 3-7): each maximal prefix of a
// well-formed sequence that cannot be completed, and each byte that cannot start one, becomes one
// U+FFFD. This is what Rust's String::from_utf8_lossy does, which HF tokenizers' ByteLevel decoder uses
// (huggingface/tokenizers, tokenizers/src/pre_tokenizers/byte_level.rs: `decode_chain`).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace dsref::text {

// The length of the well-formed UTF-8 sequence starting at s[i] (1..4), or 0 when none starts there.
int utf8_seq_len(const std::string& s, size_t i);
// The byte offset of the first byte that is not part of a well-formed sequence, or npos.
size_t first_invalid_utf8(const std::string& s);
// Decodes the well-formed sequence at s[i] (call only where utf8_seq_len > 0).
uint32_t utf8_decode_at(const std::string& s, size_t i, int len);
void append_utf8(std::string& out, uint32_t cp);
// bytes → valid UTF-8, invalid parts replaced by U+FFFD (maximal subparts, see above).
std::string utf8_lossy(const std::string& bytes);

}  // namespace dsref::text
