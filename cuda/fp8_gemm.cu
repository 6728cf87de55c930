// fp8_gemm.cu — the DeepSeek-V3 block-scaled FP8 GEMM on the GPU (V3 report §3.3.2; DeepSeek-V3 inference/kernel.py fp8_gemm):
//
//   C[m, n] = Σ_kb  a_scale[m, kb] · b_scale[n/128, kb] · ( Σ_{k in block kb} A[m, k] · B[n, k] )
//
//   A [M, K] E4M3 codes, a_scale [M, KB] float (1×128 activation groups), KB = ceil(K/128)
//   B [N, K] E4M3 codes, b_scale [NB, KB] float (128×128 weight blocks), NB = ceil(N/128)
//   C [M, N] float32 or bf16 (rounded once). Edge blocks are partial (M, N, K need not be multiples of
//   the tile or of 128; the missing elements count as zeros).
//
// Every 128 of K the partial sum is "promoted": acc = fmaf(a_scale·b_scale, partial, acc) in float32, as
// the V3 report and DeepGEMM do (N_C = 128 = the quantization group, so dequantization costs one multiply
// per promotion). CPU twin: ref/fp8/fp8_gemm.h (op `fp8_gemm`): `exact` is the oracle, `tensorcore` emulates
// the Hopper accumulator (13 explicit mantissa bits, truncation) with exactly this promotion formula.
//
// Versions (check: build/cuda/test_cuda fp8_gemm [V]; time: build/cuda/bench_cuda fp8_gemm):
//   v1  naive: one thread per output element, decode with bit operations, float32 partial sums over each
//       128-block, promotion by fmaf. Teaches the math and the scale indexing; reads B once per output
//       row from L2, no data reuse in registers or shared memory, CUDA cores only. Any K.
//   v2  128×128×128 CTA tiles in shared memory, filled by cp.async (16-byte, zero-filled at the edges) in a
//       3-stage ring; 8 warps × (64×32) warp tiles on mma.sync.m16n8k32 E4M3, fragments loaded with
//       ldmatrix from a 128-byte-swizzled layout (conflict-free). Promotion after each 128-deep tile.
//       Teaches tiling, the async copy pipeline and warp-level MMA. Needs K % 16 == 0.
//       NOT FP8 tensor-core code on Hopper: FP8 tensor cores on Hopper are reached only through wgmma.
//       On sm_90 ptxas lowers mma.sync…e4m3 to an exact E4M3 → fp16 conversion (F2FP.F16.E4M3.UNPACK_B)
//       followed by fp16 HMMA.16816.F32 (read in the SASS: 48 conversions and 32 HMMA per k32 step, no
//       QMMA). So v2 is correct (the conversion is exact, fp32 accumulation is more accurate than the
//       Hopper FP8 accumulator) but runs at fp16 tensor-core rate at best; it stays as the teaching step
//       between v1 and v3. Native mma.sync E4M3 exists on sm_89 (Ada) and on sm_120.
//   v3  Hopper: a persistent, warp-specialized kernel. One producer warpgroup (one elected thread) streams
//       A and B tiles with TMA (cp.async.bulk.tensor, 128B swizzle, hardware zero-fill at the edges) into
//       a ring of up to 8 shared-memory stages guarded by mbarriers (full: TMA bytes landed; empty: all
//       consumer threads are done reading). One or two consumer warpgroups each run wgmma.m64nNk32 E4M3
//       (4 per 128-deep block, A and B read from shared memory through matrix descriptors), wait for them,
//       release the stage and promote. The grid has one CTA per SM and walks the tiles in a grouped order
//       (host_math.h tile_coords); BM = 64 or 128, BN = 64 or 128 by choose_gemm_tile. setmaxnreg moves
//       registers from the producer to the two consumers. Needs K % 16 == 0 (TMA stride rule) and sm_90a.
//
// Honest status: these kernels compile (make cuda, warnings as errors) and cuda/check_ptx.sh finds the
// wgmma / TMA / mma.sync instructions in the PTX, but NONE HAS RUN ON A GPU YET (cuda/RESULTS.md). The
// layouts they rely on (swizzle, descriptor fields, fragment maps, mbarrier parities) are unit-tested on
// the CPU in tests/test_cuda_host.cpp against the PTX ISA's description, which is not the same as running.
// Known simplifications of v3 against DeepGEMM: scales are read by the consumers from global memory (L2)
// instead of TMA'd into shared memory; the epilogue stores straight from registers (no stmatrix/TMA
// store); each warpgroup waits for its own wgmmas before promoting (with two consumer warpgroups the
// tensor core still overlaps one warpgroup's promotion with the other's MMAs); no split-K for small M.
#include <cuda.h>          // CUtensorMap and its enums (header only: nothing links against libcuda)
#include <cudaTypedefs.h>  // PFN_cuTensorMapEncodeTiled

