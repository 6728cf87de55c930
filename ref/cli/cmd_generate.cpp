// cmd_generate.cpp — `dsref generate`: prefill, then decode token by token with the KV cache.
// stdout holds only the new ids, space-separated on one line; everything else goes to stderr.
#include <cstdio>
#include <iostream>

#include "cli.h"
#include "io/config_v4.h"
#include "io/safetensors.h"
#include "model/generate.h"
#include "model/model.h"
#include "text/tokenizer.h"

namespace dsref::cli {

void add_generate(CLI::App& app) {
    struct Opts {
        std::string model, tokens, out, attn, text, prompt_file, tokenizer, seed = "0", compat;
        bool print_text = false, allow_nonfinite = false, hold_bf16 = false;
        int64_t max_new = 0;
        double temperature = 0.0, top_p = 1.0;
        bool stop_at_eos = false;
        int threads = 0;
    };
    auto o = std::make_shared<Opts>();
    CLI::App* cmd = app.add_subcommand("generate", "generate N tokens with the KV cache (greedy by default)");
    cmd->footer(
        "\nWith no --temperature (default 0) decoding is greedy: the argmax, lowest id on ties.\n"
        "Exactly N ids are generated unless --stop-at-eos is given (the config's eos_token_id).\n"
        "--out writes `logits` [N, vocab]: the logits that chose each new token; they equal the\n"
        "matching rows of a full prefill over prompt + generated tokens.");
    cmd->add_option("--model", o->model, "model directory")->required();
    auto* tk = cmd->add_option("--tokens", o->tokens, "prompt token ids, comma-separated");
    auto* tx = cmd->add_option("--text", o->text, "the prompt as text (tokenized with the tokenizer.json)");
    auto* pf = cmd->add_option("--prompt-file", o->prompt_file, "the prompt as a UTF-8 text file");
    tk->excludes(tx)->excludes(pf);
    tx->excludes(pf);
    cmd->add_option("--tokenizer", o->tokenizer, "tokenizer.json or a directory holding one (default: the model directory)");
    cmd->add_flag("--print-text", o->print_text, "print the decoded new text on stdout (after the ids line), not stderr");
    cmd->add_option("--max-new", o->max_new, "number of new tokens N")->required()->check(non_negative());
    cmd->add_option("--temperature", o->temperature, "0 = greedy (default); > 0 samples")->check(non_negative());
    cmd->add_option("--top-p", o->top_p, "nucleus sampling mass in (0, 1] (default 1)");
    cmd->add_option("--seed", o->seed, "sampling seed (default 0)");
    cmd->add_flag("--stop-at-eos", o->stop_at_eos, "stop after the eos token");
    cmd->add_option("--out", o->out, "write the chosen logits [N, vocab] to this safetensors file");
    cmd->add_flag("--hold-bf16", o->hold_bf16,
                  "keep a bf16 checkpoint's projections as bf16 (half the bytes per decode step; llama / qwen2\n"
                  "only); the same bits as the default (ref/core/linear_bf16.h)");
    cmd->add_option("--attn", o->attn, "MLA path for V2/V3: naive | absorb (default absorb)");
    cmd->add_option("--compat", o->compat,
                    "DeepSeek-V4: official (default) | hf, as for forward (see dsref forward --help)");
    cmd->add_flag("--allow-nonfinite", o->allow_nonfinite,
                  "a NaN/Inf activation is a warning, not an error (the first trace point holding one is named)");
    add_threads_option(cmd, &o->threads);
    cmd->callback([o]() {
        apply_threads(o->threads);
        const uint64_t seed = parse_seed(o->seed);
        if (!o->out.empty()) check_output_path(o->out, "--out");
        const bool as_text = !o->text.empty() || !o->prompt_file.empty();
        if (!as_text && o->tokens.empty()) usage_fail("generate: give --tokens, --text or --prompt-file");
        std::unique_ptr<text::Tokenizer> tok;
        if (as_text || !o->tokenizer.empty()) tok = text::Tokenizer::load(o->tokenizer.empty() ? o->model : o->tokenizer);
        std::vector<int32_t> prompt;
        if (as_text) {
            const std::string t = o->prompt_file.empty() ? o->text : read_text_file(o->prompt_file);
            try {
                prompt = tok->encode(t);
            } catch (const Error& e) {
                fail(o->prompt_file.empty() ? std::string("--text") : o->prompt_file, ": ", e.what());
            }
        } else {
            prompt = parse_tokens(o->tokens);
        }
        const bool v4 = path_is_v4_config(o->model);
        check_compat(o->compat, v4);
        if (v4) {  // DeepSeek-V4: model/v4_model.h (cmd_v4.cpp)
            if (!o->attn.empty()) usage_fail("--attn ", o->attn, ": deepseek_v4 has no MLA paths");
            if (o->hold_bf16) usage_fail("--hold-bf16 covers llama / qwen2 models, not deepseek_v4");
            std::vector<int32_t> toks;
            int64_t V = 0;
            const std::vector<float> lg = v4_generate_cmd(o->model, prompt, o->max_new, o->temperature, o->top_p, parse_seed(o->seed),
                                                          o->stop_at_eos, toks, V, o->compat);
            for (size_t i = 0; i < toks.size(); i++) std::cout << (i ? " " : "") << toks[i];
            std::cout << "\n";
            if (tok) (o->print_text ? std::cout : std::cerr) << tok->decode(toks) << (o->print_text ? "" : "\n");
            if (!o->out.empty()) write_safetensors(o->out, {{"logits", Tensor::from_f32({(int64_t)toks.size(), V}, lg)}});
            std::cerr << "dsref generate: deepseek_v4, " << prompt.size() << " prompt tokens, " << toks.size() << " new\n";
            return;
        }
        ModelOptions mo;
        mo.fwd.attn = mla_path_from_name(o->attn.empty() ? "absorb" : o->attn);
        mo.fwd.finite = std::make_shared<FiniteGuard>(o->allow_nonfinite);
        mo.keep_weights = true;
        mo.fwd.hold_bf16 = o->hold_bf16;
        Model model(o->model, mo);
        if (!o->attn.empty() && !model.config().is_mla())
            usage_fail("--attn: ", arch_name(model.config().arch), " has no MLA (only DeepSeek-V2/V3 have the naive/absorb paths)");
        for (size_t i = 0; i < prompt.size(); i++)
            if (prompt[i] >= model.config().vocab_size)
                fail("prompt token ", prompt[i], " at position ", i, " is outside the model's vocab_size ", model.config().vocab_size);
        SamplingParams sp{o->temperature, o->top_p, seed};
        GenerateResult r = generate(model, prompt, o->max_new, sp, o->stop_at_eos);
        for (size_t i = 0; i < r.tokens.size(); i++) std::cout << (i ? " " : "") << r.tokens[i];
        std::cout << "\n";
        if (tok) {
            const std::string txt = tok->decode(r.tokens);
            (o->print_text ? std::cout : std::cerr) << txt << (o->print_text ? "" : "\n");
            std::cout.flush();
        }
        if (!o->out.empty())
            write_safetensors(o->out, {{"logits", Tensor::from_f32({(int64_t)r.tokens.size(), model.config().vocab_size},
                                                                    r.logits)}});
        std::cerr << "dsref generate: " << prompt.size() << " prompt tokens, " << r.tokens.size() << " new\n";
        if (r.tokens.size() > 1) {  // the first new token comes from the prefill; the others are decode steps
            const double steps = (double)r.tokens.size() - 1;
            std::fprintf(stderr, "dsref generate: prefill %.3f ms, decode %.3f ms per token (%.2f tokens/s)\n",
                         r.prefill_s * 1e3, r.decode_s * 1e3 / steps, steps / r.decode_s);
        }
    });
}

}  // namespace dsref::cli
