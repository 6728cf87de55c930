// walkthrough/04_moe/moe.cpp — DeepSeekMoE, printed step by step (ref/moe/moe_gate.h; README.md in this folder).
//
// What this program shows, in order:
//   1. routing of one token through a V3 gate: sigmoid scores, bias, top-2-sum group scores, −inf
//      masking, top-K, unbiased weights normalized then ×2.5 — and what 0.0 masking would do instead;
//   2. a small layer: dispatch (counts, offsets, permutation), experts, combine, plus the shared expert,
//      checked against a plain per-token loop;
//   3. group-limited routing: how many groups (devices) a token touches with and without the limit,
//      and a token where "max" and "top-2 sum" group scores keep different groups;
//   4. the aux-loss-free bias at work: a skewed load flattened by b_i += γ·sign(mean − load_i)
//      (table + ASCII chart; `--svg FILE` also writes the SVG chart committed next to this file);
//   5. the golden data's sensitivity: how far each wrong rule moves the layer output;
//   6. EPLB on its public example: the placement and the per-GPU load it buys.
//
//   make build/walkthrough/04_moe/moe && build/walkthrough/04_moe/moe        (from the repository root)
//   build/walkthrough/04_moe/moe --svg walkthrough/04_moe/bias_balance.svg
//
// Timings are not the point here; nothing in this program is a benchmark.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "core/swiglu.h"
#include "io/safetensors.h"
#include "moe/eplb.h"
#include "moe/moe.h"
#include "moe/moe_balance.h"
#include "moe/moe_gate.h"

using namespace dsref;

static float logit(double s) { return (float)std::log(s / (1.0 - s)); }

static void print_row(const char* name, const float* v, int64_t n) {
    std::printf("  %-22s", name);
    for (int64_t i = 0; i < n; i++) std::printf(" %7.3f", v[i]);
    std::printf("\n");
}

static std::vector<float> randn(size_t n, std::mt19937_64& rng, float scale) {
    std::normal_distribution<float> d(0.0f, scale);
    std::vector<float> v(n);
    for (float& x : v) x = d(rng);
    return v;
}

