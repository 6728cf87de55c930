// linear.h — y = x Wᵀ, the one matrix product every projection uses (weights are [out, in] as in HF).
//
// Threads and determinism: the output is cut into fixed tiles of kTileT rows × kTileN columns, and
// each tile is one Eigen product computed by one thread. The tiling does not depend on the number
// of threads, so every output element is computed by the same instructions in the same order at any
// thread count: results are bit-identical for --threads 1, 2, ... (a test checks this).
//
// Speed: one Eigen product packs its slice of W (transposing the row-major [out, in] rows) before
// multiplying, so a work unit takes up to kTileGroup consecutive FULL row tiles at once and packs W's
// column tile once for all of them (the pack was 15 % of a V3-shaped prefill with one tile per unit).
// Grouping changes no bit: Eigen's product walks the rows of x in panels of 4, splits the K sum at
// the same points whatever the number of rows (its depth blocking depends on K and the cache sizes
// only), and accumulates every output element over k in the same order; a group of full tiles is a
// multiple of 4 rows, so every element is computed as in its own tile. The partial last tile
// (T mod kTileT rows) stays a unit of its own, exactly as before (a 1-row tile is Eigen's
// matrix-vector product, another summation order). A test checks the grouped units against
// one product per kTileT tile.
#pragma once
#include <cstdint>

namespace dsref {

constexpr int64_t kTileT = 64, kTileN = 128;
constexpr int64_t kTileGroup = 4;  // full row tiles per work unit (256 rows)

// y: [T, N] out · x: [T, K] · w: [N, K] (row-major, the HF [out, in] layout)
void linear_forward(float* y, const float* x, const float* w, int64_t T, int64_t K, int64_t N);

}  // namespace dsref
