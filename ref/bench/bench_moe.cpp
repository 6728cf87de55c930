// bench_moe.cpp — `make bench`, DeepSeekMoE part: full-model prefill tokens/s of a small V3-shaped MoE
// model (ref/model/model.h with ref/moe/moe.h), at 1 and 2 threads, with the peak resident memory.
//
// Model: d 512, 4 decoder layers (layer 0 dense, first_k_dense_replace 1; layers 1-3 DeepSeekMoE),
// 32 routed experts of width 128 + 1 shared, top-4 of 4 groups with topk_group 2, sigmoid / noaux_tc,
// MLA with q_lora 192, kv_lora 128, 8 heads of d_n 32 + d_r 16, d_v 32, vocab 1024; random weights from
// `init` (BF16 storage, and the same model with FP8 storage to show the dequantization cost).
// Prefill of T = 256 tokens at positions 0..255, best of 3 runs after a warm-up.
//
// Weights are read from the mapped checkpoint one layer at a time (the default) or loaded once and kept
// (`keep_weights`, what generation does); the peak RSS (getrusage ru_maxrss, never decreases) is
// printed after each row. The checkpoints are written by a forked child, so their construction does not
// count. Timings are indicative on a shared machine.
#include <omp.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "io/config.h"
#include "tools/init.h"
#include "model/model.h"
#include "tools/model_info.h"

using namespace dsref;
using Clock = std::chrono::steady_clock;

namespace {

nlohmann::json bench_config(bool fp8) {
    nlohmann::json j = {{"architectures", {"DeepseekV3ForCausalLM"}}, {"model_type", "deepseek_v3"},
                        {"hidden_size", 512}, {"intermediate_size", 1024}, {"num_hidden_layers", 4},
                        {"num_attention_heads", 8}, {"vocab_size", 1024}, {"q_lora_rank", 192},
                        {"kv_lora_rank", 128}, {"qk_nope_head_dim", 32}, {"qk_rope_head_dim", 16},
                        {"v_head_dim", 32}, {"rms_norm_eps", 1e-6}, {"rope_theta", 10000},
                        {"rope_scaling", {{"type", "yarn"}, {"factor", 40}, {"original_max_position_embeddings", 4096},
                                          {"beta_fast", 32}, {"beta_slow", 1}, {"mscale", 1.0}, {"mscale_all_dim", 1.0}}},
                        {"n_routed_experts", 32}, {"n_shared_experts", 1}, {"num_experts_per_tok", 4},
                        {"moe_intermediate_size", 128}, {"n_group", 4}, {"topk_group", 2},
                        {"first_k_dense_replace", 1}, {"moe_layer_freq", 1}, {"routed_scaling_factor", 2.5},
                        {"scoring_func", "sigmoid"}, {"topk_method", "noaux_tc"}, {"norm_topk_prob", true},
                        {"num_nextn_predict_layers", 0}, {"eos_token_id", 1}};
    if (fp8)
        j["quantization_config"] = {{"quant_method", "fp8"}, {"fmt", "e4m3"}, {"weight_block_size", {128, 128}}};
    return j;
}

double peak_rss_mb() {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return u.ru_maxrss / 1024.0;  // KiB on Linux
}

// Best-of-3 prefill time in seconds.
double time_prefill(Model& m, const std::vector<int32_t>& tokens) {
    m.prefill(tokens, nullptr, true);  // warm-up (page-in of the mapped checkpoint)
    double best = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        const Clock::time_point t0 = Clock::now();
        m.prefill(tokens, nullptr, true);
        best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count());
    }
    return best;
}

}  // namespace

int main() {
    const char* base = getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/dsref_bench_moe_XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (!mkdtemp(buf.data())) {
        std::perror("mkdtemp");
        return 1;
    }
    const std::string dir = buf.data(), bf16_dir = dir + "/bf16", fp8_dir = dir + "/fp8";

    // The checkpoints, written by a child process (no OpenMP runs before the fork).
    const pid_t pid = fork();
    if (pid == 0) {
        InitOptions o;
        o.seed = 1;
        o.dtype = DType::BF16;
        init_checkpoint(parse_config(bench_config(false), "bench config"), o, bf16_dir);
        init_checkpoint(parse_config(bench_config(true), "bench config fp8"), o, fp8_dir);
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        std::fprintf(stderr, "bench_moe: writing the checkpoints failed\n");
        return 1;
    }

    const ModelConfig c = parse_config(bench_config(false), "bench config");
    const ParamCounts p = count_params(c);
    const int64_t T = 256;
    std::vector<int32_t> tokens(T);
    for (int64_t t = 0; t < T; t++) tokens[t] = (int32_t)((t * 7919 + 13) % c.vocab_size);

    std::printf("== DeepSeekMoE full-model prefill: d 512, 4 layers (1 dense + 3 MoE), 32 experts of 128 + 1 shared, "
                "top-4, 4 groups (topk_group 2), MLA, vocab 1024; T = %lld\n",
                (long long)T);
    std::printf("parameters %.1fM, active per token %.1fM; bf16 checkpoint, fp8 checkpoint (128x128 blocks)\n",
                p.total / 1e6, p.active / 1e6);
    std::printf("%-6s %-22s %8s %12s %10s %14s\n", "ckpt", "weights", "threads", "tokens/s", "ms", "peak RSS MB");
    const int max_threads = omp_get_max_threads();
    std::vector<int> thread_counts = {1};
    if (max_threads >= 2) thread_counts.push_back(2);
    struct Row {
        const char* name;
        std::string dir;
        bool keep;
    };
    const Row rows[] = {{"bf16", bf16_dir, false}, {"fp8", fp8_dir, false}, {"bf16", bf16_dir, true}};
    for (const Row& r : rows) {
        ModelOptions mo;
        mo.keep_weights = r.keep;
        Model m(r.dir, mo);
        for (int threads : thread_counts) {
            omp_set_num_threads(threads);
            const double s = time_prefill(m, tokens);
            std::printf("%-6s %-22s %8d %12.1f %10.1f %14.1f\n", r.name,
                        r.keep ? "kept (generation)" : "one layer at a time", threads, T / s, s * 1e3, peak_rss_mb());
        }
    }
    omp_set_num_threads(max_threads);
    std::system(("rm -rf '" + dir + "'").c_str());
    return 0;
}
