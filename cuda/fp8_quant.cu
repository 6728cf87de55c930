// fp8_quant.cu — DeepSeek-V3 fine-grained FP8 quantization on the GPU (V3 report §3.3.2; kernel.py act_quant):
// act_quant in 1×128 groups along K and the 128×128 weight-block quantizer, E4M3 codes with float32 scales
// (plain, or ue8m0: rounded up to a power of two). CPU twins: ref/fp8/fp8_quant.h fp8_quant_act /
// fp8_quant_weight (ops `fp8_quant_act`, `fp8_quant_weight`). Bit-exact with the twins:
//   amax = max |x| over the group (exact in any order), amax = max(amax, fp32(1e-4))
//   s    = amax / 448 with an IEEE division (__fdiv_rn), then ue8m0 rounding by bit operations
//   q    = cvt.rn.satfinite.e4m3x2.f32(x / s) with an IEEE division — round to nearest even, saturating
// so this file must never be built with --use_fast_math (cuda/check_ptx.sh checks the PTX for div.rn.f32
// and the satfinite conversion, and for the absence of approximate divisions). Input x/w: float32 or bf16
// (the twin gets the same bf16 values as float32).
//
// Versions (check: build/cuda/test_cuda fp8_quant_act|fp8_quant_weight [V]; time: bench_cuda fp8_quant):
//   act_quant
//   v1  naive port: one thread per 1×128 group, looping over its 128 elements twice. Teaches the rule;
//       uncoalesced: the 32 threads of a warp read 32 places 512 bytes apart.
//   v2  one warp per group: each lane owns 4 consecutive elements (one 16-byte float4 load), the amax is
//       a warp-shuffle max, each lane writes its 4 codes as one 32-bit store. Coalesced.
//   v3  one warp per 4 groups, all four loads issued before the first reduction: more bytes in flight
//       per warp (HOPPER.md: "several independent loads in flight before the first use").
//   weight quantizer (128×128 blocks)
//   v1  naive port: one thread per block, 2 × 16384 elements each. Teaches why one thread is too little.
//   v2  one 256-thread block per 128×128 block: the 64 KB block is held in registers (64 floats per
//       thread) between the amax pass and the quantize pass, so each element is read from HBM once.
#include <cuda_fp8.h>

#include "common.cuh"
#include "kernels.cuh"

namespace dsref {
namespace gpu {
namespace {

// Two E4M3 codes, lo in the low byte. PTX: "cvt ... d, a, b" puts cvt(a) in the upper half of d.
__device__ __forceinline__ uint32_t e4m3x2_satfinite(float lo, float hi) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
    uint16_t r;
    asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;" : "=h"(r) : "f"(hi), "f"(lo));
    return r;
#else  // sm_80 has no FP8 conversion instruction: cuda_fp8.h's software RNE + saturation
    return (uint32_t)__nv_cvt_float_to_fp8(lo, __NV_SATFINITE, __NV_E4M3) |
           ((uint32_t)__nv_cvt_float_to_fp8(hi, __NV_SATFINITE, __NV_E4M3) << 8);
#endif
}
__device__ __forceinline__ uint8_t quant_one(float x, float s) {
    return (uint8_t)(e4m3x2_satfinite(__fdiv_rn(x, s), 0.0f) & 0xFFu);
}
__device__ __forceinline__ float scale_from_amax(float amax, bool ue8m0) {
    const float s = __fdiv_rn(fmaxf(amax, 1e-4f), 448.0f);  // kFp8AmaxFloor, kFp8E4M3Max of the twin
    return ue8m0 ? __uint_as_float(ue8m0_round_up_bits(__float_as_uint(s))) : s;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xFFFFFFFFu, v, o));
    return v;
}

