// walkthrough/01_rmsnorm_rope — RMSNorm, RoPE and YaRN, step by step.
//
// What this program shows (run: make walkthrough, or build/walkthrough/01_rmsnorm_rope/rmsnorm_rope):
//   1. RMSNorm on a 4-vector, by hand and through ref/core/rmsnorm.h;
//   2. RoPE as complex multiplication: position 0 is the identity, norms are kept, and q·k depends only
//      on the distance between the two positions;
//   3. the two pairings (interleaved for DeepSeek V2/V3, half-split for HF Llama) on one vector;
//   4. YaRN at the real DeepSeek-V3 settings: the ramp range low=10, high=23 and each pair's division;
//   5. the YaRN softmax scale of V3 and V2 (mscale²).
#include <cmath>
#include <cstdio>
#include <vector>

#include "core/rmsnorm.h"
#include "core/rope.h"

using namespace dsref;

int main() {
    std::printf("== 1. RMSNorm ==\n");
    const float x[4] = {1, 2, 3, 4}, w[4] = {1, 1, 1, 1};
    float y[4];
    rmsnorm_forward(y, x, w, 1, 4, 1e-6f);
    const double ms = (1 + 4 + 9 + 16) / 4.0;
    std::printf("x = [1 2 3 4]: mean(x^2) = %.2f, rms = sqrt(7.5 + 1e-6) = %.6f\n", ms, std::sqrt(ms + 1e-6));
    std::printf("y = x / rms = [%.6f %.6f %.6f %.6f]   (mean(y^2) = %.6f)\n\n", y[0], y[1], y[2], y[3],
                (y[0] * y[0] + y[1] * y[1] + y[2] * y[2] + y[3] * y[3]) / 4);

    std::printf("== 2. RoPE: rotate pairs by p * theta_j ==\n");
    const int64_t D = 8;
    const std::vector<double> f = rope_inv_freq(D, 10000, RopeScaling{});
    std::printf("theta_j = 10000^(-2j/%lld): ", (long long)D);
    for (double v : f) std::printf("%.4g ", v);
    std::printf("\n");
    const std::vector<float> q0 = {0.3f, -1.2f, 0.8f, 0.1f, -0.5f, 0.9f, 1.1f, -0.4f};
    const std::vector<float> k0 = {1.0f, 0.2f, -0.3f, 0.7f, 0.4f, -0.6f, 0.2f, 0.5f};
    auto rotated = [&](std::vector<float> v, int64_t p, RopeLayout l) {
        rope_forward(v.data(), 1, 1, D, D, D, &p, f, l);
        return v;
    };
    auto dot = [](const std::vector<float>& a, const std::vector<float>& b) {
        double s = 0;
        for (size_t i = 0; i < a.size(); i++) s += (double)a[i] * b[i];
        return s;
    };
    std::vector<float> q_at0 = rotated(q0, 0, RopeLayout::Interleaved);
    double d0 = 0;
    for (int64_t i = 0; i < D; i++) d0 = std::max(d0, (double)std::fabs(q_at0[i] - q0[i]));
    std::printf("position 0 leaves q unchanged: max |diff| = %g\n", d0);
    std::vector<float> q_at9 = rotated(q0, 9, RopeLayout::Interleaved);
    std::printf("|q| = %.6f, |RoPE(q, p=9)| = %.6f (rotations keep the norm)\n", std::sqrt(dot(q0, q0)),
                std::sqrt(dot(q_at9, q_at9)));
    std::printf("q.k with the query 3 positions after the key:\n");
    for (int64_t pk : {0, 10, 100, 1000})
        std::printf("  key at %4lld, query at %4lld: q.k = %.6f\n", (long long)pk, (long long)pk + 3,
                    dot(rotated(q0, pk + 3, RopeLayout::Interleaved), rotated(k0, pk, RopeLayout::Interleaved)));
    std::printf("  (only the distance matters; the unrotated q.k is %.6f)\n\n", dot(q0, k0));

    std::printf("== 3. Two pairings of the same 8 numbers, at position 1 ==\n");
    std::vector<float> a = rotated(q0, 1, RopeLayout::Interleaved), b = rotated(q0, 1, RopeLayout::Half);
    std::printf("interleaved (pairs 2j,2j+1; DeepSeek V2/V3): ");
    for (float v : a) std::printf("%7.4f ", v);
    std::printf("\nhalf-split  (pairs j,j+4;  HF Llama)      : ");
    for (float v : b) std::printf("%7.4f ", v);
    std::printf("\nSame rule, different partners: using the wrong one on a checkpoint is a different model.\n\n");

    std::printf("== 4. YaRN at DeepSeek-V3's settings (d_r 64, factor 40, L0 4096, beta 32/1) ==\n");
    RopeScaling s;
    s.type = RopeScalingType::Yarn;
    s.factor = 40;
    s.original_max_position_embeddings = 4096;
    s.mscale = s.mscale_all_dim = 1.0;
    const YarnRange r = yarn_range(64, 10000, s);
    std::printf("correction range: low = %.0f, high = %.0f\n", r.low, r.high);
    const std::vector<double> plain = rope_inv_freq(64, 10000, RopeScaling{}), yarn = rope_inv_freq(64, 10000, s);
    std::printf("  j   theta_j        wavelength(tokens)  theta_j / theta'_j\n");
    for (int j : {0, 5, 10, 11, 16, 20, 22, 23, 31})
        std::printf("%3d   %.6e   %14.1f      %8.4f\n", j, plain[j], 2 * M_PI / plain[j], plain[j] / yarn[j]);
    std::printf("High-frequency pairs (j <= 10) are kept; pairs whose wavelength exceeds the trained\n"
                "length (j >= 23) are interpolated by 40; the ramp blends in between.\n\n");

    std::printf("== 5. The YaRN softmax scale (DeepSeek puts mscale^2 here, not into cos/sin) ==\n");
    RopeScaling v2 = s;
    v2.mscale = v2.mscale_all_dim = 0.707;
    std::printf("V3: 192^-0.5 * (0.1*1.0*ln 40 + 1)^2   = %.7f\n", yarn_softmax_scale(192, s));
    std::printf("V2: 192^-0.5 * (0.1*0.707*ln 40 + 1)^2 = %.7f\n", yarn_softmax_scale(192, v2));
    return 0;
}
