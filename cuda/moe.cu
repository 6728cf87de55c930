// moe.cu — the DeepSeekMoE dispatch / expert / combine kernels (DeepSeekMoE paper §3; V3 report §2.1.2;
// the steps of ref/moe/moe.h, whose functions are the CPU twins):
//
//   align     counts[e], offsets[e] (exclusive prefix sum, each expert's block padded to block_m rows, the
//             GEMM's BLOCK_M), slot_token[slot] and token_slot[t, k], slots in row-major (t, k) order
//             within each expert — exactly moe_dispatch_plan's order (twin: moe_dispatch_plan; with
//             block_m = 1 the layouts are identical, padding slots hold token −1)
//   permute   xs[slot] = x[slot_token[slot]] (twin: moe_permute), padding rows zeroed
//   grouped   ys[slot] = xs[slot] · W_{e(slot)}ᵀ for the contiguous layout: every slot row belongs to the
//             expert whose block holds it (twin: linear_forward per expert block)
//   combine   y[t] = Σ_k g[t, k] · ys[token_slot[t, k]] (+ shared[t]) accumulated in double in the fixed
//             k order, rounded once (twin: moe_combine — bit-identical: g and the row are float32, so
//             their product is exact in double (24 + 24 significant bits ≤ 53), and acc + g·row rounds once
//             whether a compiler contracts it into an fma or not — g++ -march=native does, on the host)
//
// Versions: v1 of each, the naive ports (one thread per expert for align: a sequential scan keeps the
// slot order deterministic; one thread per output element for the rest). Teaches the data movement of
// MoE, not speed. The fused gate, the masked (decode) layout, the FP8 grouped GEMM and the tuned versions
// are not written yet (cuda/README.md, "Known gaps"). NONE HAS RUN ON A GPU (cuda/RESULTS.md).
#include "common.cuh"
#include "kernels.cuh"

namespace dsref {
namespace gpu {
namespace {

// One thread per expert: scans topk_idx in row-major order, so expert e's slots are in (t, k) order.
// counts [E] out, token_slot [T·K] out, slot_token written after the offsets are known (second kernel).
__global__ void moe_count_v1(int32_t* counts, const int32_t* topk_idx, int TK, int E) {
    const int e = blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= E) return;
    int c = 0;
    for (int i = 0; i < TK; i++) c += topk_idx[i] == e;
    counts[e] = c;
}
// One thread: the padded exclusive prefix sum (E is a few hundred: a scan is not worth it in v1).
__global__ void moe_offsets_v1(int32_t* offsets, const int32_t* counts, int E, int block_m) {
    if (blockIdx.x != 0 || threadIdx.x != 0) return;
    int o = 0;
    for (int e = 0; e < E; e++) {
        offsets[e] = o;
        o += (counts[e] + block_m - 1) / block_m * block_m;
    }
    offsets[E] = o;
}
__global__ void moe_fill_slots_v1(int32_t* slot_token, int32_t* token_slot, const int32_t* topk_idx,
                                  const int32_t* offsets, int TK, int K, int E) {
    const int e = blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= E) return;
    int s = offsets[e];
    for (int i = 0; i < TK; i++)
        if (topk_idx[i] == e) {
            slot_token[s] = i / K;
            token_slot[i] = s;
            s++;
        }
    for (; s < offsets[e + 1]; s++) slot_token[s] = -1;  // padding rows of the block
}

template <typename T>
__global__ void moe_permute_v1(T* xs, const T* x, const int32_t* slot_token, int64_t slots, int64_t d) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < slots * d; i += (int64_t)gridDim.x * blockDim.x) {
        const int32_t t = slot_token[i / d];
        xs[i] = t < 0 ? from_f32<T>(0.0f) : x[(int64_t)t * d + i % d];
    }
}

// ys [slots, N] = xs [slots, Kd] · W_e [N, Kd]ᵀ, float32 accumulation in k order. The expert of a slot:
// the e with offsets[e] <= slot < offsets[e + 1] (binary search). Weights: w[e] pointers on the device.
template <typename T>
__global__ void moe_grouped_v1(T* ys, const T* xs, const T* const* w, const int32_t* offsets, int E, int64_t slots,
                               int64_t N, int64_t Kd) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < slots * N; i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t s = i / N, n = i % N;
        int lo = 0, hi = E;  // the last e with offsets[e] <= s
        while (hi - lo > 1) {
            const int mid = (lo + hi) / 2;
            if (offsets[mid] <= s) lo = mid;
            else hi = mid;
        }
        const T* a = xs + s * Kd;
        const T* b = w[lo] + n * Kd;
        float acc = 0.0f;
        for (int64_t k = 0; k < Kd; k++) acc = fmaf(to_f32(a[k]), to_f32(b[k]), acc);
        ys[i] = from_f32<T>(acc);
    }
}

