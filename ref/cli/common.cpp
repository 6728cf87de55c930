// common.cpp — token parsing and thread control shared by the commands.
#include <omp.h>

#include <cerrno>
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

void add_threads_option(CLI::App* cmd, int* threads) {
    cmd->add_option("--threads", *threads, "OpenMP threads (default: all cores); results are identical at any count")
        ->check(CLI::NonNegativeNumber);
}

void apply_threads(int threads) {
    // libgomp cannot start 100000 threads (it crashed); more than 4x the cores never helps.
    const int cap = 4 * omp_get_num_procs();
    if (threads > cap) usage_fail("--threads: ", threads, " is more than 4x the ", omp_get_num_procs(), " cores (at most ", cap, ")");
    if (threads > 0) omp_set_num_threads(threads);
}

}  // namespace dsref::cli
