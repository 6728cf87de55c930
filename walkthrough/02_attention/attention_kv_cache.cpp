// walkthrough/02_attention — causal attention, GQA and the KV cache, step by step.
//
// What this program shows (run: make walkthrough):
//   1. one attention row computed by hand and by ref/core/attention.h;
//   2. GQA: query head h reads KV head ⌊h·H_kv/H⌋; with H_kv = H it is MHA, and GQA equals MHA with
//      the KV heads repeated (bit for bit);
//   3. the KV cache: decoding token by token against the cache gives the rows a full prefill gives;
//   4. what the cache costs per token for MHA, GQA and MQA at DeepSeek LLM 7B and 67B shapes.
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "core/attention.h"

using namespace dsref;

static std::vector<float> randn(size_t n, unsigned seed) {
    std::mt19937 g(seed);
    std::normal_distribution<float> d;
    std::vector<float> v(n);
    for (float& x : v) x = d(g);
    return v;
}

int main() {
    std::printf("== 1. One attention row by hand ==\n");
    // q = [1, 0]; keys [1, 0] and [0, 1]; values [10, 0] and [0, 10]; scale 1, no mask.
    const float q[2] = {1, 0}, k[4] = {1, 0, 0, 1}, v[4] = {10, 0, 0, 10};
    float o[2];
    attention_forward(o, q, k, v, 1, 2, 1, 1, 2, 2, 1.0f, false, 0);
    const double e = std::exp(1.0);
    std::printf("scores q.k = [1, 0] -> softmax = [%.4f, %.4f] -> o = %.4f*[10,0] + %.4f*[0,10]\n", e / (e + 1),
                1 / (e + 1), e / (e + 1), 1 / (e + 1));
    std::printf("by hand: [%.6f, %.6f]   ref/attention: [%.6f, %.6f]\n", 10 * e / (e + 1), 10 / (e + 1), o[0], o[1]);
    attention_forward(o, q, k, v, 1, 2, 1, 1, 2, 2, 1.0f, true, 0);
    std::printf("causal, query at position 0 sees only key 0: [%.4f, %.4f]\n\n", o[0], o[1]);

    std::printf("== 2. GQA: 8 query heads sharing 2 KV heads ==\n");
    const int64_t T = 6, H = 8, Hkv = 2, d = 4;
    std::printf("query head -> KV head: ");
    for (int64_t h = 0; h < H; h++) std::printf("%lld->%lld ", (long long)h, (long long)(h * Hkv / H));
    std::printf("\n");
    std::vector<float> qs = randn(T * H * d, 1), ks = randn(T * Hkv * d, 2), vs = randn(T * Hkv * d, 3);
    std::vector<float> kr(T * H * d), vr(T * H * d);
    for (int64_t s = 0; s < T; s++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t i = 0; i < d; i++) {
                kr[(s * H + h) * d + i] = ks[(s * Hkv + h * Hkv / H) * d + i];
                vr[(s * H + h) * d + i] = vs[(s * Hkv + h * Hkv / H) * d + i];
            }
    std::vector<float> o_gqa(T * H * d), o_mha(T * H * d);
    const float scale = 0.5f;
    attention_forward(o_gqa.data(), qs.data(), ks.data(), vs.data(), T, T, H, Hkv, d, d, scale, true, 0);
    attention_forward(o_mha.data(), qs.data(), kr.data(), vr.data(), T, T, H, H, d, d, scale, true, 0);
    double diff = 0;
    for (size_t i = 0; i < o_gqa.size(); i++) diff = std::max(diff, (double)std::fabs(o_gqa[i] - o_mha[i]));
    std::printf("GQA vs MHA with repeated KV heads: max |diff| = %g\n\n", diff);

    std::printf("== 3. The KV cache: decode one token at a time ==\n");
    std::vector<float> o_step(H * d);
    double worst = 0;
    for (int64_t t = 0; t < T; t++) {
        // the cache holds keys/values 0..t; query t is the only new row (pos0 = t)
        attention_forward(o_step.data(), qs.data() + t * H * d, ks.data(), vs.data(), 1, t + 1, H, Hkv, d, d, scale,
                          true, t);
        double m = 0;
        for (int64_t i = 0; i < H * d; i++) m = std::max(m, (double)std::fabs(o_step[i] - o_gqa[t * H * d + i]));
        std::printf("  step %lld: cache holds %lld tokens, max |decode - prefill| = %g\n", (long long)t,
                    (long long)t + 1, m);
        worst = std::max(worst, m);
    }
    std::printf("decode against the cache reproduces prefill (worst %g)\n\n", worst);

    std::printf("== 4. What the cache costs (bf16, per token, all layers) ==\n");
    struct Shape {
        const char* name;
        int64_t layers, H, Hkv, d_h;
    } shapes[] = {{"DeepSeek LLM 7B  (MHA)", 30, 32, 32, 128},
                  {"DeepSeek LLM 67B (GQA 8)", 95, 64, 8, 128},
                  {"67B if it were MHA", 95, 64, 64, 128},
                  {"67B if it were MQA", 95, 64, 1, 128}};
    for (const Shape& s : shapes) {
        const int64_t values = 2 * s.Hkv * s.d_h * s.layers;  // K and V, every layer
        std::printf("  %-26s 2*%lld*%lld*%lld = %8lld values = %8lld bytes\n", s.name, (long long)s.Hkv,
                    (long long)s.d_h, (long long)s.layers, (long long)values, (long long)(2 * values));
    }
    std::printf("GQA divides the cache by H/H_kv; chapter 03 shows how MLA goes further.\n");
    return 0;
}