#include <map>
#include <tuple>

#include "common.cuh"
#include "kernels.cuh"

namespace dsref {
namespace gpu {
namespace {

__device__ __forceinline__ float e4m3_to_f32(uint8_t c) {
    return __uint_as_float(e4m3_to_f32_bits(c));
}

// Stores C[row, col] and C[row, col + 1] (when inside C); one 8-byte (f32) or 4-byte (bf16) store when N
// is even (then row·N + col is even and the pair is aligned).
__device__ __forceinline__ void store_pair(void* c, bool c_bf16, int M, int N, int row, int col, float v0, float v1) {
    if (row >= M || col >= N) return;
    const int64_t i = (int64_t)row * N + col;
    const bool both = col + 1 < N;
    if (c_bf16) {
        __nv_bfloat16* p = static_cast<__nv_bfloat16*>(c) + i;
        if (both && N % 2 == 0) {
            *reinterpret_cast<__nv_bfloat162*>(p) = __floats2bfloat162_rn(v0, v1);
        } else {
            p[0] = __float2bfloat16_rn(v0);
            if (both) p[1] = __float2bfloat16_rn(v1);
        }
    } else {
        float* p = static_cast<float*>(c) + i;
        if (both && N % 2 == 0) {
            *reinterpret_cast<float2*>(p) = make_float2(v0, v1);
        } else {
            p[0] = v0;
            if (both) p[1] = v1;
        }
    }
}

__device__ __forceinline__ void store_one(void* c, bool c_bf16, int N, int row, int col, float v) {
    const int64_t i = (int64_t)row * N + col;
    if (c_bf16)
        static_cast<__nv_bfloat16*>(c)[i] = __float2bfloat16_rn(v);
    else
        static_cast<float*>(c)[i] = v;
}

__device__ __forceinline__ uint32_t smem_u32(const void* p) {
    return (uint32_t)__cvta_generic_to_shared(p);
}

// =================================================================================================
// v1: one thread per output
// =================================================================================================
__global__ void gemm_v1_kernel(void* c, bool c_bf16, const uint8_t* a, const float* a_scale, const uint8_t* b,
                               const float* b_scale, int M, int N, int K) {
    const int n = blockIdx.x * blockDim.x + threadIdx.x;
    if (n >= N) return;
    const int KB = (int)quant_blocks(K);
    const uint8_t* b_row = b + (int64_t)n * K;
    for (int m = blockIdx.y; m < M; m += gridDim.y) {
        const uint8_t* a_row = a + (int64_t)m * K;
        float acc = 0.0f;
        for (int kb = 0; kb < KB; kb++) {
            const int k0 = kb * kQuantBlock, k1 = min(K, k0 + kQuantBlock);
            float partial = 0.0f;  // products of two E4M3 values are exact in float32
            for (int k = k0; k < k1; k++) partial += e4m3_to_f32(a_row[k]) * e4m3_to_f32(b_row[k]);
            const float scale = a_scale[act_scale_index(m, k0, KB)] * b_scale[weight_scale_index(n, k0, KB)];
            acc = fmaf(scale, partial, acc);  // promotion, the twin's formula
        }
        store_one(c, c_bf16, N, m, n, acc);
    }
}

// =================================================================================================
// v2: shared-memory tiles, cp.async ring, mma.sync m16n8k32 E4M3
// =================================================================================================
namespace v2 {
constexpr int kBM = 128, kBN = 128, kBK = 128, kStages = 3, kThreads = 256;
constexpr int kTileBytes = kBM * kBK;  // A and B tiles alike: 128 rows of 128 bytes = 16 KB
constexpr int kStageBytes = 2 * kTileBytes;
constexpr int kSmemBytes = kStages * kStageBytes;  // 96 KB: needs the dynamic shared memory attribute
}  // namespace v2

// 16-byte async copy global → shared; src_bytes = 0 writes 16 zero bytes (edges of A and B).
__device__ __forceinline__ void cp_async16(uint32_t dst, const void* src, bool valid) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(valid ? 16 : 0)
                 : "memory");
}
__device__ __forceinline__ void cp_async_commit() {
    asm volatile("cp.async.commit_group;\n" ::: "memory");
}
template <int N>
__device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}
__device__ __forceinline__ void ldsm_x4(uint32_t addr, uint32_t& r0, uint32_t& r1, uint32_t& r2, uint32_t& r3) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
                 : "r"(addr));
}
// D = A·B + D on a 16×8×32 tile, E4M3 inputs, float32 accumulate (fragments: host_math.h mma_*).
__device__ __forceinline__ void mma_e4m3_16832(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
    asm volatile(
        "mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#else
    (void)d, (void)a, (void)b0, (void)b1;
    __trap();
#endif
}

// Warp layout: warp w = 0..7 computes rows 64·(w/4) .. +63 and columns 32·(w%4) .. +31 of the CTA tile:
// 4 m16 × 4 n8 mma tiles.
__global__ void __launch_bounds__(v2::kThreads, 1)
    gemm_v2_kernel(void* c, bool c_bf16, const uint8_t* a, const float* a_scale, const uint8_t* b,
                   const float* b_scale, int M, int N, int K) {
    using namespace v2;
    extern __shared__ __align__(128) uint8_t smem[];
    const uint32_t smem_base = smem_u32(smem);
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const int warp_m = warp / 4, warp_n = warp % 4;
    const int m0 = blockIdx.y * kBM, n0 = blockIdx.x * kBN;
    const int KB = (int)quant_blocks(K);

    // Stage `stage` ← the 128-deep K block kb of A and B: 1024 chunks of 16 bytes each, 4 per thread;
    // 8 consecutive threads copy one 128-byte row (coalesced), chunk c of row r lands at c XOR (r % 8).
    auto load_stage = [&](int stage, int kb) {
        const uint32_t sa = smem_base + stage * kStageBytes, sb = sa + kTileBytes;
        const int k0 = kb * kBK;
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const int chunk = tid + i * kThreads, row = chunk / 8, ch = chunk % 8;
            const int k = k0 + ch * 16;  // K % 16 == 0: a chunk is wholly inside or outside K
            const bool va = k < K && m0 + row < M, vb = k < K && n0 + row < N;
            cp_async16(sa + swizzle128_offset(row, ch * 16), va ? a + (int64_t)(m0 + row) * K + k : a, va);
            cp_async16(sb + swizzle128_offset(row, ch * 16), vb ? b + (int64_t)(n0 + row) * K + k : b, vb);
        }
    };

    float acc[4][4][4];      // [m16 tile][n8 tile][fragment]: the float32 accumulator of the promotions
    float partial[4][4][4];  // the tensor-core partial sums of one 128-deep block
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) acc[i][j][e] = 0.0f;

    for (int s = 0; s < kStages - 1; s++) {  // prologue: kStages − 1 blocks in flight
        if (s < KB) load_stage(s, s);
        cp_async_commit();  // an empty group when s ≥ KB keeps the group count uniform
    }
    for (int kb = 0; kb < KB; kb++) {
        cp_async_wait<kStages - 2>();  // block kb has landed (for this thread) ...
        __syncthreads();               // ... for every thread, and everyone is done with block kb − 1
        const int next = kb + kStages - 1;
        if (next < KB) load_stage(next % kStages, next);  // refills the stage block kb − 1 used
        cp_async_commit();

        float sa[4][2];  // a_scale of this thread's 8 rows; loaded before the MMAs to hide the latency
#pragma unroll
        for (int mt = 0; mt < 4; mt++)
#pragma unroll
            for (int h = 0; h < 2; h++) {
                const int row = m0 + warp_m * 64 + mt * 16 + mma_c_row(lane, 2 * h);
                sa[mt][h] = row < M ? a_scale[(int64_t)row * KB + kb] : 0.0f;
            }
        const float sb = b_scale[(int64_t)(n0 / kQuantBlock) * KB + kb];  // one 128-block of N per CTA

#pragma unroll
        for (int i = 0; i < 4; i++)
#pragma unroll
            for (int j = 0; j < 4; j++)
#pragma unroll
                for (int e = 0; e < 4; e++) partial[i][j][e] = 0.0f;

        const uint32_t tile_a = smem_base + (kb % kStages) * kStageBytes, tile_b = tile_a + kTileBytes;
#pragma unroll 1
        for (int kk = 0; kk < kBK / 32; kk++) {  // four k32 steps (not unrolled: keeps v2 under 255 registers)
            uint32_t af[4][4], bf[4][2];
#pragma unroll
            for (int mt = 0; mt < 4; mt++) {
                const int row = warp_m * 64 + mt * 16 + ldsm_a_row(lane);
                ldsm_x4(tile_a + swizzle128_offset(row, ldsm_a_byte(lane, kk * 32)), af[mt][0], af[mt][1], af[mt][2],
                        af[mt][3]);
            }
#pragma unroll
            for (int np = 0; np < 2; np++) {  // two n8 tiles per ldmatrix.x4
                const int row = warp_n * 32 + np * 16 + ldsm_b_row(lane);
                ldsm_x4(tile_b + swizzle128_offset(row, ldsm_b_byte(lane, kk * 32)), bf[2 * np][0], bf[2 * np][1],
                        bf[2 * np + 1][0], bf[2 * np + 1][1]);
            }
#pragma unroll
            for (int mt = 0; mt < 4; mt++)
#pragma unroll
                for (int nt = 0; nt < 4; nt++) mma_e4m3_16832(partial[mt][nt], af[mt], bf[nt][0], bf[nt][1]);
        }
        // promotion: one fma per element with the product of the two scales (the twin's formula)
#pragma unroll
        for (int mt = 0; mt < 4; mt++) {
            const float s0 = sa[mt][0] * sb, s1 = sa[mt][1] * sb;
#pragma unroll
            for (int nt = 0; nt < 4; nt++)
#pragma unroll
                for (int e = 0; e < 4; e++) acc[mt][nt][e] = fmaf(e < 2 ? s0 : s1, partial[mt][nt][e], acc[mt][nt][e]);
        }
    }
    cp_async_wait<0>();

