// tiny_v3.cpp — the whole-network forward and backward (tiny_v3.h).
#include "train/tiny_v3.h"

#include <exception>

#include "core/error.h"
#include "train/dense_backward.h"
#include "train/loss_backward.h"
#include "train/moe_backward.h"
#include "train/mtp_backward.h"

namespace dsref {

namespace {
std::string L_(int64_t i) { return "model.layers." + std::to_string(i) + "."; }
bool is_moe(const TinyV3Config& c, int64_t i) { return i >= c.first_dense; }
}  // namespace

bool has_bias(const TinyV3Config& c) { return c.gate.topk_method == MoeTopk::NoauxTc; }

namespace {
}  // namespace

std::map<std::string, std::vector<int64_t>> tiny_v3_shapes(const TinyV3Config& c) {
    const MlaTrainDims& m = c.mla;
    if (m.d != c.d) fail("tiny_v3: mla.d ", m.d, " != d ", c.d);
    const int64_t dk = m.d_n + m.d_r;
    std::map<std::string, std::vector<int64_t>> s;
    s["model.embed_tokens.weight"] = {c.V, c.d};
    for (int64_t i = 0; i < c.L; i++) {
        const std::string p = L_(i);
        s[p + "input_layernorm.weight"] = {c.d};
        s[p + "post_attention_layernorm.weight"] = {c.d};
        if (m.d_q > 0) {
            s[p + "self_attn.q_a_proj.weight"] = {m.d_q, c.d};
            s[p + "self_attn.q_a_layernorm.weight"] = {m.d_q};
            s[p + "self_attn.q_b_proj.weight"] = {m.H * dk, m.d_q};
        } else {
            s[p + "self_attn.q_proj.weight"] = {m.H * dk, c.d};
        }
        s[p + "self_attn.kv_a_proj_with_mqa.weight"] = {m.d_c + m.d_r, c.d};
        s[p + "self_attn.kv_a_layernorm.weight"] = {m.d_c};
        s[p + "self_attn.kv_b_proj.weight"] = {m.H * (m.d_n + m.d_v), m.d_c};
        s[p + "self_attn.o_proj.weight"] = {c.d, m.H * m.d_v};
        if (!is_moe(c, i)) {
            s[p + "mlp.gate_proj.weight"] = {c.I_dense, c.d};
            s[p + "mlp.up_proj.weight"] = {c.I_dense, c.d};
            s[p + "mlp.down_proj.weight"] = {c.d, c.I_dense};
        } else {
            s[p + "mlp.gate.weight"] = {c.gate.E, c.d};
            if (has_bias(c)) s[p + "mlp.gate.e_score_correction_bias"] = {c.gate.E};
            for (int64_t e = 0; e < c.gate.E; e++) {
                const std::string q = p + "mlp.experts." + std::to_string(e) + ".";
                s[q + "gate_proj.weight"] = {c.I_moe, c.d};
                s[q + "up_proj.weight"] = {c.I_moe, c.d};
                s[q + "down_proj.weight"] = {c.d, c.I_moe};
            }
            if (c.n_shared > 0) {
                const int64_t Is = c.n_shared * c.I_moe;
                s[p + "mlp.shared_experts.gate_proj.weight"] = {Is, c.d};
                s[p + "mlp.shared_experts.up_proj.weight"] = {Is, c.d};
                s[p + "mlp.shared_experts.down_proj.weight"] = {c.d, Is};
            }
        }
    }
    s["model.norm.weight"] = {c.d};
    if (!c.tie) s["lm_head.weight"] = {c.V, c.d};
    if (c.n_mtp > 1) fail("tiny_v3: num_nextn_predict_layers = ", c.n_mtp, ", only 0 or 1 is supported");
    if (c.n_mtp == 1) {  // the MTP module as layer L (train/mtp_backward.h): a MoE decoder block and its extras
        if (c.gate.E == 0) fail("tiny_v3: the MTP module needs a MoE config");
        TinyV3Config one = c;
        one.L = c.L + 1, one.first_dense = c.L, one.n_mtp = 0;
        const std::string q = L_(c.L);
        for (const auto& [name, shape] : tiny_v3_shapes(one))
            if (name.rfind(q, 0) == 0) s[name] = shape;
        s[q + "embed_tokens.weight"] = {c.V, c.d};
        s[q + "enorm.weight"] = {c.d};
        s[q + "hnorm.weight"] = {c.d};
        s[q + "eh_proj.weight"] = {c.d, 2 * c.d};
        s[q + "shared_head.norm.weight"] = {c.d};
        s[q + "shared_head.head.weight"] = {c.V, c.d};
    }
    return s;
}

template <class F>
TinyV3Losses tiny_v3_step(const TinyV3Config& c, const ParamMap<F>& p, ParamMap<F>* grads, const int32_t* ids,
                          const int32_t* targets, int64_t T, const BalanceLossWeights& aux, double mtp_lambda) {
    for (int64_t t = 0; t < T; t++)
        if (targets[t] < 0 || targets[t] >= c.V)
            fail("tiny_v3: token id at position ", t, " outside the vocabulary of ", c.V);
    const TinyV3Head<F> xent = [targets](const F* logits, F* dlogits, int64_t n, int64_t V) {
        return xent_fwd_bwd(dlogits, logits, targets, n, V, 1.0);
    };
    return tiny_v3_step_head(c, p, grads, ids, T, aux, xent, targets, mtp_lambda);
}

template <class F>
std::vector<TinyV3Losses> tiny_v3_batch(const TinyV3Config& c, const ParamMap<F>& p, ParamMap<F>* grads,
                                        const std::vector<const int32_t*>& ids,
                                        const std::vector<const int32_t*>& targets, int64_t T, const BalanceLossWeights& aux,
                                        double mtp_lambda) {
    const int64_t B = (int64_t)ids.size();
    if ((int64_t)targets.size() != B) fail("tiny_v3_batch: ", B, " rows of ids but ", targets.size(), " of targets");
    std::vector<TinyV3Losses> losses(B);
    std::vector<ParamMap<F>> row_grads(grads ? B : 0);
    std::vector<std::exception_ptr> errors(B);
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t b = 0; b < B; b++) {
        try {
            losses[b] = tiny_v3_step(c, p, grads ? &row_grads[b] : nullptr, ids[b], targets[b], T, aux, mtp_lambda);
        } catch (...) {
            errors[b] = std::current_exception();  // rethrown below, the first row's first
        }
    }
    for (const auto& e : errors)
        if (e) std::rethrow_exception(e);
    if (!grads) return losses;
    for (int64_t b = 0; b < B; b++)  // the sum in row order: independent of which thread ran which row
        for (auto& [name, gv] : row_grads[b]) {
            auto& acc = (*grads)[name];
            if (acc.empty()) acc.assign(gv.size(), F(0));
            for (size_t i = 0; i < gv.size(); i++) acc[i] += gv[i];
            std::vector<F>().swap(gv);  // release the row's buffer as soon as it is summed
        }
    return losses;
}

