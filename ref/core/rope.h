// rope.h — rotary position embedding (RoFormer, Su et al. 2021, §3.4.2) with YaRN frequency blending
// (YaRN paper, Peng et al. 2023, §3.2 "NTK-by-parts") as DeepSeek-V2/V3 use it (DeepSeek-V2 report
// §2.1.3, §3.1.4; DeepSeek-V3 report §2.1.1 eqs 3 and 8, §4.3; DeepSeek-V3 inference/model.py
// precompute_freqs_cis and apply_rotary_emb).
//
// A d_r-dimensional vector is rotated as d_r/2 pairs; pair j at absolute position p turns by
// φ_j = p · θ'_j. Two pairings exist and both are needed. This header is where the pairing is pinned:
//   - Interleaved: pairs (2j, 2j+1) — DeepSeek V2/V3 checkpoints and the official code
//     (apply_rotary_emb multiplies adjacent pairs as complex numbers). No weight permutation exists in
//     any V2/V3 checkpoint (inference/convert.py only renames): transformers' V3 code rotates the same
//     pairs but writes them de-interleaved, [rotated evens | rotated odds] (modeling_deepseek_v3.py,
//     apply_rotary_pos_emb_interleave), so its q_pe/k_pe are a permutation of dsref's while q_pe·k_pe
//     and every attention output are the same.
//   - Half: pairs (j, j + d_r/2), HF "rotate_half" (modeling_llama.py, apply_rotary_pos_emb) — the HF
//     Llama layout of DeepSeek LLM checkpoints, whose q/k weights are stored pre-permuted for it.
//
// YaRN (YaRN paper §3.2; official precompute_freqs_cis, find_correction_range and linear_ramp_factor;
// transformers modeling_rope_utils.py, _compute_yarn_parameters) with factor s, original length L0,
// β_fast, β_slow and base b:
//   cd(r)  = d_r · ln(L0 / (2π r)) / (2 ln b)
//   low    = max(floor(cd(β_fast)), 0),  high = min(ceil(cd(β_slow)), d_r − 1)
//   ramp_j = clamp((j − low) / (high − low), 0, 1)        (high == low → high + 0.001)
//   θ'_j   = (θ_j / s) · ramp_j + θ_j · (1 − ramp_j)
// The frequencies are used at every position whenever rope_scaling is yarn (pinned: the official code
// switches YaRN off when run with max_seq_len ≤ original_seq_len; HF and dsref never do). L0 is
// original_max_position_embeddings, never max_position_embeddings. YaRN's magnitude factor is *not*
// applied to cos/sin: DeepSeek puts mscale² into the softmax scale instead (`yarn_softmax_scale`;
// YaRN paper §3.4 writes it as the attention temperature √(1/t) = 0.1·ln(s) + 1, the V2 report §3.1.4
// uses √t = 0.0707·ln(s) + 1, the V3 report §4.3 √t = 0.1·ln(s) + 1; official MLA.__init__ multiplies
// softmax_scale by mscale²). A config on which transformers would also scale cos/sin (its
// attention_factor, when mscale ≠ mscale_all_dim) is refused by io/config.cpp.
//
// Llama 3 (Llama-3.1 / 3.3, DeepSeek-R1-Distill-Llama; transformers modeling_rope_utils.py
// _compute_llama3_parameters) with factor s, original length L0, low/high frequency factors l < h:
//   λ_j = 2π / θ_j                        the wavelength of pair j
//   λ_j < L0 / h        θ'_j = θ_j            (high frequencies kept)
//   λ_j > L0 / l        θ'_j = θ_j / s        (low frequencies interpolated)
//   otherwise           θ'_j = (1 − a) θ_j / s + a θ_j,  a = (L0 / λ_j − l) / (h − l)
//
// Precision: inverse frequencies and angles are computed in double and cos/sin rounded once to
// float. The official code and HF compute angles in fp32, which differs by ~1e-2 rad only at
// positions near 1e5 (there an fp32 angle p·θ_0 = p has an ulp of 2^-7 ≈ 8e-3 rad).
#pragma once
#include <cstdint>
#include <vector>

namespace dsref {

enum class RopeLayout { Interleaved, Half };

// The RoPE scaling of HF `rope_scaling` (parsed and validated once, in io/config.cpp).
enum class RopeScalingType { None, Yarn, Llama3 };
const char* rope_scaling_name(RopeScalingType t);  // "none" | "yarn" | "llama3"

struct RopeScaling {
    RopeScalingType type = RopeScalingType::None;
    double factor = 1.0;                            // s
    int64_t original_max_position_embeddings = 0;  // L0
    double beta_fast = 32.0, beta_slow = 1.0;
    double mscale = 1.0, mscale_all_dim = 0.0;     // HF defaults when the keys are absent
    double low_freq_factor = 1.0, high_freq_factor = 4.0;  // llama3: l, h
    bool is_yarn() const { return type == RopeScalingType::Yarn; }
};

struct YarnRange {
    double low, high;  // pair-index range of the ramp, after floor/ceil and clamping
};
YarnRange yarn_range(int64_t d_r, double theta, const RopeScaling& s);

// get_mscale(s, m) = 1 if s ≤ 1 else 0.1·m·ln(s) + 1  (official MLA.__init__; transformers yarn_get_mscale)
double yarn_get_mscale(double factor, double m);

// The softmax scale of MLA: qk_head_dim^-1/2, times get_mscale(factor, mscale_all_dim)² under YaRN.
double yarn_softmax_scale(int64_t qk_head_dim, const RopeScaling& s);

// θ'_j for j = 0..d_r/2-1, in double: the plain θ_j = b^(-2j/d_r), blended by YaRN or Llama 3 scaling.
std::vector<double> rope_inv_freq(int64_t d_r, double theta, const RopeScaling& s);

// Rotates in place the d_r-dim vectors x[t, n, 0:d_r] found at x + t·row_stride + n·vec_stride,
// for t in [0, T), n in [0, N), each at position positions[t].
// x: [T, N, ≥d_r] with the given strides (in floats) · positions: [T] · inv_freq: [d_r/2]
void rope_forward(float* x, int64_t T, int64_t N, int64_t d_r, int64_t row_stride, int64_t vec_stride,
                  const int64_t* positions, const std::vector<double>& inv_freq, RopeLayout layout);

}  // namespace dsref
