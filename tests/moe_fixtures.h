// moe_fixtures.h — gate configurations shared by the DeepSeekMoE tests.
#pragma once
#include <cstdint>

#include "moe/moe_gate.h"

namespace dsref_test {

// A DeepSeek-V3 gate (sigmoid scores, noaux_tc groups, renormalized weights × 2.5) at a small size:
// E experts, top-K, G groups of which Kg are kept.
inline dsref::MoeGateConfig v3_gate(int64_t E, int64_t K, int64_t G, int64_t Kg) {
    dsref::MoeGateConfig g;
    g.E = E;
    g.K = K;
    g.n_group = G;
    g.topk_group = Kg;
    g.scoring = dsref::MoeScoring::Sigmoid;
    g.topk_method = dsref::MoeTopk::NoauxTc;
    g.norm_topk_prob = true;
    g.routed_scaling_factor = 2.5;
    return g;
}

}  // namespace dsref_test
