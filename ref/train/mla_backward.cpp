// mla_backward.cpp — MLA, naive path, forward and backward (mla_backward.h).
#include "train/mla_backward.h"

#include "train/attention_backward.h"
#include "train/dense_backward.h"
#include "train/rope_backward.h"

namespace dsref {

namespace {
constexpr double kLatentEps = 1e-6;  // model/mla.h kMlaLatentNormEps
std::vector<int64_t> positions(int64_t T) {
    std::vector<int64_t> p(T);
    for (int64_t t = 0; t < T; t++) p[t] = t;
    return p;
}
}  // namespace

template <class F>
void mla_fwd(F* out, MlaTrainCache<F>& c, const F* x, const MlaTrainWeights<F>& w, const MlaTrainDims& m, int64_t T) {
    const int64_t H = m.H, dk = m.d_n + m.d_r, dkv = m.d_n + m.d_v, d = m.d;
    const auto pos = positions(T);
    c.q.assign(T * H * dk, F(0));
    if (m.d_q > 0) {
        c.cq_raw.assign(T * m.d_q, F(0));
        c.cq.assign(T * m.d_q, F(0));
        c.cq_rstd.assign(T, F(0));
        lin_fwd(c.cq_raw.data(), x, w.w_qa, T, d, m.d_q);
        rms_fwd(c.cq.data(), c.cq_rstd.data(), c.cq_raw.data(), w.q_norm, T, m.d_q, kLatentEps);
        lin_fwd(c.q.data(), c.cq.data(), w.w_qb, T, m.d_q, H * dk);
    } else {
        lin_fwd(c.q.data(), x, w.w_q, T, d, H * dk);
    }
    c.kva.assign(T * (m.d_c + m.d_r), F(0));
    lin_fwd(c.kva.data(), x, w.w_kva, T, d, m.d_c + m.d_r);
    std::vector<F> craw(T * m.d_c);
    for (int64_t t = 0; t < T; t++)
        for (int64_t i = 0; i < m.d_c; i++) craw[t * m.d_c + i] = c.kva[t * (m.d_c + m.d_r) + i];
    c.c.assign(T * m.d_c, F(0));
    c.c_rstd.assign(T, F(0));
    rms_fwd(c.c.data(), c.c_rstd.data(), craw.data(), w.kv_norm, T, m.d_c, kLatentEps);
    c.kv.assign(T * H * dkv, F(0));
    lin_fwd(c.kv.data(), c.c.data(), w.w_kvb, T, m.d_c, H * dkv);
    // per-head q, k, v with RoPE on the pe parts
    c.qh = c.q;
    rope_apply(c.qh.data() + m.d_n, T, H, m.d_r, H * dk, dk, pos.data(), m.inv_freq, m.layout, false);
    std::vector<F> kpe(T * m.d_r);
    for (int64_t t = 0; t < T; t++)
        for (int64_t i = 0; i < m.d_r; i++) kpe[t * m.d_r + i] = c.kva[t * (m.d_c + m.d_r) + m.d_c + i];
    rope_apply(kpe.data(), T, 1, m.d_r, m.d_r, m.d_r, pos.data(), m.inv_freq, m.layout, false);
    c.kh.assign(T * H * dk, F(0));
    c.vh.assign(T * H * m.d_v, F(0));
    for (int64_t t = 0; t < T; t++)
        for (int64_t h = 0; h < H; h++) {
            for (int64_t i = 0; i < m.d_n; i++) c.kh[(t * H + h) * dk + i] = c.kv[(t * H + h) * dkv + i];
            for (int64_t i = 0; i < m.d_r; i++) c.kh[(t * H + h) * dk + m.d_n + i] = kpe[t * m.d_r + i];
            for (int64_t i = 0; i < m.d_v; i++) c.vh[(t * H + h) * m.d_v + i] = c.kv[(t * H + h) * dkv + m.d_n + i];
        }
    c.o.assign(T * H * m.d_v, F(0));
    attn_fwd(c.o.data(), c.P, c.qh.data(), c.kh.data(), c.vh.data(), T, H, H, dk, m.d_v, m.scale);
    lin_fwd(out, c.o.data(), w.w_o, T, H * m.d_v, d);
}

// LAB(mla_backward) task: back through mla_fwd above, step by step in reverse: o_proj, attention, RoPE on q_pe and the
// LAB(mla_backward) shared k_pe, kv_b_proj, the latent RMSNorm, kv_a_proj, then the query path (with or without q_lora_rank).
// LAB(mla_backward) hint: k_pe is shared by every head: its gradient sums over heads; dx sums the query and the kv paths.
template <class F>
void mla_bwd(F* dx, MlaTrainGrads<F>& gr, const F* dout, const MlaTrainCache<F>& c, const F* x, const MlaTrainWeights<F>& w,
             const MlaTrainDims& m, int64_t T) {
    // LAB(mla_backward): begin
    const int64_t H = m.H, dk = m.d_n + m.d_r, dkv = m.d_n + m.d_v, d = m.d;
    const auto pos = positions(T);
    std::vector<F> dO(T * H * m.d_v), dq(T * H * dk), dk_(T * H * dk), dv(T * H * m.d_v);
    lin_bwd(dO.data(), gr.w_o, dout, c.o.data(), w.w_o, T, H * m.d_v, d);
    attn_bwd(dq.data(), dk_.data(), dv.data(), dO.data(), c.P, c.qh.data(), c.kh.data(), c.vh.data(), T, H, H, dk,
             m.d_v, m.scale);
    rope_apply(dq.data() + m.d_n, T, H, m.d_r, H * dk, dk, pos.data(), m.inv_freq, m.layout, true);
    std::vector<F> dKV(T * H * dkv), dkpe(T * m.d_r, F(0));
    for (int64_t t = 0; t < T; t++)
        for (int64_t h = 0; h < H; h++) {
            for (int64_t i = 0; i < m.d_n; i++) dKV[(t * H + h) * dkv + i] = dk_[(t * H + h) * dk + i];
            for (int64_t i = 0; i < m.d_v; i++) dKV[(t * H + h) * dkv + m.d_n + i] = dv[(t * H + h) * m.d_v + i];
            for (int64_t i = 0; i < m.d_r; i++) dkpe[t * m.d_r + i] += dk_[(t * H + h) * dk + m.d_n + i];
        }
    rope_apply(dkpe.data(), T, 1, m.d_r, m.d_r, m.d_r, pos.data(), m.inv_freq, m.layout, true);
    std::vector<F> dc(T * m.d_c), dcraw(T * m.d_c), dkva(T * (m.d_c + m.d_r)), craw(T * m.d_c);
    lin_bwd(dc.data(), gr.w_kvb, dKV.data(), c.c.data(), w.w_kvb, T, m.d_c, H * dkv);
    for (int64_t t = 0; t < T; t++)
        for (int64_t i = 0; i < m.d_c; i++) craw[t * m.d_c + i] = c.kva[t * (m.d_c + m.d_r) + i];
    rms_bwd(dcraw.data(), gr.kv_norm, dc.data(), craw.data(), w.kv_norm, c.c_rstd.data(), T, m.d_c);
    for (int64_t t = 0; t < T; t++) {
        for (int64_t i = 0; i < m.d_c; i++) dkva[t * (m.d_c + m.d_r) + i] = dcraw[t * m.d_c + i];
        for (int64_t i = 0; i < m.d_r; i++) dkva[t * (m.d_c + m.d_r) + m.d_c + i] = dkpe[t * m.d_r + i];
    }
    std::vector<F> dx2(T * d);
    lin_bwd(dx2.data(), gr.w_kva, dkva.data(), x, w.w_kva, T, d, m.d_c + m.d_r);
    if (m.d_q > 0) {
        std::vector<F> dcq(T * m.d_q), dcqraw(T * m.d_q);
        lin_bwd(dcq.data(), gr.w_qb, dq.data(), c.cq.data(), w.w_qb, T, m.d_q, H * dk);
        rms_bwd(dcqraw.data(), gr.q_norm, dcq.data(), c.cq_raw.data(), w.q_norm, c.cq_rstd.data(), T, m.d_q);
        lin_bwd(dx, gr.w_qa, dcqraw.data(), x, w.w_qa, T, d, m.d_q);
    } else {
        lin_bwd(dx, gr.w_q, dq.data(), x, w.w_q, T, d, H * dk);
    }
    for (int64_t i = 0; i < T * d; i++) dx[i] += dx2[i];
    // LAB(mla_backward): end
}

template void mla_fwd<float>(float*, MlaTrainCache<float>&, const float*, const MlaTrainWeights<float>&, const MlaTrainDims&,
                             int64_t);
template void mla_fwd<double>(double*, MlaTrainCache<double>&, const double*, const MlaTrainWeights<double>&,
                              const MlaTrainDims&, int64_t);
template void mla_bwd<float>(float*, MlaTrainGrads<float>&, const float*, const MlaTrainCache<float>&, const float*,
                             const MlaTrainWeights<float>&, const MlaTrainDims&, int64_t);
template void mla_bwd<double>(double*, MlaTrainGrads<double>&, const double*, const MlaTrainCache<double>&, const double*,
                              const MlaTrainWeights<double>&, const MlaTrainDims&, int64_t);

}  // namespace dsref
