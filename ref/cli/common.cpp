// common.cpp — token parsing and thread control shared by the commands.
#include <omp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>

#include "cli.h"
#include "core/error.h"

namespace dsref::cli {

std::vector<int32_t> parse_tokens(const std::string& s) {
    std::vector<int32_t> ids;
    size_t i = 0;
    while (i <= s.size()) {
        size_t j = s.find(',', i);
        if (j == std::string::npos) j = s.size();
        std::string item = s.substr(i, j - i);
        while (!item.empty() && item.front() == ' ') item.erase(item.begin());
        while (!item.empty() && item.back() == ' ') item.pop_back();
        char* end = nullptr;
        errno = 0;
        long v = std::strtol(item.c_str(), &end, 10);
        if (item.empty() || *end != '\0' || errno == ERANGE || v < 0 || v > 2147483647L)
            usage_fail("--tokens: '", item, "' is not a token id (expected non-negative integers like 1,2,3)");
        ids.push_back((int32_t)v);
        i = j + 1;
    }
    return ids;
}

uint64_t parse_seed(const std::string& s) {
    // Digits only: strtoull would take "-1" as 2^64 - 1, and a longer number would wrap.
    bool digits = !s.empty() && s.size() <= 20;
    for (char ch : s) digits = digits && ch >= '0' && ch <= '9';
    errno = 0;
    const unsigned long long v = digits ? std::strtoull(s.c_str(), nullptr, 10) : 0;
    if (!digits || errno == ERANGE) usage_fail("--seed: '", s, "' is not an integer in [0, 2^64 - 1]");
    return (uint64_t)v;
}

void check_output_path(const std::string& path, const char* option) {
    if (path.empty()) usage_fail(option, ": empty output path");
    struct stat st;
    if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) usage_fail(option, " ", path, ": is a directory");
    const size_t sl = path.find_last_of('/');
    const std::string dir = sl == std::string::npos ? "." : (sl == 0 ? "/" : path.substr(0, sl));
    if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) usage_fail(option, " ", path, ": the folder ", dir, " does not exist");
    if (::access(dir.c_str(), W_OK) != 0) usage_fail(option, " ", path, ": the folder ", dir, " is not writable");
}

// A number (integer or float text) that is finite and >= 0 (or > 0). CLI11's NonNegativeNumber took
// "nan" and printed DBL_MAX in 309 digits when a value was out of range.
static CLI::Validator number_check(bool strictly_positive) {
    return CLI::Validator(
        [strictly_positive](std::string& s) -> std::string {
            char* end = nullptr;
            errno = 0;
            const double v = std::strtod(s.c_str(), &end);
            if (s.empty() || *end != '\0' || errno == ERANGE || !std::isfinite(v) || v < 0 || (strictly_positive && v == 0))
                return "'" + s + "' is not a finite number " + (strictly_positive ? "> 0" : ">= 0");
            return std::string();
        },
        strictly_positive ? "NUMBER > 0" : "NUMBER >= 0");
}
CLI::Validator non_negative() { return number_check(false); }
CLI::Validator positive() { return number_check(true); }

void add_threads_option(CLI::App* cmd, int* threads) {
    cmd->add_option("--threads", *threads, "OpenMP threads (default: all cores); results are identical at any count")
        ->check(non_negative());
}

void apply_threads(int threads) {
    // libgomp cannot start 100000 threads (it crashed); more than 4x the cores never helps.
    const int cap = 4 * omp_get_num_procs();
    if (threads > cap) usage_fail("--threads: ", threads, " is more than 4x the ", omp_get_num_procs(), " cores (at most ", cap, ")");
    if (threads > 0) omp_set_num_threads(threads);
}

}  // namespace dsref::cli
