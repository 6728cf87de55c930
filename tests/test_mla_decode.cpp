// test_mla_decode.cpp — ref/model/mla_decode.h, the CPU twin of cuda/mla_decode.cu, against values derived
// by hand: one key gives its latent back; equal scores give the mean; a dominant score selects its key;
// the softmax weights follow e^{scale·Δ} exactly for two keys; sequences are independent.
#include <catch2/catch.hpp>

#include <cmath>

#include "model/mla_decode.h"

using dsref::mla_decode_latent;

TEST_CASE("mla_decode_latent: one key returns its latent", "[mla_decode]") {
    const int64_t H = 2, d_c = 3, d_r = 2;
    const std::vector<float> q_lat = {1, 2, 3, -1, 0, 4}, q_pe = {0.5f, 1, 2, -3};
    const std::vector<float> kv = {0.25f, -1.5f, 7, 9, -9};  // c = (0.25, −1.5, 7), k_pe = (9, −9)
    std::vector<float> o(H * d_c);
    mla_decode_latent(o.data(), q_lat.data(), q_pe.data(), kv.data(), {0, 1}, H, d_c, d_r, 0.3);
    for (int64_t h = 0; h < H; h++)
        for (int64_t c = 0; c < d_c; c++) CHECK(o[h * d_c + c] == kv[c]);
}

TEST_CASE("mla_decode_latent: equal scores average, two keys weigh by e^{scale·Δscore}", "[mla_decode]") {
    const int64_t d_c = 2, d_r = 1;
    // q = 0: every score is 0, the output is the mean of the latents
    std::vector<float> o(d_c);
    const std::vector<float> kv = {1, 2, 5, 3, 4, -5, 8, 0, 1};  // three keys (c0, c1, k_pe)
    mla_decode_latent(o.data(), std::vector<float>{0, 0}.data(), std::vector<float>{0}.data(), kv.data(), {0, 3}, 1,
                      d_c, d_r, 1.0);
    CHECK(o[0] == Approx((1 + 3 + 8) / 3.0).epsilon(1e-7));
    CHECK(o[1] == Approx((2 + 4 + 0) / 3.0).epsilon(1e-7));
    // only the rope part scores: key 0 gets scale·1·1, key 1 scale·1·(−1); p0 = 1/(1 + e^{−2·scale})
    const double scale = 0.7;
    const std::vector<float> kv2 = {1, 0, 1, 0, 1, -1};
    mla_decode_latent(o.data(), std::vector<float>{0, 0}.data(), std::vector<float>{1}.data(), kv2.data(), {0, 2}, 1,
                      d_c, d_r, scale);
    const double p0 = 1.0 / (1.0 + std::exp(-2.0 * scale));
    CHECK(o[0] == Approx(p0).epsilon(1e-7));
    CHECK(o[1] == Approx(1 - p0).epsilon(1e-7));
}

TEST_CASE("mla_decode_latent: sequences are independent and a dominant key wins", "[mla_decode]") {
    const int64_t d_c = 1, d_r = 1;
    // sequence 0: keys (c = 10, k_pe = 100), (c = −10, k_pe = 0); q_pe = 1 → key 0 dominates by e^{100}
    // sequence 1: one key (c = 3)
    const std::vector<float> kv = {10, 100, -10, 0, 3, 0};
    std::vector<float> o(2);
    mla_decode_latent(o.data(), std::vector<float>{0, 0}.data(), std::vector<float>{1, 1}.data(), kv.data(), {0, 2, 3}, 1,
                      d_c, d_r, 1.0);
    CHECK(o[0] == 10.0f);
    CHECK(o[1] == 3.0f);
    CHECK_THROWS_WITH(mla_decode_latent(o.data(), kv.data(), kv.data(), kv.data(), {0, 0}, 1, 1, 1, 1.0),
                      Catch::Contains("sequence 0 has no key"));
}