#pragma unroll
    for (int mt = 0; mt < 4; mt++)
#pragma unroll
        for (int nt = 0; nt < 4; nt++) {
            const int row = m0 + warp_m * 64 + mt * 16 + mma_c_row(lane, 0);
            const int col = n0 + warp_n * 32 + nt * 8 + mma_c_col(lane, 0);
            store_pair(c, c_bf16, M, N, row, col, acc[mt][nt][0], acc[mt][nt][1]);
            store_pair(c, c_bf16, M, N, row + 8, col, acc[mt][nt][2], acc[mt][nt][3]);
        }
}

// =================================================================================================
// v3: Hopper — TMA + mbarrier ring + wgmma, warp-specialized, persistent
// =================================================================================================
template <int BM, int BN>
struct V3Cfg {
    static constexpr int kConsumers = BM / 64;  // consumer warpgroups, 64 rows each (wgmma M = 64)
    static constexpr int kThreads = 128 * (kConsumers + 1);
    static constexpr int kABytes = BM * 128;  // one 128-deep K block of A: BM rows of 128 bytes
    static constexpr int kBBytes = BN * 128;
    static constexpr int kStageBytes = kABytes + kBBytes;
    static constexpr int kStages = (200 * 1024 / kStageBytes) < 8 ? (200 * 1024 / kStageBytes) : 8;
    // stages, their full and empty barriers, and slack to align the base to 1024 bytes (128B swizzle atom)
    static constexpr int kSmemBytes = kStages * kStageBytes + 2 * 8 * kStages + 1024;
    static constexpr int kAcc = BN / 2;  // accumulator registers per thread: 64 × BN floats / 128 threads
    static_assert(BN == 64 || BN == 128, "BN divides the 128-wide B scale blocks");
    static_assert(BM == 64 || BM == 128, "one or two consumer warpgroups");
};
constexpr int kV3Group = 8;  // m-blocks per band of the grouped tile order

