// test_util.h — small helpers shared by the CPU tests: temporary directories, random vectors,
// max-abs-difference, integer goldens as int32, and running the dsref binary for exit-code tests.
#pragma once
#include <omp.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iomanip>
#include <random>
#include <string>
#include <vector>

namespace dsref_test {

// An integer tensor of a golden (token ids, top-k indices; any dtype to_i64 reads) as int32.
template <class TensorT> std::vector<int32_t> as_i32(const TensorT& t) {
    const std::vector<int64_t> v = t.to_i64();
    return std::vector<int32_t>(v.begin(), v.end());
}

// A fresh directory under $TMPDIR (or /tmp), removed when the object dies.
struct TempDir {
    std::string path;
    TempDir() {
        const char* base = getenv("TMPDIR");
        std::string tmpl = std::string(base && *base ? base : "/tmp") + "/dsref_test_XXXXXX";
        std::vector<char> buf(tmpl.begin(), tmpl.end());
        buf.push_back('\0');
        path = mkdtemp(buf.data());
    }
    ~TempDir() { std::system(("rm -rf '" + path + "'").c_str()); }
    std::string file(const std::string& name) const { return path + "/" + name; }
};

inline std::vector<float> randn(size_t n, uint64_t seed, float scale = 1.0f) {
    std::mt19937_64 g(seed);
    std::normal_distribution<float> d(0.0f, scale);
    std::vector<float> v(n);
    for (float& x : v) x = d(g);
    return v;
}

// max |a - b|; INFINITY when the sizes differ (so any tolerance check fails). b may be a float64 golden.
template <class B> inline double max_abs_diff(const std::vector<float>& a, const std::vector<B>& b) {
    if (a.size() != b.size()) return INFINITY;
    double m = 0;
    for (size_t i = 0; i < a.size(); i++) m = std::max(m, (double)std::fabs((double)a[i] - (double)b[i]));
    return m;
}

inline void write_text(const std::string& path, const std::string& text) {
    std::ofstream f(path, std::ios::binary);
    f << text;
}

// The dsref binary: $DSREF_BIN (set by `make test`), else build/dsref.
inline std::string dsref_bin() {
    const char* b = getenv("DSREF_BIN");
    return (b && *b) ? b : "build/dsref";
}

// Runs `dsref ARGS`, capturing stdout+stderr; returns the exit status.
inline int run_dsref(const std::string& args, std::string* output = nullptr) {
    const std::string cmd = dsref_bin() + " " + args + " 2>&1";
    FILE* p = popen(cmd.c_str(), "r");
    if (!p) return -1;
    std::string out;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    int st = pclose(p);
    if (output) *output = out;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

// Runs a shell command line, capturing stdout+stderr; returns the exit status (128 + signal if killed).
inline int run_cmd(const std::string& cmd, std::string* output = nullptr) {
    FILE* p = popen((cmd + " 2>&1").c_str(), "r");
    if (!p) return -1;
    std::string out;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    const int st = pclose(p);
    if (output) *output = out;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

// "prlimit --as=BYTES " when the dsref binary can start under that address-space limit, else "".
// A sanitizer build reserves terabytes of shadow memory and cannot run under any such limit; callers
// then run without it (and say so with WARN).
inline std::string as_limit_prefix(uint64_t bytes) {
    const std::string lim = "prlimit --as=" + std::to_string(bytes) + " ";
    return run_cmd("timeout -k 5 30 " + lim + dsref_bin() + " op --list") == 0 ? lim : "";
}

// Sets the OpenMP thread count for one scope.
struct ThreadScope {
    int saved;
    explicit ThreadScope(int n) : saved(omp_get_max_threads()) { omp_set_num_threads(n); }
    ~ThreadScope() { omp_set_num_threads(saved); }
};

// Tolerance for a golden figure copied as printed text: half a unit of its last printed digit, and at
// least 1e-12 (double arithmetic may sum in another order than the script that printed it: ~1e-16).
inline double printed_tol(const char* s) {
    const char* dot = std::strchr(s, '.');
    const char* e = std::strpbrk(s, "eE");
    const int decimals = dot ? (int)((e ? e : s + std::strlen(s)) - dot - 1) : 0;
    const int exp10 = e ? std::atoi(e + 1) : 0;
    return std::max(0.5 * std::pow(10.0, exp10 - decimals), 1e-12);
}

}  // namespace dsref_test

// CHECK_PRINTED(value, "0.0380544854") — value equals the printed figure to half a unit of its last digit.
#define CHECK_PRINTED(value, text)                                                                \
    do {                                                                                          \
        const double v_ = (value);                                                                \
        INFO(#value << " = " << std::setprecision(17) << v_ << ", printed: " << (text));          \
        CHECK(std::fabs(v_ - std::strtod((text), nullptr)) <= dsref_test::printed_tol(text));     \
    } while (0)
