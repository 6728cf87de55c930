// walkthrough/08_training — hand-written backward passes and how a finite-difference check grades them.
//
// What this program shows (run: make walkthrough, from the repository root):
//   1. the central difference (L(p + h) − L(p − h)) / 2h against RMSNorm's analytic gradient
//      (train/dense_backward.h rms_bwd) for h = 1e-1 … 1e-12: the error falls as h² (truncation), then
//      rises as 1/h (rounding), and h = 1e-6 sits near the valley, ~3e-10, over three orders under the 1e-6
//      tolerance of tests/test_train_backward.cpp;
//   2. cross-entropy (train/loss_backward.h): dz = softmax − onehot, each row of the gradient sums to 0,
//      and uniform logits give log V;
//   3. AdamW's first step (train/adamw.h): m̂ = g, v̂ = g², so every weight moves by lr against the sign
//      of its gradient, whatever the gradient's size.
// Everything is computed by the library; this file only sets up inputs and prints.
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "train/adamw.h"
#include "train/dense_backward.h"
#include "train/loss_backward.h"

using namespace dsref;

namespace {

std::vector<double> rnd(size_t n, uint64_t seed) {
    std::mt19937_64 g(seed);
    std::normal_distribution<double> d(0.0, 1.0);
    std::vector<double> v(n);
    for (double& x : v) x = d(g);
    return v;
}

double dot(const std::vector<double>& a, const std::vector<double>& b) {
    double s = 0;
    for (size_t i = 0; i < a.size(); i++) s += a[i] * b[i];
    return s;
}

}  // namespace

int main() {
    const int64_t T = 3, d = 8;
    std::vector<double> x = rnd(T * d, 1), w = rnd(d, 2), r = rnd(T * d, 3);
    std::vector<double> y(T * d), rstd(T), dx(T * d), dw(d, 0.0);
    // L = Σ r ⊙ RMSNorm(x): dL/dy = r, so the backward's input is r
    auto loss = [&] {
        rms_fwd(y.data(), rstd.data(), x.data(), w.data(), T, d, 1e-6);
        return dot(r, y);
    };
    loss();
    rms_bwd(dx.data(), dw.data(), r.data(), x.data(), w.data(), rstd.data(), T, d);

    std::printf("1. central differences against RMSNorm's backward (max over the %lld inputs)\n", (long long)(T * d));
    std::printf("   %-8s %-12s\n", "h", "max |analytic - numeric|");
    for (double h = 1e-1; h > 1e-12; h /= 10) {
        double worst = 0;
        for (size_t i = 0; i < x.size(); i++) {
            const double keep = x[i];
            x[i] = keep + h;
            const double lp = loss();
            x[i] = keep - h;
            const double lm = loss();
            x[i] = keep;
            worst = std::max(worst, std::fabs((lp - lm) / (2 * h) - dx[i]));
        }
        std::printf("   %-8.0e %.2e%s\n", h, worst, h == 1e-6 ? "   <- the tests' h" : "");
    }

    std::printf("\n2. cross-entropy: dz = (softmax(z) - onehot(y)) / N\n");
    const int64_t N = 2, V = 5;
    const std::vector<double> z = {2.0, -1.0, 0.5, 0.0, 1.0, 0.3, 0.3, 0.3, 0.3, 0.3};
    const std::vector<int32_t> tgt = {0, 2};
    std::vector<double> dz(N * V);
    const double L = xent_fwd_bwd(dz.data(), z.data(), tgt.data(), N, V, 1.0);
    for (int64_t n = 0; n < N; n++) {
        double s = 0;
        std::printf("   row %lld (target %d): dz =", (long long)n, tgt[n]);
        for (int64_t v = 0; v < V; v++) {
            std::printf(" %+.4f", dz[n * V + v]);
            s += dz[n * V + v];
        }
        std::printf("   sum %+.1e\n", s);
    }
    const int32_t t1 = 2;
    std::printf("   mean loss %.6f; uniform row alone: %.6f = log 5 = %.6f\n", L,
                xent_fwd_bwd<double>(nullptr, z.data() + V, &t1, 1, V, 1.0), std::log(5.0));

    std::printf("\n3. AdamW's first step moves every weight by lr against its gradient's sign\n");
    std::vector<double> p = {1.0, 1.0, 1.0}, g = {1e-4, -3.0, 250.0};
    AdamWState<double> st;
    AdamWConfig c;
    adamw_step(p.data(), g.data(), st, 3, 1, 0.01, 0.0, c);
    for (size_t i = 0; i < p.size(); i++) std::printf("   g = %-8g -> p = %.6f\n", g[i], p[i]);
    return 0;
}
