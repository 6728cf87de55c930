// bench_tokenizer.cpp — `make bench`, tokenizer part: encode MB/s of dsref's byte-level BPE
// (ref/text/tokenizer.h) on a multilingual corpus of about 4 MB built from data/tokenizer/corpus.json
// (seeded) as 2 KB documents encoded one by one, with the real DeepSeek-V3 tokenizer when `make real-tokenizers` fetched it, else the small
// committed one; then, in the same run, HF tokenizers on the same file and tokenizer, single-threaded
// (data/tokenizer/bench_hf.py), when Python can import it (never needed). Target: dsref >= 1x HF.
// Single-threaded; best of 3 runs; the ids of both are compared.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>

#include "text/tokenizer.h"

using Clock = std::chrono::steady_clock;

int main() {
    std::string tok_path = "build/tokenizers/deepseek-v3/tokenizer.json";
    if (!std::filesystem::exists(tok_path)) tok_path = "data/tokenizer/small_deepseek.json";
    std::ifstream cin_("data/tokenizer/corpus.json");
    if (!cin_) {
        std::printf("bench_tokenizer: SKIP, data/tokenizer/corpus.json not found (run from the repository root)\n");
        return 0;
    }
    nlohmann::json cj;
    cin_ >> cj;
    std::vector<std::string> cases = cj.at("cases").get<std::vector<std::string>>();
    std::mt19937_64 g(12);
    // documents of about 2 KB, one per line of the corpus file (encoded one by one on both sides)
    std::vector<std::string> docs;
    size_t total = 0;
    while (total < (4u << 20)) {
        std::string d;
        while (d.size() < 2048) {
            d += cases[g() % cases.size()];
            d += (g() % 4 == 0) ? "\r" : " ";  // no '\n': it separates the documents
        }
        for (char& c : d)
            if (c == '\n') c = ' ';
        total += d.size();
        docs.push_back(std::move(d));
    }
    std::string text;
    for (const std::string& d : docs) text += d + "\n";
    std::filesystem::create_directories("build");
    const std::string corpus_path = "build/bench_tokenizer_corpus.txt";
    std::ofstream(corpus_path, std::ios::binary) << text;

    double best = 1e30;
    size_t n_ids = 0;
    std::vector<int32_t> ids;
    for (int run = 0; run < 3; run++) {
        auto tok = dsref::text::Tokenizer::load(tok_path);  // a fresh cache each run, as HF's run
        const auto t0 = Clock::now();
        ids.clear();
        for (const std::string& d : docs) {
            const std::vector<int32_t> v = tok->encode(d);
            ids.insert(ids.end(), v.begin(), v.end());
        }
        best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count());
        n_ids = ids.size();
    }
    const double mb = total / 1e6;
    std::printf("tokenizer: %s, corpus %.1f MB -> %zu ids\n", tok_path.c_str(), mb, n_ids);
    std::printf("  dsref encode        %8.2f MB/s (1 thread, best of 3)\n", mb / best);
    std::fflush(stdout);
    std::string ids_line;
    for (size_t i = 0; i < ids.size(); i++) ids_line += (i ? "," : "") + std::to_string(ids[i]);
    std::ofstream("build/bench_tokenizer_ids.txt") << ids_line << "\n";
    const char* py = std::getenv("PYTHON");
    const std::string python = py && *py ? py : "python3";
    const std::string cmd = python + " data/tokenizer/bench_hf.py " + tok_path + " " + corpus_path +
                            " build/bench_tokenizer_ids.txt " + std::to_string(mb / best);
    if (std::system((python + " -c 'import tokenizers' >/dev/null 2>&1").c_str()) != 0) {
        std::printf("  HF tokenizers       not importable by %s (PYTHON=... to choose one): not measured\n", python.c_str());
        return 0;
    }
    return std::system(cmd.c_str()) == 0 ? 0 : 1;
}