__device__ __forceinline__ void mbar_init(uint32_t bar, uint32_t count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}
__device__ __forceinline__ void mbar_expect_tx(uint32_t bar, uint32_t bytes) {  // one arrival + tx bytes
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
}
__device__ __forceinline__ void mbar_arrive(uint32_t bar) {
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}
// Returns once the phase of the given parity has completed (host_math.h ring_phase).
__device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity) {
    uint32_t done = 0;
    while (!done) {
        asm volatile(
            "{\n"
            ".reg .pred p;\n"
            "mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
            "selp.u32 %0, 1, 0, p;\n"
            "}\n"
            : "=r"(done)
            : "r"(bar), "r"(parity)
            : "memory");
    }
}
__device__ __forceinline__ void tma_load_2d(uint32_t dst, const CUtensorMap* map, uint32_t bar, int c_inner,
                                            int c_outer) {
    asm volatile(
        "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n" ::"r"(
            dst),
        "l"((uint64_t)map), "r"(c_inner), "r"(c_outer), "r"(bar)
        : "memory");
}
__device__ __forceinline__ void tma_prefetch_map(const CUtensorMap* map) {
    asm volatile("prefetch.tensormap [%0];\n" ::"l"((uint64_t)map) : "memory");
}
__device__ __forceinline__ void wgmma_fence() {
    asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
}
__device__ __forceinline__ void wgmma_commit() {
    asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}
