// test_cuda_host.cpp — covers cuda/host_math.h (the index math of the CUDA kernels, run here on the CPU)
// and the `swiglu` op of ref/ops/ops_swiglu.cpp (the CPU twin of cuda/swiglu.cu).
//
// Without a GPU these are the checks that can be made of the kernels' layouts: every fragment map and the
// tile schedule are bijections onto their tiles, ldmatrix (simulated from its PTX description) hands each
// lane exactly its mma fragment through the swizzled tile, the mbarrier ring never lets the producer
// overwrite an unread stage, and the bit tricks agree with the CPU twins bit for bit.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <random>
#include <set>
#include <vector>

#include "../cuda/host_math.h"
#include "core/error.h"
#include "core/fp8_format.h"
#include "fp8/fp8_quant.h"
#include "ops/op_registry.h"

using namespace dsref;
using namespace dsref::gpu;

namespace {
uint32_t float_bits(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
}
float bits_float(uint32_t u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}
}  // namespace

TEST_CASE("e4m3_to_f32_bits decodes all 256 codes exactly like ref/core/fp8_format.h", "[cuda-host][fp8]") {
    for (int c = 0; c < 256; c++) {
        const float want = fp8_decode((uint8_t)c, Fp8Format::E4M3);
        const float got = bits_float(e4m3_to_f32_bits((uint8_t)c));
        INFO("code " << c);
        if (std::isnan(want)) {
            CHECK(std::isnan(got));
            CHECK(std::signbit(got) == std::signbit(want));
        } else {
            CHECK(float_bits(got) == float_bits(want));  // also distinguishes -0 from +0
        }
    }
    // hand values from the E4M3 definition (ref/core/fp8_format.h)
    CHECK(bits_float(e4m3_to_f32_bits(0x38)) == 1.0f);
    CHECK(bits_float(e4m3_to_f32_bits(0x7E)) == 448.0f);
    CHECK(bits_float(e4m3_to_f32_bits(0x01)) == std::ldexp(1.0f, -9));
    CHECK(bits_float(e4m3_to_f32_bits(0x07)) == 7.0f * std::ldexp(1.0f, -9));
}

TEST_CASE("ue8m0_round_up_bits agrees with ue8m0_round_up of the twin", "[cuda-host][fp8]") {
    std::mt19937 g(7);
    std::uniform_real_distribution<float> e(-30.0f, 30.0f);
    std::vector<float> vals;
    for (int i = 0; i < 20000; i++) vals.push_back(std::exp2(e(g)));
    for (int k = -40; k <= 40; k++) {  // powers of two and their neighbours
        const float p = std::ldexp(1.0f, k);
        vals.push_back(p);
        vals.push_back(std::nextafter(p, 0.0f));
        vals.push_back(std::nextafter(p, INFINITY));
    }
    vals.push_back(1e-4f / 448.0f);  // the clamped scale of an all-zero group
    for (float s : vals) {
        INFO("s = " << s);
        CHECK(ue8m0_round_up_bits(float_bits(s)) == float_bits(ue8m0_round_up(s)));
    }
}

TEST_CASE("block counts and scale indices follow the 1x128 / 128x128 layouts", "[cuda-host][fp8]") {
    CHECK(quant_blocks(0) == 0);
    CHECK(quant_blocks(1) == 1);
    CHECK(quant_blocks(128) == 1);
    CHECK(quant_blocks(129) == 2);
    CHECK(quant_blocks(7168) == 56);
    for (int64_t n : {1, 127, 128, 300, 1001})
        CHECK(quant_blocks(n) == fp8_num_blocks(n));
    const int64_t N = 300, K = 1001, KB = quant_blocks(K), NB = quant_blocks(N);
    std::vector<int> hits(NB * KB, 0);
    for (int64_t n = 0; n < N; n++)
        for (int64_t k = 0; k < K; k++) {
            const int64_t i = weight_scale_index(n, k, KB);
            REQUIRE(i >= 0);
            REQUIRE(i < NB * KB);
            REQUIRE(i == (n / 128) * KB + (k / 128));
            hits[i]++;
        }
    // edge blocks are partial: block (2, 7) covers rows 256..299 and cols 896..1000
    CHECK(hits[2 * KB + 7] == 44 * 105);
    CHECK(hits[0] == 128 * 128);
    CHECK(act_scale_index(3, 1000, KB) == 3 * KB + 7);
}