// ---- 1. one token through the V3 gate ------------------------------------------------------------------
static void section_routing() {
    std::printf("== 1. Routing one token through a V3 gate (E = 8, 4 groups of 2, keep 2 groups, K = 2)\n\n");
    const int64_t E = 8;
    const double s_val[E] = {0.9, 0.1, 0.6, 0.55, 0.15, 0.8, 0.7, 0.2};
    float z[E], b[E] = {-0.5f, 0, 0, 0, 0, 0.1f, 0, 0}, s[E], u[E];
    for (int64_t i = 0; i < E; i++) {
        z[i] = logit(s_val[i]);
        s[i] = (float)(1.0 / (1.0 + std::exp(-(double)z[i])));
        u[i] = s[i] + b[i];
    }
    std::printf("  %-22s", "expert");
    for (int64_t i = 0; i < E; i++) std::printf(" %7lld", (long long)i);
    std::printf("\n");
    print_row("logit z", z, E);
    print_row("s = sigmoid(z)", s, E);
    print_row("bias b", b, E);
    print_row("u = s + b (selection)", u, E);
    float gsum[4], gmax[4];
    for (int g = 0; g < 4; g++) {
        gsum[g] = u[2 * g] + u[2 * g + 1];  // groups of 2: the top-2 sum is the whole group
        gmax[g] = std::max(u[2 * g], u[2 * g + 1]);
    }
    std::printf("\n  group scores (top-2 sum of u): g0 %.3f  g1 %.3f  g2 %.3f  g3 %.3f  -> keep g1, g2\n", gsum[0],
                gsum[1], gsum[2], gsum[3]);
    std::printf("  (ranked by max u instead:      g0 %.3f  g1 %.3f  g2 %.3f  g3 %.3f  -> would keep g2, g3)\n",
                gmax[0], gmax[1], gmax[2], gmax[3]);
    MoeGateConfig g;
    g.E = E;
    g.K = 2;
    g.n_group = 4;
    g.topk_group = 2;
    g.scoring = MoeScoring::Sigmoid;
    g.topk_method = MoeTopk::NoauxTc;
    g.norm_topk_prob = true;
    g.routed_scaling_factor = 2.5;
    const MoeRouting r = moe_route(z, b, 1, g);
    std::printf("  experts of groups g0, g3 get u = -inf; top-2 of the rest by u: experts %d (u %.2f), %d (u %.2f)\n",
                r.topk_idx[0], u[r.topk_idx[0]], r.topk_idx[1], u[r.topk_idx[1]]);
    const double s0 = s[r.topk_idx[0]], s1 = s[r.topk_idx[1]];
    std::printf("  weights from the UNBIASED s: %.2f, %.2f -> normalize: %.4f, %.4f -> x2.5: %.4f, %.4f\n", s0, s1,
                s0 / (s0 + s1), s1 / (s0 + s1), r.topk_weight[0], r.topk_weight[1]);
    std::printf("  (with the bias in the weights they would be %.4f, %.4f)\n\n",
                u[r.topk_idx[0]] / (u[r.topk_idx[0]] + u[r.topk_idx[1]]) * 2.5,
                u[r.topk_idx[1]] / (u[r.topk_idx[0]] + u[r.topk_idx[1]]) * 2.5);

    // −inf vs 0.0 masking with a negative bias (pinned in ref/moe/moe_gate.h)
    const float z2[4] = {logit(0.5), logit(0.45), logit(0.6), logit(0.1)}, b2[4] = {-0.3f, -0.7f, -0.9f, -0.95f};
    MoeGateConfig g2 = g;
    g2.E = 4;
    g2.n_group = 2;
    g2.topk_group = 1;
    const MoeRouting r2 = moe_route(z2, b2, 1, g2);
    std::printf("  Negative bias, E = 4, 2 groups, keep 1, K = 2: s = [0.50 0.45 | 0.60 0.10],"
                " b = [-0.30 -0.70 | -0.90 -0.95]\n");
    std::printf("  u = [0.20 -0.25 | -0.30 -0.85]; group g0 wins (-0.05 > -1.15).\n");
    std::printf("  -inf masking (official, dsref): experts %d, %d.  0.0 masking (HF native): masked u ="
                " [0.20 -0.25 0 0] -> experts 0, 2,\n  an expert of the dropped group.\n\n",
                r2.topk_idx[0], r2.topk_idx[1]);
}

