// rmsnorm.cu — RMSNorm forward on the GPU (Zhang & Sennrich 2019), y[t, i] = w[i] · x[t, i] / sqrt(Σ_j x[t, j]²/d + eps).
// CPU twin: ref/core/rmsnorm.h (rmsnorm_forward, op `rmsnorm`). float32 and bf16 tensors (x, w and y share the
// dtype; arithmetic is float32; a bf16 y is rounded once, to nearest even).
//
// Versions (check: build/cuda/test_cuda rmsnorm [V]; time: build/cuda/bench_cuda rmsnorm):
//   v1  naive port of the twin: one thread per row, two passes over the row. Teaches the checking loop;
//       slow because a warp's 32 threads read 32 different rows (no coalescing) and T threads cannot
//       fill the GPU when T is small.
//   v2  one warp per row: lanes read consecutive elements (coalesced), Σx² is reduced with warp shuffles.
//       Teaches coalescing and shuffles.
//   v3  one 256-thread block per row, 16-byte vector accesses (float4 / 8 × bf16), the row kept in
//       registers between the two passes, so x is read from HBM once and y written once: the
//       bandwidth-bound form (target ≥ 70 % of HBM, cuda/README.md). Falls back to scalar accesses
//       when d is not a multiple of the vector width (rows would not be 16-byte aligned).
#include "common.cuh"
#include "kernels.cuh"

