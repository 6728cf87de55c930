// test_train_backward.cpp — every hand-written backward of ref/train/ against central finite
// differences in double, and every training forward (float32) against core/'s and moe/'s forward.
//
// The check: L = Σ r ⊙ y for a fixed random r, so dL/dy = r; the analytic gradient of each input and
// parameter is compared, element by element (a fixed sample of up to 24 per tensor), with
// (L(p + h) − L(p − h)) / 2h at h = 1e-6. Central differences have truncation error O(h² f''') ≈ 1e-12
// and rounding error ≈ 1e-16 · |L| / h ≈ 1e-9 for |L| ~ 10, so a correct gradient agrees to ~1e-8;
// the default tolerance 1e-6 · max(1, |g|) leaves two orders of margin and still catches any wrong
// term (a missing factor or a dropped path is off by O(|g|)). Per-module exceptions are stated below.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <random>

#include "core/attention.h"
#include "core/rmsnorm.h"
#include "core/rope.h"
#include "core/swiglu.h"
#include "moe/moe_balance.h"
#include "moe/moe_gate.h"
#include "train/attention_backward.h"
#include "train/dense_backward.h"
#include "train/loss_backward.h"
#include "train/mla_backward.h"
#include "train/moe_backward.h"
#include "train/rope_backward.h"

using namespace dsref;

namespace {

std::vector<double> rnd(size_t n, uint64_t seed, double scale = 1.0) {
    std::mt19937_64 g(seed);
    std::normal_distribution<double> d(0.0, scale);
    std::vector<double> v(n);
    for (auto& x : v) x = d(g);
    return v;
}
std::vector<float> to_f(const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); }
double dot(const std::vector<double>& a, const double* b) {
    double s = 0;
    for (size_t i = 0; i < a.size(); i++) s += a[i] * b[i];
    return s;
}

struct Tensor {
    const char* name;
    std::vector<double>* value;
    const std::vector<double>* grad;
};

// Compares each tensor's analytic gradient with central differences of loss(); returns the largest
// |analytic − numeric| / max(1, |numeric|) seen.
double fd_check(const std::function<double()>& loss, const std::vector<Tensor>& ts, double tol = 1e-6) {
    const double h = 1e-6;
    double worst = 0;
    for (const auto& t : ts) {
        const size_t n = t.value->size();
        const size_t step = std::max<size_t>(1, n / 24);
        for (size_t i = 0; i < n; i += step) {
            const double keep = (*t.value)[i];
            (*t.value)[i] = keep + h;
            const double lp = loss();
            (*t.value)[i] = keep - h;
            const double lm = loss();
            (*t.value)[i] = keep;
            const double num = (lp - lm) / (2 * h), ana = (*t.grad)[i];
            worst = std::max(worst, std::abs(ana - num) / std::max(1.0, std::abs(num)));
            const bool ok = std::abs(ana - num) <= tol * std::max(1.0, std::abs(num));
            // the first mismatching element of this tensor (the rest of it is not checked: one message a tensor)
            INFO("d" << t.name << ": first mismatch at index " << i << " of " << n << ": expected " << num
                     << " (the central difference of the loss), got " << ana << " (the backward); check the "
                     << "backward's equation in its header");
            CHECK(ok);
            if (!ok) break;
        }
    }
    return worst;
}

}  // namespace

TEST_CASE("linear and embedding backward match finite differences", "[train][backward]") {
    const int64_t T = 5, K = 7, N = 4, V = 6;
    auto x = rnd(T * K, 1), w = rnd(N * K, 2), r = rnd(T * N, 3);
    std::vector<double> y(T * N), dx(T * K), dw(N * K, 0.0);
    auto loss = [&] { lin_fwd(y.data(), x.data(), w.data(), T, K, N); return dot(r, y.data()); };
    loss();
    lin_bwd(dx.data(), dw.data(), r.data(), x.data(), w.data(), T, K, N);
    fd_check(loss, {{"x", &x, &dx}, {"w", &w, &dw}});

    const std::vector<int32_t> ids = {3, 1, 3, 0, 5};  // a repeated id: its rows' gradients add up
    auto table = rnd(V * K, 4), re = rnd(T * K, 5);
    std::vector<double> ye(T * K), dtable(V * K, 0.0);
    auto loss_e = [&] { embed_fwd(ye.data(), table.data(), ids.data(), T, K); return dot(re, ye.data()); };
    embed_bwd(dtable.data(), re.data(), ids.data(), T, K);
    fd_check(loss_e, {{"table", &table, &dtable}});
    for (int64_t i = 0; i < K; i++) CHECK(dtable[2 * K + i] == 0.0);  // id 2 unused: no gradient
}