// A lane's 4 consecutive elements src[0..3] at columns k..k+3 as float, zeros outside the group: `inside`
// says whether the row belongs to the group, k1 is the group's column end. kVec: one 16-byte (fp32) or
// 8-byte (bf16) load, valid because K % 4 == 0 puts all 4 columns on the same side of k1.
template <typename T, bool kVec>
__device__ __forceinline__ void load4(float (&v)[4], const T* src, bool inside, int k, int k1) {
    if (kVec) {
        if (inside && k < k1) {
            const Pack<T, 4> p = *reinterpret_cast<const Pack<T, 4>*>(src);
#pragma unroll
            for (int e = 0; e < 4; e++) v[e] = to_f32(p.v[e]);
        } else {
#pragma unroll
            for (int e = 0; e < 4; e++) v[e] = 0.0f;
        }
    } else {
#pragma unroll
        for (int e = 0; e < 4; e++) v[e] = (inside && k + e < k1) ? to_f32(src[e]) : 0.0f;
    }
}

// ---- act_quant v1 ---------------------------------------------------------------------------------------------
template <typename T>
__global__ void act_v1_kernel(uint8_t* q, float* scale, const T* x, int64_t M, int K, int KB, bool ue8m0) {
    const int64_t g = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;  // group (m, kb), = index into scale
    if (g >= M * KB) return;
    const int64_t m = g / KB;
    const int k0 = (int)(g % KB) * kQuantBlock, k1 = min(K, k0 + kQuantBlock);
    const T* xr = x + m * K;
    float amax = 0.0f;
    for (int k = k0; k < k1; k++) amax = fmaxf(amax, fabsf(to_f32(xr[k])));
    const float s = scale_from_amax(amax, ue8m0);
    scale[g] = s;
    for (int k = k0; k < k1; k++) q[m * K + k] = quant_one(to_f32(xr[k]), s);
}

// ---- act_quant v2 / v3: G groups per warp -------------------------------------------------------------------
// kVec: K % 4 == 0, so a lane's 4 elements are all inside or all outside the group, and 16-byte (fp32) or
// 8-byte (bf16) aligned; else element-wise guarded accesses.
template <typename T, int G, bool kVec>
__global__ void act_warp_kernel(uint8_t* q, float* scale, const T* x, int64_t M, int K, int KB, bool ue8m0) {
    const int64_t warp = (blockIdx.x * (int64_t)blockDim.x + threadIdx.x) / 32;
    const int lane = threadIdx.x % 32;
    const int64_t groups = M * KB;
    float v[G][4];
#pragma unroll
    for (int i = 0; i < G; i++) {  // all loads first
        const int64_t g = warp * G + i;
        const int64_t m = g / KB;
        const int k0 = (int)(g % KB) * kQuantBlock, k = k0 + 4 * lane, k1 = min(K, k0 + kQuantBlock);
        load4<T, kVec>(v[i], x + m * K + k, g < groups, k, k1);
    }
#pragma unroll
    for (int i = 0; i < G; i++) {
        const int64_t g = warp * G + i;
        float amax = fmaxf(fmaxf(fabsf(v[i][0]), fabsf(v[i][1])), fmaxf(fabsf(v[i][2]), fabsf(v[i][3])));
        amax = warp_max(amax);  // every lane of the warp takes part, also past the last group
        if (g >= groups) continue;
        const float s = scale_from_amax(amax, ue8m0);
        if (lane == 0) scale[g] = s;
        const int64_t m = g / KB;
        const int k0 = (int)(g % KB) * kQuantBlock, k = k0 + 4 * lane, k1 = min(K, k0 + kQuantBlock);
        const uint32_t lo = e4m3x2_satfinite(__fdiv_rn(v[i][0], s), __fdiv_rn(v[i][1], s));
        const uint32_t hi = e4m3x2_satfinite(__fdiv_rn(v[i][2], s), __fdiv_rn(v[i][3], s));
        uint8_t* dst = q + m * K + k;
        if (kVec) {
            if (k < k1) *reinterpret_cast<uint32_t*>(dst) = lo | (hi << 16);
        } else {
            const uint32_t codes = lo | (hi << 16);
#pragma unroll
            for (int e = 0; e < 4; e++)
                if (k + e < k1) dst[e] = (uint8_t)(codes >> (8 * e));
        }
    }
}