namespace dsref {
namespace gpu {
namespace {

// ---- v1 -------------------------------------------------------------------------------------------------
template <typename T>
__global__ void rmsnorm_v1_kernel(T* y, const T* x, const T* w, int64_t rows, int d, float eps) {
    const int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (t >= rows) return;
    const T* xt = x + t * d;
    T* yt = y + t * d;
    float ss = 0.0f;  // Σ x², sequential as in the twin (which uses double)
    for (int i = 0; i < d; i++) {
        const float v = to_f32(xt[i]);
        ss += v * v;
    }
    const float inv_rms = 1.0f / sqrtf(ss / (float)d + eps);
    for (int i = 0; i < d; i++) yt[i] = from_f32<T>(to_f32(xt[i]) * inv_rms * to_f32(w[i]));
}

// ---- v2 -------------------------------------------------------------------------------------------------
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xFFFFFFFFu, v, o);
    return v;
}

template <typename T>
__global__ void rmsnorm_v2_kernel(T* y, const T* x, const T* w, int64_t rows, int d, float eps) {
    const int64_t t = (blockIdx.x * (int64_t)blockDim.x + threadIdx.x) / 32;  // one warp per row
    const int lane = threadIdx.x % 32;
    if (t >= rows) return;  // whole warps leave together
    const T* xt = x + t * d;
    T* yt = y + t * d;
    float ss = 0.0f;
    for (int i = lane; i < d; i += 32) {
        const float v = to_f32(xt[i]);
        ss += v * v;
    }
    ss = warp_sum(ss);
    const float inv_rms = 1.0f / sqrtf(ss / (float)d + eps);
    for (int i = lane; i < d; i += 32) yt[i] = from_f32<T>(to_f32(xt[i]) * inv_rms * to_f32(w[i]));
}

// ---- v3 -------------------------------------------------------------------------------------------------
constexpr int kV3Threads = 256;
constexpr int kV3Cache = 8;  // vectors per thread kept in registers: d ≤ 8·256·VEC stays on chip

// Block-wide sum: warp shuffles, then one value per warp through shared memory.
__device__ __forceinline__ float block_sum(float v) {
    __shared__ float part[kV3Threads / 32];
    v = warp_sum(v);
    if (threadIdx.x % 32 == 0) part[threadIdx.x / 32] = v;
    __syncthreads();
    float s = 0.0f;
#pragma unroll
    for (int i = 0; i < kV3Threads / 32; i++) s += part[i];
    return s;
}

template <typename T, int VEC>
__global__ void __launch_bounds__(kV3Threads) rmsnorm_v3_kernel(T* y, const T* x, const T* w, int d, float eps) {
    using P = Pack<T, VEC>;
    const int64_t t = blockIdx.x;  // one block per row
    const P* xr = reinterpret_cast<const P*>(x + t * d);
    const P* wr = reinterpret_cast<const P*>(w);
    P* yr = reinterpret_cast<P*>(y + t * d);
    const int nvec = d / VEC;
    P cache[kV3Cache];
    float ss = 0.0f;
#pragma unroll
    for (int j = 0; j < kV3Cache; j++) {  // compile-time index: the cache stays in registers
        const int v = threadIdx.x + j * kV3Threads;
        if (v < nvec) {
            cache[j] = xr[v];
#pragma unroll
            for (int e = 0; e < VEC; e++) {
                const float f = to_f32(cache[j].v[e]);
                ss += f * f;
            }
        }
    }
    for (int v = threadIdx.x + kV3Cache * kV3Threads; v < nvec; v += kV3Threads) {  // very long rows only
        const P p = xr[v];
#pragma unroll
        for (int e = 0; e < VEC; e++) {
            const float f = to_f32(p.v[e]);
            ss += f * f;
        }
    }
    ss = block_sum(ss);
    const float inv_rms = 1.0f / sqrtf(ss / (float)d + eps);
#pragma unroll
    for (int j = 0; j < kV3Cache; j++) {
        const int v = threadIdx.x + j * kV3Threads;
        if (v < nvec) {
            const P wv = wr[v];
            P out;
#pragma unroll
            for (int e = 0; e < VEC; e++) out.v[e] = from_f32<T>(to_f32(cache[j].v[e]) * inv_rms * to_f32(wv.v[e]));
            yr[v] = out;
        }
    }
    for (int v = threadIdx.x + kV3Cache * kV3Threads; v < nvec; v += kV3Threads) {  // re-read, from L2
        const P p = xr[v], wv = wr[v];
        P out;
#pragma unroll
        for (int e = 0; e < VEC; e++) out.v[e] = from_f32<T>(to_f32(p.v[e]) * inv_rms * to_f32(wv.v[e]));
        yr[v] = out;
    }
}

template <typename T>
std::string launch(int version, T* y, const T* x, const T* w, int64_t rows, int d, float eps, cudaStream_t st) {
    if (rows == 0) return "";
    if (version == 1) {
        rmsnorm_v1_kernel<T><<<(unsigned)ceil_div(rows, 128), 128, 0, st>>>(y, x, w, rows, d, eps);
    } else if (version == 2) {
        rmsnorm_v2_kernel<T><<<(unsigned)ceil_div(rows * 32, 256), 256, 0, st>>>(y, x, w, rows, d, eps);
    } else {
        constexpr int kVec = 16 / sizeof(T);
        if (d % kVec == 0)
            rmsnorm_v3_kernel<T, kVec><<<(unsigned)rows, kV3Threads, 0, st>>>(y, x, w, d, eps);
        else
            rmsnorm_v3_kernel<T, 1><<<(unsigned)rows, kV3Threads, 0, st>>>(y, x, w, d, eps);
    }
    CUDA_CHECK_LAUNCH();
    return "";
}

}  // namespace

std::string rmsnorm_forward(int version, void* y, const void* x, const void* w, int64_t T, int64_t d, float eps,
                            ElemType dt, cudaStream_t st) {
    if (version < 1 || version > kRmsnormVersions) return "rmsnorm has versions 1.." + std::to_string(kRmsnormVersions);
    if (d < 1 || d > (int64_t)1 << 30) return "rmsnorm: d must be in 1..2^30";
    if (T > ((int64_t)1 << 31) - 1) return "rmsnorm: T must be < 2^31 (one block per row in v3)";
    if (dt == ElemType::F32)
        return launch<float>(version, (float*)y, (const float*)x, (const float*)w, T, (int)d, eps, st);
    return launch<__nv_bfloat16>(version, (__nv_bfloat16*)y, (const __nv_bfloat16*)x, (const __nv_bfloat16*)w, T,
                                 (int)d, eps, st);
}

}  // namespace gpu
}  // namespace dsref
