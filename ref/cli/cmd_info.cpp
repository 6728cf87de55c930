// cmd_info.cpp — `dsref info --model DIR [--json]`: architecture, parameters, KV-cache bytes and the
// config values the math uses. Needs only config.json (no weights).
#include <cstdio>
#include <iostream>

#include <filesystem>
#include <omp.h>

#include "cli.h"
#include "text/tokenizer.h"
#include "io/config.h"
#include "io/config_v4.h"
#include "tools/model_info.h"
#include "tools/v4_info.h"

namespace dsref::cli {

static std::string human(double n) {
    char b[64];
    if (n >= 1e9) std::snprintf(b, sizeof b, "%.2fB", n / 1e9);
    else if (n >= 1e6) std::snprintf(b, sizeof b, "%.2fM", n / 1e6);
    else if (n >= 1e3) std::snprintf(b, sizeof b, "%.2fK", n / 1e3);
    else std::snprintf(b, sizeof b, "%.0f", n);
    return b;
}

void add_info(CLI::App& app) {
    struct Opts {
        std::string model, tokenizer, compat;
        bool json = false;
        int64_t T = 1;
        int threads = 0;
    };
    auto o = std::make_shared<Opts>();
    CLI::App* cmd = app.add_subcommand("info", "architecture, parameter counts, KV-cache size and config values");
    cmd->add_option("--model", o->model, "model directory (or config.json); weights are not needed")->required();
    cmd->add_flag("--json", o->json, "print one JSON object instead of text");
    cmd->add_option("--tokenizer", o->tokenizer, "a tokenizer.json to report (default: the model directory's, if any)");
    cmd->add_option("--T", o->T, "tokens of the prefill whose memory and reads are estimated (default 1)")
        ->check(positive());
    cmd->add_option("--compat", o->compat, "DeepSeek-V4: read the config as official (default) | hf (see dsref forward --help)");
    add_threads_option(cmd, &o->threads);
    cmd->callback([o]() {
        apply_threads(o->threads);
        const bool v4 = path_is_v4_config(o->model);
        check_compat(o->compat, v4);
        if (v4) {  // DeepSeek-V4: its own config reader and counts (tools/v4_info.h)
            const nlohmann::json j =
                v4_model_info(load_v4_config(o->model, o->compat == "hf" ? V4Compat::Hf : V4Compat::Official));
            if (o->json) {
                std::cout << j.dump(2) << "\n";
                return;
            }
            const auto& p = j["parameters"];
            std::cout << "architecture           deepseek_v4\n";
            for (const char* k : {"total", "active_per_token", "active_per_token_without_embeddings", "mtp_total",
                                  "mtp_active_per_token", "total_with_mtp", "tid2eid_entries"})
                std::cout << "  " << k << " = " << p[k].get<int64_t>() << " (" << human(p[k].get<double>()) << ")\n";
            std::cout << "counting convention    " << p["convention"].get<std::string>() << "\n";
            std::cout << "layers                 " << j["layers"].dump() << "\n";
            std::cout << "KV cache               " << j["kv_cache"].dump() << "\n";
            return;
        }
        const ModelConfig c = load_config(o->model);
        nlohmann::json j = model_info(c);
        std::string tpath = o->tokenizer;
        if (tpath.empty() && std::filesystem::is_regular_file(std::filesystem::path(o->model) / "tokenizer.json"))
            tpath = o->model;
        if (!tpath.empty()) {
            auto tok = text::Tokenizer::load(tpath);
            nlohmann::json specials = nlohmann::json::array();
            for (const text::AddedToken& a : tok->added_tokens())
                if (a.special && specials.size() < 8) specials.push_back({{"id", a.id}, {"content", a.content}});
            size_t n_special = 0;
            for (const text::AddedToken& a : tok->added_tokens()) n_special += a.special;
            j["tokenizer"] = {{"file", tok->file()},          {"vocab", tok->vocab_size()},
                              {"merges", tok->merges_size()},  {"added_tokens", tok->added_tokens().size()},
                              {"special_tokens", n_special},   {"first_special_tokens", specials},
                              {"id_space", tok->id_space()},   {"fits_vocab_size", tok->id_space() <= c.vocab_size}};
        }
        const int threads = omp_get_max_threads();
        const ForwardEstimate fe = estimate_forward(c, o->T, threads);
        j["forward_estimate"] = {{"T", o->T}, {"threads", threads}, {"bytes_read", fe.bytes_read},
                                 {"peak_bytes", fe.peak}, {"anonymous_bytes", fe.anonymous}};
        if (o->json) {
            std::cout << j.dump(2) << "\n";
            return;
        }
        std::cout << "architecture           " << j["architecture"].get<std::string>() << "\n";
        const auto& p = j["parameters"];
        std::cout << "parameters             " << p["total"].get<int64_t>() << " (" << human(p["total"].get<double>())
                  << ")\n";
        std::cout << "active per token       " << p["active_per_token"].get<int64_t>() << " ("
                  << human(p["active_per_token"].get<double>()) << ")\n";
        if (p.contains("mtp_total")) {
            std::cout << "MTP modules (apart)    " << p["mtp_total"].get<int64_t>() << " ("
                      << human(p["mtp_total"].get<double>()) << "), plus copies of embedding and head "
                      << p["mtp_copies"].get<int64_t>() << " (" << human(p["mtp_copies"].get<double>()) << ")\n";
            std::cout << "stored in a checkpoint " << p["stored_total"].get<int64_t>() << " ("
                      << human(p["stored_total"].get<double>()) << ")\n";
        }
        if (p.contains("fp8_scale_elements"))
            std::cout << "FP8 weight_scale_inv   " << p["fp8_scale_elements"].get<int64_t>()
                      << " elements; with them " << p["stored_elements_with_scales"].get<int64_t>()
                      << " stored elements\n";
        std::cout << "tensors stored         " << p["stored_tensors"].get<int64_t>() << "\n";
        std::cout << "counting convention    " << p["convention"].get<std::string>() << "\n";
        const auto& kv = j["kv_cache"];
        std::cout << "KV cache per token     " << kv["values_per_token"].get<int64_t>() << " values ("
                  << kv["values_per_token_per_layer"].get<int64_t>() << " per layer): "
                  << kv["bytes_per_token_fp32"].get<int64_t>() << " B fp32, " << kv["bytes_per_token_bf16"].get<int64_t>()
                  << " B bf16\n";
        if (j.contains("dsa_indexer")) {  // DeepSeek Sparse Attention (V3.2)
            const auto& x = j["dsa_indexer"];
            std::cout << "DSA indexer            " << x["parameters_per_layer"].get<int64_t>() << " parameters per layer ("
                      << x["parameters_main_model"].get<int64_t>() << " in the main model, counted above); key cache "
                      << x["key_cache_bytes_per_token_fp8"].get<int64_t>() << " B per token fp8 (e4m3 + fp32 scale), "
                      << x["key_cache_bytes_per_token_fp32"].get<int64_t>() << " B fp32; each query attends to "
                      << x["attention_positions_per_query"].get<int64_t>() << " positions\n";
        }
        if (j.contains("kv_cache_comparison")) {
            std::cout << "KV cache per token per layer, this model against MHA/GQA of the same shape:\n";
            for (const auto& row : j["kv_cache_comparison"])
                std::cout << "  " << row["mechanism"].get<std::string>() << ": " << row["values"].get<int64_t>()
                          << " values, " << row["bytes_bf16"].get<int64_t>() << " B bf16\n";
        }
        if (j.contains("reference_figures")) {
            std::cout << "reference figures:\n";
            for (const auto& row : j["reference_figures"]) std::cout << "  " << row.get<std::string>() << "\n";
        }
        if (j.contains("tokenizer")) {
            const auto& t = j["tokenizer"];
            std::cout << "tokenizer              " << t["file"].get<std::string>() << ": " << t["vocab"] << " BPE tokens, "
                      << t["merges"] << " merges, " << t["added_tokens"] << " added (" << t["special_tokens"]
                      << " special), ids 0.." << t["id_space"].get<int64_t>() - 1 << " "
                      << (t["fits_vocab_size"].get<bool>() ? "fit" : "DO NOT fit") << " vocab_size " << c.vocab_size << "\n";
            for (const auto& sp : t["first_special_tokens"])
                std::cout << "  special " << sp["id"] << " " << sp["content"].get<std::string>() << "\n";
        }
        std::printf("forward of T = %lld     reads %.2f GB, peak memory about %.2f GB (%.2f GB anonymous) on %d "
                    "threads (streamed experts, one layer at a time)\n",
                    (long long)o->T, fe.bytes_read / 1e9, fe.peak / 1e9, fe.anonymous / 1e9, threads);
        std::fflush(stdout);
        std::cout << "config values used:\n";
        for (auto it = j["config"].begin(); it != j["config"].end(); ++it)
            std::cout << "  " << it.key() << " = " << it.value().dump() << "\n";
    });
}

}  // namespace dsref::cli
