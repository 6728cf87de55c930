// regex.cpp — see regex.h. Links -lpcre2-8 (Debian libpcre2-dev).
#define PCRE2_CODE_UNIT_WIDTH 8
#include "text/regex.h"

#include <pcre2.h>

#include "core/error.h"

namespace dsref::text {

struct Regex::Impl {
    pcre2_code* code = nullptr;
    bool jit = false;
};

namespace {
// One match-data block per thread and pattern size: pcre2_match needs scratch space.
pcre2_match_data* match_data() {
    thread_local struct Holder {
        pcre2_match_data* md = pcre2_match_data_create(8, nullptr);
        ~Holder() { pcre2_match_data_free(md); }
    } h;
    return h.md;
}
}  // namespace

Regex::Regex(const std::string& pattern, bool literal, const std::string& what) : impl_(new Impl) {
    int err = 0;
    PCRE2_SIZE off = 0;
    const uint32_t opts = PCRE2_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP);  // UCP is not allowed with LITERAL
    impl_->code = pcre2_compile((PCRE2_SPTR)pattern.data(), pattern.size(), opts, &err, &off, nullptr);
    if (!impl_->code) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        fail(what, ": PCRE2 rejects the regex at offset ", off, ": ", (const char*)msg);
    }
    impl_->jit = pcre2_jit_compile(impl_->code, PCRE2_JIT_COMPLETE) == 0;
}

Regex::~Regex() { pcre2_code_free(impl_->code); }

bool Regex::find(const char* s, size_t n, size_t* begin, size_t* end) const {
    pcre2_match_data* md = match_data();
    const int rc = impl_->jit ? pcre2_jit_match(impl_->code, (PCRE2_SPTR)s, n, 0, 0, md, nullptr)
                              : pcre2_match(impl_->code, (PCRE2_SPTR)s, n, 0, PCRE2_NO_UTF_CHECK, md, nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) return false;
    if (rc < 0) fail("PCRE2 match error ", rc);
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    *begin = ov[0];
    *end = ov[1];
    return true;
}

bool Regex::matches(const char* s, size_t n) const {
    size_t b, e;
    return find(s, n, &b, &e);
}

void Regex::find_all(const char* s, size_t n, std::vector<std::pair<size_t, size_t>>& out) const {
    pcre2_match_data* md = match_data();
    size_t start = 0;
    bool have_prev = false;
    size_t prev_end = 0;
    while (start <= n) {
        const int rc = impl_->jit ? pcre2_jit_match(impl_->code, (PCRE2_SPTR)s, n, start, 0, md, nullptr)
                                  : pcre2_match(impl_->code, (PCRE2_SPTR)s, n, start, PCRE2_NO_UTF_CHECK, md, nullptr);
        if (rc == PCRE2_ERROR_NOMATCH) return;
        if (rc < 0) fail("PCRE2 match error ", rc);
        const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
        const size_t b = ov[0], e = ov[1];
        if (b == e && have_prev && prev_end == e) {
            // an empty match where the last one ended: search again one character further
            if (start >= n) return;
            size_t next = start + 1;
            while (next < n && ((unsigned char)s[next] & 0xC0) == 0x80) next++;
            start = next;
            continue;
        }
        out.emplace_back(b, e);
        have_prev = true;
        prev_end = e;
        if (e == b) {
            if (e >= n) return;
            size_t next = e + 1;
            while (next < n && ((unsigned char)s[next] & 0xC0) == 0x80) next++;
            start = next;
        } else {
            start = e;
        }
    }
}

}  // namespace dsref::text