TEST_CASE("RMSNorm backward matches finite differences; the float forward is core's", "[train][backward]") {
    const int64_t T = 4, d = 9;
    auto x = rnd(T * d, 10), w = rnd(d, 11), r = rnd(T * d, 12);
    std::vector<double> y(T * d), rstd(T), dx(T * d), dw(d, 0.0);
    auto loss = [&] { rms_fwd(y.data(), rstd.data(), x.data(), w.data(), T, d, 1e-6); return dot(r, y.data()); };
    loss();
    rms_bwd(dx.data(), dw.data(), r.data(), x.data(), w.data(), rstd.data(), T, d);
    fd_check(loss, {{"x", &x, &dx}, {"w", &w, &dw}});

    auto xf = to_f(x), wf = to_f(w);
    std::vector<float> yf(T * d), rf(T), yc(T * d);
    rms_fwd(yf.data(), rf.data(), xf.data(), wf.data(), T, d, 1e-6);
    rmsnorm_forward(yc.data(), xf.data(), wf.data(), T, d, 1e-6f);
    for (int64_t i = 0; i < T * d; i++) CHECK(yf[i] == Approx(yc[i]).epsilon(2e-7));  // ≤ 1 float ulp apart
}

TEST_CASE("RoPE backward in both pairings and with YaRN matches finite differences", "[train][backward]") {
    const int64_t T = 6, N = 2, d_r = 8;
    RopeScaling yarn;
    yarn.type = RopeScalingType::Yarn;
    yarn.factor = 40;
    yarn.original_max_position_embeddings = 4;
    yarn.beta_fast = 32;
    yarn.beta_slow = 1;
    const std::vector<int64_t> pos = {0, 1, 2, 5, 9, 100};
    for (RopeLayout layout : {RopeLayout::Interleaved, RopeLayout::Half})
        for (bool use_yarn : {false, true}) {
            INFO("layout " << (layout == RopeLayout::Interleaved ? "interleaved" : "half") << " yarn " << use_yarn);
            const auto inv = rope_inv_freq(d_r, 10000.0, use_yarn ? yarn : RopeScaling{});
            auto x = rnd(T * N * d_r, 20), r = rnd(T * N * d_r, 21);
            std::vector<double> y;
            auto loss = [&] {
                y = x;
                rope_apply(y.data(), T, N, d_r, N * d_r, d_r, pos.data(), inv, layout, false);
                return dot(r, y.data());
            };
            std::vector<double> dx = r;
            rope_apply(dx.data(), T, N, d_r, N * d_r, d_r, pos.data(), inv, layout, true);
            fd_check(loss, {{"x", &x, &dx}});
            // the float forward is core/rope.cpp's: the same float cos/sin and the same two products; the
            // compiler may contract a·c − b·s into an FMA in one loop shape and not in the other, so
            // the two agree to one float rounding of O(1) values (2e-7), not bitwise
            auto xf = to_f(x), xc = xf;
            rope_apply(xf.data(), T, N, d_r, N * d_r, d_r, pos.data(), inv, layout, false);
            rope_forward(xc.data(), T, N, d_r, N * d_r, d_r, pos.data(), inv, layout);
            for (size_t i = 0; i < xf.size(); i++) CHECK(xf[i] == Approx(xc[i]).margin(1e-6));
        }
}

