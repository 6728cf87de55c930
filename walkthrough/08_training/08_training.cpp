// walkthrough/08_training — training a tiny DeepSeek-V3 on the CPU: a backward pass checked by finite
// differences, the whole training loop of `dsref train` in a page, the aux-loss-free bias balancing
// the experts live, and the measured run that made the shipped demo model.
//
// What this program shows (run: make walkthrough; argument: where to write the balance plot, default
// build/walkthrough/08_balance.svg):
//   1. RMSNorm's hand-written backward (ref/train/dense_backward.h) against central differences in double;
//   2. a tiny V3 (MLA + DeepSeekMoE, 8 experts, top-2) built from ref/train/tiny_v3.h with random
//      weights, trained for 60 steps on one repeated sentence twice: without the bias update and with
//      γ = 0.01 (V3 report §2.1.2); the loss and the max/mean expert load every 10 steps;
//   3. the run that trained data/demo_v3/model (data/demo_v3/train_log.csv, .eval.csv): train and
//      held-out loss, and the expert balance over training, plotted as an SVG.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "core/rope.h"
#include "moe/moe_balance.h"
#include "train/adamw.h"
#include "train/dense_backward.h"
#include "train/tiny_v3.h"

using namespace dsref;

static void fd_rmsnorm() {
    std::printf("== 1. RMSNorm backward against central differences (double) ==\n");
    const int64_t T = 3, d = 8;
    std::mt19937 g(1);
    std::normal_distribution<double> N01;
    std::vector<double> x(T * d), w(d), dy(T * d), y(T * d), r(T), dx(T * d), dw(d, 0.0);
    for (auto& v : x) v = N01(g);
    for (auto& v : w) v = 1 + 0.1 * N01(g);
    for (auto& v : dy) v = N01(g);
    // the scalar loss l = Σ dy ⊙ y: its gradient is what rms_bwd computes from dy
    auto loss = [&](const std::vector<double>& xx) {
        rms_fwd(y.data(), r.data(), xx.data(), w.data(), T, d, 1e-6);
        double s = 0;
        for (int64_t i = 0; i < T * d; i++) s += dy[i] * y[i];
        return s;
    };
    loss(x);
    rms_bwd(dx.data(), dw.data(), dy.data(), x.data(), w.data(), r.data(), T, d);
    double worst = 0;
    const double h = 1e-6;
    for (int64_t i = 0; i < T * d; i++) {
        std::vector<double> xp = x, xm = x;
        xp[i] += h, xm[i] -= h;
        const double fd = (loss(xp) - loss(xm)) / (2 * h);
        worst = std::max(worst, std::fabs(fd - dx[i]) / std::max(1e-8, std::fabs(fd)));
        if (i < 3) std::printf("  dx[%lld]: backward %+.10f   (l(x+h) - l(x-h)) / 2h %+.10f\n", (long long)i, dx[i], fd);
    }
    std::printf("  worst relative difference over all %lld inputs: %.2e (central differences: O(h^2) + rounding/h)\n\n",
                (long long)(T * d), worst);
}

// a tiny V3: vocabulary of bytes, d = 32, layer 0 dense, layer 1 DeepSeekMoE (8 experts, top-2, 1 shared)
static TinyV3Config tiny() {
    TinyV3Config c;
    c.V = 256, c.d = 32, c.L = 2, c.first_dense = 1, c.I_dense = 64, c.I_moe = 16, c.n_shared = 1;
    c.mla.d = 32, c.mla.H = 2, c.mla.d_q = 24, c.mla.d_c = 16, c.mla.d_n = 8, c.mla.d_r = 8, c.mla.d_v = 8;
    c.mla.scale = 1.0 / std::sqrt((double)(c.mla.d_n + c.mla.d_r));
    c.mla.inv_freq = rope_inv_freq(c.mla.d_r, 10000.0, RopeScaling{});
    c.gate.E = 8, c.gate.K = 2, c.gate.scoring = MoeScoring::Sigmoid, c.gate.topk_method = MoeTopk::NoauxTc;
    c.gate.norm_topk_prob = true, c.gate.routed_scaling_factor = 2.5;
    return c;
}

struct Point {
    int64_t k;
    double loss, ratio;
};

