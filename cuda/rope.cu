// rope.cu — rotary position embedding on the GPU, interleaved pairs (2j, 2j+1) as DeepSeek V2/V3 checkpoints
// and the official code use them (pinned in ref/core/rope.h), with the inverse frequencies (plain or YaRN) taken
// from the CPU twin's rope_inv_freq. Twin: ref/core/rope.h (rope_forward, RopeLayout::Interleaved; op `rope`).
//
//   y[t, h, 2j]   = x[t, h, 2j]·cos φ − x[t, h, 2j+1]·sin φ,    φ = positions[t] · inv_freq[j]
//   y[t, h, 2j+1] = x[t, h, 2j]·sin φ + x[t, h, 2j+1]·cos φ
//
// Precision as in the twin: φ, cos φ and sin φ in double, rounded once to float; the rotation in float32
// with explicitly rounded products (__fmul_rn, no fma contraction). The twin's plain C++ expression is
// contracted into an fma by g++ with -march=native (not with PORTABLE=1), so the two may differ by an ulp;
// cuda/tolerances.h allows for it. float32 and bf16 tensors; a bf16 y is rounded once.
//
// Versions (check: build/cuda/test_cuda rope [V]; time: build/cuda/bench_cuda rope):
//   v1  naive port: one thread per pair (t, h, j), each computing its own double-precision sincos. Teaches
//       the mapping; wasteful: all H heads of a token recompute the same d_r/2 angles, and double
//       sincos is expensive.
//   v2  one block per token: the block computes the d_r/2 (cos, sin) once into shared memory, then rotates
//       all H·d_r elements with 16-byte vector accesses (2 fp32 pairs or 4 bf16 pairs per access). The
//       bandwidth-bound form.
#include "common.cuh"
#include "kernels.cuh"

namespace dsref {
namespace gpu {
namespace {

__device__ __forceinline__ void rotate(float a, float b, float c, float s, float* ya, float* yb) {
    *ya = __fsub_rn(__fmul_rn(a, c), __fmul_rn(b, s));
    *yb = __fadd_rn(__fmul_rn(a, s), __fmul_rn(b, c));
}

// ---- v1 ----------------------------------------------------------------------------------------------------
template <typename T>
__global__ void rope_v1_kernel(T* y, const T* x, const int32_t* pos, const double* inv_freq, int64_t T_, int H,
                               int d_r) {
    const int P = d_r / 2;
    const int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;  // pair index over [T, H, P]
    if (i >= T_ * H * P) return;
    const int j = (int)(i % P);
    const int64_t t = i / ((int64_t)H * P);
    double sd, cd;
    sincos((double)pos[t] * inv_freq[j], &sd, &cd);
    float ya, yb;
    rotate(to_f32(x[2 * i]), to_f32(x[2 * i + 1]), (float)cd, (float)sd, &ya, &yb);
    y[2 * i] = from_f32<T>(ya);
    y[2 * i + 1] = from_f32<T>(yb);
}

// ---- v2 ----------------------------------------------------------------------------------------------------
constexpr int kV2Threads = 256;

template <typename T, int VEC>  // VEC elements (VEC/2 pairs) per access; VEC divides d_r
__global__ void __launch_bounds__(kV2Threads)
    rope_v2_kernel(T* y, const T* x, const int32_t* pos, const double* inv_freq, int H, int d_r) {
    extern __shared__ float cs[];  // [2, P]: cos then sin
    using Pk = Pack<T, VEC>;
    const int P = d_r / 2;
    const int64_t t = blockIdx.x;
    float* cos_t = cs;
    float* sin_t = cs + P;
    const double p = (double)pos[t];
    for (int j = threadIdx.x; j < P; j += kV2Threads) {
        double sd, cd;
        sincos(p * inv_freq[j], &sd, &cd);
        cos_t[j] = (float)cd;
        sin_t[j] = (float)sd;
    }
    __syncthreads();
    const int nvec = H * d_r / VEC;  // vectors in this token's [H, d_r] slab
    const Pk* xt = reinterpret_cast<const Pk*>(x + t * (int64_t)H * d_r);
    Pk* yt = reinterpret_cast<Pk*>(y + t * (int64_t)H * d_r);
    for (int v = threadIdx.x; v < nvec; v += kV2Threads) {
        const Pk in = xt[v];
        const int j0 = (v * VEC % d_r) / 2;  // first pair of this vector
        Pk out;
#pragma unroll
        for (int q = 0; q < VEC / 2; q++) {
            float ya, yb;
            rotate(to_f32(in.v[2 * q]), to_f32(in.v[2 * q + 1]), cos_t[j0 + q], sin_t[j0 + q], &ya, &yb);
            out.v[2 * q] = from_f32<T>(ya);
            out.v[2 * q + 1] = from_f32<T>(yb);
        }
        yt[v] = out;
    }
}

template <typename T>
std::string launch(int version, T* y, const T* x, const int32_t* pos, const double* inv_freq, int64_t T_, int H,
                   int d_r, cudaStream_t st) {
    if (T_ == 0 || H == 0) return "";
    if (version == 1) {
        const int64_t pairs = T_ * H * (d_r / 2);
        rope_v1_kernel<T><<<(unsigned)ceil_div(pairs, 256), 256, 0, st>>>(y, x, pos, inv_freq, T_, H, d_r);
    } else {
        constexpr int kVec = 16 / sizeof(T);
        const size_t smem = sizeof(float) * (size_t)d_r;
        if (d_r % kVec == 0)
            rope_v2_kernel<T, kVec><<<(unsigned)T_, kV2Threads, smem, st>>>(y, x, pos, inv_freq, H, d_r);
        else
            rope_v2_kernel<T, 2><<<(unsigned)T_, kV2Threads, smem, st>>>(y, x, pos, inv_freq, H, d_r);
    }
    CUDA_CHECK_LAUNCH();
    return "";
}

}  // namespace

std::string rope_forward(int version, void* y, const void* x, const int32_t* positions, const double* inv_freq,
                         int64_t T, int64_t H, int64_t d_r, ElemType dt, cudaStream_t st) {
    if (version < 1 || version > kRopeVersions) return "rope has versions 1.." + std::to_string(kRopeVersions);
    if (d_r < 2 || d_r % 2) return "rope: d_r must be positive and even";
    if (d_r > 8192) return "rope: d_r must be <= 8192 (v2 keeps cos/sin of one token in shared memory)";
    if (H * d_r > ((int64_t)1 << 30)) return "rope: H * d_r must be <= 2^30";
    if (T > ((int64_t)1 << 31) - 1) return "rope: T must be < 2^31 (one block per token in v2)";
    if (dt == ElemType::F32)
        return launch<float>(version, (float*)y, (const float*)x, positions, inv_freq, T, (int)H, (int)d_r, st);
    return launch<__nv_bfloat16>(version, (__nv_bfloat16*)y, (const __nv_bfloat16*)x, positions, inv_freq, T, (int)H,
                                 (int)d_r, st);
}

}  // namespace gpu
}  // namespace dsref