TEST_CASE("swizzle128 is a bijection, keeps 16-byte chunks whole and spreads 8 rows over 8 bank groups",
          "[cuda-host][swizzle]") {
    const uint32_t rows = 128;
    std::vector<int> seen(rows * 128, 0);
    for (uint32_t r = 0; r < rows; r++)
        for (uint32_t b = 0; b < 128; b++) {
            const uint32_t o = swizzle128_offset(r, b);
            REQUIRE(o < rows * 128);
            seen[o]++;
            CHECK(o / 128 == r);                                    // stays in its row
            CHECK(o % 16 == b % 16);                                // chunks stay whole
            if (b % 16) CHECK(o == swizzle128_offset(r, b - 1) + 1);
        }
    CHECK(std::all_of(seen.begin(), seen.end(), [](int v) { return v == 1; }));
    // rows r0..r0+7 at the same logical chunk: 8 distinct physical chunks (conflict-free ldmatrix)
    for (uint32_t r0 = 0; r0 < rows; r0 += 8)
        for (uint32_t c = 0; c < 8; c++) {
            std::set<uint32_t> groups;
            for (uint32_t r = r0; r < r0 + 8; r++) groups.insert((swizzle128_offset(r, c * 16) / 16) % 8);
            CHECK(groups.size() == 8);
        }
    // TMA's rule on address bits: bits 4-6 ^= bits 7-9 of the offset inside a 1024-byte aligned tile
    for (uint32_t r = 0; r < 16; r++)
        for (uint32_t b = 0; b < 128; b += 16) {
            const uint32_t plain = r * 128 + b;
            CHECK(swizzle128_offset(r, b) == (plain ^ (((plain >> 7) & 7u) << 4)));
        }
}

TEST_CASE("the wgmma descriptor puts each field where the PTX ISA says", "[cuda-host][wgmma]") {
    const uint32_t addr = 0x12400;  // a 1024-byte aligned shared address
    const uint64_t d = wgmma_desc_sw128(addr, 1024);
    CHECK((d & 0x3FFF) == (addr >> 4));
    CHECK(((d >> 16) & 0x3FFF) == 0);
    CHECK(((d >> 32) & 0x3FFF) == 1024 / 16);
    CHECK(((d >> 49) & 0x7) == 0);
    CHECK((d >> 62) == 1);
    // advancing 32 bytes along K adds 2 to the address field and nothing else
    CHECK(wgmma_desc_sw128(addr + 32, 1024) == d + 2);
    CHECK(wgmma_desc_sw128(addr + 96, 1024) == d + 6);
}

TEST_CASE("mma.sync m16n8k32 fragments and the wgmma accumulator cover their tiles exactly once",
          "[cuda-host][mma]") {
    std::vector<int> a(16 * 32, 0), b(32 * 8, 0), c(16 * 8, 0);
    for (int lane = 0; lane < 32; lane++) {
        for (int r = 0; r < 4; r++)
            for (int byte = 0; byte < 4; byte++) a[mma_a_row(lane, r) * 32 + mma_a_col(lane, r, byte)]++;
        for (int r = 0; r < 2; r++)
            for (int byte = 0; byte < 4; byte++) b[mma_b_k(lane, r, byte) * 8 + mma_b_n(lane)]++;
        for (int i = 0; i < 4; i++) c[mma_c_row(lane, i) * 8 + mma_c_col(lane, i)]++;
    }
    auto all_one = [](const std::vector<int>& v) { return std::all_of(v.begin(), v.end(), [](int x) { return x == 1; }); };
    CHECK(all_one(a));
    CHECK(all_one(b));
    CHECK(all_one(c));
    for (int N : {64, 128}) {
        std::vector<int> d(64 * N, 0);
        for (int t = 0; t < 128; t++)
            for (int i = 0; i < N / 2; i++) {
                const int row = wgmma_acc_row(t, i), col = wgmma_acc_col(t, i);
                REQUIRE(row < 64);
                REQUIRE(col < N);
                d[row * N + col]++;
                // each thread holds exactly two rows, 8 apart (the two a_scale values it loads)
                CHECK((row == wgmma_acc_row(t, 0) || row == wgmma_acc_row(t, 0) + 8));
                if (i % 2) CHECK(col == wgmma_acc_col(t, i - 1) + 1);  // pairs are adjacent columns
            }
        CHECK(all_one(d));
    }
}

// ldmatrix.x4 as the PTX ISA describes it: lane L supplies the address of row L%8 of matrix L/8; lane T
// receives, for each matrix q, the 4 bytes at row T/4, bytes 4·(T%4)..+3 of that matrix.
static void ldmatrix_x4(const std::vector<uint8_t>& smem, const uint32_t addr[32], uint8_t out[32][4][4]) {
    for (int T = 0; T < 32; T++)
        for (int q = 0; q < 4; q++)
            for (int byte = 0; byte < 4; byte++) out[T][q][byte] = smem[addr[8 * q + T / 4] + 4 * (T % 4) + byte];
}

