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
// --threads N on a command; 0 (the default) means all cores.
void add_threads_option(CLI::App* cmd, int* threads);
void apply_threads(int threads);

}  // namespace dsref::cli
