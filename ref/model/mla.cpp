// mla.cpp — MLA forward on both paths, for prefill and for decode against the cache (the math is in
// mla.h; DeepSeek-V3 inference/model.py MLA.forward, attn_impl "naive" and "absorb").
//
// The query/latent projections are the same on both paths; they differ only in what is cached and
// in where W_kvb is applied:
//   naive   K[h] = [W_UK[h] c | k_pe], V[h] = W_UV[h] c per token, then H independent attentions
//           (one "group" each);
//   absorb  q̃[h] = W_UK[h]ᵀ q_nope[h] before the attention, one shared-key attention over
//           [c | k_pe] for all H·T query rows at once, then o[h] = W_UV[h] õ[h].
// Both end in `attend_shared_kv`, a causal attention of many query rows over one key/value sequence,
// cut into fixed (64 query rows × 256 keys) tiles whose two products are core/linear.h's kernel, merged
// with an online softmax.
#include "model/mla.h"

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <memory>

#include "core/error.h"
#include "core/linear.h"
#include "core/rmsnorm.h"
#include "core/rope.h"
#include "core/scratch.h"
#include "core/vector_exp.h"
#include "io/checkpoint_layout.h"

namespace dsref {

using MatRM = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Stride = Eigen::OuterStride<>;
using ConstView = Eigen::Map<const MatRM, 0, Stride>;
using View = Eigen::Map<MatRM, 0, Stride>;

MlaDims mla_dims(const ModelConfig& c) {
    MlaDims m;
    m.d = c.hidden_size;
    m.H = c.num_attention_heads;
    m.d_q = c.q_lora_rank;
    m.d_c = c.kv_lora_rank;
    m.d_n = c.qk_nope_head_dim;
    m.d_r = c.qk_rope_head_dim;
    m.d_v = c.v_head_dim;
    m.latent_eps = kMlaLatentNormEps;  // not rms_norm_eps: see mla.h
    m.rope_theta = c.rope_theta;
    m.rope_scaling = c.rope_scaling;
    return m;
}

MlaPath mla_path_from_name(const std::string& name) {
    if (name == "naive") return MlaPath::Naive;
    if (name == "absorb") return MlaPath::Absorb;
    usage_fail("--attn must be naive or absorb (the MLA path), got '", name, "'");
}

const char* mla_path_name(MlaPath p) { return p == MlaPath::Naive ? "naive" : "absorb"; }

double mla_softmax_scale(const MlaDims& m) { return yarn_softmax_scale(m.d_k(), m.rope_scaling); }

int64_t mla_cache_values_per_token(const MlaDims& m, MlaPath path) {
    return path == MlaPath::Absorb ? m.d_c + m.d_r : m.H * (m.d_k() + m.d_v);
}

namespace {

// The rows of a row-major matrix, in each of several independent problems ("groups"):
// row r of group g starts at data + g·group + r·ld.
struct Rows {
    const float* data = nullptr;
    int64_t ld = 0, group = 0;
    const float* row(int64_t g, int64_t r) const { return data + g * group + r * ld; }
};

constexpr int64_t kRowTile = 64;     // query rows per tile
constexpr int64_t kKeyTile = 256;    // keys per chunk (a 256 × 576 latent chunk is 576 KB: it stays in L2)
constexpr int64_t kRowBlock = 1024;  // query rows handled at once (bounds the partial outputs kept)
// Loops with less work than this (multiply-adds) run on one thread: a parallel region costs a few µs,
// far more than a tiny tile. The tiles are the same either way, so this never changes a result.
constexpr int64_t kMinParallelWork = 1 << 17;

// A score that takes no part in the softmax: dropped (−inf), or in a row that sees no key of the chunk
// (max −inf: its NaN scores are dropped too).
inline bool dropped(float score, float row_max) { return score == -INFINITY || row_max == -INFINITY; }

// y = [a | b(g, r)]: na values from a, then nb from row r of group g of b (nb = 0: a alone).
// y: [na + nb] out · a: [na]
void concat_row(float* y, const float* a, int64_t na, Rows b, int64_t g, int64_t r, int64_t nb) {
    std::copy(a, a + na, y);
    if (nb > 0) std::copy(b.row(g, r), b.row(g, r) + nb, y + na);
}

// Keys and values already transposed, for attend_shared_kv: key s of group g is column s of
// [nq, ld] at k + g·k_group (its rows the values of [ka | kb]), value s column s of [nv, ld] at
// v + g·v_group; 64-byte aligned, ld a multiple of 16, the columns past the last key zero.
struct KeysT {
    const float* k = nullptr;
    const float* v = nullptr;
    int64_t k_group = 0, v_group = 0, ld = 0;
};

// One query row r against keys s0 .. s0 + nk of group g (a decode step of the naive path, or of a
// one-head model): the keys read as rows, in place when [ka | kb] is one array, the scores in the
// single-row order (the order of a product of one row, core/linear.h), P·V one chain per value column in
// increasing s as the kernel's. Writes O_j [nv], m_j and l_j as attend_shared_kv's tiles do.
// keep: this row's flags from key 0, or null
void attend_row_chunk(float* oj, double& mj, double& lj, Rows qa, Rows ka, int64_t na, Rows qb, Rows kb, int64_t nb,
                      Rows v, int64_t nv, int64_t g, int64_t r, int64_t s0, int64_t nk, float scale, const uint8_t* keep) {
    const int64_t nq = na + nb;
    if (nk <= 0) {
        mj = -INFINITY;
        lj = 0.0;
        return;
    }
    thread_local std::vector<float> q_buf, k_buf, p_buf, e_buf;
    q_buf.resize(nq);
    p_buf.resize(nk);
    e_buf.resize(nk);
    concat_row(q_buf.data(), qa.row(g, r), na, qb, g, r, nb);
    const float* keys = ka.row(g, s0);
    int64_t kld = ka.ld;
    if (nb > 0) {  // [ka | kb] rows side by side
        k_buf.resize(nk * nq);
        for (int64_t s = 0; s < nk; s++) concat_row(k_buf.data() + s * nq, ka.row(g, s0 + s), na, kb, g, s0 + s, nb);
        keys = k_buf.data();
        kld = nq;
    }
    float* p = p_buf.data();
    linear_unit(p, nk, q_buf.data(), nullptr, keys, 1, nq, nk, kld);
    float mx = -INFINITY;
    for (int64_t s = 0; s < nk; s++) {
        p[s] = !keep || keep[s0 + s] ? p[s] * scale : -INFINITY;
        mx = p[s] > mx ? p[s] : mx;
    }
    mj = (double)mx;
    lj = 0.0;
    if (mx == -INFINITY) return;  // no key kept here: O_j is not read
    float* e = e_buf.data();
    for (int64_t s = 0; s < nk; s++) e[s] = dropped(p[s], mx) ? 0.0f : p[s] - mx;
    exp_rounded(e, nk);
    for (int64_t s = 0; s < nk; s++) {
        p[s] = dropped(p[s], mx) ? 0.0f : e[s];
        lj += p[s];
    }
    std::fill(oj, oj + nv, 0.0f);
    for (int64_t s = 0; s < nk; s++) {
        const float* vs = v.row(g, s0 + s);
        for (int64_t c = 0; c < nv; c++) oj[c] = madd(p[s], vs[c], oj[c]);
    }
}

// Causal softmax attention of R query rows that all read the same keys and values (one KV head),
// for each of `groups` independent problems of the same shape (the H heads of the naive path; the
// absorbed path is one group). Row r sits at position pos0 + ⌊r / G⌋ (G query rows per position) and
// sees keys 0 .. pos0 + ⌊r / G⌋:
//   score[r, s] = scale · (qa[r]·ka[s] + qb[r]·kb[s])        (nb = 0: no second part)
//   o[r]        = Σ_s softmax_s(score[r, ·]) · v[s]
// per group: qa: [R, na] · ka: [S, na] · qb: [R, nb] · kb: [S, nb] · v: [S, nv] · o: [R, nv]
// (row r of group g of o at o + g·o_group + r·o_ld). kt: the keys and values given transposed instead
// (then ka, kb and v are not read).
//
// Keys are processed in chunks j of kKeyTile (flash-decoding, split over keys): for each row tile of
// kRowTile rows and chunk j, the scores, m_j = max_s, p = exp(score − m_j), l_j = Σ_s p and O_j = p·V_j
// are computed while the chunk's keys and values are in cache. The chunks are then merged in a fixed
// order:
//   M = max_j m_j,  o = Σ_j e^(m_j − M) O_j / Σ_j e^(m_j − M) l_j
// which is the exact softmax. Both products are core/linear.h's, one float32 chain each: a score over
// [qa | qb]·[ka | kb] in increasing k, an output of O_j over the chunk's keys in increasing s. The keys
// enter the score product transposed (the kernel's x layout), so the scores come out as Pᵀ [key, row],
// which is in turn the x layout of O_j = P·V_j. The work unit is (group, chunk): its keys and values are
// transposed once (unless given so) and serve every row tile that sees the chunk. The exponentials are
// double rounded to float32 (core/vector_exp.h); their sums and the merge are double.
//
// keep (DSA, model/dsa_indexer.h): null = every visible key; else [T, keep_ld] flags per query position
// t = ⌊r / G⌋ and key s, and a key whose flag is 0 gets score −inf (the official MLA.forward adds the
// index mask to the scores of every head). Each row keeps at least one key.
void attend_shared_kv(int64_t groups, float* o, int64_t o_ld, int64_t o_group, Rows qa, Rows ka, int64_t na, Rows qb,
                      Rows kb, int64_t nb, Rows v, int64_t nv, int64_t R, int64_t G, int64_t pos0, float scale,
                      const uint8_t* keep = nullptr, int64_t keep_ld = 0, KeysT kt_given = {}) {
    static_assert(kRowTile <= kTileT && kKeyTile % 16 == 0, "tiles of core/linear.h's kernel");
    constexpr int64_t kSub = 64;  // keys per score product (rows of its x)
    const int64_t nq = na + nb;
    // the absorbed path's values are the latent, the first columns of its keys: transposed once
    const bool v_in_k = v.data == ka.data && v.ld == ka.ld && v.group == ka.group && nv <= na;
    // [qa | qb] one row already (a head's [q_nope | q_pe]): the score product reads the queries in place
    const bool q_whole = nb == 0 || (qb.data == qa.data + na && qb.ld == qa.ld && qb.group == qa.group);
    for (int64_t b0 = 0; b0 < R; b0 += kRowBlock) {
        const int64_t Rb = std::min(kRowBlock, R - b0);
        auto visible = [&](int64_t r) { return pos0 + (b0 + r) / G + 1; };  // keys seen by row r of the block
        const int64_t Sb = visible(Rb - 1);
        const int64_t row_tiles = (Rb + kRowTile - 1) / kRowTile, chunks = (Sb + kKeyTile - 1) / kKeyTile;
        // a tile's row slots: at least 2, as a product of one row would take the single-row order (linear.h)
        const int64_t tile_rows = std::max<int64_t>(2, std::min(kRowTile, Rb));
        const int64_t parts = groups * row_tiles * chunks;               // (group, row tile, chunk)
        std::vector<float> part(parts * tile_rows * nv);                 // O_j [tile_rows, nv] of each
        std::vector<double> m(parts * tile_rows), l(parts * tile_rows);  // m_j, l_j of each one's rows

        // 1. per (group, chunk): the keys and values transposed, then per row tile that sees the chunk:
        //    Pᵀ, the softmax numerators against the chunk max, l_j, O_j = P V_j
#pragma omp parallel for schedule(dynamic) if (groups * Rb * Sb * (na + nb + nv) >= kMinParallelWork)
        for (int64_t u = 0; u < groups * chunks; u++) {
            const int64_t g = u / chunks, j = u % chunks;
            const int64_t s0 = j * kKeyTile, ns = std::min(kKeyTile, Sb - s0);
            thread_local AlignedScratch kt_buf, vt_buf, p_buf;
            thread_local std::vector<float> q_buf;
            if (Rb == 1 && !kt_given.k) {  // one query row: see attend_row_chunk
                const int64_t pi = g * chunks + j;
                attend_row_chunk(part.data() + pi * tile_rows * nv, m[pi * tile_rows], l[pi * tile_rows], qa, ka, na, qb, kb,
                                 nb, v, nv, g, b0, s0, std::min(ns, visible(0) - s0), scale, keep ? keep + (b0 / G) * keep_ld : nullptr);
                continue;
            }
            const float *kt, *vt;  // [nq, ld] and [nv, ld]: key / value s0 + c in column c
            int64_t ld;
            if (kt_given.k) {
                ld = kt_given.ld;
                kt = kt_given.k + g * kt_given.k_group + s0;
                vt = kt_given.v + g * kt_given.v_group + s0;
            } else {
                ld = (ns + 15) / 16 * 16;  // the columns past ns zero (the kernel reads padding keys)
                float* k = kt_buf.get(nq * ld);
                transpose_block(k, ld, ka.row(g, s0), ka.ld, ns, na);
                if (nb > 0) transpose_block(k + na * ld, ld, kb.row(g, s0), kb.ld, ns, nb);
                for (int64_t c = 0; c < nq && ns < ld; c++) std::fill(k + c * ld + ns, k + (c + 1) * ld, 0.0f);
                kt = k;
                if (v_in_k) {
                    vt = k;
                } else {
                    float* vv = vt_buf.get(nv * ld);
                    transpose_block(vv, ld, v.row(g, s0), v.ld, ns, nv);
                    vt = vv;
                }
            }
            float* pt = p_buf.get(kKeyTile * kSub);  // Pᵀ [keys, kSub]: row s at pt + s·kSub
            q_buf.resize(kRowTile * nq);
            float* qc = q_buf.data();

            for (int64_t tile = 0; tile < row_tiles; tile++) {
                const int64_t r0 = tile * kRowTile, nr = std::min(kRowTile, Rb - r0);
                const int64_t pi = (g * row_tiles + tile) * chunks + j;  // this (group, row tile, chunk)
                double* mu = m.data() + pi * tile_rows;
                double* lu = l.data() + pi * tile_rows;
                const int64_t nk = std::min(ns, visible(r0 + nr - 1) - s0);  // keys the tile's last row sees here
                if (nk <= 0) {  // no row of the tile sees this chunk
                    std::fill(mu, mu + nr, -INFINITY);
                    std::fill(lu, lu + nr, 0.0);
                    continue;
                }
                // the W of the score product: the tile's query rows [nr, nq] = [qa | qb], qld apart
                const float* qw = qa.row(g, b0 + r0);
                int64_t qld = qa.ld;
                if (!q_whole) {
                    for (int64_t r = 0; r < nr; r++) concat_row(qc + r * nq, qa.row(g, b0 + r0 + r), na, qb, g, b0 + r0 + r, nb);
                    qw = qc;
                    qld = nq;
                }
                // Pᵀ[s, r] = [qa | qb](r)·[ka | kb](s), kSub keys per product (at least 2: the next is a
                // key past nk or a zero column, not read later)
                for (int64_t i = 0; i * kSub < nk; i++) {
                    const int64_t n = std::max<int64_t>(2, std::min(kSub, nk - i * kSub));
                    linear_unit_t(pt + i * kSub * kSub, kSub, kt + i * kSub, ld, qw, qld, n, nq, nr);
                }
                // scale, drop what row r does not see (keys past vis[r], or not kept by the indexer), and
                // each row's maximum (a NaN score is skipped, as std::max skips it, and stays in p)
                int64_t vis[kRowTile];  // visible keys of row r in this chunk (rows are in position order)
                float mx[kRowTile];     // row r's maximum over them (−inf: none visible or kept)
                for (int64_t r = 0; r < nr; r++) {
                    vis[r] = std::max<int64_t>(0, std::min(nk, visible(r0 + r) - s0));
                    mx[r] = -INFINITY;
                }
                for (int64_t s = 0; s < nk; s++) {
                    float* ps = pt + s * kSub;
                    for (int64_t r = 0; r < nr; r++) {
                        const bool kept = s < vis[r] && (!keep || keep[((b0 + r0 + r) / G) * keep_ld + s0 + s]);
                        const float x = kept ? ps[r] * scale : -INFINITY;
                        ps[r] = x;
                        mx[r] = x > mx[r] ? x : mx[r];
                    }
                }
                // the softmax numerators against the chunk maximum (0 where nothing is kept or visible), and
                // zeros in the padding rows that the P·V product reads
                for (int64_t s = 0; s < nk; s++) {
                    float* ps = pt + s * kSub;
                    // e^(score − max) in double rounded once (core/vector_exp.h); a dropped score gets
                    // e^0 and then 0 (libmvec takes a slow path for −inf)
                    float e[kRowTile];
                    for (int64_t r = 0; r < nr; r++) e[r] = dropped(ps[r], mx[r]) ? 0.0f : ps[r] - mx[r];
                    exp_rounded(e, nr);
                    for (int64_t r = 0; r < nr; r++) ps[r] = dropped(ps[r], mx[r]) ? 0.0f : e[r];
                    std::fill(ps + nr, ps + kSub, 0.0f);
                }
                // l_j = Σ_s p in double, one chain in increasing s per row (the zeros add nothing)
                double z[kRowTile] = {};
                for (int64_t s = 0; s < nk; s++)
                    for (int64_t r = 0; r < nr; r++) z[r] += pt[s * kSub + r];
                for (int64_t r = 0; r < nr; r++) {
                    mu[r] = (double)mx[r];  // −inf where the row has no key of this chunk (then z = 0)
                    lu[r] = mx[r] == -INFINITY ? 0.0 : z[r];
                }
                // O_j = P V_j: [max(nr, 2), nv], row r one chain over the chunk's keys s < nk
                linear_unit_t(part.data() + pi * tile_rows * nv, nv, pt, kSub, vt, ld, std::max<int64_t>(2, nr), nk, nv);
            }
        }

        // 2. merge the chunks of each row in order j = 0, 1, ... (every row keeps a key, so the sum is > 0)
#pragma omp parallel for schedule(static) if (groups * Rb * chunks * nv >= kMinParallelWork)
        for (int64_t gr = 0; gr < groups * Rb; gr++) {
            const int64_t g = gr / Rb, r = gr % Rb;
            const int64_t u0 = (g * row_tiles + r / kRowTile) * chunks, rr = r % kRowTile;
            double M = -INFINITY;
            for (int64_t j = 0; j < chunks; j++) M = std::max(M, m[(u0 + j) * tile_rows + rr]);
            thread_local std::vector<double> acc;  // [nv]
            acc.assign(nv, 0.0);
            double z = 0.0;
            for (int64_t j = 0; j < chunks; j++) {
                const double mj = m[(u0 + j) * tile_rows + rr];
                if (mj == -INFINITY) continue;  // the row sees no key of this chunk
                const double w = mj == M ? 1.0 : std::exp(mj - M);  // (e^0 = 1 exactly)
                z += w * l[(u0 + j) * tile_rows + rr];
                const float* oj = part.data() + ((u0 + j) * tile_rows + rr) * nv;
                for (int64_t c = 0; c < nv; c++) acc[c] += w * oj[c];
            }
            float* out = o + g * o_group + (b0 + r) * o_ld;
            for (int64_t c = 0; c < nv; c++) out[c] = (float)(acc[c] / z);
        }
    }
}

// Columns [c0, c0 + n) of every row of x [rows, width], as a contiguous [rows, n] copy.
std::vector<float> column_slice(const float* x, int64_t rows, int64_t width, int64_t c0, int64_t n) {
    std::vector<float> y(rows * n);
    for (int64_t r = 0; r < rows; r++) std::copy(x + r * width + c0, x + r * width + c0 + n, y.begin() + r * n);
    return y;
}

void check_cache(const LayerCache& c, int64_t pos0, int64_t width_a, int64_t width_b, const char* path) {
    if ((int64_t)c.a.size() != pos0 * width_a || (int64_t)c.b.size() != pos0 * width_b)
        fail("MLA (", path, " path): the layer cache holds ", c.a.size(), " + ", c.b.size(), " values, but ", pos0,
             " cached tokens need ", pos0 * width_a, " + ", pos0 * width_b, " (was it filled by the other path?)");
}

void check_weight(const std::vector<float>& w, int64_t n, const char* name, const std::string& shape) {
    if ((int64_t)w.size() != n) fail("MLA: weight ", name, " has ", w.size(), " values, expected ", shape, " = ", n);
}

std::string dims_str(int64_t a, int64_t b = -1) {
    return "[" + std::to_string(a) + (b >= 0 ? ", " + std::to_string(b) : "") + "]";
}

}  // namespace

MlaLayer::MlaLayer(const MlaDims& dims, MlaWeights w, const PrecisionPolicy& prec, MlaFp8Weights fp8,
                   std::optional<DsaIndexer> indexer)
    : m_(dims), w_(std::move(w)), prec_(prec), fp8_(std::move(fp8)), indexer_(std::move(indexer)) {
    const MlaDims& m = m_;
    if (m.d <= 0 || m.H <= 0 || m.d_c <= 0 || m.d_n <= 0 || m.d_r <= 0 || m.d_v <= 0 || m.d_q < 0)
        fail("MLA: dimensions must be positive (d ", m.d, ", H ", m.H, ", d_c ", m.d_c, ", d_n ", m.d_n, ", d_r ", m.d_r,
             ", d_v ", m.d_v, ", d_q ", m.d_q, ")");
    if (m.d_r % 2) fail("MLA: qk_rope_head_dim must be even (RoPE rotates pairs), got ", m.d_r);
    const int64_t d_k = m.d_k();
    if (m.d_q > 0) {
        check_weight(w_.q_a, m.d_q * m.d, "q_a_proj", dims_str(m.d_q, m.d));
        check_weight(w_.q_a_norm, m.d_q, "q_a_layernorm", dims_str(m.d_q));
        check_weight(w_.q_b, m.H * d_k * m.d_q, "q_b_proj", dims_str(m.H * d_k, m.d_q));
    } else {
        check_weight(w_.q, m.H * d_k * m.d, "q_proj", dims_str(m.H * d_k, m.d));
    }
    check_weight(w_.kv_a, (m.d_c + m.d_r) * m.d, "kv_a_proj_with_mqa", dims_str(m.d_c + m.d_r, m.d));
    check_weight(w_.kv_a_norm, m.d_c, "kv_a_layernorm", dims_str(m.d_c));
    check_weight(w_.kv_b, m.H * (m.d_n + m.d_v) * m.d_c, "kv_b_proj", dims_str(m.H * (m.d_n + m.d_v), m.d_c));
    check_weight(w_.o, m.d * m.H * m.d_v, "o_proj", dims_str(m.d, m.H * m.d_v));
    if (indexer_) {
        if (m.d_q <= 0) fail("MLA: the DSA indexer reads the compressed query qr, but q_lora_rank is 0");
        if (!prec_.none())
            fail("MLA: an emulation mode with the DSA indexer (deepseek_v32) is not modelled: neither emulated "
                 "reference runs the indexer");
        const IndexerDims& id = indexer_->dims();
        if (id.d != m.d || id.d_q != m.d_q || id.d_r != m.d_r)
            fail("MLA: the DSA indexer's dims (d ", id.d, ", q_lora_rank ", id.d_q, ", qk_rope_head_dim ", id.d_r,
                 ") differ from the layer's (", m.d, ", ", m.d_q, ", ", m.d_r, ")");
    }
    inv_freq_ = rope_inv_freq(m.d_r, m.rope_theta, m.rope_scaling);
    scale_ = mla_softmax_scale(m);
}

void MlaLayer::forward(MlaPath path, float* out, const float* x, int64_t T, int64_t pos0, LayerCache& cache,
                       Trace* trace, int64_t layer) const {
    if (!prec_.none()) return forward_emulated(out, x, T, pos0, cache, trace, layer);
    const int64_t d = m_.d, H = m_.H, d_c = m_.d_c, d_n = m_.d_n, d_r = m_.d_r, d_k = m_.d_k();
    const float eps = (float)m_.latent_eps;
    std::vector<int64_t> pos(T);
    for (int64_t t = 0; t < T; t++) pos[t] = pos0 + t;

    // queries q [T, H, d_k], each head [q_nope | q_pe]; RoPE on q_pe only, adjacent pairs
    Scratch q(T * H * d_k);  // written in full by the product below
    std::vector<float> c_q;  // [T, d_q] the compressed query qr (also the DSA indexer's input)
    const XTiles xt(x, T, d);  // x transposed once for the products that read it (core/linear.h)
    if (m_.d_q > 0) {
        c_q.resize(T * m_.d_q);
        linear_forward(c_q.data(), x, xt, w_.q_a.data(), T, d, m_.d_q);
        rmsnorm_forward(c_q.data(), c_q.data(), w_.q_a_norm.data(), T, m_.d_q, eps);
        linear_forward(q.data(), c_q.data(), w_.q_b.data(), T, m_.d_q, H * d_k);
    } else {
        linear_forward(q.data(), x, xt, w_.q.data(), T, d, H * d_k);
    }
    rope_forward(q.data() + d_n, T, H, d_r, H * d_k, d_k, pos.data(), inv_freq_, RopeLayout::Interleaved);

    // [c_kv | k_pe] = W_kva x;  latent c = RMSNorm(c_kv) [T, d_c];  k_pe rotated [T, d_r], shared by all heads
    Scratch kv_a(T * (d_c + d_r));  // written in full by the product
    linear_forward(kv_a.data(), x, xt, w_.kv_a.data(), T, d, d_c + d_r);
    std::vector<float> latent = column_slice(kv_a.data(), T, d_c + d_r, 0, d_c);
    std::vector<float> k_pe = column_slice(kv_a.data(), T, d_c + d_r, d_c, d_r);
    rmsnorm_forward(latent.data(), latent.data(), w_.kv_a_norm.data(), T, d_c, eps);
    rope_forward(k_pe.data(), T, 1, d_r, d_r, d_r, pos.data(), inv_freq_, RopeLayout::Interleaved);

    if (trace) {
        const std::string i = "." + std::to_string(layer);
        if (trace->wants("q_nope" + i))
            trace->record("q_nope" + i, {T, H, d_n}, column_slice(q.data(), T * H, d_k, 0, d_n).data());
        if (trace->wants("q_pe" + i))
            trace->record("q_pe" + i, {T, H, d_r}, column_slice(q.data(), T * H, d_k, d_n, d_r).data());
        trace_f32(trace, "kv_latent" + i, {T, d_c}, latent.data());
        trace_f32(trace, "k_pe" + i, {T, d_r}, k_pe.data());
    }

    // DSA (V3.2): the indexer picks each query's positions; keep [T, S] flags them for every head
    std::vector<uint8_t> keep;
    if (indexer_) {
        const IndexerSelection sel = indexer_->forward(x, c_q.data(), T, pos0, cache.index_k, trace, layer);
        keep.assign(T * sel.S, 0);
        for (int64_t t = 0; t < T; t++)
            for (int64_t j = 0; j < sel.kk; j++)
                if (sel.topk[t * sel.kk + j] >= 0) keep[t * sel.S + sel.topk[t * sel.kk + j]] = 1;
    }
    const uint8_t* kp = indexer_ ? keep.data() : nullptr;

    Scratch o(T * H * m_.d_v);  // [T, H, d_v] per-head attention outputs, each row written by the merge
    if (path == MlaPath::Naive) attend_naive(o.data(), q.data(), latent.data(), k_pe.data(), T, pos0, cache, kp);
    else attend_absorbed(o.data(), q.data(), latent.data(), k_pe.data(), T, pos0, cache, kp);
    linear_forward(out, o.data(), w_.o.data(), T, H * m_.d_v, d);
}

// Naive (V2 report §2.1.2–2.1.3, eqs 9–19): decompress K and V per head, cache them, run H causal
// attentions.
// o: [T, H, d_v] · q: [T, H, d_k] · latent: [T, d_c] · k_pe: [T, d_r]
// LAB(mla_naive) task: decompress [k_nope | v] = latent W_kvb^T per head, append K = [k_nope | shared k_pe] and V to the
// LAB(mla_naive) cache at rows pos0.., then run H causal attentions with attend_shared_kv (one group per head).
// LAB(mla_naive) hint: resize cache.a to [S, H, d_k] and cache.b to [S, H, d_v], S = pos0 + T; Rows{ptr, ld, group}.
void MlaLayer::attend_naive(float* o, const float* q, const float* latent, const float* k_pe, int64_t T, int64_t pos0,
                            LayerCache& cache, const uint8_t* keep) const {
    const int64_t H = m_.H, d_n = m_.d_n, d_r = m_.d_r, d_v = m_.d_v, d_k = m_.d_k(), d_kv = d_n + d_v;
    check_cache(cache, pos0, H * d_k, H * d_v, "naive");
    // LAB(mla_naive): begin
    std::vector<float> kv(T * H * d_kv);  // [T, H, d_n + d_v] = c W_kvbᵀ: per head [k_nope | v]
    linear_forward(kv.data(), latent, w_.kv_b.data(), T, m_.d_c, H * d_kv);
    const int64_t S = pos0 + T;
    cache.a.resize(S * H * d_k);  // K [S, H, d_k]
    cache.b.resize(S * H * d_v);  // V [S, H, d_v]
    for (int64_t t = 0; t < T; t++) {
        for (int64_t h = 0; h < H; h++) {
            const float* src = kv.data() + (t * H + h) * d_kv;
            float* k = cache.a.data() + ((pos0 + t) * H + h) * d_k;
            std::copy(src, src + d_n, k);                             // k_nope[h]
            std::copy(k_pe + t * d_r, k_pe + (t + 1) * d_r, k + d_n);  // the shared k_pe
            std::copy(src + d_n, src + d_kv, cache.b.data() + ((pos0 + t) * H + h) * d_v);
        }
    }
    // H independent attentions (one group per head): head h of row t at q + (t·H + h)·d_k, its keys at
    // K + (s·H + h)·d_k, its values at V + (s·H + h)·d_v
    attend_shared_kv(H, o, H * d_v, d_v, Rows{q, H * d_k, d_k}, Rows{cache.a.data(), H * d_k, d_k}, d_k, Rows{},
                     Rows{}, 0, Rows{cache.b.data(), H * d_v, d_v}, d_v, T, 1, pos0, (float)scale_, keep, S);
    // LAB(mla_naive): end
}

// Absorbed (V2 report §2.1.2: W_UK absorbed into the query, W_UV into the output): cache [c | k_pe],
// fold W_UK into the queries, attend in latent space, apply W_UV.
// o: [T, H, d_v] · q: [T, H, d_k] · latent: [T, d_c] · k_pe: [T, d_r]
// LAB(mla_absorbed) task: append [c | k_pe] to the cache at rows pos0.., fold W_UK[h] into each head's q_nope
// LAB(mla_absorbed) (q~ = q_nope W_UK[h], [d_c]), attend in latent space with score = scale (q~ . c + q_pe . k_pe) and
// LAB(mla_absorbed) o~ = sum_s P c(s), then o[t, h] = W_UV[h] o~[t, h]; it must equal attend_naive (V2 report §2.1.2).
// LAB(mla_absorbed) hint: W_UK[h] is rows [h d_kv, h d_kv + d_n) of W_kvb and W_UV[h] rows [h d_kv + d_n, (h + 1) d_kv);
// LAB(mla_absorbed) hint: one attend_shared_kv over T * H query rows (H rows per position) against the shared latent keys.
void MlaLayer::attend_absorbed(float* o, const float* q, const float* latent, const float* k_pe, int64_t T,
                               int64_t pos0, LayerCache& cache, const uint8_t* keep) const {
    const int64_t H = m_.H, d_c = m_.d_c, d_n = m_.d_n, d_r = m_.d_r, d_v = m_.d_v, d_k = m_.d_k(), d_kv = d_n + d_v;
    check_cache(cache, pos0, d_c, d_r, "absorb");
    // LAB(mla_absorbed): begin
    const int64_t S = pos0 + T;
    cache.a.resize(S * d_c);  // c [S, d_c]
    cache.b.resize(S * d_r);  // k_pe [S, d_r]
    std::copy(latent, latent + T * d_c, cache.a.begin() + pos0 * d_c);
    std::copy(k_pe, k_pe + T * d_r, cache.b.begin() + pos0 * d_r);
    if (mla_absorb_decompresses(m_, T, pos0)) {
        attend_decompressed(o, q, cache.a.data(), cache.b.data(), T, pos0, keep);
        return;
    }

    // q̃[t, h] = W_UK[h]ᵀ q_nope[t, h], one product per head; W_UK[h] = rows [h·d_kv, h·d_kv + d_n) of W_kvb,
    // a contiguous [d_n, d_c] block, so nothing needs to be rearranged.
    std::vector<float> q_lat(T * H * d_c);  // [T, H, d_c]
#pragma omp parallel for schedule(static) if (T * H * d_n * d_c >= kMinParallelWork)
    for (int64_t h = 0; h < H; h++) {
        ConstView Qn(q + h * d_k, T, d_n, Stride(H * d_k));                          // [T, d_n]
        ConstView W_uk(w_.kv_b.data() + h * d_kv * d_c, d_n, d_c, Stride(d_c));      // [d_n, d_c]
        View Ql(q_lat.data() + h * d_c, T, d_c, Stride(H * d_c));                    // [T, d_c]
        Ql.noalias() = Qn * W_uk;
    }

    // One attention over the shared latent keys for all T·H query rows (H rows per position):
    // score = scale·(q̃·c + q_pe·k_pe); õ = Σ_s P c(s). Row (t, h) of q_pe sits at q + (t·H + h)·d_k + d_n.
    std::vector<float> o_lat(T * H * d_c);  // [T, H, d_c]
    attend_shared_kv(1, o_lat.data(), d_c, 0, Rows{q_lat.data(), d_c}, Rows{cache.a.data(), d_c}, d_c,
                     Rows{q + d_n, d_k}, Rows{cache.b.data(), d_r}, d_r, Rows{cache.a.data(), d_c}, d_c, T * H, H, pos0,
                     (float)scale_, keep, S);

    // o[t, h] = W_UV[h] õ[t, h]; W_UV[h] = rows [h·d_kv + d_n, (h + 1)·d_kv) of W_kvb, [d_v, d_c]
#pragma omp parallel for schedule(static) if (T * H * d_v * d_c >= kMinParallelWork)
    for (int64_t h = 0; h < H; h++) {
        ConstView Ol(o_lat.data() + h * d_c, T, d_c, Stride(H * d_c));                  // [T, d_c]
        ConstView W_uv(w_.kv_b.data() + (h * d_kv + d_n) * d_c, d_v, d_c, Stride(d_c)); // [d_v, d_c]
        View O(o + h * d_v, T, d_v, Stride(H * d_v));                                   // [T, d_v]
        O.noalias() = Ol * W_uv.transpose();
    }
    // LAB(mla_absorbed): end
}

bool mla_absorb_decompresses(const MlaDims& m, int64_t T, int64_t pos0) {
    const double H = (double)m.H, d_c = (double)m.d_c, d_n = (double)m.d_n, d_r = (double)m.d_r, d_v = (double)m.d_v;
    const double S = (double)(pos0 + T), pairs = (double)T * (double)pos0 + 0.5 * (double)T * (double)(T + 1);
    const double absorbed = H * (double)T * d_c * (d_n + d_v) + pairs * H * (2 * d_c + d_r);
    const double decompressed = S * H * d_c * (d_n + d_v) + pairs * H * (d_n + d_r + d_v);
    return decompressed < absorbed;
}

// The absorbed path's attention in the naive product order (many new queries, see mla.h): every cached
// latent decompressed, [k_nope | v][h](s) = W_kvb[h] c(s), then H attentions whose score adds the two
// parts of the key, q_nope[h]·k_nope[h](s) + q_pe[h]·k_pe(s) (one chain over [q_nope | q_pe]).
// The keys and values are made transposed, as the attention's products read them: per head h a slab
// [d_k + d_v, ld] with rows k_nope[h]ᵀ, k_peᵀ, v[h]ᵀ (key s in column s), by the product
// kvᵀ[i, s] = Σ_k W_kvb[i, k] c[s, k] with W_kvb's rows as x, the same chain in increasing k as c W_kvbᵀ.
// o: [T, H, d_v] · q: [T, H, d_k] · c: [S, d_c] · k_pe: [S, d_r], S = pos0 + T
void MlaLayer::attend_decompressed(float* o, const float* q, const float* c, const float* k_pe, int64_t T,
                                   int64_t pos0, const uint8_t* keep) const {
    const int64_t H = m_.H, d_n = m_.d_n, d_r = m_.d_r, d_v = m_.d_v, d_k = m_.d_k(), d_kv = d_n + d_v, d_c = m_.d_c;
    const int64_t S = pos0 + T, ld = (S + 15) / 16 * 16, slab = (d_k + d_v) * ld;
    AlignedScratch buf;
    float* kvt = buf.get(H * slab);  // [H, d_k + d_v, ld]
#pragma omp parallel for schedule(static) if (H * (d_k + d_v) * ld >= kMinParallelWork)
    for (int64_t h = 0; h < H; h++) {
        float* sh = kvt + h * slab;
        transpose_block(sh + d_n * ld, ld, k_pe, d_r, S, d_r);  // the shared k_pe, in every head's keys
        for (int64_t i = 0; i < d_k + d_v && S < ld; i++) std::fill(sh + i * ld + S, sh + (i + 1) * ld, 0.0f);
    }
    // rows [off, off + n) of W_kvb[h] times the latents, into rows [dst, dst + n) of head h's slab
    auto decompress = [&](int64_t h, int64_t off, int64_t n, int64_t dst) {
        const float* x = w_.kv_b.data() + (h * d_kv + off) * d_c;  // [n, d_c]
        linear_forward(kvt + h * slab + dst * ld, ld, x, XTiles(x, n, d_c), c, n, d_c, S);
    };
    for (int64_t h = 0; h < H; h++) {
        decompress(h, 0, d_n, 0);         // k_nope[h]ᵀ
        decompress(h, d_n, d_v, d_k);     // v[h]ᵀ
    }
    const KeysT kt{kvt, kvt + d_k * ld, slab, slab, ld};
    attend_shared_kv(H, o, H * d_v, d_v, Rows{q, H * d_k, d_k}, Rows{}, d_n, Rows{q + d_n, H * d_k, d_k}, Rows{}, d_r,
                     Rows{}, d_v, T, 1, pos0, (float)scale_, keep, S, kt);
}

namespace {
class MlaBlock : public AttentionBlock {
public:
    MlaBlock(MlaLayer layer, MlaPath path) : layer_(std::move(layer)), path_(path) {}
    void forward(float* out, const float* x, int64_t T, int64_t pos0, LayerCache& cache, Trace* trace,
                 int64_t layer) const override {
        layer_.forward(path_, out, x, T, pos0, cache, trace, layer);
    }

private:
    MlaLayer layer_;
    MlaPath path_;
};
}  // namespace

MlaWeights load_mla_weights(const ModelConfig& c, const WeightLoader& w, const std::string& prefix) {
    const MlaTensors t = mla_tensors(c, prefix);
    MlaWeights mw;
    if (t.q_a) {
        mw.q_a = w.load(*t.q_a);
        mw.q_a_norm = w.load(*t.q_a_norm);
        mw.q_b = w.load(*t.q_b);
    } else {
        mw.q = w.load(*t.q);
    }
    mw.kv_a = w.load(t.kv_a);
    mw.kv_a_norm = w.load(t.kv_a_norm);
    mw.kv_b = w.load(t.kv_b);
    mw.o = w.load(t.o);
    return mw;
}

std::unique_ptr<AttentionBlock> make_mla_block(const ModelConfig& c, const WeightLoader& w, const std::string& prefix,
                                               MlaPath path, const PrecisionPolicy& prec, IndexerMode mode) {
    MlaWeights mw = load_mla_weights(c, w, prefix);
    MlaFp8Weights fp8;
    if (!prec.none()) {  // the weights as the emulated reference holds them (bf16), and official-fp8's codes
        for (std::vector<float>* v : {&mw.q_a, &mw.q_a_norm, &mw.q_b, &mw.q, &mw.kv_a, &mw.kv_a_norm, &mw.kv_b, &mw.o})
            prec.round_weight(*v);
        const MlaTensors t = mla_tensors(c, prefix);
        if (t.q_a) fp8.q_a = prec.load_fp8(w, *t.q_a), fp8.q_b = prec.load_fp8(w, *t.q_b);
        if (t.q) fp8.q = prec.load_fp8(w, *t.q);
        fp8.kv_a = prec.load_fp8(w, t.kv_a);
        fp8.o = prec.load_fp8(w, t.o);
    }
    std::optional<DsaIndexer> indexer;
    if (c.has_indexer())
        indexer.emplace(indexer_dims(c), load_indexer_weights(c, w, prefix), mode);
    return std::make_unique<MlaBlock>(MlaLayer(mla_dims(c), std::move(mw), prec, std::move(fp8), std::move(indexer)),
                                      path);
}

}  // namespace dsref