// ---- 2. dispatch / experts / combine / shared --------------------------------------------------------
static void section_layer() {
    std::printf("== 2. One MoE layer: dispatch, experts, combine, shared expert (T = 6, d = 8, E = 4, K = 2)\n\n");
    std::mt19937_64 rng(7);
    const int64_t T = 6, d = 8, E = 4, K = 2, I = 4;
    MoeWeights w;
    w.d = d;
    w.I = I;
    w.I_shared = I;
    w.gate = randn(E * d, rng, 0.5f);
    for (int64_t e = 0; e < E; e++) {
        w.w_gate.push_back(randn(I * d, rng, 0.35f));
        w.w_up.push_back(randn(I * d, rng, 0.35f));
        w.w_down.push_back(randn(d * I, rng, 0.5f));
    }
    w.shared_gate = randn(I * d, rng, 0.35f);
    w.shared_up = randn(I * d, rng, 0.35f);
    w.shared_down = randn(d * I, rng, 0.5f);
    MoeGateConfig g;
    g.E = E;
    g.K = K;
    g.scoring = MoeScoring::Softmax;
    g.topk_method = MoeTopk::Greedy;
    const std::vector<float> x = randn(T * d, rng, 1.0f);

    const MoeRouting r = moe_gate_forward(x.data(), w.gate.data(), nullptr, T, d, g);
    std::printf("  token:      ");
    for (int64_t t = 0; t < T; t++) std::printf("   t%lld        ", (long long)t);
    std::printf("\n  experts:    ");
    for (int64_t t = 0; t < T; t++) std::printf("  %d,%d         ", r.topk_idx[t * K], r.topk_idx[t * K + 1]);
    std::printf("\n  weights:    ");
    for (int64_t t = 0; t < T; t++) std::printf("  %.2f,%.2f    ", r.topk_weight[t * K], r.topk_weight[t * K + 1]);
    const MoeDispatch p = moe_dispatch_plan(r.topk_idx.data(), T, K, E);
    std::printf("\n\n  1. counts  [E]   =");
    for (int64_t c : p.counts) std::printf(" %lld", (long long)c);
    std::printf("\n  2. offsets [E+1] =");
    for (int64_t o : p.offsets) std::printf(" %lld", (long long)o);
    std::printf("\n  3. permuted rows (slot: token), one contiguous block per expert:\n");
    for (int64_t e = 0; e < E; e++) {
        std::printf("       expert %lld:", (long long)e);
        for (int64_t s = p.offsets[e]; s < p.offsets[e + 1]; s++)
            std::printf("  %lld:t%lld", (long long)s, (long long)p.slot_token[s]);
        std::printf("\n");
    }
    std::printf("  4. each expert runs ONE SwiGLU over its block (a grouped GEMM on a GPU)\n");
    std::printf("  5. combine: y[t] = sum_k w[t,k] * ys[slot(t,k)], k = 0..K-1 in order, + Shared(x[t])\n\n");

    std::vector<float> y(T * d), routed(T * d), shared(T * d), row(d);
    moe_forward(y.data(), x.data(), T, g, w);
    swiglu_forward(shared.data(), x.data(), w.shared_gate.data(), w.shared_up.data(), w.shared_down.data(), T, d, I);
    double max_diff = 0, routed_norm = 0, shared_norm = 0;
    for (int64_t t = 0; t < T; t++) {  // the plain loop the dispatch must equal
        for (int64_t c = 0; c < d; c++) routed[t * d + c] = 0;
        for (int64_t k = 0; k < K; k++) {
            const int32_t e = r.topk_idx[t * K + k];
            swiglu_forward(row.data(), x.data() + t * d, w.w_gate[e].data(), w.w_up[e].data(), w.w_down[e].data(), 1,
                           d, I);
            for (int64_t c = 0; c < d; c++) routed[t * d + c] += r.topk_weight[t * K + k] * row[c];
        }
        for (int64_t c = 0; c < d; c++) {
            max_diff = std::max(max_diff, (double)std::fabs(y[t * d + c] - routed[t * d + c] - shared[t * d + c]));
            routed_norm += routed[t * d + c] * routed[t * d + c];
            shared_norm += shared[t * d + c] * shared[t * d + c];
        }
    }
    std::printf("  per-token loop vs dispatch/combine: max |dy| = %.2e\n", max_diff);
    std::printf("  |routed part| = %.3f, |shared part| = %.3f: the shared expert sees every token with weight 1;\n"
                "  routed_scaling_factor scales only the routed weights.\n\n",
                std::sqrt(routed_norm), std::sqrt(shared_norm));
}

// ---- 3. group-limited routing --------------------------------------------------------------------------
static void section_groups() {
    std::printf("== 3. Group-limited routing (E = 64 in 8 groups = 8 devices, K = 6)\n\n");
    std::mt19937_64 rng(11);
    const int64_t T = 2000, E = 64;
    const std::vector<float> z = randn(T * E, rng, 1.0f);
    std::printf("  %-34s %s\n", "gate", "mean / max devices touched per token");
    for (int64_t Kg : {8, 4, 3, 2}) {
        MoeGateConfig g;
        g.E = E;
        g.K = 6;
        g.n_group = 8;
        g.topk_group = Kg;
        g.topk_method = Kg == 8 ? MoeTopk::Greedy : MoeTopk::GroupLimitedGreedy;
        const MoeRouting r = moe_route(z.data(), nullptr, T, g);
        double mean = 0;
        int64_t mx = 0;
        for (int64_t t = 0; t < T; t++) {
            bool dev[8] = {false};
            int64_t n = 0;
            for (int64_t k = 0; k < 6; k++)
                if (!dev[r.topk_idx[t * 6 + k] / 8]) dev[r.topk_idx[t * 6 + k] / 8] = true, n++;
            mean += (double)n / T;
            mx = std::max(mx, n);
        }
        char name[64];
        std::snprintf(name, sizeof name, Kg == 8 ? "greedy (no limit)" : "group_limited_greedy, topk_group=%lld",
                      (long long)Kg);
        std::printf("  %-34s %.2f / %lld\n", name, mean, (long long)mx);
    }
    std::printf("  V2 uses topk_group = 3 of 8 devices (M = 3); V3 keeps 4 of 8 nodes, ranked by the top-2 sum.\n\n");
}

