// main.cpp — `dsref`: the DeepSeek reference oracle's command line.
//
//   dsref info      --model DIR [--json]
//   dsref forward   --model DIR (--tokens 1,2,3 | --text STR | --prompt-file F) --out OUT.safetensors [--dump] [--last-only]
//   dsref generate  --model DIR --tokens ... --max-new N [--temperature T] [--top-p P] [--seed S]
//   dsref init      --config CONFIG.json --seed S --out DIR [--dtype bf16|f32]
//   dsref diff      A.safetensors B.safetensors [--atol X] [--rtol Y]
//   dsref op        --list | NAME --in IN.safetensors --out OUT.safetensors [--set key=value]...
//   dsref tokenize  --tokenizer PATH (--text STR | --file F) [--add-bos]
//   dsref detokenize --tokenizer PATH --tokens 1,2,3 [--out F]
//   dsref train     --model DIR --data IDS.bin --out DIR [--steps N] [--batch B] [--seq-len S] [--lr LR] ...
//
// Exit codes: 0 success, 1 error (bad file, tensor, field), 2 usage error; always within 1..125.
#include <malloc.h>

#include <cstdio>
#include <exception>

#include "cli.h"
#include "core/error.h"

int main(int argc, char** argv) {
    // The forward allocates its activation buffers (up to tens of MB) afresh in every layer. glibc maps
    // such blocks and unmaps them on free, so each layer paid for zeroed fresh pages again (about 10 %
    // of a prefill); below 64 MB they now come from the heap and are reused, and up to 256 MB of free
    // heap is kept. Weights and the streamed experts' buffers of the real V3 shapes stay larger or are
    // reused at the same size, so the peak memory is unchanged.
    mallopt(M_MMAP_THRESHOLD, 64 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
    CLI::App app{"dsref — DeepSeek from scratch: a tested C++ reference of DeepSeek LLM, V2, V3 and the R1-Distill models"};
    app.require_subcommand(1);
    app.failure_message(CLI::FailureMessage::simple);
    dsref::cli::add_info(app);
    dsref::cli::add_forward(app);
    dsref::cli::add_generate(app);
    dsref::cli::add_init(app);
    dsref::cli::add_diff(app);
    dsref::cli::add_op(app);
    dsref::cli::add_tokenize(app);
    dsref::cli::add_detokenize(app);
    dsref::cli::add_train(app);
    dsref::cli::add_rl(app);
    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        std::fprintf(stderr, "dsref: %s (see --help)\n", e.what());
        return 2;
    } catch (const dsref::UsageError& e) {
        std::fprintf(stderr, "dsref: %s\n", e.what());
        return 2;
    } catch (const dsref::Error& e) {
        std::fprintf(stderr, "dsref: error: %s\n", e.what());
        return 1;
    } catch (const std::bad_alloc&) {
        std::fprintf(stderr, "dsref: error: out of memory\n");
        return 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "dsref: error: %s\n", e.what());
        return 1;
    }
    return 0;
}