TEST_CASE("causal attention backward (MHA and GQA) matches finite differences", "[train][backward]") {
    const int64_t T = 5, d = 4, d_v = 3;
    for (int64_t H_kv : {3, 1}) {
        const int64_t H = 3;
        INFO("H_kv " << H_kv);
        auto q = rnd(T * H * d, 30), k = rnd(T * H_kv * d, 31), v = rnd(T * H_kv * d_v, 32), r = rnd(T * H * d_v, 33);
        std::vector<double> o(T * H * d_v), P, dq(q.size()), dk(k.size()), dv(v.size());
        const double scale = 0.6;
        auto loss = [&] {
            attn_fwd(o.data(), P, q.data(), k.data(), v.data(), T, H, H_kv, d, d_v, scale);
            return dot(r, o.data());
        };
        loss();
        attn_bwd(dq.data(), dk.data(), dv.data(), r.data(), P, q.data(), k.data(), v.data(), T, H, H_kv, d, d_v, scale);
        fd_check(loss, {{"q", &q, &dq}, {"k", &k, &dk}, {"v", &v, &dv}});
        // the float forward agrees with core/attention.cpp (both softmax in double; float products
        // differ in summation order: 1e-5 relative covers a few float roundings of O(1) values)
        auto qf = to_f(q), kf = to_f(k), vf = to_f(v);
        std::vector<float> of(o.size()), oc(o.size()), Pf;
        attn_fwd(of.data(), Pf, qf.data(), kf.data(), vf.data(), T, H, H_kv, d, d_v, scale);
        attention_forward(oc.data(), qf.data(), kf.data(), vf.data(), T, T, H, H_kv, d, d_v, (float)scale, true, 0);
        for (size_t i = 0; i < of.size(); i++) CHECK(of[i] == Approx(oc[i]).margin(1e-5));
    }
}

TEST_CASE("SwiGLU MLP backward matches finite differences; the float forward is core's", "[train][backward]") {
    const int64_t T = 4, d = 6, I = 5;
    auto x = rnd(T * d, 40), wg = rnd(I * d, 41, 0.5), wu = rnd(I * d, 42, 0.5), wd = rnd(d * I, 43, 0.5),
         r = rnd(T * d, 44);
    std::vector<double> y(T * d), dx(T * d), dwg(I * d, 0.0), dwu(I * d, 0.0), dwd(d * I, 0.0);
    MlpCache<double> c;
    auto loss = [&] {
        mlp_fwd(y.data(), c, x.data(), wg.data(), wu.data(), wd.data(), T, d, I);
        return dot(r, y.data());
    };
    loss();
    mlp_bwd(dx.data(), dwg.data(), dwu.data(), dwd.data(), r.data(), c, x.data(), wg.data(), wu.data(), wd.data(), T,
            d, I);
    fd_check(loss, {{"x", &x, &dx}, {"w_gate", &wg, &dwg}, {"w_up", &wu, &dwu}, {"w_down", &wd, &dwd}});
    auto xf = to_f(x), wgf = to_f(wg), wuf = to_f(wu), wdf = to_f(wd);
    std::vector<float> yf(T * d), yc(T * d);
    MlpCache<float> cf;
    mlp_fwd(yf.data(), cf, xf.data(), wgf.data(), wuf.data(), wdf.data(), T, d, I);
    swiglu_forward(yc.data(), xf.data(), wgf.data(), wuf.data(), wdf.data(), T, d, I);
    for (int64_t i = 0; i < T * d; i++) CHECK(yf[i] == Approx(yc[i]).margin(1e-5));  // float sums, O(1) values
}