// ---- 4. aux-loss-free bias ------------------------------------------------------------------------------
struct SimPoint {
    int step;
    double max_vio, min_load, max_load;
};

// E = 16 experts, K = 2, batches of 256 tokens; expert i's logit carries a fixed offset 0.15·(8 − i),
// so low ids are preferred. Returns MaxVio per step.
static std::vector<double> simulate(double gamma, int steps, std::vector<float>* bias_out,
                                    std::vector<int64_t>* first_load, std::vector<int64_t>* last_load) {
    const int64_t E = 16, K = 2, T = 256;
    MoeGateConfig g;
    g.E = E;
    g.K = K;
    g.scoring = MoeScoring::Sigmoid;
    g.topk_method = MoeTopk::NoauxTc;
    g.norm_topk_prob = true;
    std::mt19937_64 rng(5);
    std::normal_distribution<float> noise(0.0f, 1.0f);
    std::vector<float> bias(E, 0.0f), logits(T * E);
    std::vector<double> vio;
    for (int step = 0; step < steps; step++) {
        for (int64_t t = 0; t < T; t++)
            for (int64_t i = 0; i < E; i++) logits[t * E + i] = 0.15f * (8 - i) + noise(rng);
        const MoeRouting r = moe_route(logits.data(), bias.data(), T, g);
        const std::vector<int64_t> load = expert_load(r.topk_idx.data(), T, K, E);
        if (step == 0 && first_load) *first_load = load;
        if (step == steps - 1 && last_load) *last_load = load;
        vio.push_back(load_stats(load).max_violation);
        aux_free_bias_update(bias.data(), load.data(), E, gamma);
    }
    if (bias_out) *bias_out = bias;
    return vio;
}

static void write_svg(const std::string& path, const std::vector<double>& a, const std::vector<double>& b) {
    const double W = 640, H = 320, L = 60, R = 20, Tp = 30, Bt = 50, ymax = 3.5;  // headroom for the legend
    const int n = (int)a.size();
    auto X = [&](int i) { return L + (W - L - R) * i / (n - 1); };
    auto Y = [&](double v) { return Tp + (H - Tp - Bt) * (1 - std::min(v, ymax) / ymax); };
    std::ofstream f(path);
    f << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H
      << "\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
    f << "<text x=\"" << W / 2 << "\" y=\"18\" text-anchor=\"middle\">Expert load imbalance (MaxVio) per training step,"
      << " E=16, K=2</text>\n";
    for (double v = 0; v <= ymax + 1e-9; v += 0.5) {
        f << "<line x1=\"" << L << "\" x2=\"" << W - R << "\" y1=\"" << Y(v) << "\" y2=\"" << Y(v)
          << "\" stroke=\"#ddd\"/>\n<text x=\"" << L - 6 << "\" y=\"" << Y(v) + 4 << "\" text-anchor=\"end\">" << v
          << "</text>\n";
    }
    for (int s = 0; s < n; s += 100)
        f << "<text x=\"" << X(s) << "\" y=\"" << H - Bt + 16 << "\" text-anchor=\"middle\">" << s << "</text>\n";
    f << "<text x=\"" << (L + W - R) / 2 << "\" y=\"" << H - 12 << "\" text-anchor=\"middle\">step</text>\n";
    auto poly = [&](const std::vector<double>& v, const char* color) {
        f << "<polyline fill=\"none\" stroke=\"" << color << "\" stroke-width=\"1.5\" points=\"";
        for (int i = 0; i < n; i++) f << X(i) << "," << Y(v[i]) << " ";
        f << "\"/>\n";
    };
    poly(b, "#c44");
    poly(a, "#26a");
    // Legend in the headroom above the data (MaxVio stays below 3 here).
    const double lx = W - R - 212;
    f << "<rect x=\"" << lx - 8 << "\" y=\"" << Tp + 4 << "\" width=\"214\" height=\"40\" fill=\"white\" stroke=\"#bbb\"/>\n";
    f << "<line x1=\"" << lx << "\" x2=\"" << lx + 24 << "\" y1=\"" << Tp + 17 << "\" y2=\"" << Tp + 17
      << "\" stroke=\"#c44\" stroke-width=\"2\"/>\n<text x=\"" << lx + 30 << "\" y=\"" << Tp + 21
      << "\">no bias (gamma = 0)</text>\n";
    f << "<line x1=\"" << lx << "\" x2=\"" << lx + 24 << "\" y1=\"" << Tp + 35 << "\" y2=\"" << Tp + 35
      << "\" stroke=\"#26a\" stroke-width=\"2\"/>\n<text x=\"" << lx + 30 << "\" y=\"" << Tp + 39
      << "\">bias update, gamma = 0.005</text>\n</svg>\n";
}