__global__ void moe_combine_v1(float* y, const float* ys, const float* topk_weight, const int32_t* token_slot,
                               const float* shared, int64_t T, int K, int64_t d) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < T * d; i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t t = i / d, c = i % d;
        double acc = 0.0;
        for (int k = 0; k < K; k++) {  // fixed order k = 0..K-1, as moe_combine
            const double g = topk_weight[t * K + k];
            acc = __dadd_rn(acc, __dmul_rn(g, (double)ys[(int64_t)token_slot[t * K + k] * d + c]));
        }
        if (shared) acc = __dadd_rn(acc, (double)shared[i]);
        y[i] = (float)acc;
    }
}

int grid_for(int64_t n, int threads = 256) {
    return (int)std::max<int64_t>(1, std::min<int64_t>((n + threads - 1) / threads, 65535));
}

}  // namespace

std::string moe_align(int version, int32_t* counts, int32_t* offsets, int32_t* slot_token, int32_t* token_slot,
                      const int32_t* topk_idx, int64_t T, int64_t K, int64_t E, int block_m, cudaStream_t st) {
    if (version != 1) return "moe_align has only v1";
    if (block_m < 1) return "block_m must be >= 1";
    if (T * K > INT32_MAX / 2) return "T*K too large for int32 slots";
    const int TK = (int)(T * K);
    moe_count_v1<<<grid_for(E, 128), 128, 0, st>>>(counts, topk_idx, TK, (int)E);
    CUDA_CHECK_LAUNCH();
    moe_offsets_v1<<<1, 1, 0, st>>>(offsets, counts, (int)E, block_m);
    CUDA_CHECK_LAUNCH();
    moe_fill_slots_v1<<<grid_for(E, 128), 128, 0, st>>>(slot_token, token_slot, topk_idx, offsets, TK, (int)K, (int)E);
    CUDA_CHECK_LAUNCH();
    return "";
}

std::string moe_permute(int version, void* xs, const void* x, const int32_t* slot_token, int64_t slots, int64_t d,
                        ElemType dt, cudaStream_t st) {
    if (version != 1) return "moe_permute has only v1";
    const int g = grid_for(slots * d);
    if (dt == ElemType::F32)
        moe_permute_v1<float><<<g, 256, 0, st>>>((float*)xs, (const float*)x, slot_token, slots, d);
    else
        moe_permute_v1<__nv_bfloat16><<<g, 256, 0, st>>>((__nv_bfloat16*)xs, (const __nv_bfloat16*)x, slot_token,
                                                         slots, d);
    CUDA_CHECK_LAUNCH();
    return "";
}

std::string moe_grouped_gemm(int version, void* ys, const void* xs, const void* const* w_dev, const int32_t* offsets,
                             int64_t E, int64_t slots, int64_t N, int64_t Kd, ElemType dt, cudaStream_t st) {
    if (version != 1) return "moe_grouped_gemm has only v1";
    const int g = grid_for(slots * N);
    if (dt == ElemType::F32)
        moe_grouped_v1<float><<<g, 256, 0, st>>>((float*)ys, (const float*)xs, (const float* const*)w_dev, offsets,
                                                 (int)E, slots, N, Kd);
    else
        moe_grouped_v1<__nv_bfloat16><<<g, 256, 0, st>>>((__nv_bfloat16*)ys, (const __nv_bfloat16*)xs,
                                                         (const __nv_bfloat16* const*)w_dev, offsets, (int)E, slots,
                                                         N, Kd);
    CUDA_CHECK_LAUNCH();
    return "";
}

std::string moe_combine(int version, float* y, const float* ys, const float* topk_weight, const int32_t* token_slot,
                        const float* shared, int64_t T, int64_t K, int64_t d, cudaStream_t st) {
    if (version != 1) return "moe_combine has only v1";
    moe_combine_v1<<<grid_for(T * d), 256, 0, st>>>(y, ys, topk_weight, token_slot, shared, T, (int)K, d);
    CUDA_CHECK_LAUNCH();
    return "";
}

}  // namespace gpu
}  // namespace dsref
