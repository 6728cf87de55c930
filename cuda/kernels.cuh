// kernels.cuh — the host launchers of every kernel version in cuda/*.cu, as the golden tests
// (test_cuda.cu) and the benchmark (bench_cuda.cu) call them.
//
// Each op file holds numbered versions, v1 a naive port of its CPU twin in ref/, up to the fastest
// (llm.c dev/cuda style); its header says what each version teaches. A launcher takes the version
// number, device pointers and sizes, launches on `st` and checks the launch. It returns "" when it ran,
// or a sentence saying why this version does not take these arguments (e.g. v3 of the FP8 GEMM needs
// K % 16 == 0 and an sm_90 device): the tests check those refusals too. CUDA errors abort (CUDA_CHECK).
// Layouts are row-major and contiguous; dimension letters as in ref/ (T tokens, d features, H heads,
// M, N, K GEMM sizes, KB = ceil(K/128), NB = ceil(N/128)).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "common.cuh"

namespace dsref {
namespace gpu {

// rmsnorm.cu — twin ref/core/rmsnorm.h, op `rmsnorm`.
//   y [T, d] out, x [T, d], w [d], all of dtype dt; eps inside the square root.
constexpr int kRmsnormVersions = 3;
std::string rmsnorm_forward(int version, void* y, const void* x, const void* w, int64_t T, int64_t d, float eps,
                            ElemType dt, cudaStream_t st);

// rope.cu — twin ref/core/rope.h (RopeLayout::Interleaved: pairs (2j, 2j+1)), op `rope`.
//   y [T, H, d_r] out, x [T, H, d_r] of dtype dt, positions [T] int32, inv_freq [d_r/2] double on the
//   device, from rope_inv_freq (plain or YaRN). cos/sin are computed in double and rounded to float.
constexpr int kRopeVersions = 2;
std::string rope_forward(int version, void* y, const void* x, const int32_t* positions, const double* inv_freq,
                         int64_t T, int64_t H, int64_t d_r, ElemType dt, cudaStream_t st);

// swiglu.cu — twin ref/core/swiglu.h swiglu_gate, op `swiglu`.
//   y [n] out = silu(gate) · up; gate [n], up [n], all of dtype dt.
constexpr int kSwigluVersions = 2;
std::string swiglu_forward(int version, void* y, const void* gate, const void* up, int64_t n, ElemType dt,
                           cudaStream_t st);

// fp8_quant.cu — twins ref/fp8/fp8_quant.h, ops `fp8_quant_act`, `fp8_quant_weight`.
//   act:    q [M, K] E4M3 codes out, scale [M, KB] float out, x [M, K] of dtype dt.
//   weight: q [N, K] out, scale_inv [NB, KB] out, w [N, K] of dtype dt.
//   ue8m0: scales rounded up to powers of two (DeepSeek-V3.1 scale_fmt).
constexpr int kActQuantVersions = 3;
std::string fp8_quant_act(int version, uint8_t* q, float* scale, const void* x, int64_t M, int64_t K, bool ue8m0,
                          ElemType dt, cudaStream_t st);
constexpr int kWeightQuantVersions = 2;
std::string fp8_quant_weight(int version, uint8_t* q, float* scale_inv, const void* w, int64_t N, int64_t K,
                             bool ue8m0, ElemType dt, cudaStream_t st);

// fp8_gemm.cu — twin ref/fp8/fp8_gemm.h, op `fp8_gemm`. C = A·Bᵀ with promotion to float32 every 128 of K.
//   c [M, N] out of dtype c_dt; a [M, K] E4M3, a_scale [M, KB]; b [N, K] E4M3, b_scale [NB, KB].
constexpr int kFp8GemmVersions = 3;
std::string fp8_gemm(int version, void* c, ElemType c_dt, const uint8_t* a, const float* a_scale, const uint8_t* b,
                     const float* b_scale, int64_t M, int64_t N, int64_t K, cudaStream_t st);
// v3 with a given tile (bm, bn in {64, 128}) instead of choose_gemm_tile's: the tests run every
// instantiation on the small shapes, which the automatic choice would not all reach.
// Test-only: cap v3's persistent grid at n CTAs (0 = one per SM, the default; the environment variable
// DSREF_V3_MAX_CTAS sets it at start-up), so that each CTA runs several tiles on small shapes.
void fp8_gemm_v3_set_max_ctas(int n);
std::string fp8_gemm_v3_tile(int bm, int bn, void* c, ElemType c_dt, const uint8_t* a, const float* a_scale,
                             const uint8_t* b, const float* b_scale, int64_t M, int64_t N, int64_t K, cudaStream_t st);

// moe.cu — twins ref/moe/moe.h (moe_dispatch_plan, moe_permute, linear_forward per expert, moe_combine).
//   align:    counts [E] out, offsets [E + 1] out (blocks padded to block_m rows), slot_token [slots] out
//             (−1 on padding), token_slot [T·K] out; topk_idx [T, K] int32. slots = offsets[E] ≤
//             T·K + E·(block_m − 1).
//   permute:  xs [slots, d] out, x [T, d] of dtype dt (padding rows zeroed).
//   grouped:  ys [slots, N] out = xs [slots, Kd] · W_eᵀ; w_dev: device array of E device pointers to
//             W_e [N, Kd], all of dtype dt; offsets from align.
//   combine:  y [T, d] out (float32); ys [slots, d] float32, topk_weight [T, K], token_slot [T·K], shared
//             [T, d] or nullptr. Bit-identical to moe_combine.
constexpr int kMoeVersions = 1;
std::string moe_align(int version, int32_t* counts, int32_t* offsets, int32_t* slot_token, int32_t* token_slot,
                      const int32_t* topk_idx, int64_t T, int64_t K, int64_t E, int block_m, cudaStream_t st);
std::string moe_permute(int version, void* xs, const void* x, const int32_t* slot_token, int64_t slots, int64_t d,
                        ElemType dt, cudaStream_t st);
std::string moe_grouped_gemm(int version, void* ys, const void* xs, const void* const* w_dev, const int32_t* offsets,
                             int64_t E, int64_t slots, int64_t N, int64_t Kd, ElemType dt, cudaStream_t st);
std::string moe_combine(int version, float* y, const float* ys, const float* topk_weight, const int32_t* token_slot,
                        const float* shared, int64_t T, int64_t K, int64_t d, cudaStream_t st);

// mla_decode.cu — twin ref/model/mla_decode.h (mla_decode_latent), absorbed MLA decode over a paged
// latent cache.
//   o_lat [B, H, d_c] out float32; q_lat [B, H, d_c] and q_pe [B, H, d_r] float32 (the absorbed queries);
//   cache [pages, page_size, d_c + d_r] bf16 (per token: latent c, then k_pe after RoPE);
//   block_table [B, max_pages] int32 page ids; seq_len [B] int32 (keys 0..seq_len−1 visible).
//   v1: one CTA per (b, h), float32 online softmax. v2: split-KV (num_splits chunks per (b, h)), then a
//   combine kernel merging the partial (m, l, o) in split order.
constexpr int kMlaDecodeVersions = 2;
std::string mla_decode(int version, float* o_lat, const float* q_lat, const float* q_pe, const __nv_bfloat16* cache,
                       const int32_t* block_table, const int32_t* seq_len, int64_t B, int64_t H, int64_t d_c,
                       int64_t d_r, int64_t page_size, int64_t max_pages, int max_seq_len, float scale,
                       cudaStream_t st);

}  // namespace gpu
}  // namespace dsref