template <int N>
__device__ __forceinline__ void wgmma_wait() {
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
// Pins the accumulator registers at this point of the program: the compiler may not move reads of them
// above a wgmma.wait_group (it does not know the asm writes them asynchronously).
template <int R>
__device__ __forceinline__ void fence_regs(float (&d)[R]) {
#pragma unroll
    for (int i = 0; i < R; i++) asm volatile("" : "+f"(d[i])::"memory");
}
template <int R>
__device__ __forceinline__ void setmaxnreg_inc() {
    asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(R));
}
template <int R>
__device__ __forceinline__ void setmaxnreg_dec() {
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(R));
}

#define DSREF_ACC4(i) "+f"(d[(i)]), "+f"(d[(i) + 1]), "+f"(d[(i) + 2]), "+f"(d[(i) + 3])
#define DSREF_ACC16(i) DSREF_ACC4(i), DSREF_ACC4((i) + 4), DSREF_ACC4((i) + 8), DSREF_ACC4((i) + 12)

// D (64×128 float, 64 registers per thread) = A·B (+ D when scale_d), A 64×32 and B 128×32 E4M3, both
// K-major in shared memory, given by descriptors.
__device__ __forceinline__ void wgmma_m64n128k32(float (&d)[64], uint64_t desc_a, uint64_t desc_b, int scale_d) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    asm volatile(
        "{\n"
        ".reg .pred p;\n"
        "setp.ne.b32 p, %66, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k32.f32.e4m3.e4m3 "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
        "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
        "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "
        "%64, %65, p, 1, 1;\n"
        "}\n"
        : DSREF_ACC16(0), DSREF_ACC16(16), DSREF_ACC16(32), DSREF_ACC16(48)
        : "l"(desc_a), "l"(desc_b), "r"(scale_d));
#else
    (void)d, (void)desc_a, (void)desc_b, (void)scale_d;
    __trap();
#endif
}
// The same with N = 64 (32 registers per thread).
__device__ __forceinline__ void wgmma_m64n64k32(float (&d)[32], uint64_t desc_a, uint64_t desc_b, int scale_d) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    asm volatile(
        "{\n"
        ".reg .pred p;\n"
        "setp.ne.b32 p, %34, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k32.f32.e4m3.e4m3 "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, "
        "%32, %33, p, 1, 1;\n"
        "}\n"
        : DSREF_ACC16(0), DSREF_ACC16(16)
        : "l"(desc_a), "l"(desc_b), "r"(scale_d));
#else
    (void)d, (void)desc_a, (void)desc_b, (void)scale_d;
    __trap();
#endif
}
#undef DSREF_ACC16
#undef DSREF_ACC4

