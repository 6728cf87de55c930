// host_math.h — the index math of the CUDA kernels, in plain C++17 with no CUDA header, so that
// `make test` checks it on the CPU (tests/test_cuda_host.cpp) and the kernels call the very same
// functions on the device (DSREF_HD is __host__ __device__ under nvcc, plain `inline` under g++).
//
// What lives here, each item used by a kernel in cuda/*.cu:
//   1. block counts and scale indexing of the 1×128 / 128×128 FP8 layouts (DeepSeek-V3 kernel.py, README_WEIGHTS.md);
//   2. E4M3 decode and the ue8m0 scale rounding as bit operations (twins: ref/core/fp8_format.h, ref/fp8/fp8_quant.h);
//   3. the 128-byte shared-memory swizzle (TMA CU_TENSOR_MAP_SWIZZLE_128B and our cp.async tiles);
//   4. the Hopper wgmma shared-memory matrix descriptor (PTX ISA "Matrix Descriptor Format");
//   5. register-fragment maps: which (row, col) of a tile each thread holds for mma.sync m16n8k32
//      (FP8), for ldmatrix, and for the wgmma m64nNk32 FP32 accumulator;
//   6. tile scheduling of the GEMM (grouped rasterization of a persistent grid, tile-size choice);
//   7. the (stage, phase) bookkeeping of an mbarrier ring;
//   8. a counter-based N(0,1) generator, identical on host and device up to libm rounding.
//
// The tests check what can be checked without a GPU: that every map is a bijection onto its tile,
// that ldmatrix delivers exactly the mma fragments, that decode/rounding agree with the CPU twins
// bit for bit, that the descriptor fields sit where the PTX ISA puts them. They cannot check that
// the hardware reads the layouts the way the ISA documents them: only a GPU run can.
#pragma once
#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define DSREF_HD __host__ __device__ __forceinline__
#else
#define DSREF_HD inline
#endif