TEST_CASE("cross-entropy gradient matches finite differences and sums to zero per row", "[train][backward]") {
    const int64_t N = 4, V = 7;
    auto z = rnd(N * V, 50, 2.0);
    const std::vector<int32_t> y = {0, 6, 3, 3};
    std::vector<double> dz(N * V);
    const double L = xent_fwd_bwd(dz.data(), z.data(), y.data(), N, V, 0.3);
    auto loss = [&] { return 0.3 * xent_fwd_bwd<double>(nullptr, z.data(), y.data(), N, V, 1.0); };
    fd_check(loss, {{"logits", &z, &dz}});
    for (int64_t n = 0; n < N; n++) {
        double s = 0;
        for (int64_t v = 0; v < V; v++) s += dz[n * V + v];
        CHECK(std::abs(s) < 1e-15);
    }
    // hand value: uniform logits over V give log V
    std::vector<double> zu(V, 1.5);
    const int32_t t0 = 2;
    CHECK(xent_fwd_bwd<double>(nullptr, zu.data(), &t0, 1, V, 1.0) == Approx(std::log(7.0)).epsilon(1e-15));
    CHECK(L > 0);
}

TEST_CASE("MLA (naive path) backward matches finite differences, with and without query compression",
          "[train][backward]") {
    for (int64_t d_q : {0, 6}) {
        INFO("d_q " << d_q);
        MlaTrainDims m;
        m.d = 8; m.H = 2; m.d_q = d_q; m.d_c = 5; m.d_n = 3; m.d_r = 4; m.d_v = 3;
        m.scale = 1.0 / std::sqrt(7.0);
        m.inv_freq = rope_inv_freq(m.d_r, 10000.0, RopeScaling{});
        const int64_t T = 4, dk = m.d_n + m.d_r;
        auto x = rnd(T * m.d, 60), r = rnd(T * m.d, 61);
        auto wq = rnd(m.H * dk * m.d, 62, 0.4), wqa = rnd(d_q * m.d, 63, 0.4), qn = rnd(d_q, 64, 0.3),
             wqb = rnd(m.H * dk * d_q, 65, 0.4), wkva = rnd((m.d_c + m.d_r) * m.d, 66, 0.4), kvn = rnd(m.d_c, 67, 0.3),
             wkvb = rnd(m.H * (m.d_n + m.d_v) * m.d_c, 68, 0.4), wo = rnd(m.d * m.H * m.d_v, 69, 0.4);
        for (auto& v : qn) v += 1.0;
        for (auto& v : kvn) v += 1.0;
        MlaTrainWeights<double> w{wq.data(), wqa.data(), qn.data(), wqb.data(), wkva.data(), kvn.data(), wkvb.data(), wo.data()};
        std::vector<double> gq(wq.size(), 0.0), gqa(wqa.size(), 0.0), gqn(qn.size(), 0.0), gqb(wqb.size(), 0.0),
            gkva(wkva.size(), 0.0), gkvn(kvn.size(), 0.0), gkvb(wkvb.size(), 0.0), go(wo.size(), 0.0), dx(x.size()),
            y(T * m.d);
        MlaTrainGrads<double> g{gq.data(), gqa.data(), gqn.data(), gqb.data(), gkva.data(), gkvn.data(), gkvb.data(), go.data()};
        MlaTrainCache<double> c;
        auto loss = [&] { mla_fwd(y.data(), c, x.data(), w, m, T); return dot(r, y.data()); };
        loss();
        mla_bwd(dx.data(), g, r.data(), c, x.data(), w, m, T);
        std::vector<Tensor> ts = {{"x", &x, &dx}, {"kv_a_proj_with_mqa", &wkva, &gkva}, {"kv_a_layernorm", &kvn, &gkvn},
                                  {"kv_b_proj", &wkvb, &gkvb}, {"o_proj", &wo, &go}};
        if (d_q) {
            ts.push_back({"q_a_proj", &wqa, &gqa});
            ts.push_back({"q_a_layernorm", &qn, &gqn});
            ts.push_back({"q_b_proj", &wqb, &gqb});
        } else {
            ts.push_back({"q_proj", &wq, &gq});
        }
        fd_check(loss, ts);
    }
}