TEST_CASE("ldmatrix through the swizzled tile delivers exactly the mma.sync FP8 fragments", "[cuda-host][mma]") {
    // a 64-row × 128-byte tile with distinct byte values per (row, k) modulo 256, placed swizzled
    const int rows = 64;
    std::vector<uint8_t> logical(rows * 128), smem(rows * 128);
    std::mt19937 g(3);
    for (auto& v : logical) v = (uint8_t)g();
    for (int r = 0; r < rows; r++)
        for (int k = 0; k < 128; k++) smem[swizzle128_offset(r, k)] = logical[r * 128 + k];
    for (int row0 : {0, 16, 48})
        for (int k0 : {0, 32, 64, 96}) {
            uint32_t addr[32];
            uint8_t frag[32][4][4];
            // A: 16 rows × 32 bytes
            for (int L = 0; L < 32; L++) addr[L] = swizzle128_offset(row0 + ldsm_a_row(L), ldsm_a_byte(L, k0));
            ldmatrix_x4(smem, addr, frag);
            for (int T = 0; T < 32; T++)
                for (int r = 0; r < 4; r++)
                    for (int byte = 0; byte < 4; byte++)
                        REQUIRE(frag[T][r][byte] ==
                                logical[(row0 + mma_a_row(T, r)) * 128 + k0 + mma_a_col(T, r, byte)]);
            // B: rows are n, two n8 tiles × 32 bytes of K
            for (int L = 0; L < 32; L++) addr[L] = swizzle128_offset(row0 + ldsm_b_row(L), ldsm_b_byte(L, k0));
            ldmatrix_x4(smem, addr, frag);
            for (int T = 0; T < 32; T++)
                for (int q = 0; q < 4; q++) {
                    const int ntile = q / 2, reg = q % 2;
                    for (int byte = 0; byte < 4; byte++)
                        REQUIRE(frag[T][q][byte] ==
                                logical[(row0 + 8 * ntile + mma_b_n(T)) * 128 + k0 + mma_b_k(T, reg, byte)]);
                }
        }
}

TEST_CASE("grouped tile rasterization is a bijection for any grid", "[cuda-host][schedule]") {
    for (int mb : {1, 2, 3, 7, 32, 33})
        for (int nb : {1, 5, 17, 56, 192})
            for (int group : {1, 4, 8, 16}) {
                std::vector<int> seen(mb * nb, 0);
                for (int t = 0; t < mb * nb; t++) {
                    const TileCoord c = tile_coords(t, mb, nb, group);
                    REQUIRE(c.m_block >= 0);
                    REQUIRE(c.m_block < mb);
                    REQUIRE(c.n_block >= 0);
                    REQUIRE(c.n_block < nb);
                    seen[c.m_block * nb + c.n_block]++;
                }
                INFO(mb << " x " << nb << " group " << group);
                CHECK(std::all_of(seen.begin(), seen.end(), [](int v) { return v == 1; }));
            }
    // consecutive tiles walk down a band of m-blocks first
    CHECK(tile_coords(1, 32, 56, 8).m_block == 1);
    CHECK(tile_coords(1, 32, 56, 8).n_block == 0);
    CHECK(tile_coords(8, 32, 56, 8).n_block == 1);
}

TEST_CASE("choose_gemm_tile picks 64-row tiles for decode and the BN that fills the waves",
          "[cuda-host][schedule]") {
    CHECK(choose_gemm_tile(64, 7168, 132).bm == 64);
    CHECK(choose_gemm_tile(64, 7168, 132).bn == 64);     // 56 tiles of 128 (42 % of a wave) vs 112 (85 %)
    CHECK(choose_gemm_tile(128, 24576, 132).bn == 64);   // 192 tiles = 1.45 waves (73 %) vs 384 (97 %)
    CHECK(choose_gemm_tile(128, 2048, 16).bn == 128);    // 16 tiles fill 16 SMs exactly: keep the big tile
    CHECK(choose_gemm_tile(4096, 7168, 132).bm == 128);
    CHECK(choose_gemm_tile(4096, 7168, 132).bn == 128);
    CHECK(choose_gemm_tile(4096, 2112, 132).bn == 128);  // compute-bound: big tiles even at 82 % of a wave
    CHECK(choose_gemm_tile(256, 256, 132).bn == 64);     // 4 tiles of 128: less than one wave
    CHECK(choose_gemm_tile(1, 1, 132).bm == 64);
    CHECK(wave_efficiency(132, 132) == 1.0);
    CHECK(wave_efficiency(133, 132) == Approx(133.0 / 264.0));
    for (int64_t M : {1, 64, 65, 128, 4096})
        for (int64_t N : {1, 2112, 24576}) CHECK(128 % choose_gemm_tile(M, N, 132).bn == 0);
}

