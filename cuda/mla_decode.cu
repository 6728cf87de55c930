// mla_decode.cu — absorbed MLA decode over a paged BF16 latent cache (V2 report §2.1.2; DeepSeek-V3
// inference/model.py MLA.forward, attn_impl "absorb"; the paged layout and split-KV are FlashMLA's):
//
//   score_s = scale · (q̃[b,h] · c_s + q_pe[b,h] · k_pe_s),  õ[b,h] = Σ_s softmax(score)_s c_s     [d_c]
//
// Cache: pages of page_size tokens, each token d_c + d_r bf16 values (latent c, then k_pe); sequence b's
// key s lives in page block_table[b, s / page_size] at row s % page_size. CPU twin: ref/model/mla_decode.h
// mla_decode_latent (double), on the same bf16 values decoded to float.
//
// Versions (check: build/cuda/test_cuda mla_decode [V]):
//   v1  one CTA per (b, h): scores of all keys into shared memory (one thread per key, float32 dot),
//       block max and sum, then one thread per latent channel accumulates Σ p_s c_s. Teaches the paged
//       lookup and the two-pass softmax; reads the cache twice; seq_len ≤ 12000 (the scores fit the 48 KB default).
//   v2  split-KV: grid (B·H, splits), each split runs v1's two passes over its key range and writes its
//       (m, l, unnormalized õ); a combine kernel merges the splits in split order:
//       m = max m_j, l = Σ l_j e^{m_j − m}, õ = Σ õ_j e^{m_j − m} / l. Teaches the split and the merge
//       (FlashMLA's and FlashDecoding's structure) that keep all SMs busy at small batch.
// Neither is a tuned kernel (no tensor cores: the queries of the H heads sharing one latent are not
// batched into an MMA, which is what makes FlashMLA fast). NONE HAS RUN ON A GPU (cuda/RESULTS.md).
#include <memory>

#include "common.cuh"
#include "kernels.cuh"

namespace dsref {
namespace gpu {
namespace {

constexpr int kThreads = 256;
constexpr int kMaxKeysV1 = 12000;  // float scores + 32 reduction slots: 48 128 B, under the 48 KB default
constexpr int kSplitKeys = 512;    // keys per split in v2

__device__ __forceinline__ float block_reduce(float v, bool is_max, float* red) {
    for (int o = 16; o > 0; o >>= 1) {
        const float w = __shfl_xor_sync(0xffffffffu, v, o);
        v = is_max ? fmaxf(v, w) : v + w;
    }
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    __syncthreads();  // red is reused between calls
    if (lane == 0) red[warp] = v;
    __syncthreads();
    v = red[0];
    for (int i = 1; i < (int)blockDim.x / 32; i++) v = is_max ? fmaxf(v, red[i]) : v + red[i];
    return v;
}

__device__ __forceinline__ const __nv_bfloat16* key_row(const __nv_bfloat16* cache, const int32_t* block_table,
                                                        int b, int s, int page_size, int max_pages, int dk) {
    const int page = block_table[(int64_t)b * max_pages + s / page_size];
    return cache + ((int64_t)page * page_size + s % page_size) * dk;
}

// Keys [s_begin, s_end) of (b, h): writes m, l and the unnormalized Σ e^{score − m} c_s (or, when
// `normalize`, the final õ) for this range.
__device__ void attend_range(float* o, float* m_out, float* l_out, bool normalize, const float* q_lat,
                             const float* q_pe, const __nv_bfloat16* cache, const int32_t* block_table, int b, int h,
                             int H, int d_c, int d_r, int page_size, int max_pages, int s_begin, int s_end,
                             float scale, float* score, float* red) {
    const int dk = d_c + d_r, n = s_end - s_begin;
    const float* qc = q_lat + ((int64_t)b * H + h) * d_c;
    const float* qr = q_pe + ((int64_t)b * H + h) * d_r;
    float mx = -INFINITY;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        const __nv_bfloat16* k = key_row(cache, block_table, b, s_begin + i, page_size, max_pages, dk);
        float dot = 0.0f;
        for (int c = 0; c < d_c; c++) dot = fmaf(qc[c], __bfloat162float(k[c]), dot);
        for (int r = 0; r < d_r; r++) dot = fmaf(qr[r], __bfloat162float(k[d_c + r]), dot);
        score[i] = scale * dot;
        mx = fmaxf(mx, score[i]);
    }
    mx = block_reduce(mx, true, red);
    float l = 0.0f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) l += (score[i] = __expf(score[i] - mx));
    l = block_reduce(l, false, red);  // also orders the score writes before the reads below
    for (int c = threadIdx.x; c < d_c; c += blockDim.x) {
        float acc = 0.0f;
        for (int i = 0; i < n; i++)
            acc = fmaf(score[i], __bfloat162float(key_row(cache, block_table, b, s_begin + i, page_size, max_pages, dk)[c]),
                       acc);
        o[c] = normalize ? acc / l : acc;
    }
    if (threadIdx.x == 0) {
        if (m_out) *m_out = mx;
        if (l_out) *l_out = l;
    }
}

__global__ void mla_decode_v1(float* o_lat, const float* q_lat, const float* q_pe, const __nv_bfloat16* cache,
                              const int32_t* block_table, const int32_t* seq_len, int H, int d_c, int d_r,
                              int page_size, int max_pages, float scale) {
    extern __shared__ float smem[];  // [kMaxKeysV1] scores, then 32 reduction slots
    const int b = blockIdx.x / H, h = blockIdx.x % H;
    attend_range(o_lat + (int64_t)blockIdx.x * d_c, nullptr, nullptr, true, q_lat, q_pe, cache, block_table, b, h, H,
                 d_c, d_r, page_size, max_pages, 0, seq_len[b], scale, smem, smem + kMaxKeysV1);
}

// part_o [B·H, splits, d_c], part_m / part_l [B·H, splits]; splits past the sequence's end write l = 0.
__global__ void mla_decode_v2_split(float* part_o, float* part_m, float* part_l, const float* q_lat, const float* q_pe,
                                    const __nv_bfloat16* cache, const int32_t* block_table, const int32_t* seq_len,
                                    int H, int d_c, int d_r, int page_size, int max_pages, int splits, float scale) {
    __shared__ float score[kSplitKeys];
    __shared__ float red[32];
    const int bh = blockIdx.x, j = blockIdx.y, b = bh / H, h = bh % H;
    const int s0 = j * kSplitKeys, s1 = min(seq_len[b], s0 + kSplitKeys);
    const int64_t p = (int64_t)bh * splits + j;
    if (s0 >= s1) {
        if (threadIdx.x == 0) {
            part_m[p] = -INFINITY;
            part_l[p] = 0.0f;
        }
        return;
    }
    attend_range(part_o + p * d_c, part_m + p, part_l + p, false, q_lat, q_pe, cache, block_table, b, h, H, d_c, d_r,
                 page_size, max_pages, s0, s1, scale, score, red);
}

__global__ void mla_decode_v2_combine(float* o_lat, const float* part_o, const float* part_m, const float* part_l,
                                      int splits, int d_c) {
    const int bh = blockIdx.x;
    float m = -INFINITY;
    for (int j = 0; j < splits; j++) m = fmaxf(m, part_m[(int64_t)bh * splits + j]);
    float l = 0.0f;
    for (int j = 0; j < splits; j++) {
        const float lj = part_l[(int64_t)bh * splits + j];
        if (lj > 0) l += lj * __expf(part_m[(int64_t)bh * splits + j] - m);
    }
    for (int c = threadIdx.x; c < d_c; c += blockDim.x) {
        float acc = 0.0f;
        for (int j = 0; j < splits; j++) {  // split order: fixed, so the result does not depend on scheduling
            const int64_t p = (int64_t)bh * splits + j;
            if (part_l[p] > 0) acc = fmaf(__expf(part_m[p] - m), part_o[p * d_c + c], acc);
        }
        o_lat[(int64_t)bh * d_c + c] = acc / l;
    }
}

// A grow-only scratch buffer for v2's partial results (freed at exit).
DevBuf& scratch(size_t bytes) {
    static std::unique_ptr<DevBuf> buf;
    if (!buf || buf->bytes < bytes) {
        buf.reset();
        buf.reset(new DevBuf(bytes));
    }
    return *buf;
}

}  // namespace