static std::vector<Point> train_tiny(double gamma) {
    const TinyV3Config c = tiny();
    const auto shapes = tiny_v3_shapes(c);
    std::mt19937 g(7);
    std::normal_distribution<double> N01;
    ParamMap<float> p;
    for (const auto& [name, shape] : shapes) {  // projections N(0, 1/in), embedding N(0, 1), norms 1, bias 0
        int64_t n = 1;
        for (int64_t s : shape) n *= s;
        auto& v = p[name];
        v.resize(n);
        const bool bias = name.find("e_score_correction_bias") != std::string::npos;
        const double sd = name.find("embed") != std::string::npos ? 1.0 : 1.0 / std::sqrt((double)shape.back());
        for (auto& x : v) x = shape.size() == 1 ? (bias ? 0.f : 1.f) : (float)(sd * N01(g));
    }
    std::vector<int32_t> ids;
    const std::string text = "the router sends each token to two of eight experts. ";
    for (int r = 0; r < 10; r++)
        for (char ch : text) ids.push_back((unsigned char)ch);
    const int64_t B = 2, S = 32, N = (int64_t)ids.size(), steps = 60;
    std::map<std::string, AdamWState<float>> st;
    AdamWConfig ac;
    std::vector<Point> out;
    for (int64_t k = 0; k < steps; k++) {
        // the loop of dsref train (ref/cli/cmd_train.cpp): forward + backward per row, batch mean, clip,
        // AdamW, then the bias update from the step's expert loads
        ParamMap<float> grads;
        double loss = 0;
        std::vector<int64_t> load(c.gate.E, 0);
        for (int64_t b = 0; b < B; b++) {
            const int64_t o = ((k * B + b) * S) % (N - S - 1);
            const TinyV3Losses l = tiny_v3_step(c, p, &grads, ids.data() + o, ids.data() + o + 1, S, 0.0);
            loss += l.ce / B;
            for (int64_t e = 0; e < c.gate.E; e++) load[e] += l.load[0][e];
        }
        std::vector<float*> gp;
        std::vector<int64_t> sizes;
        for (auto& [name, gv] : grads) {
            for (auto& x : gv) x /= (float)B;
            gp.push_back(gv.data());
            sizes.push_back((int64_t)gv.size());
        }
        clip_grad_norm(gp, sizes, 1.0);
        for (auto& [name, gv] : grads)
            adamw_step(p[name].data(), gv.data(), st[name], (int64_t)gv.size(), k + 1, 1e-2,
                       adamw_decays(shapes.at(name)) ? 0.1 : 0.0, ac);
        if (gamma > 0) aux_free_bias_update(p["model.layers.1.mlp.gate.e_score_correction_bias"].data(), load.data(),
                                            c.gate.E, gamma);
        const double mx = (double)*std::max_element(load.begin(), load.end());
        if (k % 10 == 0 || k == steps - 1) out.push_back({k, loss, mx * c.gate.E / (double)(B * S * c.gate.K)});
    }
    return out;
}

static std::vector<std::vector<double>> read_csv(const std::string& path) {
    std::ifstream f(path);
    std::vector<std::vector<double>> rows;
    std::string line;
    std::getline(f, line);
    while (std::getline(f, line)) {
        std::vector<double> r;
        std::stringstream ss(line);
        for (std::string x; std::getline(ss, x, ',');) r.push_back(std::stod(x));
        rows.push_back(r);
    }
    return rows;
}

static void demo_run(const std::string& svg_path) {
    std::printf("\n== 3. the run that made data/demo_v3/model (data/demo_v3/train.sh) ==\n");
    const auto tr = read_csv("data/demo_v3/train_log.csv"), ev = read_csv("data/demo_v3/train_log.eval.csv");
    if (tr.empty() || ev.empty()) {
        std::printf("  data/demo_v3/train_log.csv not found: run from the repository root\n");
        return;
    }
    auto avg = [&](size_t from, size_t to, int col) {
        double s = 0;
        for (size_t i = from; i < to; i++) s += tr[i][col];
        return s / (double)(to - from);
    };
    const size_t n = tr.size(), w = std::min<size_t>(50, n);
    std::printf("  %zu steps (means of 50 steps, start -> end): train cross-entropy %.3f -> %.3f, MTP loss %.3f -> %.3f,"
                " total (ce + 0.3 mtp + aux) %.3f -> %.3f\n", n, avg(0, w, 2), avg(n - w, n, 2), avg(0, w, 3),
                avg(n - w, n, 3), avg(0, w, 1), avg(n - w, n, 1));
    std::printf("  held-out eval loss:");
    for (const auto& e : ev) std::printf(" %g:%.2f", e[0], e[1]);
    std::printf("\n  max/mean expert load (worst MoE layer, mean of 50 steps): %.2f at the start -> %.2f at the end\n",
                avg(0, w, 8), avg(n - w, n, 8));
    std::ofstream f(svg_path);
    const double W = 640, H = 320, m = 50;
    double hi = 0;
    for (const auto& r : tr) hi = std::max(hi, r[8]);
    auto X = [&](double k) { return m + (W - 2 * m) * k / (double)(n - 1); };
    auto Y = [&](double v) { return (H - m) - (H - 2 * m) * (v - 1.0) / (hi - 1.0); };
    f << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H << "\">\n"
      << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      << "<line x1=\"" << m << "\" y1=\"" << H - m << "\" x2=\"" << W - m << "\" y2=\"" << H - m << "\" stroke=\"black\"/>\n"
      << "<line x1=\"" << m << "\" y1=\"" << m << "\" x2=\"" << m << "\" y2=\"" << H - m << "\" stroke=\"black\"/>\n"
      << "<text x=\"" << W / 2 << "\" y=\"" << H - 10 << "\" text-anchor=\"middle\">step (0 .. " << n - 1 << ")</text>\n"
      << "<text x=\"" << m << "\" y=\"" << m - 10 << "\">max / mean expert load per step (1 .. " << hi
      << "), worst MoE layer; 1 = balanced</text>\n<polyline fill=\"none\" stroke=\"seagreen\" points=\"";
    for (size_t i = 0; i < n; i++) f << X((double)i) << "," << Y(tr[i][8]) << " ";
    f << "\"/>\n</svg>\n";
    std::printf("  wrote %s\n", svg_path.c_str());
}

int main(int argc, char** argv) {
    fd_rmsnorm();
    std::printf("== 2. a tiny V3 learns one sentence; the bias update balances its 8 experts ==\n");
    const auto a = train_tiny(0.0), b = train_tiny(0.01);
    std::printf("  step | gamma = 0: loss  max/mean load | gamma = 0.01: loss  max/mean load\n");
    for (size_t i = 0; i < a.size(); i++)
        std::printf("  %4lld |            %5.2f  %13.2f |               %5.2f  %13.2f\n", (long long)a[i].k, a[i].loss,
                    a[i].ratio, b[i].loss, b[i].ratio);
    demo_run(argc > 1 ? argv[1] : "build/walkthrough/08_balance.svg");
    return 0;
}
