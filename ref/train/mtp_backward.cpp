// mtp_backward.cpp — the MTP module's forward, loss and backward (mtp_backward.h).
#include "train/mtp_backward.h"

#include "core/error.h"
#include "train/dense_backward.h"
#include "train/loss_backward.h"
#include "train/moe_backward.h"

namespace dsref {

template <class F>
MtpLosses mtp_fwd_bwd(const TinyV3Config& c, const ParamMap<F>& p, ParamMap<F>* grads, const F* hf, F* dhf,
                      const int32_t* ids, const int32_t* targets, int64_t T, double lambda,
                      const BalanceLossWeights& aux) {
    const int64_t d = c.d, V = c.V, n = T - 1;  // MTP positions 0..T-2
    if (n < 1) fail("mtp: multi-token prediction needs at least 2 tokens per row, got ", T);
    const std::string pre = "model.layers." + std::to_string(c.L) + ".";
    auto P = [&](const std::string& s) -> const F* {
        auto it = p.find(pre + s);
        if (it == p.end()) fail("mtp: missing tensor ", pre + s);
        return it->second.data();
    };
    auto G = [&](const std::string& s) -> F* {
        if (!grads) return nullptr;
        auto& v = (*grads)[pre + s];
        if (v.empty()) v.assign(p.at(pre + s).size(), F(0));
        return v.data();
    };
    MtpLosses out;
    // ---- x = eh_proj · [enorm(Emb(t_{i+1})) ; hnorm(h_i)] ----
    std::vector<F> emb(n * d), e(n * d), re(n), hh(n * d), rh(n), cat(n * 2 * d), x(n * d);
    embed_fwd(emb.data(), P("embed_tokens.weight"), ids + 1, n, d);
    rms_fwd(e.data(), re.data(), emb.data(), P("enorm.weight"), n, d, c.eps);
    rms_fwd(hh.data(), rh.data(), hf, P("hnorm.weight"), n, d, c.eps);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < d; j++) cat[i * 2 * d + j] = e[i * d + j], cat[i * 2 * d + d + j] = hh[i * d + j];
    lin_fwd(x.data(), cat.data(), P("eh_proj.weight"), n, 2 * d, d);
    // ---- the decoder block (as a MoE layer of tiny_v3.cpp) ----
    MlaTrainWeights<F> aw;
    if (c.mla.d_q > 0) {
        aw.w_qa = P("self_attn.q_a_proj.weight");
        aw.q_norm = P("self_attn.q_a_layernorm.weight");
        aw.w_qb = P("self_attn.q_b_proj.weight");
    } else {
        aw.w_q = P("self_attn.q_proj.weight");
    }
    aw.w_kva = P("self_attn.kv_a_proj_with_mqa.weight");
    aw.kv_norm = P("self_attn.kv_a_layernorm.weight");
    aw.w_kvb = P("self_attn.kv_b_proj.weight");
    aw.w_o = P("self_attn.o_proj.weight");
    const std::vector<F> x_in = x;
    std::vector<F> h1(n * d), r1(n), tmp(n * d), h2(n * d), r2(n);
    MlaTrainCache<F> mla;
    rms_fwd(h1.data(), r1.data(), x.data(), P("input_layernorm.weight"), n, d, c.eps);
    mla_fwd(tmp.data(), mla, h1.data(), aw, c.mla, n);
    for (int64_t k = 0; k < n * d; k++) x[k] += tmp[k];
    const std::vector<F> x_mid = x;
    rms_fwd(h2.data(), r2.data(), x.data(), P("post_attention_layernorm.weight"), n, d, c.eps);
    std::vector<float> bias;
    MoeTrainWeights<F> mw;
    if (has_bias(c)) {
        const auto& bias_p = p.at(pre + "mlp.gate.e_score_correction_bias");
        bias.assign(bias_p.begin(), bias_p.end());
        mw.bias = bias.data();
    }
    mw.w_router = P("mlp.gate.weight");
    mw.I = c.I_moe;
    for (int64_t ex = 0; ex < c.gate.E; ex++) {
        const std::string q = "mlp.experts." + std::to_string(ex) + ".";
        mw.w_gate.push_back(P(q + "gate_proj.weight"));
        mw.w_up.push_back(P(q + "up_proj.weight"));
        mw.w_down.push_back(P(q + "down_proj.weight"));
    }
    if (c.n_shared > 0) {
        mw.I_s = c.n_shared * c.I_moe;
        mw.s_gate = P("mlp.shared_experts.gate_proj.weight");
        mw.s_up = P("mlp.shared_experts.up_proj.weight");
        mw.s_down = P("mlp.shared_experts.down_proj.weight");
    }
    MoeTrainCache<F> moe;
    moe_fwd(tmp.data(), moe, h2.data(), mw, c.gate, n, d);
    out.load.assign(c.gate.E, 0);
    for (int32_t ex : moe.idx) out.load[ex]++;
    if (aux.any()) out.aux = balance_losses_fwd_bwd<F>(nullptr, moe.s.data(), moe.idx.data(), n, c.gate.E, c.gate.K, aux);
    for (int64_t k = 0; k < n * d; k++) x[k] += tmp[k];
    // ---- the shared head and the loss: row i predicts t_{i+2} = targets[i+1] ----
    std::vector<F> hn(n * d), rn(n), logits(n * V), dlogits(n * V);
    rms_fwd(hn.data(), rn.data(), x.data(), P("shared_head.norm.weight"), n, d, c.eps);
    lin_fwd(logits.data(), hn.data(), P("shared_head.head.weight"), n, d, V);
    out.ce = xent_fwd_bwd(grads ? dlogits.data() : nullptr, logits.data(), targets + 1, n, V, lambda);
    if (!grads) return out;
    // ---- backward ----
    std::vector<F> dh(n * d), dx(n * d), dtmp(n * d);
    lin_bwd(dh.data(), G("shared_head.head.weight"), dlogits.data(), hn.data(), P("shared_head.head.weight"), n, d, V);
    rms_bwd(dx.data(), G("shared_head.norm.weight"), dh.data(), x.data(), P("shared_head.norm.weight"), rn.data(), n, d);
    MoeTrainGrads<F> mg;
    mg.w_router = G("mlp.gate.weight");
    for (int64_t ex = 0; ex < c.gate.E; ex++) {
        const std::string q = "mlp.experts." + std::to_string(ex) + ".";
        mg.w_gate.push_back(G(q + "gate_proj.weight"));
        mg.w_up.push_back(G(q + "up_proj.weight"));
        mg.w_down.push_back(G(q + "down_proj.weight"));
    }
    if (c.n_shared > 0) {
        mg.s_gate = G("mlp.shared_experts.gate_proj.weight");
        mg.s_up = G("mlp.shared_experts.up_proj.weight");
        mg.s_down = G("mlp.shared_experts.down_proj.weight");
    }
    std::vector<F> ds(n * c.gate.E, F(0));
    if (aux.any()) balance_losses_fwd_bwd(ds.data(), moe.s.data(), moe.idx.data(), n, c.gate.E, c.gate.K, aux);
    moe_bwd(dtmp.data(), mg, dx.data(), aux.any() ? ds.data() : nullptr, moe, h2.data(), mw, c.gate, n, d);
    rms_bwd(dh.data(), G("post_attention_layernorm.weight"), dtmp.data(), x_mid.data(),
            P("post_attention_layernorm.weight"), r2.data(), n, d);
    for (int64_t k = 0; k < n * d; k++) dx[k] += dh[k];
    MlaTrainGrads<F> ag;
    if (c.mla.d_q > 0) {
        ag.w_qa = G("self_attn.q_a_proj.weight");
        ag.q_norm = G("self_attn.q_a_layernorm.weight");
        ag.w_qb = G("self_attn.q_b_proj.weight");
    } else {
        ag.w_q = G("self_attn.q_proj.weight");
    }
    ag.w_kva = G("self_attn.kv_a_proj_with_mqa.weight");
    ag.kv_norm = G("self_attn.kv_a_layernorm.weight");
    ag.w_kvb = G("self_attn.kv_b_proj.weight");
    ag.w_o = G("self_attn.o_proj.weight");
    mla_bwd(dtmp.data(), ag, dx.data(), mla, h1.data(), aw, c.mla, n);
    rms_bwd(dh.data(), G("input_layernorm.weight"), dtmp.data(), x_in.data(), P("input_layernorm.weight"), r1.data(),
            n, d);
    for (int64_t k = 0; k < n * d; k++) dx[k] += dh[k];
    // through eh_proj, the two norms, the embedding; hnorm's input gradient goes to the main model
    std::vector<F> dcat(n * 2 * d), de(n * d), dhh(n * d), demb(n * d), dhf_rows(n * d);
    lin_bwd(dcat.data(), G("eh_proj.weight"), dx.data(), cat.data(), P("eh_proj.weight"), n, 2 * d, d);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < d; j++) de[i * d + j] = dcat[i * 2 * d + j], dhh[i * d + j] = dcat[i * 2 * d + d + j];
    rms_bwd(demb.data(), G("enorm.weight"), de.data(), emb.data(), P("enorm.weight"), re.data(), n, d);
    embed_bwd(G("embed_tokens.weight"), demb.data(), ids + 1, n, d);
    rms_bwd(dhf_rows.data(), G("hnorm.weight"), dhh.data(), hf, P("hnorm.weight"), rh.data(), n, d);
    if (dhf)
        for (int64_t k = 0; k < n * d; k++) dhf[k] += dhf_rows[k];  // row T-1 of h feeds no MTP position
    return out;
}

template MtpLosses mtp_fwd_bwd<float>(const TinyV3Config&, const ParamMap<float>&, ParamMap<float>*, const float*,
                                      float*, const int32_t*, const int32_t*, int64_t, double,
                                      const BalanceLossWeights&);
template MtpLosses mtp_fwd_bwd<double>(const TinyV3Config&, const ParamMap<double>&, ParamMap<double>*,
                                       const double*, double*, const int32_t*, const int32_t*, int64_t, double,
                                       const BalanceLossWeights&);

}  // namespace dsref
