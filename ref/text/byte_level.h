// byte_level.h — GPT-2's byte-to-unicode map, which byte-level BPE (DeepSeek's tokenizers) runs on.
//
// Every byte 0..255 becomes one printable code point: the bytes '!'..'~', 0xA1..0xAC and 0xAE..0xFF map to
// themselves; the other 68 (controls, space, 0x7F..0xA0, 0xAD) map in order to U+0100, U+0101, ...
// (so ' ' → 'Ġ' U+0120, '\n' → 'Ċ' U+010A). The BPE vocabulary is written in these characters.
// Source: openai/gpt-2 src/encoder.py `bytes_to_unicode`; huggingface/tokenizers
// tokenizers/src/pre_tokenizers/byte_level.rs `bytes_char`. Walkthrough: walkthrough/10_tokenizer.
#pragma once
#include <array>
#include <cstdint>
#include <string>

namespace dsref::text {

// byte → the code point that stands for it.
const std::array<uint32_t, 256>& byte_to_unicode();
// byte → that code point's UTF-8 (1 or 2 bytes).
const std::array<std::string, 256>& byte_to_utf8();
// code point → byte, or -1 when the code point stands for no byte.
int unicode_to_byte(uint32_t cp);
// Appends the byte-level form of s (each byte → its code point's UTF-8).
void append_byte_level(std::string& out, const char* s, size_t n);

}  // namespace dsref::text