TEST_CASE("DeepSeekMoE layer backward: router through the combine weights, experts, shared expert",
          "[train][backward]") {
    // V3 rules (sigmoid, noaux_tc, groups, normalized, scaled) and V2 rules (softmax, greedy, scaled)
    for (int variant = 0; variant < 2; variant++) {
        MoeGateConfig g;
        g.E = 4;
        g.K = 2;
        if (variant == 0) {
            g.scoring = MoeScoring::Sigmoid;
            g.topk_method = MoeTopk::NoauxTc;
            g.n_group = 2;
            g.topk_group = 1;
            g.norm_topk_prob = true;
            g.routed_scaling_factor = 2.5;
        } else {
            g.scoring = MoeScoring::Softmax;
            g.topk_method = MoeTopk::Greedy;
            g.routed_scaling_factor = 1.5;
        }
        INFO("variant " << variant);
        const int64_t T = 6, d = 5, I = 3, I_s = 4;
        auto x = rnd(T * d, 70), r = rnd(T * d, 71), wr = rnd(g.E * d, 72);
        // a selection-only bias for noaux_tc; the V2 rules take none (moe/moe_gate.h refuses one)
        const std::vector<float> bias_v = {0.05f, -0.1f, 0.0f, 0.2f};
        const float* bias = variant == 0 ? bias_v.data() : nullptr;
        std::vector<std::vector<double>> wg, wu, wd, gg, gu, gdn;
        for (int64_t e = 0; e < g.E; e++) {
            wg.push_back(rnd(I * d, 80 + e, 0.5));
            wu.push_back(rnd(I * d, 90 + e, 0.5));
            wd.push_back(rnd(d * I, 100 + e, 0.5));
            gg.emplace_back(I * d, 0.0);
            gu.emplace_back(I * d, 0.0);
            gdn.emplace_back(d * I, 0.0);
        }
        auto sg = rnd(I_s * d, 110, 0.5), su = rnd(I_s * d, 111, 0.5), sd = rnd(d * I_s, 112, 0.5);
        std::vector<double> gwr(wr.size(), 0.0), gsg(sg.size(), 0.0), gsu(su.size(), 0.0), gsd(sd.size(), 0.0);
        MoeTrainWeights<double> w;
        w.w_router = wr.data();
        w.bias = bias;
        w.I = I;
        w.I_s = I_s;
        w.s_gate = sg.data();
        w.s_up = su.data();
        w.s_down = sd.data();
        MoeTrainGrads<double> gr;
        gr.w_router = gwr.data();
        gr.s_gate = gsg.data();
        gr.s_up = gsu.data();
        gr.s_down = gsd.data();
        for (int64_t e = 0; e < g.E; e++) {
            w.w_gate.push_back(wg[e].data());
            w.w_up.push_back(wu[e].data());
            w.w_down.push_back(wd[e].data());
            gr.w_gate.push_back(gg[e].data());
            gr.w_up.push_back(gu[e].data());
            gr.w_down.push_back(gdn[e].data());
        }
        const double alpha = 0.3;  // the balance loss rides along: L = Σ r·y + α Σ f P
        std::vector<double> y(T * d), dx(T * d);
        MoeTrainCache<double> c;
        std::vector<int32_t> idx0;
        auto loss = [&] {
            moe_fwd(y.data(), c, x.data(), w, g, T, d);
            if (!idx0.empty()) REQUIRE(c.idx == idx0);  // h = 1e-6 never flips a routing decision here
            return dot(r, y.data()) + balance_loss_fwd_bwd<double>(nullptr, c.s.data(), c.idx.data(), T, g.E, g.K, alpha);
        };
        loss();
        idx0 = c.idx;
        std::vector<double> ds(T * g.E, 0.0);
        balance_loss_fwd_bwd(ds.data(), c.s.data(), c.idx.data(), T, g.E, g.K, alpha);
        moe_bwd(dx.data(), gr, r.data(), ds.data(), c, x.data(), w, g, T, d);
        std::vector<Tensor> ts = {{"x", &x, &dx}, {"gate.weight", &wr, &gwr}, {"shared gate_proj", &sg, &gsg},
                                  {"shared up_proj", &su, &gsu}, {"shared down_proj", &sd, &gsd}};
        for (int64_t e = 0; e < g.E; e++) {
            ts.push_back({"expert gate_proj", &wg[e], &gg[e]});
            ts.push_back({"expert up_proj", &wu[e], &gu[e]});
            ts.push_back({"expert down_proj", &wd[e], &gdn[e]});
        }
        fd_check(loss, ts);

        // the float forward routes and weighs exactly as moe/moe_gate.cpp, and its balance loss is
        // moe/moe_balance.cpp's
        auto xf = to_f(x), wrf = to_f(wr);
        std::vector<float> z(T * g.E);
        lin_fwd(z.data(), xf.data(), wrf.data(), T, d, g.E);
        const MoeRouting ref = moe_route(z.data(), bias, T, g);
        MoeTrainWeights<float> wf;
        std::vector<std::vector<float>> keep;
        wf.w_router = wrf.data();
        wf.bias = bias;
        wf.I = I;
        for (int64_t e = 0; e < g.E; e++) {
            keep.push_back(to_f(wg[e]));
            keep.push_back(to_f(wu[e]));
            keep.push_back(to_f(wd[e]));
        }
        for (int64_t e = 0; e < g.E; e++) {
            wf.w_gate.push_back(keep[3 * e].data());
            wf.w_up.push_back(keep[3 * e + 1].data());
            wf.w_down.push_back(keep[3 * e + 2].data());
        }
        MoeTrainCache<float> cf;
        std::vector<float> yf(T * d);
        moe_fwd(yf.data(), cf, xf.data(), wf, g, T, d);
        CHECK(cf.idx == ref.topk_idx);
        for (int64_t i = 0; i < T * g.K; i++) CHECK(cf.w[i] == Approx(ref.topk_weight[i]).epsilon(1e-6));
        if (variant == 0)
            CHECK(balance_loss_fwd_bwd<float>(nullptr, cf.s.data(), cf.idx.data(), T, g.E, g.K, alpha) ==
                  Approx(v3_seq_aux_loss(cf.s.data(), cf.idx.data(), T, g.E, g.K, alpha)).epsilon(1e-6));
        else
            CHECK(balance_loss_fwd_bwd<float>(nullptr, cf.s.data(), cf.idx.data(), T, g.E, g.K, alpha) ==
                  Approx(v2_expert_balance_loss(cf.s.data(), cf.idx.data(), T, g.E, g.K, alpha)).epsilon(1e-6));
    }
}