template <class F>
TinyV3Losses tiny_v3_step_head(const TinyV3Config& c, const ParamMap<F>& p, ParamMap<F>* grads, const int32_t* ids,
                               int64_t T, const BalanceLossWeights& aux, const TinyV3Head<F>& loss_head, const int32_t* targets,
                               double mtp_lambda) {
    const int64_t d = c.d, V = c.V;
    for (int64_t t = 0; t < T; t++)
        if (ids[t] < 0 || ids[t] >= V) fail("tiny_v3: token id at position ", t, " outside the vocabulary of ", V);
    auto P = [&](const std::string& n) -> const F* {
        auto it = p.find(n);
        if (it == p.end()) fail("tiny_v3: missing tensor ", n);
        return it->second.data();
    };
    auto G = [&](const std::string& n) -> F* {
        if (!grads) return nullptr;
        auto& v = (*grads)[n];
        if (v.empty()) v.assign(p.at(n).size(), F(0));
        return v.data();
    };
    auto float_bias = [&](const std::string& n) {
        const auto& b = p.at(n);
        return std::vector<float>(b.begin(), b.end());
    };
    // ---- forward, keeping what the backward needs ----
    struct Layer {
        std::vector<F> x_in, h1, r1, x_mid, h2, r2;
        MlaTrainCache<F> mla;
        MlpCache<F> mlp;
        MoeTrainCache<F> moe;
        MoeTrainWeights<F> mw;
        std::vector<float> bias;
    };
    std::vector<Layer> Ls(c.L);
    std::vector<F> x(T * d), tmp(T * d);
    embed_fwd(x.data(), P("model.embed_tokens.weight"), ids, T, d);
    TinyV3Losses out;
    auto mla_w = [&](const std::string& pre) {
        MlaTrainWeights<F> w;
        if (c.mla.d_q > 0) {
            w.w_qa = P(pre + "self_attn.q_a_proj.weight");
            w.q_norm = P(pre + "self_attn.q_a_layernorm.weight");
            w.w_qb = P(pre + "self_attn.q_b_proj.weight");
        } else {
            w.w_q = P(pre + "self_attn.q_proj.weight");
        }
        w.w_kva = P(pre + "self_attn.kv_a_proj_with_mqa.weight");
        w.kv_norm = P(pre + "self_attn.kv_a_layernorm.weight");
        w.w_kvb = P(pre + "self_attn.kv_b_proj.weight");
        w.w_o = P(pre + "self_attn.o_proj.weight");
        return w;
    };
    for (int64_t i = 0; i < c.L; i++) {
        Layer& l = Ls[i];
        const std::string pre = L_(i);
        l.x_in = x;
        l.h1.assign(T * d, F(0));
        l.r1.assign(T, F(0));
        rms_fwd(l.h1.data(), l.r1.data(), x.data(), P(pre + "input_layernorm.weight"), T, d, c.eps);
        mla_fwd(tmp.data(), l.mla, l.h1.data(), mla_w(pre), c.mla, T);
        for (int64_t k = 0; k < T * d; k++) x[k] += tmp[k];
        l.x_mid = x;
        l.h2.assign(T * d, F(0));
        l.r2.assign(T, F(0));
        rms_fwd(l.h2.data(), l.r2.data(), x.data(), P(pre + "post_attention_layernorm.weight"), T, d, c.eps);
        if (!is_moe(c, i)) {
            mlp_fwd(tmp.data(), l.mlp, l.h2.data(), P(pre + "mlp.gate_proj.weight"), P(pre + "mlp.up_proj.weight"),
                    P(pre + "mlp.down_proj.weight"), T, d, c.I_dense);
        } else {
            if (has_bias(c)) {
                l.bias = float_bias(pre + "mlp.gate.e_score_correction_bias");
                l.mw.bias = l.bias.data();
            }
            l.mw.w_router = P(pre + "mlp.gate.weight");
            l.mw.I = c.I_moe;
            for (int64_t e = 0; e < c.gate.E; e++) {
                const std::string q = pre + "mlp.experts." + std::to_string(e) + ".";
                l.mw.w_gate.push_back(P(q + "gate_proj.weight"));
                l.mw.w_up.push_back(P(q + "up_proj.weight"));
                l.mw.w_down.push_back(P(q + "down_proj.weight"));
            }
            if (c.n_shared > 0) {
                l.mw.I_s = c.n_shared * c.I_moe;
                l.mw.s_gate = P(pre + "mlp.shared_experts.gate_proj.weight");
                l.mw.s_up = P(pre + "mlp.shared_experts.up_proj.weight");
                l.mw.s_down = P(pre + "mlp.shared_experts.down_proj.weight");
            }
            moe_fwd(tmp.data(), l.moe, l.h2.data(), l.mw, c.gate, T, d);
            std::vector<int64_t> load(c.gate.E, 0);
            for (int32_t e : l.moe.idx) load[e]++;
            out.load.push_back(load);
            if (aux.any())
                out.aux += balance_losses_fwd_bwd<F>(nullptr, l.moe.s.data(), l.moe.idx.data(), T, c.gate.E, c.gate.K,
                                                     aux);
        }
        for (int64_t k = 0; k < T * d; k++) x[k] += tmp[k];
    }
    std::vector<F> hf(T * d), rf(T), logits(T * V), dlogits(T * V);
    rms_fwd(hf.data(), rf.data(), x.data(), P("model.norm.weight"), T, d, c.eps);
    const std::string head = c.tie ? "model.embed_tokens.weight" : "lm_head.weight";
    lin_fwd(logits.data(), hf.data(), P(head), T, d, V);
    out.ce = loss_head(logits.data(), grads ? dlogits.data() : nullptr, T, V);
    std::vector<F> dhf_mtp(T * d, F(0));  // λ · ∂L_MTP/∂hf: the MTP module reads the normed final hidden state
    if (mtp_lambda > 0) {
        if (!targets) fail("tiny_v3: an MTP loss weight without the next-token targets");
        if (c.n_mtp != 1) fail("tiny_v3: an MTP loss weight without an MTP module (num_nextn_predict_layers = 0)");
        const MtpLosses m = mtp_fwd_bwd(c, p, grads, hf.data(), dhf_mtp.data(), ids, targets, T, mtp_lambda, aux);
        out.mtp = m.ce;
        out.aux += m.aux;
        out.load.push_back(m.load);
    }
    if (!grads) return out;
    // ---- backward ----
    std::vector<F> dh(T * d), dx(T * d), dtmp(T * d);
    lin_bwd(dh.data(), G(head), dlogits.data(), hf.data(), P(head), T, d, V);
    for (int64_t k = 0; k < T * d; k++) dh[k] += dhf_mtp[k];
    rms_bwd(dx.data(), G("model.norm.weight"), dh.data(), x.data(), P("model.norm.weight"), rf.data(), T, d);
    for (int64_t i = c.L - 1; i >= 0; i--) {
        Layer& l = Ls[i];
        const std::string pre = L_(i);
        if (!is_moe(c, i)) {
            mlp_bwd(dtmp.data(), G(pre + "mlp.gate_proj.weight"), G(pre + "mlp.up_proj.weight"),
                    G(pre + "mlp.down_proj.weight"), dx.data(), l.mlp, l.h2.data(), P(pre + "mlp.gate_proj.weight"),
                    P(pre + "mlp.up_proj.weight"), P(pre + "mlp.down_proj.weight"), T, d, c.I_dense);
        } else {
            MoeTrainGrads<F> mg;
            mg.w_router = G(pre + "mlp.gate.weight");
            for (int64_t e = 0; e < c.gate.E; e++) {
                const std::string q = pre + "mlp.experts." + std::to_string(e) + ".";
                mg.w_gate.push_back(G(q + "gate_proj.weight"));
                mg.w_up.push_back(G(q + "up_proj.weight"));
                mg.w_down.push_back(G(q + "down_proj.weight"));
            }
            if (c.n_shared > 0) {
                mg.s_gate = G(pre + "mlp.shared_experts.gate_proj.weight");
                mg.s_up = G(pre + "mlp.shared_experts.up_proj.weight");
                mg.s_down = G(pre + "mlp.shared_experts.down_proj.weight");
            }
            std::vector<F> ds(T * c.gate.E, F(0));
            if (aux.any())
                balance_losses_fwd_bwd(ds.data(), l.moe.s.data(), l.moe.idx.data(), T, c.gate.E, c.gate.K, aux);
            moe_bwd(dtmp.data(), mg, dx.data(), aux.any() ? ds.data() : nullptr, l.moe, l.h2.data(), l.mw, c.gate, T,
                    d);
        }
        rms_bwd(dh.data(), G(pre + "post_attention_layernorm.weight"), dtmp.data(), l.x_mid.data(),
                P(pre + "post_attention_layernorm.weight"), l.r2.data(), T, d);
        for (int64_t k = 0; k < T * d; k++) dx[k] += dh[k];
        MlaTrainGrads<F> ag;
        if (c.mla.d_q > 0) {
            ag.w_qa = G(pre + "self_attn.q_a_proj.weight");
            ag.q_norm = G(pre + "self_attn.q_a_layernorm.weight");
            ag.w_qb = G(pre + "self_attn.q_b_proj.weight");
        } else {
            ag.w_q = G(pre + "self_attn.q_proj.weight");
        }
        ag.w_kva = G(pre + "self_attn.kv_a_proj_with_mqa.weight");
        ag.kv_norm = G(pre + "self_attn.kv_a_layernorm.weight");
        ag.w_kvb = G(pre + "self_attn.kv_b_proj.weight");
        ag.w_o = G(pre + "self_attn.o_proj.weight");
        mla_bwd(dtmp.data(), ag, dx.data(), l.mla, l.h1.data(), mla_w(pre), c.mla, T);
        rms_bwd(dh.data(), G(pre + "input_layernorm.weight"), dtmp.data(), l.x_in.data(),
                P(pre + "input_layernorm.weight"), l.r1.data(), T, d);
        for (int64_t k = 0; k < T * d; k++) dx[k] += dh[k];
    }
    embed_bwd(G("model.embed_tokens.weight"), dx.data(), ids, T, d);
    return out;
}

#define DSREF_TINY_V3(F)                                                                                      \
    template TinyV3Losses tiny_v3_step<F>(const TinyV3Config&, const ParamMap<F>&, ParamMap<F>*, const int32_t*,     \
                                          const int32_t*, int64_t, const BalanceLossWeights&, double);              \
    template std::vector<TinyV3Losses> tiny_v3_batch<F>(const TinyV3Config&, const ParamMap<F>&, ParamMap<F>*,      \
                                                        const std::vector<const int32_t*>&,                         \
                                                        const std::vector<const int32_t*>&, int64_t,                \
                                                        const BalanceLossWeights&, double);                         \
    template TinyV3Losses tiny_v3_step_head<F>(const TinyV3Config&, const ParamMap<F>&, ParamMap<F>*, const int32_t*, \
                                               int64_t, const BalanceLossWeights&, const TinyV3Head<F>&,             \
                                               const int32_t*, double);
DSREF_TINY_V3(float)
DSREF_TINY_V3(double)

}  // namespace dsref