// ---- weight v1 -----------------------------------------------------------------------------------------------
template <typename T>
__global__ void weight_v1_kernel(uint8_t* q, float* s_inv, const T* w, int N, int K, int NB, int KB, bool ue8m0) {
    const int64_t b = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;  // block (nb, kb) = index into s_inv
    if (b >= (int64_t)NB * KB) return;
    const int n0 = (int)(b / KB) * kQuantBlock, n1 = min(N, n0 + kQuantBlock);
    const int k0 = (int)(b % KB) * kQuantBlock, k1 = min(K, k0 + kQuantBlock);
    float amax = 0.0f;
    for (int n = n0; n < n1; n++)
        for (int k = k0; k < k1; k++) amax = fmaxf(amax, fabsf(to_f32(w[(int64_t)n * K + k])));
    const float s = scale_from_amax(amax, ue8m0);
    s_inv[b] = s;
    for (int n = n0; n < n1; n++)
        for (int k = k0; k < k1; k++) q[(int64_t)n * K + k] = quant_one(to_f32(w[(int64_t)n * K + k]), s);
}

// ---- weight v2 -----------------------------------------------------------------------------------------------
// Block (nb, kb) = (blockIdx.y, blockIdx.x). Warp w owns rows w, w+8, …, w+120 of the block; lane l owns
// columns 4l..4l+3. A warp therefore reads one 512-byte row segment per access (coalesced).
constexpr int kWeightThreads = 256;
constexpr int kWeightRowsPerWarp = kQuantBlock / (kWeightThreads / 32);  // 16

template <typename T, bool kVec>
__global__ void __launch_bounds__(kWeightThreads)
    weight_v2_kernel(uint8_t* q, float* s_inv, const T* w, int N, int K, int KB, bool ue8m0) {
    __shared__ float warp_amax[kWeightThreads / 32];
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int n0 = blockIdx.y * kQuantBlock, n1 = min(N, n0 + kQuantBlock);
    const int k0 = blockIdx.x * kQuantBlock, k1 = min(K, k0 + kQuantBlock);
    const int k = k0 + 4 * lane;
    float v[kWeightRowsPerWarp][4];
    float amax = 0.0f;
#pragma unroll
    for (int i = 0; i < kWeightRowsPerWarp; i++) {
        const int n = n0 + warp + 8 * i;
        load4<T, kVec>(v[i], w + (int64_t)n * K + k, n < n1, k, k1);
#pragma unroll
        for (int e = 0; e < 4; e++) amax = fmaxf(amax, fabsf(v[i][e]));
    }
    amax = warp_max(amax);
    if (lane == 0) warp_amax[warp] = amax;
    __syncthreads();
#pragma unroll
    for (int i = 0; i < kWeightThreads / 32; i++) amax = fmaxf(amax, warp_amax[i]);
    const float s = scale_from_amax(amax, ue8m0);
    if (threadIdx.x == 0) s_inv[(int64_t)blockIdx.y * KB + blockIdx.x] = s;
#pragma unroll
    for (int i = 0; i < kWeightRowsPerWarp; i++) {
        const int n = n0 + warp + 8 * i;
        const uint32_t codes = e4m3x2_satfinite(__fdiv_rn(v[i][0], s), __fdiv_rn(v[i][1], s)) |
                               (e4m3x2_satfinite(__fdiv_rn(v[i][2], s), __fdiv_rn(v[i][3], s)) << 16);
        uint8_t* dst = q + (int64_t)n * K + k;
        if (kVec) {
            if (n < n1 && k < k1) *reinterpret_cast<uint32_t*>(dst) = codes;
        } else {
#pragma unroll
            for (int e = 0; e < 4; e++)
                if (n < n1 && k + e < k1) dst[e] = (uint8_t)(codes >> (8 * e));
        }
    }
}

