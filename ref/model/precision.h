// precision.h — precision emulation: where a reference implementation rounds to bf16 (or quantizes to
// FP8), and how dsref reproduces it (`dsref forward --emulate MODE`).
//
// dsref computes in float32 (double where a comment says so), which is more accurate than any bf16
// engine; an engine developer comparing against it cannot tell a bug from rounding (on a tiny V3,
// transformers' bf16 forward differs from float32 by a mean |Δlogits| of ~3e-2 and flips routing
// decisions). A PrecisionPolicy names the rounding points of one reference, and the blocks call it at
// each of them. With Emulation::None every call runs the float32 code itself (the same functions, no
// rounding), so the default results are unchanged bit for bit.
//
// Rounding is to bf16 with round-to-nearest-even; products accumulate in float32 before their output
// is rounded, as bf16 GEMMs do. The rounding points, by mode (kRoundingPoints in precision.cpp holds
// the same list, printed by `dsref forward --help`):
//
//   hf-bf16        transformers 5 with dtype=torch.bfloat16, eager attention and eager experts
//                  (modeling_llama.py, modeling_qwen2.py, modeling_deepseek_v3.py)
//   official-bf16  DeepSeek-V3 inference/model.py with gemm_impl = "bf16" and the bf16 default dtype
//   official-fp8   the same with gemm_impl = "fp8": act_quant + fp8_gemm for every FP8 projection
//
// Dimension letters as everywhere: T tokens, S keys, d hidden, H heads, H_kv KV heads, K/N a GEMM's
// inner/output size, E experts, K_e experts per token.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/rope.h"
#include "fp8/fp8_gemm.h"
#include "fp8/fp8_quant.h"
#include "io/checkpoint_layout.h"
#include "io/config.h"
#include "io/weights.h"
#include "moe/moe.h"

namespace dsref {

enum class Emulation { None, HfBf16, OfficialBf16, OfficialFp8 };
Emulation emulation_from_name(const std::string& name);  // "none" | "hf-bf16" | "official-bf16" | "official-fp8"
const char* emulation_name(Emulation e);
// The rounding points of every mode, one per line with its citation (forward --help, README).
const char* emulation_help();

// The E4M3 codes and 128×128 block scales of one stored FP8 weight, for official-fp8's fp8_gemm.
struct Fp8Weight {
    std::vector<uint8_t> q;      // [N, K] E4M3 codes
    std::vector<float> scale;    // [ceil(N/128), ceil(K/128)] weight_scale_inv
    bool empty() const { return q.empty(); }
};

struct PrecisionPolicy {
    Emulation mode = Emulation::None;
    Fp8ScaleFmt scale_fmt = Fp8ScaleFmt::Fp32;  // official-fp8 act_quant scales (the config's scale_fmt)
    Fp8GemmConfig gemm{Fp8Accum::TensorCore};   // official-fp8: Hopper accumulation, promoted every 128 of K

    bool none() const { return mode == Emulation::None; }
    bool hf() const { return mode == Emulation::HfBf16; }
    bool official() const { return mode == Emulation::OfficialBf16 || mode == Emulation::OfficialFp8; }
    bool fp8() const { return mode == Emulation::OfficialFp8; }

    // Refuses (Error naming the field) a config this mode cannot emulate: hf-bf16 runs llama, qwen2 and
    // deepseek_v3 with float storage; the official modes deepseek_v3 (official-fp8: FP8 storage in
    // 128×128 blocks, every FP8 projection's input a multiple of 128, as act_quant asserts).
    void check_config(const ModelConfig& c) const;

    // ---- weights -------------------------------------------------------------------------------------
    // A weight as the reference holds it: bf16 in every mode (an FP8 weight is dequantized, then rounded:
    // official weight_dequant), except that hf-bf16 keeps `keep_fp32` tensors in float32 (transformers'
    // _keep_in_fp32_modules_strict: DeepseekV3TopkRouter's weight and e_score_correction_bias).
    std::vector<float> load(const WeightLoader& w, const WeightSpec& s, bool keep_fp32 = false) const;
    void round_weight(std::vector<float>& w) const;  // the same rounding on an already loaded weight
    // official-fp8: the stored codes and scales of an FP8 projection (empty in other modes, or when the
    // tensor is not stored F8_E4M3).
    Fp8Weight load_fp8(const WeightLoader& w, const WeightSpec& s) const;

    // ---- rounding points ------------------------------------------------------------------------------
    // x rounded to bf16 in every emulation mode (nothing in None). x: [n]
    void round(float* x, int64_t n) const;
    // y = x Wᵀ (+ b), rounded (official-fp8 with an FP8 weight: act_quant(x) then fp8_gemm, rounded).
    // y: [T, N] · x: [T, K] · w: [N, K] · bias: [N] or null
    void linear(float* y, const float* x, const std::vector<float>& w, int64_t T, int64_t K, int64_t N,
                const Fp8Weight* fp8 = nullptr, const float* bias = nullptr) const;
    // RMSNorm. None: core/rmsnorm.h. hf: x·rsqrt rounded, then × w rounded. official: one rounding.
    // y: [T, d] (may alias x) · x: [T, d] · w: [d]
    void rmsnorm(float* y, const float* x, const float* w, int64_t T, int64_t d, float eps) const;
    // h += y, rounded. h, y: [n]
    void residual_add(float* h, const float* y, int64_t n) const;
    // RoPE in place, as core/rope.h's rope_forward (same arguments). hf: fp32 angles, bf16 cos/sin, every
    // product and sum rounded; official: fp32 angles and complex multiply, one rounding.
    void rope(float* x, int64_t T, int64_t N, int64_t d_r, int64_t row_stride, int64_t vec_stride,
              const int64_t* positions, const std::vector<double>& inv_freq, RopeLayout layout) const;
    // The dense SwiGLU MLP: silu(gate) and its product with up rounded, every projection as `linear`.
    // y: [T, d] · x: [T, d] · gate, up: [I, d] · down: [d, I]; fp8: {gate, up, down} or null
    void swiglu(float* y, const float* x, const std::vector<float>& gate, const std::vector<float>& up,
                const std::vector<float>& down, int64_t T, int64_t d, int64_t I,
                const Fp8Weight* const* fp8 = nullptr) const;
    // Causal GQA attention (transformers' eager_attention_forward in bf16; core/attention.h in None).
    // o: [T, H, d_v] · q: [T, H, d] · k: [S, H_kv, d] · v: [S, H_kv, d_v], query t at position pos0 + t
    void attention(float* o, const float* q, const float* k, const float* v, int64_t T, int64_t S, int64_t H,
                   int64_t H_kv, int64_t d, int64_t d_v, float scale, int64_t pos0) const;
};

// The DeepSeekMoE layer as the reference computes it (hf-bf16: DeepseekV3MoE with eager experts;
// official: MoE.forward), for an emulation mode (not None: moe/moe.h is the float32 layer).
// y: [T, d] out · x: [T, d] (bf16 values) · w: the layer's weights as `PrecisionPolicy::load` holds them ·
// fp8: per routed expert {gate, up, down}, then the shared expert's, official-fp8 only (else empty).
MoeRouting moe_forward_emulated(float* y, const float* x, int64_t T, const MoeGateConfig& g, const MoeWeights& w,
                                const PrecisionPolicy& p, const std::vector<Fp8Weight>& fp8);

}  // namespace dsref
