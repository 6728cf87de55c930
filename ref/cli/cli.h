// cli.h — shared pieces of the `dsref` command line: each command file adds one subcommand.
//
// The contract (README.md, "Using dsref as an oracle"): errors exit 1 and usage errors exit 2, through the top-level catch in
// main.cpp, with one line on stderr naming the file, tensor or field; `--help` on every command.
#pragma once
#include <CLI/CLI.hpp>
#include <string>
#include <vector>

namespace dsref::cli {

void add_info(CLI::App& app);
void add_forward(CLI::App& app);
void add_generate(CLI::App& app);
void add_init(CLI::App& app);
void add_diff(CLI::App& app);
void add_op(CLI::App& app);
void add_tokenize(CLI::App& app);
void add_detokenize(CLI::App& app);
// The bytes of a file (cmd_tokenize.cpp); an error names the file.
std::string read_text_file(const std::string& path);
void add_train(CLI::App& app);
void add_rl(CLI::App& app);  // rl and rl-data (cmd_rl.cpp)

// "1,2,3" (spaces allowed) → ids; a usage error names the bad entry.
std::vector<int32_t> parse_tokens(const std::string& s);
// --seed's value: digits only, at most 2^64 - 1 (no wrap, no sign); else a usage error.
uint64_t parse_seed(const std::string& s);
// An output path is checked before any work: non-empty, not a directory, in an existing writable
// folder (the file itself is written atomically, io/atomic_file.h). A usage error names `option`.
void check_output_path(const std::string& path, const char* option);
// Option checks: a finite number >= 0 / > 0 (NaN, Inf and out-of-range text refused, briefly).
CLI::Validator non_negative();
CLI::Validator positive();
// --threads N on a command; 0 (the default) means all cores.
void add_threads_option(CLI::App* cmd, int* threads);
void apply_threads(int threads);

// DeepSeek-V4 (cmd_v4.cpp): the forward and generate commands on a deepseek_v4 model directory.
// compat: the --compat value, "official" (default, also "") or "hf" (io/config_v4.h V4Compat); anything else,
// or a non-default value on another architecture, is a usage error (check_compat).
void check_compat(const std::string& compat, bool is_v4);
void v4_forward(const std::string& model, const std::vector<int32_t>& tokens, const std::string& out, bool dump,
                const std::string& dump_only, bool last_only, bool mtp, const std::string& compat);
std::vector<float> v4_generate_cmd(const std::string& model, const std::vector<int32_t>& prompt, int64_t max_new,
                                   double temperature, double top_p, uint64_t seed, bool stop_at_eos,
                                   std::vector<int32_t>& tokens_out, int64_t& vocab, const std::string& compat);

}  // namespace dsref::cli
