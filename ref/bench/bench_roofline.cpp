// bench_roofline.cpp — `make bench`, the machine's two ceilings: one core's FP32 FMA peak (GFLOP/s) and
// the DRAM bandwidth of a STREAM-like copy (McCalpin's STREAM "Copy": b[i] = a[i], counted as 2 × 4 bytes
// per element) and of a read-only sum, on 1 and 2 threads. data/bench/bench_speed.sh reads these lines
// (the `key value` pairs after "roofline:") to put the prefill against the FMA peak and the decode against
// the bandwidth. Arrays of 512 MB each are far beyond any cache. Best of 5 runs.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

using Clock = std::chrono::steady_clock;

static double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

#if defined(__AVX512F__)
constexpr int kLanes = 16;
#elif defined(__AVX__)
constexpr int kLanes = 8;
#else
constexpr int kLanes = 4;
#endif
typedef float vecf __attribute__((vector_size(kLanes * 4)));
typedef float vecf_unaligned __attribute__((vector_size(kLanes * 4), aligned(4)));  // loads from any float*

// Independent vector FMA chains (12 cover 4 cycles of latency × 2 ports), packed FMAs of the build's width.
// Twelve named variables, not an array: GCC kept an array of vectors on the stack, and the loop then
// measured store-to-load forwarding (43 GFLOP/s on a core whose Eigen sgemm runs at 82), not the FMAs.
static double fma_peak_gflops() {
    vecf a, b, c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11;
    for (int i = 0; i < kLanes; i++) {
        a[i] = 0.999999f, b[i] = 1e-7f;
        c0[i] = 1, c1[i] = 2, c2[i] = 3, c3[i] = 4, c4[i] = 5, c5[i] = 6;
        c6[i] = 7, c7[i] = 8, c8[i] = 9, c9[i] = 10, c10[i] = 11, c11[i] = 12;
    }
    const long iters = 30'000'000;
    double best = 0;
    for (int rep = 0; rep < 5; rep++) {
        const Clock::time_point t0 = Clock::now();
        for (long it = 0; it < iters; it++) {
            c0 = c0 * a + b, c1 = c1 * a + b, c2 = c2 * a + b, c3 = c3 * a + b;
            c4 = c4 * a + b, c5 = c5 * a + b, c6 = c6 * a + b, c7 = c7 * a + b;
            c8 = c8 * a + b, c9 = c9 * a + b, c10 = c10 * a + b, c11 = c11 * a + b;
            __asm__ volatile("" : "+v"(c0), "+v"(c1), "+v"(c2), "+v"(c3), "+v"(c4), "+v"(c5));
            __asm__ volatile("" : "+v"(c6), "+v"(c7), "+v"(c8), "+v"(c9), "+v"(c10), "+v"(c11));
        }
        best = std::max(best, 2.0 * kLanes * 12 * iters / seconds_since(t0) / 1e9);
    }
    const vecf s = c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7 + c8 + c9 + c10 + c11;
    if (s[0] == 12345.f) std::printf(" ");
    return best;
}

// GB/s of b = a (bytes read + written) and of sum(a) (bytes read), on `threads` threads.
static void stream(int threads, double* copy_gbs, double* read_gbs) {
    const int64_t n = int64_t(1) << 27;  // 128 Mi floats = 512 MB per array
    std::vector<float> a(n), b(n);
    omp_set_num_threads(threads);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) a[i] = (float)(i % 7), b[i] = 0.0f;  // first touch by the thread that uses it
    *copy_gbs = *read_gbs = 0;
    double sink = 0;
    for (int rep = 0; rep < 5; rep++) {
        Clock::time_point t0 = Clock::now();
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n; i++) b[i] = a[i];
        *copy_gbs = std::max(*copy_gbs, 2.0 * 4 * n / seconds_since(t0) / 1e9);
        t0 = Clock::now();
        double total = 0;
        const int64_t blocks = n / (4 * kLanes);  // n is a multiple of 4 vectors
#pragma omp parallel for schedule(static) reduction(+ : total)
        for (int64_t k = 0; k < blocks; k++) {  // 4 independent vector sums per block, so loads are not serialized
            const vecf_unaligned* p = reinterpret_cast<const vecf_unaligned*>(a.data() + 4 * kLanes * k);
            vecf s4 = (p[0] + p[1]) + (p[2] + p[3]);
            float s = 0;
            for (int j = 0; j < kLanes; j++) s += s4[j];
            total += s;
        }
        *read_gbs = std::max(*read_gbs, 4.0 * n / seconds_since(t0) / 1e9);
        sink += total + b[rep];
    }
    if (sink == -1.0) std::printf(" ");
}

int main() {
    const int cores = omp_get_num_procs();
    std::printf("== dsref bench: roofline (FMA peak, DRAM bandwidth) ==\n");
    const double peak = fma_peak_gflops();
    std::printf("roofline: fma_peak_gflops %.1f\n", peak);
    for (int t = 1; t <= std::min(cores, 2); t++) {
        double copy = 0, read = 0;
        stream(t, &copy, &read);
        std::printf("roofline: stream_copy_gbs_%d %.2f\nroofline: stream_read_gbs_%d %.2f\n", t, copy, t, read);
    }
    return 0;
}