namespace dsref {
namespace gpu {

// ---- 1. blocks and scales ------------------------------------------------------------------------
constexpr int kQuantBlock = 128;  // 1×128 activation groups, 128×128 weight blocks, N_C = 128

DSREF_HD int64_t ceil_div(int64_t a, int64_t b) {
    return (a + b - 1) / b;
}
// Number of 128-wide groups covering n elements (fp8_num_blocks of ref/fp8/fp8_quant.h).
DSREF_HD int64_t quant_blocks(int64_t n) {
    return ceil_div(n, kQuantBlock);
}
// a_scale [M, KB]: the scale of A[m, k].
DSREF_HD int64_t act_scale_index(int64_t m, int64_t k, int64_t KB) {
    return m * KB + k / kQuantBlock;
}
// b_scale [NB, KB]: the scale of B[n, k].
DSREF_HD int64_t weight_scale_index(int64_t n, int64_t k, int64_t KB) {
    return (n / kQuantBlock) * KB + k / kQuantBlock;
}

// ---- 2. E4M3 and ue8m0 as bit operations ----------------------------------------------------------
// float32 bit pattern of an E4M3FN code (exact). Normal: (−1)^s·2^(e−7)·(1 + m/8) → float exponent
// e − 7 + 127, mantissa m in the top 3 bits. Subnormal (e = 0): m·2^−9 = (m/4)·2^−7, written as a
// normal float: m = 1 → 2^−9, m = 2,3 → 2^−8·(1, 1.5), m = 4..7 → 2^−7·(1 + (m−4)/4).
// 0x7F/0xFF (the only NaNs) give a quiet NaN with the code's sign.
DSREF_HD uint32_t e4m3_to_f32_bits(uint8_t code) {
    const uint32_t sign = (uint32_t)(code & 0x80) << 24;
    const uint32_t e = (code >> 3) & 0xF, m = code & 0x7;
    if (e == 0xF && m == 0x7) return sign | 0x7FC00000u;
    if (e != 0) return sign | ((e + 120u) << 23) | (m << 20);
    if (m == 0) return sign;
    // subnormal: find the leading one of m (bit p), value = 2^(p−9)·(m / 2^p)
    const uint32_t p = (m >= 4) ? 2u : (m >= 2) ? 1u : 0u;
    const uint32_t frac = (m << (23 - p)) & 0x7FFFFFu;  // bits below the leading one
    return sign | ((127u - 9u + p) << 23) | frac;
}

// The smallest power of two ≥ s for a positive normal float32 s given by its bits (ue8m0 scale
// rounding of ref/fp8/fp8_quant.h): s itself if its mantissa is zero, else 2^(exponent + 1).
DSREF_HD uint32_t ue8m0_round_up_bits(uint32_t s_bits) {
    if ((s_bits & 0x7FFFFFu) == 0) return s_bits;
    return ((s_bits >> 23) + 1u) << 23;
}

// ---- 3. the 128-byte swizzle -------------------------------------------------------------------------
// A tile whose rows are 128 bytes long, 1024-byte aligned: the 16-byte chunk c of row r is stored at
// chunk c XOR (r mod 8). This is CU_TENSOR_MAP_SWIZZLE_128B (TMA applies it to address bits 4-6 using
// bits 7-9) and what wgmma's SWIZZLE_128B descriptor mode expects. Eight consecutive rows read at the
// same logical chunk hit eight different 16-byte bank groups, so ldmatrix is conflict-free.
DSREF_HD uint32_t swizzle128_offset(uint32_t row, uint32_t byte_in_row) {
    return row * 128u + ((((byte_in_row >> 4) ^ (row & 7u)) & 7u) << 4) + (byte_in_row & 15u);
}

// ---- 4. the wgmma shared-memory descriptor (PTX ISA 9.7.15.5.1, sm_90a) ------------------------------
//   bits  0-13  start address >> 4
//   bits 16-29  leading-dimension byte offset >> 4 (unused for swizzled K-major operands whose K
//               extent per instruction fits in one swizzle row, 32 bytes of FP8 here; 0, as DeepGEMM's
//               SM90 FP8 kernels set it for this same layout)
//   bits 32-45  stride-dimension byte offset >> 4: distance between consecutive 8-row groups
//   bits 49-51  base offset (0: the tile is 1024-byte aligned)
//   bits 62-63  swizzle mode: 0 none, 1 = 128B, 2 = 64B, 3 = 32B
// For our K-major 128B-swizzled tiles (rows of 128 bytes) the 8-row stride is 8·128 = 1024 bytes.
// Moving along K inside the 128-byte row adds k·32 bytes to the start address (2·k in the field):
// the swizzle is applied to the final address bits, as TMA applied it when writing.
constexpr uint32_t kWgmmaSwizzle128 = 1;
DSREF_HD uint64_t wgmma_desc_sw128(uint32_t smem_addr, uint32_t stride_bytes) {
    uint64_t d = 0;
    d |= (uint64_t)((smem_addr >> 4) & 0x3FFFu);
    // leading byte offset (bits 16-29): 0, unused
    d |= (uint64_t)((stride_bytes >> 4) & 0x3FFFu) << 32;
    d |= (uint64_t)kWgmmaSwizzle128 << 62;
    return d;
}

// ---- 5. register fragments ----------------------------------------------------------------------------
// mma.sync.m16n8k32 with 8-bit A (16×32, row-major) and B (32×8, "col": K contiguous per column n), PTX
// ISA 9.7.14.5.x. lane = 0..31, g = lane/4 ("groupID"), t = lane%4. A: 4 registers of 4 bytes:
// reg r holds row g + 8·(r%2), columns 16·(r/2) + 4t + byte.
DSREF_HD int mma_a_row(int lane, int reg) {
    return lane / 4 + 8 * (reg % 2);
}
DSREF_HD int mma_a_col(int lane, int reg, int byte) {
    return 16 * (reg / 2) + 4 * (lane % 4) + byte;
}
// B: 2 registers of 4 bytes: reg r holds column n = g, rows k = 16·r + 4t + byte.
DSREF_HD int mma_b_n(int lane) {
    return lane / 4;
}
DSREF_HD int mma_b_k(int lane, int reg, int byte) {
    return 16 * reg + 4 * (lane % 4) + byte;
}
// C/D (16×8 float): element i = 0..3 at row g + 8·(i/2), column 2t + i%2.
DSREF_HD int mma_c_row(int lane, int i) {
    return lane / 4 + 8 * (i / 2);
}
DSREF_HD int mma_c_col(int lane, int i) {
    return 2 * (lane % 4) + (i % 2);
}

// ldmatrix.x4 (m8n8, b16): lane L gives the address of row L%8 of matrix L/8, and every lane then
// receives, from each matrix q, the 4 bytes at row lane/4, bytes 4·(lane%4) .. +3 of that matrix.
// For an FP8 A fragment (16 rows × 32 bytes of K at byte offset k0 of the row):
//   matrix q = rows 8·(q%2) .. +7, bytes k0 + 16·(q/2) .. +15  → register q of the mma A fragment.
DSREF_HD int ldsm_a_row(int lane) {
    return 8 * ((lane / 8) % 2) + lane % 8;
}
DSREF_HD int ldsm_a_byte(int lane, int k0) {
    return k0 + 16 * ((lane / 8) / 2);
}
// For two FP8 B fragments (16 rows n × 32 bytes of K): matrix q = rows n 8·(q/2) .. +7,
// bytes k0 + 16·(q%2) .. +15 → register q%2 of the fragment of n-tile q/2.
DSREF_HD int ldsm_b_row(int lane) {
    return 8 * ((lane / 8) / 2) + lane % 8;
}
DSREF_HD int ldsm_b_byte(int lane, int k0) {
    return k0 + 16 * ((lane / 8) % 2);
}

// wgmma m64nNk32 FP32 accumulator (PTX ISA "Register fragments ... matrix D"): thread t = 0..127 of
// the warpgroup, warp w = t/32, lane l = t%32; register i = 0..N/2−1 holds
//   row 16w + l/4 + 8·((i/2) % 2),  column 8·(i/4) + 2·(l%4) + i%2.
DSREF_HD int wgmma_acc_row(int t, int i) {
    return 16 * (t / 32) + (t % 32) / 4 + 8 * ((i / 2) % 2);
}
DSREF_HD int wgmma_acc_col(int t, int i) {
    return 8 * (i / 4) + 2 * (t % 4) + (i % 2);
}

// ---- 6. GEMM tile scheduling ----------------------------------------------------------------------------
// Grouped rasterization: tiles are numbered so that consecutive tile indices (which run at the same
// time on a persistent grid) walk down `group` m-blocks of one column of n-blocks before moving to the
// next column; a wave of CTAs then shares a few B panels and a few A panels in L2.
//   tile in [0, m_blocks·n_blocks) → (m_block, n_block); a bijection (tested).
struct TileCoord {
    int m_block, n_block;
};
DSREF_HD TileCoord tile_coords(int tile, int m_blocks, int n_blocks, int group) {
    const int per_group = group * n_blocks;    // tiles in one band of `group` m-blocks
    const int band = tile / per_group;
    const int first_m = band * group;
    const int rows = (m_blocks - first_m) < group ? (m_blocks - first_m) : group;  // last band may be short
    const int in_band = tile - band * per_group;
    return TileCoord{first_m + in_band % rows, in_band / rows};
}

// Share of the SM-slots of the last wave that has work: tiles / (waves · SMs), in (0, 1].
DSREF_HD double wave_efficiency(int64_t tiles, int num_sms) {
    return (double)tiles / (double)(ceil_div(tiles, num_sms) * num_sms);
}

// v3 tile shape. BM = 64 rows when M ≤ 64 (one consumer warpgroup), else 128 (two). BN divides 128, so
// every tile sees one B scale per K block:
//   M ≤ 128 (decode: memory-bound, every SM should be pulling B): the BN of {128, 64} whose tiles fill
//           the waves best (ties go to 128);
//   M > 128 (compute-bound): 128, halved only when 128-wide tiles would not even fill one wave.
struct GemmTile {
    int bm, bn;
};
DSREF_HD GemmTile choose_gemm_tile(int64_t M, int64_t N, int num_sms) {
    GemmTile t;
    t.bm = M <= 64 ? 64 : 128;
    const int64_t tiles128 = ceil_div(M, t.bm) * ceil_div(N, 128), tiles64 = ceil_div(M, t.bm) * ceil_div(N, 64);
    if (M <= 128)
        t.bn = wave_efficiency(tiles64, num_sms) > wave_efficiency(tiles128, num_sms) ? 64 : 128;
    else
        t.bn = tiles128 < num_sms ? 64 : 128;
    return t;
}

// ---- 7. mbarrier ring -------------------------------------------------------------------------------------
// Iteration `it` (counted over all tiles of a CTA) uses stage it % S; the consumer waits for the
// completion of phase parity (it / S) % 2 of the stage's "full" barrier, and the producer for parity
// ((it / S) % 2) ^ 1 of its "empty" barrier: on a fresh barrier that parity counts as already
// completed, so the first S loads do not wait.
DSREF_HD uint32_t ring_stage(uint32_t it, uint32_t stages) {
    return it % stages;
}
DSREF_HD uint32_t ring_phase(uint32_t it, uint32_t stages) {
    return (it / stages) & 1u;
}

// ---- 8. N(0,1) inputs ---------------------------------------------------------------------------------------
// splitmix64 of (seed, i), then Box-Muller on two 24-bit uniforms: element i of a stream depends only on
// (seed, i), so host and device fill the same tensor in any order (values agree to libm rounding).
DSREF_HD uint64_t splitmix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}
DSREF_HD float randn_at(uint64_t seed, uint64_t i) {
    const uint64_t r = splitmix64(seed * 0xD1B54A32D192ED03ull + i);
    const float u1 = ((float)(uint32_t)(r >> 40) + 1.0f) * (1.0f / 16777216.0f);       // (0, 1]
    const float u2 = (float)(uint32_t)((r >> 16) & 0xFFFFFFu) * (1.0f / 16777216.0f);  // [0, 1)
    return sqrtf(-2.0f * logf(u1)) * cosf(6.2831853071795865f * u2);
}

}  // namespace gpu
}  // namespace dsref
