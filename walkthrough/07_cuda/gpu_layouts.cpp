// walkthrough/07_cuda — the index math of the FP8 GEMM kernels, printed on a machine without a GPU.
//
// What this program shows (run: make walkthrough, or build/walkthrough/07_cuda/gpu_layouts):
//   1. the scale indexing of C = A·Bᵀ: which a_scale and b_scale multiply which 128-deep partial sum;
//   2. the tile shape v3 picks for each benchmark shape on a 132-SM H200, and how many waves it makes;
//   3. the grouped tile order of the persistent grid: which tiles the first CTAs take;
//   4. the 128-byte swizzle of a shared-memory tile: where each 16-byte chunk of 8 rows lands;
//   5. the wgmma accumulator fragment: which (row, column) of the 64×N tile a thread holds;
//   6. the mbarrier ring: stage and parity of the first iterations.
// Every function comes from cuda/host_math.h, the same code the kernels run (tests/test_cuda_host.cpp
// checks it). Nothing here needs CUDA; nothing here proves the kernels run either.
#include <cstdio>
#include <initializer_list>

#include "../../cuda/host_math.h"

using namespace dsref::gpu;

int main() {
    std::printf("1. Scale indexing (M, N, K) = (4096, 7168, 2048): KB = %lld, NB = %lld\n",
                (long long)quant_blocks(2048), (long long)quant_blocks(7168));
    const int64_t KB = quant_blocks(2048);
    const int64_t pts[3][3] = {{0, 0, 0}, {5, 300, 1000}, {4095, 7167, 2047}};
    for (const auto& p : pts)
        std::printf("   C[%4lld, %4lld] at k = %4lld: a_scale[%lld] (row %lld, block %lld), b_scale[%lld] (block row %lld)\n",
                    (long long)p[0], (long long)p[1], (long long)p[2], (long long)act_scale_index(p[0], p[2], KB),
                    (long long)p[0], (long long)(p[2] / kQuantBlock), (long long)weight_scale_index(p[1], p[2], KB),
                    (long long)(p[1] / kQuantBlock));

    std::printf("\n2. v3 tiles on 132 SMs (persistent grid: at most one CTA per SM)\n");
    const int64_t nk[5][2] = {{2112, 7168}, {24576, 1536}, {7168, 16384}, {4096, 7168}, {7168, 2048}};
    for (int64_t M : {64, 128, 4096})
        for (const auto& s : nk) {
            const GemmTile t = choose_gemm_tile(M, s[0], 132);
            const int64_t tiles = ceil_div(M, t.bm) * ceil_div(s[0], t.bn);
            std::printf("   M=%4lld N=%5lld K=%5lld: BM=%3d BN=%3d, %5lld tiles, %5.2f waves\n", (long long)M,
                        (long long)s[0], (long long)s[1], t.bm, t.bn, (long long)tiles, (double)tiles / 132.0);
        }

    std::printf("\n3. Grouped order, M=4096 N=7168 (32 x 56 tiles of 128x128, bands of 8 m-blocks):\n   ");
    for (int tile = 0; tile < 20; tile++) {
        const TileCoord c = tile_coords(tile, 32, 56, 8);
        std::printf("(%d,%d) ", c.m_block, c.n_block);
    }
    std::printf("...\n   the first wave (tiles 0..131) touches m-blocks 0..7 and n-blocks 0..%d\n",
                tile_coords(131, 32, 56, 8).n_block);

    std::printf("\n4. 128B swizzle: physical 16-byte chunk of logical chunk c in row r (c XOR r%%8)\n      c:");
    for (uint32_t c = 0; c < 8; c++) std::printf(" %u", c);
    std::printf("\n");
    for (uint32_t r = 0; r < 8; r++) {
        std::printf("   r=%u: ", r);
        for (uint32_t c = 0; c < 8; c++) std::printf(" %u", (swizzle128_offset(r, c * 16) % 128) / 16);
        std::printf("\n");
    }

    std::printf("\n5. wgmma m64n128k32 accumulator: thread t, register i -> (row, col)\n");
    for (int t : {0, 1, 4, 32, 127}) {
        std::printf("   t=%3d:", t);
        for (int i : {0, 1, 2, 3, 4, 63}) std::printf(" d%d=(%d,%d)", i, wgmma_acc_row(t, i), wgmma_acc_col(t, i));
        std::printf("\n");
    }

    std::printf("\n6. mbarrier ring with 6 stages: iteration -> stage, consumer parity, producer parity\n   ");
    for (uint32_t it = 0; it < 14; it++)
        std::printf("%u:(%u,%u,%u) ", it, ring_stage(it, 6), ring_phase(it, 6), ring_phase(it, 6) ^ 1u);
    std::printf("\n");
    return 0;
}