static void section_bias(const char* svg_path) {
    std::printf("== 4. The aux-loss-free bias at work (E = 16, K = 2, 256 tokens per step, skewed affinities)\n\n");
    const int steps = 400;
    std::vector<float> bias;
    std::vector<int64_t> first, last;
    const std::vector<double> on = simulate(0.005, steps, &bias, &first, &last);
    const std::vector<double> off = simulate(0.0, steps, nullptr, nullptr, nullptr);
    std::printf("  MaxVio = (max load - mean load) / mean load; 0 is perfect balance (sampling noise keeps it ~0.3).\n\n");
    std::printf("  %6s  %14s  %14s\n", "step", "gamma = 0", "gamma = 0.005");
    for (int s : {0, 10, 25, 50, 100, 150, 200, 300, 399})
        std::printf("  %6d  %14.3f  %14.3f\n", s, off[s], on[s]);
    std::printf("\n  MaxVio, gamma = 0.005 ('#') vs no bias ('.'), steps 0..%d:\n", steps - 1);
    for (double level = 2.75; level >= 0; level -= 0.25) {
        std::printf("  %5.2f |", level);
        for (int s = 0; s < steps; s += 8) {
            const bool a = on[s] >= level && on[s] < level + 0.25, b = off[s] >= level && off[s] < level + 0.25;
            std::printf("%c", a ? '#' : (b ? '.' : ' '));
        }
        std::printf("\n");
    }
    std::printf("        +");
    for (int s = 0; s < steps; s += 8) std::printf("-");
    std::printf("\n\n  load per expert, first step: ");
    for (int64_t c : first) std::printf(" %lld", (long long)c);
    std::printf("\n  load per expert, last step:  ");
    for (int64_t c : last) std::printf(" %lld", (long long)c);
    std::printf("\n  learned bias:               ");
    for (float b : bias) std::printf(" %+.2f", b);
    std::printf("\n  The favourite experts were pushed down and the neglected ones pulled up; the weights still come\n"
                "  from the unbiased scores, so no gradient ever sees the bias.\n\n");
    if (svg_path) {
        write_svg(svg_path, on, off);
        std::printf("  wrote %s\n\n", svg_path);
    }
}