// The mbarrier model: a barrier has a current phase c (starts at 0); try_wait.parity(p) succeeds when the
// phase of parity p has completed, i.e. when (c & 1) != p. full[s] completes a phase when the producer's
// load lands; empty[s] when the consumer releases the stage.
TEST_CASE("the mbarrier ring parities never let the producer overwrite an unread stage", "[cuda-host][pipeline]") {
    for (uint32_t S : {1u, 2u, 4u, 6u})
        for (uint32_t seed = 0; seed < 20; seed++) {
            std::mt19937 g(seed);
            std::vector<uint32_t> full(S, 0), empty(S, 0);
            std::vector<int64_t> content(S, -1);
            uint32_t prod = 0, cons = 0;
            const uint32_t total = 200;
            while (cons < total) {
                if (prod < total && (g() & 1)) {
                    const uint32_t s = ring_stage(prod, S), p = ring_phase(prod, S) ^ 1u;
                    if ((empty[s] & 1u) != p) {
                        REQUIRE(content[s] == -1);  // the stage was released
                        content[s] = prod;
                        full[s]++;
                        prod++;
                    }
                } else {
                    const uint32_t s = ring_stage(cons, S), p = ring_phase(cons, S);
                    if ((full[s] & 1u) != p) {
                        REQUIRE(content[s] == (int64_t)cons);  // the right data, in order
                        content[s] = -1;
                        empty[s]++;
                        cons++;
                    }
                }
            }
            CHECK(prod == total);
        }
}

TEST_CASE("randn_at is deterministic, finite and N(0,1)", "[cuda-host][random]") {
    const int n = 200000;
    double s1 = 0, s2 = 0;
    for (int i = 0; i < n; i++) {
        const float v = randn_at(42, i);
        REQUIRE(std::isfinite(v));
        s1 += v;
        s2 += (double)v * v;
    }
    const double mean = s1 / n, var = s2 / n - mean * mean;
    CHECK(std::fabs(mean) < 0.01);     // standard error 1/sqrt(2e5) = 0.0022
    CHECK(std::fabs(var - 1) < 0.02);  // standard error sqrt(2/2e5) = 0.0032
    // Each element against an independent evaluation of its definition (splitmix64 of seed·φ' + i, then
    // Box-Muller on the two 24-bit uniforms), written out here and computed in double: agreement to float
    // rounding of log/sqrt/cos (1e-5 relative covers a few float ulps of each factor).
    auto mix = [](uint64_t x) {
        x += 0x9E3779B97F4A7C15ull;
        x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
        x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
        return x ^ (x >> 31);
    };
    for (uint64_t seed : {0ull, 42ull, 43ull})
        for (uint64_t i : {0ull, 17ull, 123456789ull}) {
            const uint64_t r = mix(seed * 0xD1B54A32D192ED03ull + i);
            const double u1 = ((double)(r >> 40) + 1.0) / 16777216.0, u2 = (double)((r >> 16) & 0xFFFFFFu) / 16777216.0;
            const double want = std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
            INFO("seed " << seed << " i " << i);
            CHECK(std::fabs(randn_at(seed, i) - want) <= 1e-5 * std::max(1.0, std::fabs(want)));
        }
    CHECK(randn_at(42, 17) != randn_at(43, 17));
}

TEST_CASE("the swiglu op computes silu(gate) * up", "[cuda-host][swiglu]") {
    const std::vector<float> gate = {0.0f, 1.0f, -2.0f, 20.0f}, up = {5.0f, 2.0f, 1.0f, -1.0f};
    TensorMap in{{"gate", Tensor::from_f32({2, 2}, gate)}, {"up", Tensor::from_f32({2, 2}, up)}};
    const TensorMap out = run_op("swiglu", in, OpAttrs());
    const Tensor& y = out.at("y");
    CHECK(y.shape == Shape{2, 2});
    CHECK(y.f32()[0] == 0.0f);
    CHECK(y.f32()[1] == Approx(2.0 / (1.0 + std::exp(-1.0))).epsilon(1e-7));
    CHECK(y.f32()[2] == Approx(-2.0 / (1.0 + std::exp(2.0))).epsilon(1e-7));
    CHECK(y.f32()[3] == Approx(-20.0 / (1.0 + std::exp(-20.0))).epsilon(1e-7));
    TensorMap bad{{"gate", Tensor::from_f32({4}, gate)}, {"up", Tensor::from_f32({2, 2}, up)}};
    CHECK_THROWS_WITH(run_op("swiglu", bad, OpAttrs()), Catch::Contains("same shape"));
    CHECK_THROWS_WITH(run_op("swiglu", TensorMap{{"gate", Tensor::from_f32({4}, gate)}}, OpAttrs()),
                      Catch::Contains("up"));
}
