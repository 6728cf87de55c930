// cmd_tokenize.cpp — `dsref tokenize` (text → ids) and `dsref detokenize` (ids → bytes) with an HF
// tokenizer.json (ref/text/tokenizer.h).
//
//   dsref tokenize   --tokenizer PATH (--text STR | --file F) [--add-bos]   ids, comma-separated, one line
//   dsref detokenize --tokenizer PATH --tokens 1,2,3 [--out F]              the decoded UTF-8 bytes exactly
#include <cstdio>
#include <fstream>
#include <sstream>

#include "cli.h"
#include "core/error.h"
#include "io/atomic_file.h"
#include "text/tokenizer.h"

namespace dsref::cli {

std::string read_text_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) fail(path, ": cannot open the text file");
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

void add_tokenize(CLI::App& app) {
    struct Opts {
        std::string tokenizer, text, file;
        bool add_bos = false;
    };
    auto o = std::make_shared<Opts>();
    CLI::App* cmd = app.add_subcommand("tokenize", "text -> token ids with an HF tokenizer.json (byte-level BPE)");
    cmd->footer(
        "\nPrints the ids comma-separated on one line of stdout, exactly as HF tokenizers encodes the text\n"
        "(added and special tokens such as <｜begin▁of▁sentence｜> in the text are recognised as HF does).\n"
        "--add-bos prepends the BOS id (tokenizer_config.json's bos_token next to tokenizer.json, else\n"
        "<｜begin▁of▁sentence｜>). Invalid UTF-8 in the text is an error naming the byte offset.");
    cmd->add_option("--tokenizer", o->tokenizer, "a tokenizer.json, or a model directory holding one")->required();
    auto* t = cmd->add_option("--text", o->text, "the text (UTF-8)");
    auto* f = cmd->add_option("--file", o->file, "a UTF-8 text file, taken byte for byte");
    t->excludes(f);
    cmd->add_flag("--add-bos", o->add_bos, "prepend the BOS token id");
    cmd->callback([o, t, f]() {
        if (!*t && !*f) usage_fail("tokenize: give --text STR or --file F");
        auto tok = text::Tokenizer::load(o->tokenizer);
        const std::string input = *f ? read_text_file(o->file) : o->text;
        std::vector<int32_t> ids;
        try {
            ids = tok->encode(input);
        } catch (const Error& e) {
            fail(*f ? o->file : std::string("--text"), ": ", e.what());
        }
        if (o->add_bos) ids.insert(ids.begin(), tok->bos_id());
        std::string line;
        for (size_t i = 0; i < ids.size(); i++) {
            if (i) line += ',';
            line += std::to_string(ids[i]);
        }
        line += '\n';
        std::fwrite(line.data(), 1, line.size(), stdout);
        std::fflush(stdout);
    });
}

void add_detokenize(CLI::App& app) {
    struct Opts {
        std::string tokenizer, tokens, out;
    };
    auto o = std::make_shared<Opts>();
    CLI::App* cmd = app.add_subcommand("detokenize", "token ids -> text with an HF tokenizer.json");
    cmd->footer(
        "\nWrites the decoded UTF-8 bytes exactly as HF tokenizers' decode (skip_special_tokens=False): to stdout\n"
        "with no added newline, or to --out F. Byte sequences that are not valid UTF-8 become U+FFFD as HF's\n"
        "lossy decoding does. An id that is no token is an error naming its position.");
    cmd->add_option("--tokenizer", o->tokenizer, "a tokenizer.json, or a model directory holding one")->required();
    cmd->add_option("--tokens", o->tokens, "comma-separated ids (may be empty)")->required();
    cmd->add_option("--out", o->out, "write the bytes to this file instead of stdout");
    cmd->callback([o]() {
        auto tok = text::Tokenizer::load(o->tokenizer);
        const std::vector<int32_t> ids = o->tokens.find_first_not_of(' ') == std::string::npos ? std::vector<int32_t>{}
                                                                                             : parse_tokens(o->tokens);
        const std::string s = tok->decode(ids);
        if (o->out.empty()) {
            std::fwrite(s.data(), 1, s.size(), stdout);
            std::fflush(stdout);
            return;
        }
        write_file_atomic(o->out, s);
    });
}

}  // namespace dsref::cli