TEST_CASE("V2 device-level and communication losses: gradient vs finite differences, value vs moe_balance",
          "[train][backward][balance]") {
    // T tokens, E = 8 experts on D = 4 devices (2 each), K = 3 routed per token under the device limit M = 2
    const int64_t T = 7, E = 8, K = 3, D = 4, M = 2;
    std::vector<double> s(T * E);  // softmax affinities of random logits
    {
        const auto z = rnd(T * E, 120);
        for (int64_t t = 0; t < T; t++) {
            double sum = 0;
            for (int64_t i = 0; i < E; i++) sum += std::exp(z[t * E + i]);
            for (int64_t i = 0; i < E; i++) s[t * E + i] = std::exp(z[t * E + i]) / sum;
        }
    }
    const auto sf = to_f(s);
    std::vector<int32_t> idx(T * K);
    device_limited_topk(idx.data(), sf.data(), T, E, D, M, K);  // the V2 routing: each token on <= M devices
    const double a2 = 0.05, a3 = 0.02;
    // the values are moe/moe_balance.cpp's (an independent implementation: fractions, then dot products)
    // on the same float inputs; both sum in double, so only summation order differs: 1e-12 relative
    const double Ld = device_balance_loss_fwd_bwd<float>(nullptr, sf.data(), idx.data(), T, E, K, D, a2);
    const double Lc = comm_balance_loss_fwd_bwd<float>(nullptr, sf.data(), idx.data(), T, E, K, D, M, a3);
    CHECK(Ld > 0);
    CHECK(Lc > 0);
    CHECK(Ld == Approx(v2_device_balance_loss(sf.data(), idx.data(), T, E, K, D, a2)).epsilon(1e-12));
    CHECK(Lc == Approx(v2_comm_balance_loss(sf.data(), idx.data(), T, E, K, D, M, a3)).epsilon(1e-12));
    // linear in α
    CHECK(device_balance_loss_fwd_bwd<float>(nullptr, sf.data(), idx.data(), T, E, K, D, 2 * a2) ==
          Approx(2 * Ld).epsilon(1e-12));
    // the gradient on the affinities (taken as free variables) against central differences; both losses are
    // linear in s, so the differences have no truncation error: the default tolerance is ample
    std::vector<double> dsd(T * E, 0.0), dsc(T * E, 0.0);
    const double Ldd = device_balance_loss_fwd_bwd(dsd.data(), s.data(), idx.data(), T, E, K, D, a2);
    const double Lcd = comm_balance_loss_fwd_bwd(dsc.data(), s.data(), idx.data(), T, E, K, D, M, a3);
    CHECK(Ldd == Approx(Ld).epsilon(1e-6));  // the float copy of s differs by ~1e-7 relative
    CHECK(Lcd == Approx(Lc).epsilon(1e-6));
    const double wd = fd_check(
        [&] { return device_balance_loss_fwd_bwd<double>(nullptr, s.data(), idx.data(), T, E, K, D, a2); },
        {{"s (device-level)", &s, &dsd}});
    const double wc = fd_check(
        [&] { return comm_balance_loss_fwd_bwd<double>(nullptr, s.data(), idx.data(), T, E, K, D, M, a3); },
        {{"s (communication)", &s, &dsc}});
    std::printf("report: V2 device-level / communication loss dL/ds vs central differences: worst %.1e / %.1e\n", wd,
                wc);
    // the gradient is not uniform over the devices (else it would vanish through the softmax)
    CHECK(*std::max_element(dsd.begin(), dsd.end()) > *std::min_element(dsd.begin(), dsd.end()) + 1e-6);
    CHECK(*std::max_element(dsc.begin(), dsc.end()) > *std::min_element(dsc.begin(), dsc.end()) + 1e-6);
    // ds accumulates (+=)
    std::vector<double> twice = dsd;
    device_balance_loss_fwd_bwd(twice.data(), s.data(), idx.data(), T, E, K, D, a2);
    CHECK(twice[5] == Approx(2 * dsd[5]));
    // the weighted sum of BalanceLossWeights is the three terms
    BalanceLossWeights w(0.1);
    w.alpha_device = a2, w.alpha_comm = a3, w.D = D, w.M = M;
    CHECK(balance_losses_fwd_bwd<double>(nullptr, s.data(), idx.data(), T, E, K, w) ==
          Approx(balance_loss_fwd_bwd<double>(nullptr, s.data(), idx.data(), T, E, K, 0.1) + Ldd + Lcd).epsilon(1e-12));
    // experts that do not split over the devices, and a device limit outside [1, D], are refused
    CHECK_THROWS_WITH(device_balance_loss_fwd_bwd<double>(nullptr, s.data(), idx.data(), T, E, K, 3, a2),
                      Catch::Contains("cannot be split evenly over D = 3"));
    CHECK_THROWS_WITH(comm_balance_loss_fwd_bwd<double>(nullptr, s.data(), idx.data(), T, E, K, D, 5, a3),
                      Catch::Contains("M = 5"));
}

