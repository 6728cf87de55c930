// byte_level.cpp — see byte_level.h.
#include "text/byte_level.h"

#include "text/utf8.h"

namespace dsref::text {

const std::array<uint32_t, 256>& byte_to_unicode() {
    static const std::array<uint32_t, 256> map = [] {
        std::array<uint32_t, 256> m{};
        uint32_t next = 256;
        for (int b = 0; b < 256; b++) {
            const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            m[b] = printable ? (uint32_t)b : next++;
        }
        return m;
    }();
    return map;
}

const std::array<std::string, 256>& byte_to_utf8() {
    static const std::array<std::string, 256> map = [] {
        std::array<std::string, 256> m;
        for (int b = 0; b < 256; b++) append_utf8(m[b], byte_to_unicode()[b]);
        return m;
    }();
    return map;
}

int unicode_to_byte(uint32_t cp) {
    static const std::array<int, 324> inv = [] {  // every mapped code point is below 256 + 68
        std::array<int, 324> m;
        m.fill(-1);
        for (int b = 0; b < 256; b++) m[byte_to_unicode()[b]] = b;
        return m;
    }();
    return cp < inv.size() ? inv[cp] : -1;
}

void append_byte_level(std::string& out, const char* s, size_t n) {
    const auto& map = byte_to_utf8();
    for (size_t i = 0; i < n; i++) out += map[(unsigned char)s[i]];
}

}  // namespace dsref::text