std::string mla_decode(int version, float* o_lat, const float* q_lat, const float* q_pe, const __nv_bfloat16* cache,
                       const int32_t* block_table, const int32_t* seq_len, int64_t B, int64_t H, int64_t d_c,
                       int64_t d_r, int64_t page_size, int64_t max_pages, int max_seq_len, float scale,
                       cudaStream_t st) {
    if (B < 1 || H < 1 || d_c < 1 || d_r < 0 || page_size < 1) return "empty or negative sizes";
    if (max_seq_len < 1 || max_seq_len > page_size * max_pages) return "max_seq_len must be in [1, page_size·max_pages]";
    if (version == 1) {
        if (max_seq_len > kMaxKeysV1) return "v1 keeps all scores in 48 KB of shared memory: seq_len <= 12000";
        mla_decode_v1<<<(unsigned)(B * H), kThreads, (kMaxKeysV1 + 32) * sizeof(float), st>>>(
            o_lat, q_lat, q_pe, cache, block_table, seq_len, (int)H, (int)d_c, (int)d_r, (int)page_size, (int)max_pages,
            scale);
        CUDA_CHECK_LAUNCH();
        return "";
    }
    if (version == 2) {
        const int splits = (int)ceil_div(max_seq_len, kSplitKeys);
        const size_t n = (size_t)(B * H) * splits;
        DevBuf& s = scratch(n * (d_c + 2) * sizeof(float));
        float* part_o = s.as<float>();
        float* part_m = part_o + n * d_c;
        float* part_l = part_m + n;
        mla_decode_v2_split<<<dim3((unsigned)(B * H), (unsigned)splits), kThreads, 0, st>>>(
            part_o, part_m, part_l, q_lat, q_pe, cache, block_table, seq_len, (int)H, (int)d_c, (int)d_r,
            (int)page_size, (int)max_pages, splits, scale);
        CUDA_CHECK_LAUNCH();
        mla_decode_v2_combine<<<(unsigned)(B * H), kThreads, 0, st>>>(o_lat, part_o, part_m, part_l, splits, (int)d_c);
        CUDA_CHECK_LAUNCH();
        return "";
    }
    return "mla_decode has versions 1 and 2";
}

}  // namespace gpu
}  // namespace dsref