TEST_CASE("DeepSeekMoE layer backward with V2's three balance losses", "[train][backward][balance]") {
    MoeGateConfig g;  // V2 rules: softmax, device-limited routing (n_group = D = 3, topk_group = M = 2), scaled
    g.E = 6;
    g.K = 2;
    g.n_group = 3;
    g.topk_group = 2;
    g.scoring = MoeScoring::Softmax;
    g.topk_method = MoeTopk::GroupLimitedGreedy;
    g.norm_topk_prob = false;
    g.routed_scaling_factor = 1.5;
    const int64_t T = 6, d = 5, I = 3;
    auto x = rnd(T * d, 130), r = rnd(T * d, 131), wr = rnd(g.E * d, 132);
    std::vector<std::vector<double>> wg, wu, wd, gg, gu, gdn;
    for (int64_t e = 0; e < g.E; e++) {
        wg.push_back(rnd(I * d, 140 + e, 0.5));
        wu.push_back(rnd(I * d, 150 + e, 0.5));
        wd.push_back(rnd(d * I, 160 + e, 0.5));
        gg.emplace_back(I * d, 0.0);
        gu.emplace_back(I * d, 0.0);
        gdn.emplace_back(d * I, 0.0);
    }
    std::vector<double> gwr(wr.size(), 0.0);
    MoeTrainWeights<double> w;
    w.w_router = wr.data();
    w.I = I;
    MoeTrainGrads<double> gr;
    gr.w_router = gwr.data();
    for (int64_t e = 0; e < g.E; e++) {
        w.w_gate.push_back(wg[e].data());
        w.w_up.push_back(wu[e].data());
        w.w_down.push_back(wd[e].data());
        gr.w_gate.push_back(gg[e].data());
        gr.w_up.push_back(gu[e].data());
        gr.w_down.push_back(gdn[e].data());
    }
    BalanceLossWeights bw(0.3);  // large weights, so the balance terms are a real part of dW_router
    bw.alpha_device = 0.4, bw.alpha_comm = 0.5, bw.D = g.n_group, bw.M = g.topk_group;
    std::vector<double> y(T * d), dx(T * d);
    MoeTrainCache<double> c;
    std::vector<int32_t> idx0;
    auto loss = [&] {
        moe_fwd(y.data(), c, x.data(), w, g, T, d);
        if (!idx0.empty()) REQUIRE(c.idx == idx0);  // h = 1e-6 never flips a routing decision here
        return dot(r, y.data()) + balance_losses_fwd_bwd<double>(nullptr, c.s.data(), c.idx.data(), T, g.E, g.K, bw);
    };
    loss();
    idx0 = c.idx;
    std::vector<double> ds(T * g.E, 0.0);
    const double Lb = balance_losses_fwd_bwd(ds.data(), c.s.data(), c.idx.data(), T, g.E, g.K, bw);
    CHECK(Lb > balance_loss_fwd_bwd<double>(nullptr, c.s.data(), c.idx.data(), T, g.E, g.K, bw.alpha));
    moe_bwd(dx.data(), gr, r.data(), ds.data(), c, x.data(), w, g, T, d);
    std::vector<Tensor> ts = {{"x", &x, &dx}, {"gate.weight", &wr, &gwr}};
    for (int64_t e = 0; e < g.E; e++) ts.push_back({"expert gate_proj", &wg[e], &gg[e]});
    // the default tolerance (the header's: central differences in double agree to ~1e-8)
    const double worst = fd_check(loss, ts);
    std::printf("report: MoE layer with V2's three balance losses vs central differences: worst %.1e\n", worst);
    // the device-level and communication terms reach the router: without them dW_router differs
    loss();  // the cache of the unperturbed weights again
    std::vector<double> gwr0(wr.size(), 0.0), ds0(T * g.E, 0.0), dx0(T * d);
    MoeTrainGrads<double> gr0 = gr;
    gr0.w_router = gwr0.data();
    std::vector<std::vector<double>> sink(3 * g.E, std::vector<double>(I * d, 0.0));
    for (int64_t e = 0; e < g.E; e++)
        gr0.w_gate[e] = sink[3 * e].data(), gr0.w_up[e] = sink[3 * e + 1].data(), gr0.w_down[e] = sink[3 * e + 2].data();
    balance_loss_fwd_bwd(ds0.data(), c.s.data(), c.idx.data(), T, g.E, g.K, bw.alpha);
    moe_bwd(dx0.data(), gr0, r.data(), ds0.data(), c, x.data(), w, g, T, d);
    double diff = 0;
    for (size_t i = 0; i < gwr.size(); i++) diff += std::abs(gwr[i] - gwr0[i]);
    CHECK(diff > 1e-3);
}