template <int BM, int BN>
__global__ void __launch_bounds__(V3Cfg<BM, BN>::kThreads, 1)
    gemm_v3_kernel(const __grid_constant__ CUtensorMap tmap_a, const __grid_constant__ CUtensorMap tmap_b, void* c,
                   bool c_bf16, const float* a_scale, const float* b_scale, int M, int N, int K) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    using Cfg = V3Cfg<BM, BN>;
    extern __shared__ uint8_t smem_raw[];
    // Shared memory: [stage 0: A (BM×128 B) | B (BN×128 B)] … [stage S−1] [full bars × S] [empty bars × S].
    // Stages start on 1024-byte boundaries: the 128B swizzle pattern repeats every 8 rows × 128 bytes, and
    // both TMA and wgmma apply it to absolute address bits.
    const uint32_t base = (smem_u32(smem_raw) + 1023u) & ~1023u;
    const uint32_t full_bar = base + Cfg::kStages * Cfg::kStageBytes;
    const uint32_t empty_bar = full_bar + 8 * Cfg::kStages;
    const int wg = threadIdx.x / 128, t = threadIdx.x % 128;
    const int KB = (int)quant_blocks(K);
    const int m_blocks = (int)ceil_div(M, BM), n_blocks = (int)ceil_div(N, BN), tiles = m_blocks * n_blocks;

    if (threadIdx.x == 0) {
        for (int s = 0; s < Cfg::kStages; s++) {
            mbar_init(full_bar + 8 * s, 1);                          // the producer's arrive.expect_tx
            mbar_init(empty_bar + 8 * s, Cfg::kConsumers * 128);     // every consumer thread
        }
        // make the initialized barriers visible to the async proxy (the TMA unit completes them)
        asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
        asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
    }
    __syncthreads();

    if (wg == Cfg::kConsumers) {
        // ---- producer warpgroup (the last one): one thread issues every TMA load ----
        if (Cfg::kConsumers == 2) setmaxnreg_dec<40>();
        if (t == 0) {
            tma_prefetch_map(&tmap_a);
            tma_prefetch_map(&tmap_b);
            uint32_t it = 0;  // iteration over (tile, kb) of this CTA, the same sequence as the consumers'
            for (int tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
                const TileCoord tc = tile_coords(tile, m_blocks, n_blocks, kV3Group);
                for (int kb = 0; kb < KB; kb++, it++) {
                    const uint32_t s = ring_stage(it, Cfg::kStages), ph = ring_phase(it, Cfg::kStages);
                    mbar_wait(empty_bar + 8 * s, ph ^ 1u);  // consumers released the stage (free at first)
                    const uint32_t dst = base + s * Cfg::kStageBytes;
                    // The transaction count is the full box even at the edges: TMA zero-fills and counts
                    // the out-of-bounds part.
                    mbar_expect_tx(full_bar + 8 * s, Cfg::kStageBytes);
                    tma_load_2d(dst, &tmap_a, full_bar + 8 * s, kb * 128, tc.m_block * BM);
                    tma_load_2d(dst + Cfg::kABytes, &tmap_b, full_bar + 8 * s, kb * 128, tc.n_block * BN);
                }
            }
        }
    } else {
        // ---- consumer warpgroup wg: rows wg·64 .. +63 of the tile ----
        if (Cfg::kConsumers == 2) setmaxnreg_inc<232>();
        float acc[Cfg::kAcc], partial[Cfg::kAcc];
#pragma unroll
        for (int i = 0; i < Cfg::kAcc; i++) partial[i] = 0.0f;
        uint32_t it = 0;
        for (int tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
            const TileCoord tc = tile_coords(tile, m_blocks, n_blocks, kV3Group);
#pragma unroll
            for (int i = 0; i < Cfg::kAcc; i++) acc[i] = 0.0f;
            const int row0 = tc.m_block * BM + wg * 64 + wgmma_acc_row(t, 0);  // this thread's rows: row0, row0+8
            const bool in0 = row0 < M, in1 = row0 + 8 < M;
            const float* sa0 = a_scale + (int64_t)(in0 ? row0 : 0) * KB;
            const float* sa1 = a_scale + (int64_t)(in1 ? row0 + 8 : 0) * KB;
            const float* sb = b_scale + (int64_t)(tc.n_block * BN / kQuantBlock) * KB;
            for (int kb = 0; kb < KB; kb++, it++) {
                // scales first: the loads fly while we wait for the stage and the MMAs
                const float s_a0 = in0 ? __ldg(sa0 + kb) : 0.0f, s_a1 = in1 ? __ldg(sa1 + kb) : 0.0f;
                const float s_b = __ldg(sb + kb);
                const uint32_t s = ring_stage(it, Cfg::kStages), ph = ring_phase(it, Cfg::kStages);
                mbar_wait(full_bar + 8 * s, ph);
                const uint32_t tile_a = base + s * Cfg::kStageBytes + wg * 64 * 128;
                const uint32_t tile_b = base + s * Cfg::kStageBytes + Cfg::kABytes;
                const uint64_t da = wgmma_desc_sw128(tile_a, 1024), db = wgmma_desc_sw128(tile_b, 1024);
                __syncwarp();  // the .sync.aligned wgmma instructions need converged warps after the spin
                fence_regs(partial);
                wgmma_fence();
#pragma unroll
                for (int k = 0; k < 4; k++) {  // 4 × k32 = the 128-deep block; +32 bytes = +2 in the descriptor
                    if constexpr (BN == 128)
                        wgmma_m64n128k32(partial, da + 2 * k, db + 2 * k, k > 0);
                    else
                        wgmma_m64n64k32(partial, da + 2 * k, db + 2 * k, k > 0);
                }
                wgmma_commit();
                wgmma_wait<0>();
                fence_regs(partial);
                mbar_arrive(empty_bar + 8 * s);  // the stage may be refilled
                const float sc0 = s_a0 * s_b, sc1 = s_a1 * s_b;
#pragma unroll
                for (int i = 0; i < Cfg::kAcc; i++) acc[i] = fmaf(((i / 2) % 2) ? sc1 : sc0, partial[i], acc[i]);
            }
            const int tile_row = tc.m_block * BM + wg * 64, tile_col = tc.n_block * BN;
#pragma unroll
            for (int i = 0; i < Cfg::kAcc; i += 2)
                store_pair(c, c_bf16, M, N, tile_row + wgmma_acc_row(t, i), tile_col + wgmma_acc_col(t, i), acc[i],
                           acc[i + 1]);
        }
    }
#else
    (void)tmap_a, (void)tmap_b, (void)c, (void)c_bf16, (void)a_scale, (void)b_scale, (void)M, (void)N, (void)K;
    __trap();
#endif
}