// ---- 5. sensitivity ------------------------------------------------------------------------------------
static void section_sensitivity() {
    std::printf("== 5. Why each rule matters: max |dy| between the oracle's layer and the same layer under a wrong rule\n"
                "      (data/moe, from data/moe/moe_ref.py; dsref matches the right rule to ~1e-6)\n\n");
    for (const char* name : {"v3", "v3_negbias", "v3_k1", "v2", "v2_norm"}) {
        const std::string path = std::string("data/moe/") + name + ".safetensors";
        TensorMap t;
        try {
            t = read_safetensors(path);
        } catch (const std::exception& e) {
            std::printf("  (%s not readable: run from the repository root)\n", path.c_str());
            return;
        }
        const std::vector<double> y = t.at("expected.y").to_f64();
        for (const auto& kv : t) {
            const std::string& n = kv.first;
            if (n.rfind("wrong.", 0) != 0 || n.substr(n.size() - 2) != ".y") continue;
            const std::vector<double> yw = kv.second.to_f64();
            double m = 0;
            for (size_t i = 0; i < y.size(); i++) m = std::max(m, std::fabs(y[i] - yw[i]));
            std::printf("  %-11s %-22s max |dy| = %.3f\n", name, n.substr(6, n.size() - 8).c_str(), m);
        }
    }
    std::printf("\n");
}

// ---- 6. EPLB -------------------------------------------------------------------------------------------
static void section_eplb() {
    std::printf("== 6. EPLB on its public example: 12 experts, 16 physical slots, 4 groups, 2 nodes, 8 GPUs\n\n");
    const double loads[24] = {90, 132, 40, 61, 104, 165, 39, 4, 73, 56, 183, 86,
                              20, 107, 104, 64, 19, 197, 187, 157, 172, 86, 16, 27};
    const EplbPlan p = eplb_rebalance(loads, 2, 12, 16, 4, 2, 8);
    for (int64_t l = 0; l < 2; l++) {
        std::printf("  layer %lld loads:", (long long)l);
        for (int64_t e = 0; e < 12; e++) std::printf(" %g", loads[l * 12 + e]);
        std::printf("\n  %-6s %-6s %-22s %s\n", "node", "GPU", "experts (replica)", "GPU load");
        double total = 0, mx = 0;
        for (int64_t gpu = 0; gpu < 8; gpu++) {
            double gl = 0;
            std::string s;
            for (int64_t j = 0; j < 2; j++) {
                const int64_t slot = gpu * 2 + j, e = p.phy2log[l * 16 + slot];
                const int32_t cnt = p.logcnt[l * 12 + e];
                gl += loads[l * 12 + e] / cnt;
                s += std::to_string(e) + (cnt > 1 ? "(" + std::to_string(p.phy_rank[l * 16 + slot]) + "/" + std::to_string(cnt) + ")" : "") + " ";
            }
            total += gl;
            mx = std::max(mx, gl);
            std::printf("  %-6lld %-6lld %-22s %.1f\n", (long long)(gpu / 4), (long long)gpu, s.c_str(), gl);
        }
        // Baseline: no load information, slot j holds expert j mod 12, a replicated expert's tokens split evenly.
        double naive_mx = 0;
        for (int64_t gpu = 0; gpu < 8; gpu++) {
            double gl = 0;
            for (int64_t j = 0; j < 2; j++) {
                const int64_t e = (gpu * 2 + j) % 12;
                gl += loads[l * 12 + e] / (e < 4 ? 2.0 : 1.0);
            }
            naive_mx = std::max(naive_mx, gl);
        }
        std::printf("  busiest GPU / mean: EPLB %.2f, round-robin slots %.2f\n\n", mx / (total / 8),
                    naive_mx / (total / 8));
    }
    std::printf("  phy2log layer 0:");
    for (int64_t j = 0; j < 16; j++) std::printf(" %d", p.phy2log[j]);
    std::printf("   (the published answer: 5 6 5 7 8 4 3 4 10 9 10 2 0 1 11 1)\n");
}

int main(int argc, char** argv) {
    const char* svg = nullptr;
    for (int i = 1; i < argc; i++) {
        if (std::strcmp(argv[i], "--svg") == 0 && i + 1 < argc) {
            svg = argv[++i];
        } else {
            std::fprintf(stderr, "usage: %s [--svg FILE]\n", argv[0]);
            return 2;
        }
    }
    section_routing();
    section_layer();
    section_groups();
    section_bias(svg);
    section_sensitivity();
    section_eplb();
    return 0;
}
