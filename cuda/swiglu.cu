// swiglu.cu — the element-wise SwiGLU gate on the GPU (Shazeer 2020): y = silu(gate) ⊙ up,
// silu(z) = z / (1 + e^{−z}). CPU twin: ref/core/swiglu.h swiglu_gate (op `swiglu`, ref/ops/ops_swiglu.cpp).
// float32 arithmetic with the accurate expf and an IEEE division (no --use_fast_math); float32 and bf16
// tensors, a bf16 y rounded once.
//
// Versions (check: build/cuda/test_cuda swiglu [V]; time: build/cuda/bench_cuda swiglu):
//   v1  naive port: one thread per element, one launch-sized grid. Already coalesced; teaches the
//       harness on the simplest kernel.
//   v2  16-byte vector accesses (float4 / 8 × bf16) in a grid-stride loop sized to the GPU, scalar tail.
//       Fewer, wider memory instructions: the bandwidth-bound form.
#include "common.cuh"
#include "kernels.cuh"

namespace dsref {
namespace gpu {
namespace {

__device__ __forceinline__ float silu_mul(float g, float u) {
    return g / (1.0f + expf(-g)) * u;
}

// ---- v1 ----------------------------------------------------------------------------------------------------
template <typename T>
__global__ void swiglu_v1_kernel(T* y, const T* gate, const T* up, int64_t n) {
    const int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (i < n) y[i] = from_f32<T>(silu_mul(to_f32(gate[i]), to_f32(up[i])));
}

// ---- v2 ----------------------------------------------------------------------------------------------------
template <typename T>
__global__ void swiglu_v2_kernel(T* y, const T* gate, const T* up, int64_t n) {
    constexpr int VEC = 16 / sizeof(T);
    using P = Pack<T, VEC>;
    const int64_t nvec = n / VEC;
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    const P* g = reinterpret_cast<const P*>(gate);
    const P* u = reinterpret_cast<const P*>(up);
    P* yv = reinterpret_cast<P*>(y);
    for (int64_t v = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; v < nvec; v += stride) {
        const P gv = g[v], uv = u[v];
        P out;
#pragma unroll
        for (int e = 0; e < VEC; e++) out.v[e] = from_f32<T>(silu_mul(to_f32(gv.v[e]), to_f32(uv.v[e])));
        yv[v] = out;
    }
    for (int64_t i = nvec * VEC + blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += stride)
        y[i] = from_f32<T>(silu_mul(to_f32(gate[i]), to_f32(up[i])));
}

template <typename T>
std::string launch(int version, T* y, const T* gate, const T* up, int64_t n, cudaStream_t st) {
    if (n == 0) return "";
    if (version == 1) {
        swiglu_v1_kernel<T><<<(unsigned)ceil_div(n, 256), 256, 0, st>>>(y, gate, up, n);
    } else {
        const int64_t sms = device_sms();
        const int64_t want = ceil_div(n / (16 / (int64_t)sizeof(T)) + 1, 256);
        const int blocks = (int)std::min<int64_t>(want, sms * 8);  // 8 blocks of 256 per SM in flight
        swiglu_v2_kernel<T><<<blocks, 256, 0, st>>>(y, gate, up, n);
    }
    CUDA_CHECK_LAUNCH();
    return "";
}

}  // namespace

std::string swiglu_forward(int version, void* y, const void* gate, const void* up, int64_t n, ElemType dt,
                           cudaStream_t st) {
    if (version < 1 || version > kSwigluVersions) return "swiglu has versions 1.." + std::to_string(kSwigluVersions);
    if (n < 0) return "swiglu: n must be >= 0";
    if (dt == ElemType::F32) return launch<float>(version, (float*)y, (const float*)gate, (const float*)up, n, st);
    return launch<__nv_bfloat16>(version, (__nv_bfloat16*)y, (const __nv_bfloat16*)gate, (const __nv_bfloat16*)up,
                                 n, st);
}

}  // namespace gpu
}  // namespace dsref