// ---- host side of v3 -----------------------------------------------------------------------------------------
// The TMA descriptor encoder is a driver function; it is fetched through the runtime so that nothing links
// against libcuda (CI links without a driver). cudaGetDriverEntryPointByVersion is CUDA 13's
// non-deprecated form of cudaGetDriverEntryPoint.
PFN_cuTensorMapEncodeTiled_v12000 tensor_map_encoder() {
    static PFN_cuTensorMapEncodeTiled_v12000 fn = [] {
        void* p = nullptr;
        cudaDriverEntryPointQueryResult q = cudaDriverEntryPointSymbolNotFound;
        CUDA_CHECK(cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &p, 12000, cudaEnableDefault, &q));
        if (q != cudaDriverEntryPointSuccess || p == nullptr) {
            std::fprintf(stderr, "fp8_gemm v3: the driver has no cuTensorMapEncodeTiled (query result %d)\n", (int)q);
            std::exit(1);
        }
        return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(p);
    }();
    return fn;
}

// A 2-D map over a [rows, K] byte matrix, box = 128 bytes of K × box_rows rows, 128B swizzle, zero fill.
// Maps are cached by (pointer, rows, K, box) so that timed calls do not pay for the encoding.
const CUtensorMap* tensor_map(const uint8_t* ptr, int64_t rows, int64_t K, int box_rows) {
    static std::map<std::tuple<const void*, int64_t, int64_t, int>, CUtensorMap> cache;
    const auto key = std::make_tuple((const void*)ptr, rows, K, box_rows);
    auto it = cache.find(key);
    if (it != cache.end()) return &it->second;
    CUtensorMap m;
    const cuuint64_t dims[2] = {(cuuint64_t)K, (cuuint64_t)rows};  // innermost first
    const cuuint64_t strides[1] = {(cuuint64_t)K};                 // bytes between rows; must be % 16
    const cuuint32_t box[2] = {128u, (cuuint32_t)box_rows};
    const cuuint32_t elem_strides[2] = {1u, 1u};
    const CUresult r = tensor_map_encoder()(&m, CU_TENSOR_MAP_DATA_TYPE_UINT8, 2, const_cast<uint8_t*>(ptr), dims,
                                            strides, box, elem_strides, CU_TENSOR_MAP_INTERLEAVE_NONE,
                                            CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                                            CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
    if (r != CUDA_SUCCESS) {
        std::fprintf(stderr, "fp8_gemm v3: cuTensorMapEncodeTiled failed (%d) for rows=%lld K=%lld box=%d\n", (int)r,
                     (long long)rows, (long long)K, box_rows);
        std::exit(1);
    }
    return &cache.emplace(key, m).first->second;
}

// The test-only grid cap (0 = none): DSREF_V3_MAX_CTAS at start-up, or fp8_gemm_v3_set_max_ctas.
int g_v3_max_ctas = [] {
    const char* v = std::getenv("DSREF_V3_MAX_CTAS");
    return v && *v ? std::max(1, std::atoi(v)) : 0;
}();

template <int BM, int BN>
void launch_v3(void* c, bool c_bf16, const uint8_t* a, const float* a_scale, const uint8_t* b, const float* b_scale,
               int M, int N, int K, cudaStream_t st) {
    using Cfg = V3Cfg<BM, BN>;
    static bool attribute_set = false;
    if (!attribute_set) {
        CUDA_CHECK(cudaFuncSetAttribute(gemm_v3_kernel<BM, BN>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        Cfg::kSmemBytes));
        attribute_set = true;
    }
    const CUtensorMap* ma = tensor_map(a, M, K, BM);
    const CUtensorMap* mb = tensor_map(b, N, K, BN);
    const int64_t tiles = ceil_div(M, BM) * ceil_div(N, BN);
    // persistent: at most one CTA per SM. DSREF_V3_MAX_CTAS=n (tests only) caps the grid further so that
    // every CTA runs several tiles even on small shapes: the ring phase carried across tiles and the
    // producer running ahead during the epilogue are then exercised by the quick tests.
    int64_t ctas = std::min<int64_t>(tiles, device_sms());
    if (g_v3_max_ctas > 0) ctas = std::min<int64_t>(ctas, g_v3_max_ctas);
    const int grid = (int)ctas;
    gemm_v3_kernel<BM, BN><<<grid, Cfg::kThreads, Cfg::kSmemBytes, st>>>(*ma, *mb, c, c_bf16, a_scale, b_scale, M,
                                                                         N, K);
    CUDA_CHECK_LAUNCH();
}

}  // namespace

