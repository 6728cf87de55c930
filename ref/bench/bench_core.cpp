// bench_core.cpp — `make bench`, foundation part: the ISA this build uses, Eigen GEMM GFLOP/s against
// the measured per-core FMA peak (target ≥ 70 %), and dense `forward` tokens/s for d=512, 8 layers,
// T=256 at 1 and 2 threads. Timings are indicative (a shared 2-core machine is noisy): each figure is
// the best of several runs, and only ratios within one run are meaningful.
#include <omp.h>

#include <Eigen/Dense>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "io/config.h"
#include "tools/init.h"
#include "core/linear.h"
#include "model/model.h"

using namespace dsref;
using Clock = std::chrono::steady_clock;

static double seconds_since(Clock::time_point t0) {
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

static const char* isa() {
#if defined(__AVX512F__)
    return "AVX-512F + FMA (16 floats per vector)";
#elif defined(__AVX2__) && defined(__FMA__)
    return "AVX2 + FMA (8 floats per vector)";
#elif defined(__AVX__)
    return "AVX (8 floats per vector, no FMA)";
#else
    return "SSE2 (4 floats per vector)";
#endif
}

// The FMA peak of one core: independent vector FMA chains (enough to cover latency × ports),
// written with GCC vector extensions so the compiler emits packed FMAs of the build's width.
#if defined(__AVX512F__)
constexpr int kLanes = 16;
#elif defined(__AVX__)
constexpr int kLanes = 8;
#else
constexpr int kLanes = 4;
#endif
typedef float vecf __attribute__((vector_size(kLanes * 4)));

static double fma_peak_gflops() {
    vecf a, b, c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11;
    for (int i = 0; i < kLanes; i++) {
        a[i] = 0.999999f, b[i] = 1e-7f;
        c0[i] = c1[i] = c2[i] = c3[i] = c4[i] = c5[i] = 1.0f;
        c6[i] = c7[i] = c8[i] = c9[i] = c10[i] = c11[i] = 2.0f;
    }
    const long iters = 50'000'000;
    double best = 0;
    for (int rep = 0; rep < 3; rep++) {
        auto t0 = Clock::now();
        for (long it = 0; it < iters; it++) {
            // 12 independent chains cover FMA latency (4 cycles) × 2 ports with room to spare
            c0 = c0 * a + b, c1 = c1 * a + b, c2 = c2 * a + b, c3 = c3 * a + b;
            c4 = c4 * a + b, c5 = c5 * a + b, c6 = c6 * a + b, c7 = c7 * a + b;
            c8 = c8 * a + b, c9 = c9 * a + b, c10 = c10 * a + b, c11 = c11 * a + b;
            __asm__ volatile("" : "+v"(c0), "+v"(c1), "+v"(c2), "+v"(c3), "+v"(c4), "+v"(c5));
        }
        const double s = seconds_since(t0);
        best = std::max(best, 2.0 * kLanes * 12 * iters / s / 1e9);
    }
    vecf sum = c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7 + c8 + c9 + c10 + c11;
    if (sum[0] == 12345.f) std::printf(" ");
    return best;
}

static double gemm_gflops(int64_t M, int64_t N, int64_t K, int threads) {
    omp_set_num_threads(threads);
    std::vector<float> x(M * K, 0.5f), w(N * K, 0.25f), y(M * N);
    linear_forward(y.data(), x.data(), w.data(), M, K, N);  // warm up
    double best = 1e30;
    for (int rep = 0; rep < 5; rep++) {
        auto t0 = Clock::now();
        linear_forward(y.data(), x.data(), w.data(), M, K, N);
        best = std::min(best, seconds_since(t0));
    }
    return 2.0 * M * N * K / best / 1e9;
}

static double eigen_plain_gflops(int64_t n) {
    using Mat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    Mat a = Mat::Constant(n, n, 0.5f), b = Mat::Constant(n, n, 0.25f), c(n, n);
    c.noalias() = a * b.transpose();
    double best = 1e30;
    for (int rep = 0; rep < 5; rep++) {
        auto t0 = Clock::now();
        c.noalias() = a * b.transpose();
        best = std::min(best, seconds_since(t0));
    }
    return 2.0 * n * n * n / best / 1e9;
}

static double forward_tokens_per_s(Model& m, const std::vector<int32_t>& tokens, int threads) {
    omp_set_num_threads(threads);
    m.prefill(tokens, nullptr, true);  // warm up (page in the mapped weights)
    double best = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        auto t0 = Clock::now();
        m.prefill(tokens, nullptr, true);
        best = std::min(best, seconds_since(t0));
    }
    return tokens.size() / best;
}

int main() {
    const int cores = omp_get_num_procs();
    std::printf("== dsref bench: foundation (CPU reference) ==\n");
    std::printf("ISA                      %s\n", isa());
    std::printf("cores                    %d\n", cores);
    const double peak = fma_peak_gflops();
    std::printf("FMA peak, one core       %7.1f GFLOP/s (measured: %d-lane vector FMAs)\n", peak, kLanes);
    const double eig = eigen_plain_gflops(1024);
    std::printf("Eigen sgemm 1024^3, 1 th %7.1f GFLOP/s  = %3.0f %% of peak (target >= 70 %%)\n", eig, 100 * eig / peak);
    const double g1 = gemm_gflops(256, 2048, 1024, 1);
    std::printf("linear_forward 256x2048x1024, 1 thread   %7.1f GFLOP/s = %3.0f %% of one core's peak\n", g1,
                100 * g1 / peak);
    if (cores >= 2) {
        const double g2 = gemm_gflops(256, 2048, 1024, 2);
        std::printf("linear_forward 256x2048x1024, 2 threads  %7.1f GFLOP/s = %.2fx of 1 thread\n", g2, g2 / g1);
    }

    // Dense forward, d=512, 8 layers, T=256 (a DeepSeek-LLM-shaped model scaled down).
    nlohmann::json j = {{"architectures", {"LlamaForCausalLM"}}, {"model_type", "llama"}, {"hidden_size", 512},
                        {"intermediate_size", 1376}, {"num_hidden_layers", 8}, {"num_attention_heads", 8},
                        {"num_key_value_heads", 8}, {"vocab_size", 4096}, {"rms_norm_eps", 1e-6},
                        {"rope_theta", 10000.0}, {"rope_scaling", nullptr}};
    const std::string dir = std::string(std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp") + "/dsref_bench_dense";
    std::system(("rm -rf '" + dir + "'").c_str());
    init_checkpoint(parse_config(j, "bench config"), InitOptions{1, DType::F32, 1}, dir);
    ModelOptions mo;
    mo.keep_weights = true;
    Model m(dir, mo);
    std::vector<int32_t> tokens(256);
    for (int i = 0; i < 256; i++) tokens[i] = (i * 131) % 4096;
    const double t1 = forward_tokens_per_s(m, tokens, 1);
    std::printf("forward d=512 L=8 T=256 (llama, f32), 1 thread   %8.1f tokens/s\n", t1);
    if (cores >= 2) {
        const double t2 = forward_tokens_per_s(m, tokens, 2);
        std::printf("forward d=512 L=8 T=256 (llama, f32), 2 threads  %8.1f tokens/s  speed-up %.2fx (target >= 1.4x)\n",
                    t2, t2 / t1);
    }
    std::system(("rm -rf '" + dir + "'").c_str());
    return 0;
}
