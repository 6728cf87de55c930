// dsa_indexer.cpp — the lightning indexer's forward and its top-k selection (the math is in
// dsa_indexer.h; DeepSeek-V3.2-Exp inference/model.py Indexer.forward).
//
// Each query position is one unit of work: its n_I head queries against the S_t = pos(t) + 1 visible
// keys, one Eigen product [n_I, d_I]·[d_I, S_t], then the weighted ReLU sum over heads in double. The
// unit's shape depends only on the position, never on the thread count, so results are bit-identical
// at any thread count.
#include "model/dsa_indexer.h"

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"
#include "core/hadamard.h"
#include "core/layernorm.h"
#include "core/linear.h"
#include "io/checkpoint_layout.h"

namespace dsref {

using MatRM = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ConstMap = Eigen::Map<const MatRM>;

IndexerMode indexer_mode_from_name(const std::string& name) {
    if (name == "exact") return IndexerMode::Exact;
    if (name == "fp8") return IndexerMode::Fp8;
    usage_fail("--indexer must be exact or fp8, got '", name, "'");
}

const char* indexer_mode_name(IndexerMode m) { return m == IndexerMode::Exact ? "exact" : "fp8"; }

IndexerDims indexer_dims(const ModelConfig& c) {
    IndexerDims m;
    m.d = c.hidden_size;
    m.d_q = c.q_lora_rank;
    m.n_I = c.index_n_heads;
    m.d_I = c.index_head_dim;
    m.d_r = c.qk_rope_head_dim;
    m.k = c.index_topk;
    m.rope_theta = c.rope_theta;
    m.rope_scaling = c.rope_scaling;
    m.scale_fmt = c.fp8_scale_fmt;
    return m;
}

IndexerWeights load_indexer_weights(const ModelConfig& c, const WeightLoader& w, const std::string& prefix) {
    const IndexerTensors t = indexer_tensors(c, prefix);
    IndexerWeights iw;
    iw.wq_b = w.load(t.wq_b);
    iw.wk = w.load(t.wk);
    iw.k_norm = w.load(t.k_norm);
    iw.k_norm_bias = w.load(t.k_norm_bias);
    iw.weights_proj = w.load(t.weights_proj);
    return iw;
}

namespace {
void check_weight(const std::vector<float>& w, int64_t n, const char* name, const std::string& shape) {
    if ((int64_t)w.size() != n)
        fail("DSA indexer: weight ", name, " has ", w.size(), " values, expected ", shape, " = ", n);
}
std::string dims_str(int64_t a, int64_t b = -1) {
    return "[" + std::to_string(a) + (b >= 0 ? ", " + std::to_string(b) : "") + "]";
}

// fp8 mode, steps (1)-(2): rotate each d_I vector, quantize it in 1×128 groups, keep the dequantized
// values (E4M3 code × fp32 scale, exact in float32). x: [rows, d_I] in place.
void rotate_and_quantize(float* x, int64_t rows, int64_t d_I, Fp8ScaleFmt fmt) {
    hadamard_forward(x, rows, d_I);
    std::vector<uint8_t> q(rows * d_I);
    std::vector<float> scale(rows * fp8_num_blocks(d_I));
    fp8_quant_act(q.data(), scale.data(), x, rows, d_I, fmt);
    fp8_dequant_act(x, q.data(), scale.data(), rows, d_I);
}
}  // namespace

DsaIndexer::DsaIndexer(const IndexerDims& dims, IndexerWeights w, IndexerMode mode)
    : m_(dims), w_(std::move(w)), mode_(mode) {
    const IndexerDims& m = m_;
    if (m.d <= 0 || m.d_q <= 0 || m.n_I <= 0 || m.d_I <= 0 || m.d_r <= 0 || m.k <= 0)
        fail("DSA indexer: dimensions must be positive (d ", m.d, ", q_lora_rank ", m.d_q, ", index_n_heads ", m.n_I,
             ", index_head_dim ", m.d_I, ", qk_rope_head_dim ", m.d_r, ", index_topk ", m.k, ")");
    if (m.d_r > m.d_I || m.d_r % 2)
        fail("DSA indexer: qk_rope_head_dim ", m.d_r, " must be even and at most index_head_dim ", m.d_I);
    if (mode_ == IndexerMode::Fp8 && (m.d_I & (m.d_I - 1)) != 0)
        fail("DSA indexer: --indexer fp8 rotates by a Walsh–Hadamard transform, which needs index_head_dim a power "
             "of two, got ", m.d_I);
    check_weight(w_.wq_b, m.n_I * m.d_I * m.d_q, "indexer.wq_b", dims_str(m.n_I * m.d_I, m.d_q));
    check_weight(w_.wk, m.d_I * m.d, "indexer.wk", dims_str(m.d_I, m.d));
    check_weight(w_.k_norm, m.d_I, "indexer.k_norm.weight", dims_str(m.d_I));
    check_weight(w_.k_norm_bias, m.d_I, "indexer.k_norm.bias", dims_str(m.d_I));
    check_weight(w_.weights_proj, m.n_I * m.d, "indexer.weights_proj", dims_str(m.n_I, m.d));
    inv_freq_ = rope_inv_freq(m.d_r, m.rope_theta, m.rope_scaling);
}

// LAB(dsa_indexer) task: per query t (position pos0 + t) the kt = min(k, pos0 + t + 1) best visible positions, best first,
// LAB(dsa_indexer) padded with -1 to kk = min(k, S) columns, and the margin: the kt-th kept score minus the best left out (inf if none).
// LAB(dsa_indexer) hint: equal scores keep the lower position (a strict weak order); std::partial_sort of the kt + 1 best suffices.
void dsa_select_topk(IndexerSelection& sel, const float* scores, int64_t T, int64_t S, int64_t pos0, int64_t k) {
    // LAB(dsa_indexer): begin
    const int64_t kk = std::min(k, S);
    sel.S = S;
    sel.kk = kk;
    sel.topk.assign(T * kk, -1);
    sel.margin.assign(T, INFINITY);
#pragma omp parallel for schedule(static) if (T * S >= (1 << 14))
    for (int64_t t = 0; t < T; t++) {
        const int64_t St = pos0 + t + 1, kt = std::min(k, St);  // visible positions, positions kept
        const float* row = scores + t * S;
        std::vector<int32_t> idx(St);
        std::iota(idx.begin(), idx.end(), 0);
        // best first; equal scores: the lower position first (a strict weak order, so the result is unique)
        auto better = [row](int32_t a, int32_t b) { return row[a] > row[b] || (row[a] == row[b] && a < b); };
        const int64_t n = std::min(St, kt + 1);  // the k kept and the first one left out
        std::partial_sort(idx.begin(), idx.begin() + n, idx.end(), better);
        std::copy(idx.begin(), idx.begin() + kt, sel.topk.begin() + t * kk);
        if (St > kt) sel.margin[t] = row[idx[kt - 1]] - row[idx[kt]];
    }
    // LAB(dsa_indexer): end
}

// LAB(dsa_indexer) task: the lightning indexer (dsa_indexer.h): q_I = RoPE(W_qb^I qr), k_I = RoPE(LayerNorm(W_k^I x)) appended
// LAB(dsa_indexer) to k_cache, w = W_w x / sqrt(n_I), I[t, s] = sum_h w[t, h] ReLU(q_I[t, h] . k_I[s]) / sqrt(d_I) for s <= pos(t)
// LAB(dsa_indexer) (-inf elsewhere) into sel.scores [T, S], then dsa_select_topk.
// LAB(dsa_indexer) hint: RoPE is half-split on the first d_r dims; in fp8 mode rotate_and_quantize q and k before caching.
IndexerSelection DsaIndexer::forward(const float* x, const float* qr, int64_t T, int64_t pos0,
                                     std::vector<float>& k_cache, Trace* trace, int64_t layer) const {
    const int64_t d = m_.d, n_I = m_.n_I, d_I = m_.d_I, d_r = m_.d_r, S = pos0 + T;
    if ((int64_t)k_cache.size() != pos0 * d_I)
        fail("DSA indexer: the key cache holds ", k_cache.size(), " values, but ", pos0, " cached tokens need ",
             pos0 * d_I);
    std::vector<int64_t> pos(T);
    for (int64_t t = 0; t < T; t++) pos[t] = pos0 + t;
    std::vector<float> q(T * n_I * d_I), k(T * d_I), wts(T * n_I);  // q_I [T, n_I, d_I], k_I [T, d_I], w [T, n_I]
    IndexerSelection sel;                                           // scores [T, S], then the top-k

    // LAB(dsa_indexer): begin
    // q_I [T, n_I, d_I] = W_qb^I qr, RoPE (half-split) on each head's first d_r dims
    linear_forward(q.data(), qr, w_.wq_b.data(), T, m_.d_q, n_I * d_I);
    rope_forward(q.data(), T, n_I, d_r, n_I * d_I, d_I, pos.data(), inv_freq_, RopeLayout::Half);
    // k_I [T, d_I] = LayerNorm(W_k^I x), RoPE (half-split) on the first d_r dims
    linear_forward(k.data(), x, w_.wk.data(), T, d, d_I);
    layernorm_forward(k.data(), k.data(), w_.k_norm.data(), w_.k_norm_bias.data(), T, d_I, (float)kIndexerKNormEps);
    rope_forward(k.data(), T, 1, d_r, d_I, d_I, pos.data(), inv_freq_, RopeLayout::Half);
    if (mode_ == IndexerMode::Fp8) {
        rotate_and_quantize(q.data(), T * n_I, d_I, m_.scale_fmt);
        rotate_and_quantize(k.data(), T, d_I, m_.scale_fmt);
    }
    k_cache.insert(k_cache.end(), k.begin(), k.end());  // [S, d_I]

    // w [T, n_I] = W_w x · n_I^-1/2
    linear_forward(wts.data(), x, w_.weights_proj.data(), T, d, n_I);
    const float head_scale = (float)(1.0 / std::sqrt((double)n_I));
    for (float& v : wts) v *= head_scale;

    // I[t, s] = Σ_h w[t, h] · ReLU(q_I[t, h]·k_I[s]) · d_I^-1/2 for s ≤ pos(t)
    sel.scores.assign(T * S, -INFINITY);
    const double dot_scale = 1.0 / std::sqrt((double)d_I);
#pragma omp parallel for schedule(dynamic, 1) if (T * S * n_I * d_I >= (1 << 17))
    for (int64_t t = 0; t < T; t++) {
        const int64_t St = pos0 + t + 1;
        ConstMap Q(q.data() + t * n_I * d_I, n_I, d_I);  // [n_I, d_I]
        ConstMap K(k_cache.data(), St, d_I);             // [S_t, d_I]
        const MatRM D = Q * K.transpose();               // [n_I, S_t]
        float* row = sel.scores.data() + t * S;
        for (int64_t s = 0; s < St; s++) {
            double acc = 0.0;
            for (int64_t h = 0; h < n_I; h++) acc += (double)wts[t * n_I + h] * std::max(0.0f, D(h, s));
            row[s] = (float)(acc * dot_scale);
        }
    }
    dsa_select_topk(sel, sel.scores.data(), T, S, pos0, m_.k);
    // LAB(dsa_indexer): end

    if (trace) {
        const std::string i = "." + std::to_string(layer);
        trace_f32(trace, "index_q" + i, {T, n_I, d_I}, q.data());
        trace_f32(trace, "index_k" + i, {T, d_I}, k.data());
        trace_f32(trace, "index_weights" + i, {T, n_I}, wts.data());
        trace_f32(trace, "index_scores" + i, {T, S}, sel.scores.data());
        if (trace->wants("index_topk" + i)) trace->record("index_topk" + i, Tensor::from_i32({T, sel.kk}, sel.topk));
        trace_f32(trace, "index_margin" + i, {T}, sel.margin.data());
    }
    return sel;
}

}  // namespace dsref
