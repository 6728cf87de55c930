// utf8.cpp — see utf8.h. The second-byte ranges are those of the Unicode Standard, Table 3-7.
#include "text/utf8.h"

namespace dsref::text {

namespace {
// For a lead byte b: the sequence length (0: not a lead byte) and the allowed range of the second byte.
struct Lead {
    int len;
    unsigned lo, hi;
};
Lead lead_of(unsigned b) {
    if (b < 0x80) return {1, 0, 0};
    if (b >= 0xC2 && b <= 0xDF) return {2, 0x80, 0xBF};
    if (b == 0xE0) return {3, 0xA0, 0xBF};
    if ((b >= 0xE1 && b <= 0xEC) || b == 0xEE || b == 0xEF) return {3, 0x80, 0xBF};
    if (b == 0xED) return {3, 0x80, 0x9F};  // no surrogates
    if (b == 0xF0) return {4, 0x90, 0xBF};
    if (b >= 0xF1 && b <= 0xF3) return {4, 0x80, 0xBF};
    if (b == 0xF4) return {4, 0x80, 0x8F};  // nothing above U+10FFFF
    return {0, 0, 0};
}
// How many bytes from s[i] form a well-formed prefix (>= 1 when s[i] is a lead byte); sets *complete.
int valid_prefix(const std::string& s, size_t i, bool* complete) {
    const Lead L = lead_of((unsigned char)s[i]);
    *complete = false;
    if (L.len == 0) return 0;
    if (L.len == 1) {
        *complete = true;
        return 1;
    }
    int k = 1;
    for (; k < L.len; k++) {
        if (i + k >= s.size()) return k;
        const unsigned c = (unsigned char)s[i + k];
        const unsigned lo = k == 1 ? L.lo : 0x80, hi = k == 1 ? L.hi : 0xBF;
        if (c < lo || c > hi) return k;
    }
    *complete = true;
    return k;
}
}  // namespace

int utf8_seq_len(const std::string& s, size_t i) {
    bool complete;
    const int k = valid_prefix(s, i, &complete);
    return complete ? k : 0;
}

size_t first_invalid_utf8(const std::string& s) {
    size_t i = 0;
    while (i < s.size()) {
        if ((unsigned char)s[i] < 0x80) {
            i++;
            continue;
        }
        const int k = utf8_seq_len(s, i);
        if (k == 0) return i;
        i += k;
    }
    return std::string::npos;
}

uint32_t utf8_decode_at(const std::string& s, size_t i, int len) {
    const unsigned char b0 = (unsigned char)s[i];
    if (len == 1) return b0;
    uint32_t cp = b0 & (0x7F >> len);
    for (int k = 1; k < len; k++) cp = (cp << 6) | ((unsigned char)s[i + k] & 0x3F);
    return cp;
}

void append_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
        out += (char)cp;
    } else if (cp < 0x800) {
        out += (char)(0xC0 | (cp >> 6));
        out += (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += (char)(0xE0 | (cp >> 12));
        out += (char)(0x80 | ((cp >> 6) & 0x3F));
        out += (char)(0x80 | (cp & 0x3F));
    } else {
        out += (char)(0xF0 | (cp >> 18));
        out += (char)(0x80 | ((cp >> 12) & 0x3F));
        out += (char)(0x80 | ((cp >> 6) & 0x3F));
        out += (char)(0x80 | (cp & 0x3F));
    }
}

std::string utf8_lossy(const std::string& bytes) {
    std::string out;
    out.reserve(bytes.size());
    size_t i = 0;
    while (i < bytes.size()) {
        bool complete;
        const int k = valid_prefix(bytes, i, &complete);
        if (complete) {
            out.append(bytes, i, k);
            i += k;
        } else {
            out += "\xEF\xBF\xBD";  // U+FFFD for the maximal subpart (k bytes), or for one bad byte
            i += k > 0 ? k : 1;
        }
    }
    return out;
}

}  // namespace dsref::text
