// fp8_gemm.cpp — block-scaled FP8 GEMM, `exact` and `tensorcore` accumulation (V3 report §3.3.2;
// DeepSeek-V3 inference/kernel.py fp8_gemm). The models are described in fp8_gemm.h. Plain loops
// plus Eigen for the double product; OpenMP over fixed row tiles only.
#include "fp8/fp8_gemm.h"

// GCC 12 reports false (maybe-)uninitialized warnings inside Eigen's AVX-512 double kernels (the
// `__Y = __Y` idiom of avx512fintrin.h); they are silenced for Eigen's own code only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <Eigen/Dense>
#pragma GCC diagnostic pop

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "core/fp8_format.h"
#include "fp8/fp8_quant.h"

namespace dsref {

using MatD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Longest partial sum the tensorcore model stages exactly in double (fp8_gemm.h).
static const int64_t kMaxPartialLen = 65536;
// Rows per OpenMP task in the exact model: fixed, so Eigen sees the same shapes at any thread count.
static const int64_t kExactRowTile = 64;

// Clearing the low (52 − bits) bits of a double's mantissa field rounds its magnitude toward zero; adding
// half an ulp minus one, plus the lowest kept bit, first makes that round to nearest even (a carry
// into the exponent field is the correct "next binade"). The sign bit is untouched.
static inline double acc_round(double v, int bits, AccRounding r) {
    const int drop = 52 - bits;
    if (drop <= 0) return v;
    uint64_t u;
    std::memcpy(&u, &v, 8);
    const uint64_t low = (uint64_t(1) << drop) - 1;  // the bits that are dropped
    if (r == AccRounding::Rne) u += (low >> 1) + ((u >> drop) & 1);
    u &= ~low;
    std::memcpy(&v, &u, 8);
    return v;
}

double fp8_acc_round(double v, int mantissa_bits, AccRounding r) {
    if (mantissa_bits < 1 || mantissa_bits > 52)
        usage_fail("acc_mantissa_bits=", mantissa_bits, " must be in 1..52");
    return acc_round(v, mantissa_bits, r);
}

// ---- input checks --------------------------------------------------------------------------------------
static void check_codes(const uint8_t* q, int64_t R, int64_t K, const char* name) {
    for (int64_t r = 0; r < R; r++)
        for (int64_t k = 0; k < K; k++)
            if ((q[r * K + k] & 0x7F) == 0x7F)
                fail("fp8_gemm: ", name, "[", r, ", ", k, "] is the E4M3 NaN code");
}
static void check_scales(const float* s, int64_t R, int64_t C, const char* name) {
    for (int64_t r = 0; r < R; r++)
        for (int64_t c = 0; c < C; c++)
            if (!std::isfinite(s[r * C + c]))
                fail("fp8_gemm: ", name, "[", r, ", ", c, "] = ", s[r * C + c], " is not finite");
}

// A partial sum over [k0, k1) is multiplied by the scales of block k0/128; all blocks it spans must agree.
//   s [R, KB]: a_scale (R = M) or b_scale (R = NB); blocks_per_chunk K blocks per partial sum
static void check_equal_scales(const float* s, int64_t R, int64_t KB, int64_t blocks_per_chunk,
                               int64_t promote_interval, const char* name) {
    for (int64_t r = 0; r < R; r++)
        for (int64_t kb = 0; kb < KB; kb++) {
            const int64_t kb_first = kb - kb % blocks_per_chunk;  // first block of kb's chunk
            if (s[r * KB + kb] != s[r * KB + kb_first])
                fail("fp8_gemm: promote_interval=", promote_interval, " adds K blocks ", kb_first, " and ",
                     kb, " into one partial sum, but ", name, "[", r, ", ", kb, "] = ", s[r * KB + kb],
                     " differs from ", name, "[", r, ", ", kb_first, "] = ", s[r * KB + kb_first],
                     "; a partial sum can only be promoted with one scale (use promote_interval=128)");
        }
}

// ---- exact -----------------------------------------------------------------------------------------------
// Decoded and scaled rows in double: out [R, K] out, q [R, K] codes, s [R / row_div, KB] scales.
static std::vector<double> dequant_f64(const uint8_t* q, const float* s, int64_t R, int64_t K,
                                       int64_t row_div) {
    const int64_t KB = fp8_num_blocks(K);
    std::vector<double> out(R * K);
    for (int64_t r = 0; r < R; r++)
        for (int64_t k = 0; k < K; k++)  // 4-bit × 24-bit significands: exact in double
            out[r * K + k] = (double)fp8_decode(q[r * K + k], Fp8Format::E4M3) *
                             (double)s[(r / row_div) * KB + k / kFp8Block];
    return out;
}

static void gemm_exact(float* c, const uint8_t* a, const float* a_scale, const uint8_t* b,
                       const float* b_scale, int64_t M, int64_t N, int64_t K) {
    const std::vector<double> A = dequant_f64(a, a_scale, M, K, 1);          // [M, K]
    const std::vector<double> B = dequant_f64(b, b_scale, N, K, kFp8Block);  // [N, K]
    const Eigen::Map<const MatD> B_mat(B.data(), N, K);                      // [N, K]
#pragma omp parallel for schedule(dynamic)
    for (int64_t m0 = 0; m0 < M; m0 += kExactRowTile) {
        const int64_t rows = std::min(kExactRowTile, M - m0);
        const Eigen::Map<const MatD> A_tile(A.data() + m0 * K, rows, K);  // [rows, K]
        MatD C_tile(rows, N);                                             // [rows, N]
        C_tile.noalias() = A_tile * B_mat.transpose();
        for (int64_t i = 0; i < rows; i++)
            for (int64_t n = 0; n < N; n++) c[(m0 + i) * N + n] = (float)C_tile(i, n);
    }
}

// ---- tensorcore ----------------------------------------------------------------------------------------
// LAB(fp8_gemm) task: c[m, n] = sum over partial sums of promote_interval products: each partial sum accumulated with
// LAB(fp8_gemm) acc_round (the tensor core's limited mantissa), then promoted: acc = fma(a_scale * b_scale, partial, acc).
// LAB(fp8_gemm) hint: decode the codes once; b_scale is per 128 x 128 block (n / 128); P = K when promote_interval = 0.
static void gemm_tensorcore(float* c, const uint8_t* a, const float* a_scale, const uint8_t* b,
                            const float* b_scale, int64_t M, int64_t N, int64_t K, const Fp8GemmConfig& cfg) {
    // LAB(fp8_gemm): begin
    const int64_t KB = fp8_num_blocks(K);
    const int64_t P = cfg.promote_interval == 0 ? K : cfg.promote_interval;  // K elements per partial sum
    const int bits = cfg.acc_mantissa_bits;
    const AccRounding rounding = cfg.acc_rounding;
    // Raw FP8 values (unscaled): a_val [M, K], b_val [N, K]. A product of two is exact in float32.
    std::vector<float> a_val(M * K), b_val(N * K);
    for (int64_t i = 0; i < M * K; i++) a_val[i] = fp8_decode(a[i], Fp8Format::E4M3);
    for (int64_t i = 0; i < N * K; i++) b_val[i] = fp8_decode(b[i], Fp8Format::E4M3);
#pragma omp parallel for schedule(static)
    for (int64_t m = 0; m < M; m++) {
        const float* a_row = &a_val[m * K];  // [K]
        for (int64_t n = 0; n < N; n++) {
            const float* b_row = &b_val[n * K];  // [K]
            float acc = 0.0f;                    // the FP32 accumulator on the CUDA cores
            for (int64_t k0 = 0; k0 < K; k0 += P) {
                const int64_t k1 = std::min(K, k0 + P);
                double partial = 0.0;  // the tensor core's limited-precision accumulator
                for (int64_t k = k0; k < k1; k++)
                    partial = acc_round(partial + (double)(a_row[k] * b_row[k]), bits, rounding);
                const int64_t kb = k0 / kFp8Block;  // promotion: scale once per partial sum
                const float scale = a_scale[m * KB + kb] * b_scale[(n / kFp8Block) * KB + kb];
                acc = std::fmaf(scale, (float)partial, acc);
            }
            c[m * N + n] = acc;
        }
    }
    // LAB(fp8_gemm): end
}

void fp8_gemm(float* c, const uint8_t* a, const float* a_scale, const uint8_t* b, const float* b_scale,
              int64_t M, int64_t N, int64_t K, const Fp8GemmConfig& cfg) {
    const int64_t KB = fp8_num_blocks(K), NB = fp8_num_blocks(N);
    check_codes(a, M, K, "a");
    check_codes(b, N, K, "b");
    check_scales(a_scale, M, KB, "a_scale");
    check_scales(b_scale, NB, KB, "b_scale");
    if (cfg.accum == Fp8Accum::Exact) {
        gemm_exact(c, a, a_scale, b, b_scale, M, N, K);
        return;
    }
    if (cfg.acc_mantissa_bits < 1 || cfg.acc_mantissa_bits > 52)
        usage_fail("fp8_gemm: acc_mantissa_bits=", cfg.acc_mantissa_bits, " must be in 1..52");
    if (cfg.promote_interval < 0 || cfg.promote_interval % kFp8Block != 0)
        usage_fail("fp8_gemm: promote_interval=", cfg.promote_interval,
                   " must be 0 (never) or a multiple of 128");
    const int64_t P = cfg.promote_interval == 0 ? K : cfg.promote_interval;
    if (std::min(P, K) > kMaxPartialLen)
        fail("fp8_gemm: a partial sum of ", std::min(P, K), " products is longer than ", kMaxPartialLen,
             ", which the tensorcore model cannot stage exactly; use a smaller promote_interval");
    if (P > kFp8Block) {
        const int64_t blocks_per_chunk = fp8_num_blocks(P);  // promote_interval=0: all of K's blocks
        check_equal_scales(a_scale, M, KB, blocks_per_chunk, cfg.promote_interval, "a_scale");
        check_equal_scales(b_scale, NB, KB, blocks_per_chunk, cfg.promote_interval, "b_scale");
    }
    gemm_tensorcore(c, a, a_scale, b, b_scale, M, N, K, cfg);
}

}  // namespace dsref