// Shape checks shared by v2 and v3 (and the sizes every version accepts); "" when fine.
static std::string check_gemm_args(int version, const uint8_t* a, const uint8_t* b, int64_t M, int64_t N, int64_t K) {
    if (M < 0 || N < 0 || K < 1) return "fp8_gemm: need M >= 0, N >= 0, K >= 1";
    if (M > ((int64_t)1 << 30) || N > ((int64_t)1 << 30) || K > ((int64_t)1 << 30))
        return "fp8_gemm: sizes beyond 2^30 per dimension are not supported";
    if (device_cc() != 90)
        return "fp8_gemm v" + std::to_string(version) + ": needs an sm_90 device (this file is built for sm_90a only)";
    if (version == 1) return "";
    if (K % 16 != 0)
        return "fp8_gemm v" + std::to_string(version) + ": needs K % 16 == 0 (16-byte rows for " +
               (version == 2 ? std::string("cp.async") : std::string("the TMA stride rule")) + "), K = " +
               std::to_string(K);
    if (((uintptr_t)a | (uintptr_t)b) % 16 != 0) return "fp8_gemm: a and b must be 16-byte aligned";
    return "";
}

void fp8_gemm_v3_set_max_ctas(int n) {
    g_v3_max_ctas = std::max(0, n);
}

std::string fp8_gemm_v3_tile(int bm, int bn, void* c, ElemType c_dt, const uint8_t* a, const float* a_scale,
                             const uint8_t* b, const float* b_scale, int64_t M, int64_t N, int64_t K, cudaStream_t st) {
    const std::string bad = check_gemm_args(3, a, b, M, N, K);
    if (!bad.empty()) return bad;
    if (M == 0 || N == 0) return "";
    if (ceil_div(M, 64) * ceil_div(N, 64) >= ((int64_t)1 << 31)) return "fp8_gemm v3: too many tiles for an int index";
    const bool bf16 = c_dt == ElemType::BF16;
    if (bm == 64 && bn == 64) launch_v3<64, 64>(c, bf16, a, a_scale, b, b_scale, (int)M, (int)N, (int)K, st);
    else if (bm == 64 && bn == 128) launch_v3<64, 128>(c, bf16, a, a_scale, b, b_scale, (int)M, (int)N, (int)K, st);
    else if (bm == 128 && bn == 64) launch_v3<128, 64>(c, bf16, a, a_scale, b, b_scale, (int)M, (int)N, (int)K, st);
    else if (bm == 128 && bn == 128) launch_v3<128, 128>(c, bf16, a, a_scale, b, b_scale, (int)M, (int)N, (int)K, st);
    else return "fp8_gemm v3: tiles are 64 or 128 by 64 or 128";
    return "";
}

std::string fp8_gemm(int version, void* c, ElemType c_dt, const uint8_t* a, const float* a_scale, const uint8_t* b,
                     const float* b_scale, int64_t M, int64_t N, int64_t K, cudaStream_t st) {
    if (version < 1 || version > kFp8GemmVersions) return "fp8_gemm has versions 1.." + std::to_string(kFp8GemmVersions);
    if (version == 3) {
        const GemmTile tile = choose_gemm_tile(M, N, device_sms());
        return fp8_gemm_v3_tile(tile.bm, tile.bn, c, c_dt, a, a_scale, b, b_scale, M, N, K, st);
    }
    const std::string bad = check_gemm_args(version, a, b, M, N, K);
    if (!bad.empty()) return bad;
    if (M == 0 || N == 0) return "";
    const bool bf16 = c_dt == ElemType::BF16;
    if (version == 1) {
        const dim3 grid((unsigned)ceil_div(N, 128), (unsigned)std::min<int64_t>(M, 65535));
        gemm_v1_kernel<<<grid, 128, 0, st>>>(c, bf16, a, a_scale, b, b_scale, (int)M, (int)N, (int)K);
        CUDA_CHECK_LAUNCH();
        return "";
    }
    static bool attribute_set = false;
    if (!attribute_set) {
        CUDA_CHECK(cudaFuncSetAttribute(gemm_v2_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, v2::kSmemBytes));
        attribute_set = true;
    }
    if (ceil_div(M, v2::kBM) > 65535) return "fp8_gemm v2: M must be <= 65535 * 128";
    const dim3 grid((unsigned)ceil_div(N, v2::kBN), (unsigned)ceil_div(M, v2::kBM));
    gemm_v2_kernel<<<grid, v2::kThreads, v2::kSmemBytes, st>>>(c, bf16, a, a_scale, b, b_scale, (int)M, (int)N, (int)K);
    CUDA_CHECK_LAUNCH();
    return "";
}

}  // namespace gpu
}  // namespace dsref