template <typename T>
std::string launch_act(int version, uint8_t* q, float* scale, const T* x, int64_t M, int K, bool ue8m0,
                       cudaStream_t st) {
    const int KB = (int)quant_blocks(K);
    const int64_t groups = M * KB;
    if (groups == 0) return "";
    const bool vec = K % 4 == 0;
    if (version == 1) {
        act_v1_kernel<T><<<(unsigned)ceil_div(groups, 128), 128, 0, st>>>(q, scale, x, M, K, KB, ue8m0);
    } else if (version == 2) {
        const unsigned blocks = (unsigned)ceil_div(groups * 32, 256);
        if (vec)
            act_warp_kernel<T, 1, true><<<blocks, 256, 0, st>>>(q, scale, x, M, K, KB, ue8m0);
        else
            act_warp_kernel<T, 1, false><<<blocks, 256, 0, st>>>(q, scale, x, M, K, KB, ue8m0);
    } else {
        const unsigned blocks = (unsigned)ceil_div(ceil_div(groups, 4) * 32, 256);
        if (vec)
            act_warp_kernel<T, 4, true><<<blocks, 256, 0, st>>>(q, scale, x, M, K, KB, ue8m0);
        else
            act_warp_kernel<T, 4, false><<<blocks, 256, 0, st>>>(q, scale, x, M, K, KB, ue8m0);
    }
    CUDA_CHECK_LAUNCH();
    return "";
}

template <typename T>
std::string launch_weight(int version, uint8_t* q, float* s_inv, const T* w, int N, int K, bool ue8m0,
                          cudaStream_t st) {
    const int NB = (int)quant_blocks(N), KB = (int)quant_blocks(K);
    if ((int64_t)NB * KB == 0) return "";
    if (version == 1) {
        weight_v1_kernel<T><<<(unsigned)ceil_div((int64_t)NB * KB, 64), 64, 0, st>>>(q, s_inv, w, N, K, NB, KB, ue8m0);
    } else {
        const dim3 grid((unsigned)KB, (unsigned)NB);
        if (K % 4 == 0)
            weight_v2_kernel<T, true><<<grid, kWeightThreads, 0, st>>>(q, s_inv, w, N, K, KB, ue8m0);
        else
            weight_v2_kernel<T, false><<<grid, kWeightThreads, 0, st>>>(q, s_inv, w, N, K, KB, ue8m0);
    }
    CUDA_CHECK_LAUNCH();
    return "";
}

}  // namespace

std::string fp8_quant_act(int version, uint8_t* q, float* scale, const void* x, int64_t M, int64_t K, bool ue8m0,
                          ElemType dt, cudaStream_t st) {
    if (version < 1 || version > kActQuantVersions)
        return "fp8_quant_act has versions 1.." + std::to_string(kActQuantVersions);
    if (K < 1 || K > ((int64_t)1 << 30) || M < 0) return "fp8_quant_act: need 1 <= K <= 2^30 and M >= 0";
    if (dt == ElemType::F32) return launch_act<float>(version, q, scale, (const float*)x, M, (int)K, ue8m0, st);
    return launch_act<__nv_bfloat16>(version, q, scale, (const __nv_bfloat16*)x, M, (int)K, ue8m0, st);
}

std::string fp8_quant_weight(int version, uint8_t* q, float* scale_inv, const void* w, int64_t N, int64_t K,
                             bool ue8m0, ElemType dt, cudaStream_t st) {
    if (version < 1 || version > kWeightQuantVersions)
        return "fp8_quant_weight has versions 1.." + std::to_string(kWeightQuantVersions);
    if (N < 0 || K < 0 || N > 65535LL * kQuantBlock || K > (1 << 30))
        return "fp8_quant_weight: need 0 <= N <= 65535 * 128 (grid.y) and 0 <= K <= 2^30";
    if (dt == ElemType::F32)
        return launch_weight<float>(version, q, scale_inv, (const float*)w, (int)N, (int)K, ue8m0, st);
    return launch_weight<__nv_bfloat16>(version, q, scale_inv, (const __nv_bfloat16*)w, (int)N, (int)K, ue8m0, st);
}

}  // namespace gpu
}  // namespace dsref
