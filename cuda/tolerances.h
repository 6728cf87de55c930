// tolerances.h — every tolerance of the CUDA golden tests (cuda/test_cuda.cu), each with its reason.
//
// Policy (cuda/README.md, "Targets and method"; the atol + rtol·|ref| form is llm.c's validate_result):
//   - quantizers: bit-exact against the CPU twin (codes and scales), no tolerance at all;
//   - fp32 / bf16 element-wise kernels: |gpu − ref| ≤ atol + rtol·|ref|, with rtol derived below from the
//     float32 roundings the kernel makes (u = 2^-24, the unit roundoff) plus the bf16 output rounding;
//   - FP8 GEMM: DeepGEMM's global metric 1 − 2⟨x,y⟩/(⟨x,x⟩+⟨y,y⟩) < 1e-3 against the `exact` twin, and the
//     error envelope of the `tensorcore` twin (Hopper FP8 accumulator emulation, promotion every 128);
//     the naive v1 (fp32 partial sums) also meets a rigorous per-element bound.
// The references are the twins in ref/, run through dsref::run_op: they compute in double (RMSNorm's Σx²,
// SwiGLU, RoPE's angles, exact GEMM) and round once to float32.
#pragma once
#include <cstdint>

namespace dsref {
namespace gpu {
namespace tol {

constexpr double kU = 1.0 / 16777216.0;  // 2^-24, float32 unit roundoff

// A bf16 output is the round-to-nearest-even of a float32 result. bf16 has 8 significant bits, so the
// relative rounding error is ≤ 2^-8 (half an ulp of 2^-7 relative spacing at the bottom of a binade).
// 2^-8·(1 + 2^-7) leaves a margin of 2^-7 of the bound for the float32 error underneath (the per-kernel
// float32 rtol is added separately and absorbs the cross term).
constexpr double kBf16OutRtol = (1.0 / 256.0) * (1.0 + 1.0 / 128.0);

// Smallest positive normal float32: used as atol where no cancellation can occur, so that an exact zero
// (x = 0 or w = 0) passes and nothing else is excused.
constexpr double kTinyAtol = 1.1754943508222875e-38;

struct Tol {
    double atol, rtol;
};

// RMSNorm, y = x · w / sqrt(Σx²/d + eps). Σx² of d non-negative terms summed in float32 in any order
// (sequential in v1, per-thread then tree in v2/v3) has relative error ≤ (d − 1)·u; the square root
// halves it; the division, 1/sqrt and the two products add ≤ 4 roundings (8u allowed). No cancellation,
// so the bound is relative. The bound is the worst case; typical errors are ~sqrt(d)·u.
inline Tol rmsnorm(int64_t d, bool bf16_out) {
    return Tol{kTinyAtol, (0.5 * (double)d + 8.0) * kU + (bf16_out ? kBf16OutRtol : 0.0)};
}

// RoPE, out = a·cos − b·sin (and a·sin + b·cos). cos/sin are the float32 roundings of double values on
// both sides (u each), each product and the sum round once, and CUDA may fuse one product into an fma:
// ≤ 4u·(|a| + |b|) in all, 8u allowed. Cancellation makes the bound absolute in |a| + |b|, so the
// test passes atol = rope_atol(a, b) per element.
inline double rope_atol(float a, float b) {
    const double aa = a < 0 ? -(double)a : (double)a, bb = b < 0 ? -(double)b : (double)b;
    return 8.0 * kU * (aa + bb) + kTinyAtol;
}
inline double rope_rtol(bool bf16_out) {
    return bf16_out ? kBf16OutRtol : 0.0;
}

// SwiGLU, y = g / (1 + expf(−g)) · u in float32. expf is within 2 ulp (CUDA Programming Guide, maximum
// ulp errors of single-precision functions) = 4u relative, which 1 + e passes on undiminished; the add,
// the division and the product round once each: ≤ 7u, 16u allowed. atol 1e-30 covers only gate < −87,
// where expf(−g) overflows to inf and the GPU gives 0 instead of a value below 1e-36 (no N(0,1) input
// gets there).
inline Tol swiglu(bool bf16_out) {
    return Tol{1e-30, 16.0 * kU + (bf16_out ? kBf16OutRtol : 0.0)};
}

// FP8 GEMM ------------------------------------------------------------------------------------------------
// DeepGEMM's calc_diff: 1 − 2·Σ x·y / Σ (x² + y²) over all checked elements, against the exact twin.
constexpr double kGemmDiffMax = 1e-3;

// Rounding of the float32 promotion path that the tensorcore twin models exactly but the GPU may order
// differently: per element, (KB + 2)·u·Σ_k |a_k·b_k|·scales (one fma per K block, the scale product, the
// final conversion). `absdot` is that scaled absolute dot product.
inline double gemm_promotion_slack(int64_t KB, double absdot) {
    return (double)(KB + 2) * kU * absdot;
}

// Envelope: the GPU may not be much less accurate than the Hopper accumulator model. Over the checked
// elements,
//   max (|gpu − exact| − out_round) ≤ kGemmEnvelopeFactor · max |tensorcore − exact| + max slack,
// out_round = kBf16OutRtol·|exact| for a bf16 C, 0 for float32. The comparison is of the maxima, not element
// by element: the hardware and the model round different sums (the tensor core adds its products in
// groups, the model one by one), so their errors at one element are independent draws of the same size.

//
// Why a factor 2 and not 1: the model truncates toward zero after every add. The hardware's alignment and
// rounding of the accumulator are not published; a CPU simulation at K = 7168 with 14-bit accumulation
// gives 0.25–0.32 × the model's error for group adders that truncate toward zero, but 1.55–1.74 × for
// two's-complement (floor) alignment, which is as plausible. A correct kernel must not fail because the
// silicon rounds the other way, so the gate is 2× until one GPU run calibrates it; the test prints the
// ratio err/env per case and the signed mean of (gpu − exact)/absdot (≈ 0 for truncation toward zero or
// round-to-nearest, clearly negative for floor) so that the run says which model holds. A wrong scale
// index is still caught: the test data multiply A's groups and B's blocks by random 2^[−4, 4] factors, so
// such a bug gives an O(1) relative error, far above 2× the envelope, and calc_diff < 1e-3 guards too.
constexpr double kGemmEnvelopeFactor = 2.0;

// The envelope is a statistic: with fewer than kGemmEnvelopeMinElems checked elements (the 1×1 and 1×128
// outputs of the smallest cases) a maximum of a handful of draws says little, and the test uses the
// accumulator model's worst case per element instead: each of the ≤ 128 adds of a block truncates the
// running partial sum to 14 significant bits, losing < 2^-13 of its magnitude, which is at most the block's
// Σ|products|: ≤ 128·2^-13·Σ|a·b| = 2^-6·absdot in all. Loose, but a bound of the model, not a guess.
constexpr int64_t kGemmEnvelopeMinElems = 256;
inline double gemm_tensorcore_worst(double absdot) {
    return absdot / 64.0;
}

// v1 (one thread per output, float32 partial sums): rigorous first-order bound per element. The 128
// products of a K block are exact in float32 (4-bit × 4-bit significands); their sum rounds ≤ 127 times,
// relative to Σ|products|; then the scale product, one fma per block and the output: (127 + KB + 3)·u.
inline double gemm_v1_bound(int64_t KB, double absdot) {
    return (double)(127 + KB + 3) * kU * absdot;
}

}  // namespace tol
}  // namespace gpu
}  // namespace dsref
