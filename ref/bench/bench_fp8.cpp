// bench_fp8.cpp — fp8_gemm throughput on the CPU at M = N = 1024, K = 4096 (`make bench`).
//
// What it shows:
//   1. `exact` (dequantize to double, Eigen double GEMM) and `tensorcore` (a scalar loop that rounds the
//      accumulator after every add) in GFLOP/s, counting 2·M·N·K flops;
//   2. what readability costs: the same product as a plain Eigen float32 GEMM, the ceiling a CPU
//      reference could reach, and the ratio to it.
// Timings are indicative (one run each, after a warm-up on a smaller size); not for benchmarking.
//
//   make build/bench/bench_fp8 && build/bench/bench_fp8
#include <omp.h>

#include <Eigen/Dense>
#include <chrono>
#include <cstdio>
#include <random>
#include <vector>

#include "fp8/fp8_gemm.h"
#include "fp8/fp8_quant.h"

using namespace dsref;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::vector<float> randn(size_t n, uint64_t seed) {
    std::mt19937_64 g(seed);
    std::normal_distribution<float> d(0.0f, 1.0f);
    std::vector<float> v(n);
    for (float& x : v) x = d(g);
    return v;
}

}  // namespace

int main() {
    const int64_t M = 1024, N = 1024, K = 4096, KB = K / kFp8Block, NB = N / kFp8Block;
    const double flops = 2.0 * M * N * K;
    const std::vector<float> x = randn(M * K, 1), w = randn(N * K, 2);  // [M, K], [N, K]
    std::vector<uint8_t> a(M * K), b(N * K);
    std::vector<float> a_s(M * KB), b_s(NB * KB), c(M * N);

    auto t0 = std::chrono::steady_clock::now();
    fp8_quant_act(a.data(), a_s.data(), x.data(), M, K, Fp8ScaleFmt::Fp32);
    fp8_quant_weight(b.data(), b_s.data(), w.data(), N, K, Fp8ScaleFmt::Fp32);
    const double t_quant = seconds_since(t0);

    Fp8GemmConfig exact, tc;
    tc.accum = Fp8Accum::TensorCore;  // 13 mantissa bits, truncate, promote every 128
    // Warm-up (page faults, thread pool) on 64 rows.
    fp8_gemm(c.data(), a.data(), a_s.data(), b.data(), b_s.data(), 64, N, K, exact);

    t0 = std::chrono::steady_clock::now();
    fp8_gemm(c.data(), a.data(), a_s.data(), b.data(), b_s.data(), M, N, K, exact);
    const double t_exact = seconds_since(t0);

    t0 = std::chrono::steady_clock::now();
    fp8_gemm(c.data(), a.data(), a_s.data(), b.data(), b_s.data(), M, N, K, tc);
    const double t_tc = seconds_since(t0);

    // The ceiling: Eigen float32 GEMM of the same shape on the unquantized inputs, row tiles over threads.
    using MatF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    const Eigen::Map<const MatF> X(x.data(), M, K), W(w.data(), N, K);
    MatF C(M, N);
    t0 = std::chrono::steady_clock::now();
#pragma omp parallel for schedule(dynamic)
    for (int64_t m0 = 0; m0 < M; m0 += 64)
        C.middleRows(m0, 64).noalias() = X.middleRows(m0, 64) * W.transpose();
    const double t_f32 = seconds_since(t0);

    std::printf("fp8_gemm  M=%lld N=%lld K=%lld  (%d threads; indicative, one run each)\n", (long long)M,
                (long long)N, (long long)K, omp_get_max_threads());
    std::printf("  %-34s %8.2f GFLOP/s  %7.2f s\n", "exact (double Eigen GEMM)", flops / t_exact / 1e9,
                t_exact);
    std::printf("  %-34s %8.2f GFLOP/s  %7.2f s\n", "tensorcore (scalar, round per add)", flops / t_tc / 1e9,
                t_tc);
    std::printf("  %-34s %8.2f GFLOP/s  %7.2f s\n", "reference: Eigen float32 GEMM", flops / t_f32 / 1e9,
                t_f32);
    std::printf("  quantization of both operands: %.2f s\n", t_quant);
    std::printf("  readability cost: exact is %.1fx and tensorcore %.1fx slower than a float32 GEMM here.\n",
                t_exact / t_f32, t_tc / t_f32);
    std::printf(
        "  exact pays for double precision and dequantized copies; tensorcore for a dependent chain of\n"
        "  one add + one rounding per product, in K order, with no vectorization across products.\n");
    return 0;
}
