// ops_fp8.cpp — the FP8 ops behind `dsref op`: fp8_cast, fp8_quant_act, fp8_quant_weight, fp8_dequant,
// fp8_gemm (V3 report §3.3; DeepSeek-V3 inference/kernel.py). Thin wrappers: shape and dtype checks,
// then the functions of core/fp8_format.h, fp8/fp8_quant.h and fp8/fp8_gemm.h. Leading dimensions are
// flattened ([..., K] is treated as [M, K]) and kept in the outputs.
#include <cstring>

#include "core/error.h"
#include "core/fp8_format.h"
#include "fp8/fp8_gemm.h"
#include "fp8/fp8_quant.h"
#include "ops/op_registry.h"

namespace dsref {
namespace {

// Product of all dimensions but the last `keep`.
int64_t leading_numel(const Shape& s, int keep) {
    int64_t n = 1;
    for (size_t i = 0; i + keep < s.size(); i++) n *= s[i];
    return n;
}

// E4M3 codes of an input: F8_E4M3, or U8 holding E4M3 codes.
const uint8_t* e4m3_codes(const Tensor& t, const std::string& op, const std::string& name) {
    if (t.dtype != DType::F8_E4M3 && t.dtype != DType::U8)
        fail("op ", op, ": input '", name, "' must be F8_E4M3 (or U8 holding E4M3 codes), got ",
             dtype_name(t.dtype));
    return t.u8();
}

const Tensor& f32_input(const TensorMap& in, const std::string& op, const std::string& name) {
    const Tensor& t = op_input(in, op, name);
    if (t.dtype != DType::F32) fail("op ", op, ": input '", name, "' must be F32, got ", dtype_name(t.dtype));
    return t;
}

void need_shape(const Tensor& t, const Shape& want, const std::string& op, const std::string& name) {
    if (t.shape != want)
        fail("op ", op, ": input '", name, "' must have shape ", shape_str(want), ", got ",
             shape_str(t.shape));
}

Fp8ScaleFmt scale_fmt_attr(const OpAttrs& a) {
    return a.choice("scale_fmt", "fp32", {"fp32", "ue8m0"}) == "ue8m0" ? Fp8ScaleFmt::Ue8m0
                                                                       : Fp8ScaleFmt::Fp32;
}

// ---- fp8_cast ------------------------------------------------------------------------------------------
TensorMap run_cast(const TensorMap& in, const OpAttrs& attrs) {
    const std::string fmt_name = attrs.str("format", "e4m3");
    FloatFormat fmt;
    if (!float_format_parse(fmt_name, &fmt))
        usage_fail("op fp8_cast: format='", fmt_name,
                   "' must be e4m3, e5m2 or eXmY with 2 <= X <= 8, 1 <= Y <= 23");
    if (!attrs.has("overflow"))
        usage_fail(
            "op fp8_cast: attribute overflow=saturate|nan is required (they differ for |x| > max and +-inf)");
    const Fp8Overflow ov = attrs.choice("overflow", "saturate", {"saturate", "nan"}) == "nan"
                               ? Fp8Overflow::Nan
                               : Fp8Overflow::Saturate;
    const Tensor& x_t = op_input(in, "fp8_cast", "x");
    const std::vector<float> x = op_f32(in, "fp8_cast", "x");  // [...]
    const bool narrow = float_format_bits(fmt) <= 8;
    Tensor bits = Tensor::zeros(narrow ? DType::U8 : DType::I32, x_t.shape);  // [...] codes
    std::vector<float> y(x.size());                                           // [...] decoded
    for (size_t i = 0; i < x.size(); i++) {
        const uint32_t code = float_encode(x[i], fmt, ov);
        if (narrow)
            bits.u8()[i] = (uint8_t)code;
        else
            std::memcpy(bits.u8() + 4 * i, &code, 4);
        y[i] = (float)float_decode(code, fmt);
    }
    return TensorMap{{"bits", bits}, {"y", Tensor::from_f32(x_t.shape, y)}};
}

const bool cast_registered = register_op(
    {"fp8_cast",
     "round float32 values to FP8 (or any eXmY format), round-to-nearest-even",
     "inputs:  x [...] float (any float dtype; converted to float32 first)\n"
     "attributes:\n"
     "  format   e4m3 (default; E4M3FN: no inf, NaN 0x7F/0xFF, max 448) | e5m2 (IEEE, max 57344)\n"
     "           | eXmY, 2<=X<=8, 1<=Y<=23, IEEE convention, bias 2^(X-1)-1 (e5m6; e8m7 = bf16)\n"
     "  overflow saturate | nan (required). saturate: +-inf and values rounding above max -> +-max;\n"
     "           nan: e4m3 -> NaN (|x| > 464, +-inf), IEEE formats -> +-inf (e5m2: |x| >= 61440).\n"
     "           NaN inputs give the canonical NaN code with the input's sign either way.\n"
     "outputs: bits [...] U8 codes (I32 holding the bit pattern for formats wider than 8 bits)\n"
     "         y [...] F32 decoded values\n",
     {"format", "overflow"},
     run_cast});

// ---- fp8_quant_act / fp8_quant_weight --------------------------------------------------------------------
TensorMap run_quant_act(const TensorMap& in, const OpAttrs& attrs) {
    const Fp8ScaleFmt fmt = scale_fmt_attr(attrs);
    const Tensor& x_t = op_input(in, "fp8_quant_act", "x");
    const std::vector<float> x = op_f32(in, "fp8_quant_act", "x");  // [..., K]
    if (x_t.rank() < 1) fail("op fp8_quant_act: input 'x' must have rank >= 1 ([..., K]), got a scalar");
    const int64_t K = x_t.dim(-1), M = leading_numel(x_t.shape, 1), KB = fp8_num_blocks(K);
    Shape scale_shape = x_t.shape;
    scale_shape.back() = KB;
    Tensor q = Tensor::zeros(DType::F8_E4M3, x_t.shape);    // [..., K]
    Tensor scale = Tensor::zeros(DType::F32, scale_shape);  // [..., KB]
    fp8_quant_act(q.u8(), scale.f32(), x.data(), M, K, fmt);
    return TensorMap{{"q", q}, {"scale", scale}};
}

const bool quant_act_registered = register_op(
    {"fp8_quant_act",
     "E4M3 quantization of activations in 1x128 groups along K (DeepSeek-V3 act_quant)",
     "inputs:  x [..., K] F32 (any float dtype is converted to float32 first)\n"
     "attributes: scale_fmt fp32 (default: s = max(amax, 1e-4)/448) | ue8m0 (s rounded up to a power of 2)\n"
     "outputs: q [..., K] F8_E4M3 = e4m3_saturate(x / s), scale [..., ceil(K/128)] F32 (x ~ q * scale)\n",
     {"scale_fmt"},
     run_quant_act});

TensorMap run_quant_weight(const TensorMap& in, const OpAttrs& attrs) {
    const Fp8ScaleFmt fmt = scale_fmt_attr(attrs);
    const Tensor& w_t = op_input(in, "fp8_quant_weight", "w");
    const std::vector<float> w = op_f32(in, "fp8_quant_weight", "w");  // [..., N, K]
    if (w_t.rank() < 2)
        fail("op fp8_quant_weight: input 'w' must have rank >= 2 ([..., N, K]), got ", shape_str(w_t.shape));
    const int64_t K = w_t.dim(-1), N = w_t.dim(-2), batch = leading_numel(w_t.shape, 2);
    const int64_t NB = fp8_num_blocks(N), KB = fp8_num_blocks(K);
    Shape s_shape = w_t.shape;
    s_shape[s_shape.size() - 2] = NB;
    s_shape.back() = KB;
    Tensor q = Tensor::zeros(DType::F8_E4M3, w_t.shape);  // [..., N, K]
    Tensor s = Tensor::zeros(DType::F32, s_shape);        // [..., NB, KB]
    for (int64_t i = 0; i < batch; i++)
        fp8_quant_weight(q.u8() + i * N * K, s.f32() + i * NB * KB, w.data() + i * N * K, N, K, fmt);
    return TensorMap{{"q", q}, {"scale_inv", s}};
}

const bool quant_weight_registered = register_op(
    {"fp8_quant_weight",
     "E4M3 quantization of weights in 128x128 blocks (DeepSeek-V3 checkpoint format)",
     "inputs:  w [..., N, K] F32 (any float dtype; leading dims: e.g. stacked experts)\n"
     "attributes: scale_fmt fp32 (default) | ue8m0\n"
     "outputs: q [..., N, K] F8_E4M3, scale_inv [..., ceil(N/128), ceil(K/128)] F32 (w ~ q * scale_inv);\n"
     "         edge blocks are partial: amax over their real elements\n",
     {"scale_fmt"},
     run_quant_weight});

// ---- fp8_dequant ---------------------------------------------------------------------------------------
TensorMap run_dequant(const TensorMap& in, const OpAttrs&) {
    const Tensor& q_t = op_input(in, "fp8_dequant", "q");
    const uint8_t* q = e4m3_codes(q_t, "fp8_dequant", "q");
    const Tensor* scale = op_optional(in, "scale");
    const Tensor* scale_inv = op_optional(in, "scale_inv");
    if ((scale != nullptr) == (scale_inv != nullptr))
        fail(
            "op fp8_dequant: give exactly one of 'scale' (activations, 1x128) or 'scale_inv' (weights, "
            "128x128)");
    Tensor y = Tensor::zeros(DType::F32, q_t.shape);  // [..., K] or [..., N, K]
    if (scale) {
        if (q_t.rank() < 1) fail("op fp8_dequant: input 'q' must have rank >= 1 ([..., K]), got a scalar");
        const int64_t K = q_t.dim(-1), M = leading_numel(q_t.shape, 1);
        Shape want = q_t.shape;
        want.back() = fp8_num_blocks(K);
        const Tensor& s = f32_input(in, "fp8_dequant", "scale");
        need_shape(s, want, "fp8_dequant", "scale");
        fp8_dequant_act(y.f32(), q, s.f32(), M, K);
    } else {
        if (q_t.rank() < 2)
            fail("op fp8_dequant: with 'scale_inv', 'q' must have rank >= 2 ([..., N, K]), got ",
                 shape_str(q_t.shape));
        const int64_t K = q_t.dim(-1), N = q_t.dim(-2), batch = leading_numel(q_t.shape, 2);
        const int64_t NB = fp8_num_blocks(N), KB = fp8_num_blocks(K);
        Shape want = q_t.shape;
        want[want.size() - 2] = NB;
        want.back() = KB;
        const Tensor& s = f32_input(in, "fp8_dequant", "scale_inv");
        need_shape(s, want, "fp8_dequant", "scale_inv");
        for (int64_t i = 0; i < batch; i++)
            fp8_dequant_weight(y.f32() + i * N * K, q + i * N * K, s.f32() + i * NB * KB, N, K);
    }
    return TensorMap{{"y", y}};
}

const bool dequant_registered = register_op(
    {"fp8_dequant",
     "y = decode_e4m3(q) * scale, per 1x128 group or 128x128 block",
     "inputs:  q [..., K] F8_E4M3 (or U8 codes) with scale [..., ceil(K/128)] F32 (activation layout)\n"
     "         or q [..., N, K] with scale_inv [..., ceil(N/128), ceil(K/128)] F32 (weight layout)\n"
     "outputs: y (shape of q) F32, one float32 multiply per element\n",
     {},
     run_dequant});

// ---- fp8_gemm ------------------------------------------------------------------------------------------
TensorMap run_gemm(const TensorMap& in, const OpAttrs& attrs) {
    const std::string op = "fp8_gemm";
    Fp8GemmConfig cfg;
    cfg.accum = attrs.choice("accum", "exact", {"exact", "tensorcore"}) == "tensorcore" ? Fp8Accum::TensorCore
                                                                                        : Fp8Accum::Exact;
    if (cfg.accum == Fp8Accum::Exact)
        for (const char* k : {"acc_mantissa_bits", "acc_rounding", "promote_interval"})
            if (attrs.has(k)) usage_fail("op fp8_gemm: attribute ", k, " only applies to accum=tensorcore");
    const int64_t bits = attrs.i64("acc_mantissa_bits", 13);
    if (bits < 1 || bits > 52) usage_fail("op fp8_gemm: acc_mantissa_bits=", bits, " must be in 1..52");
    cfg.acc_mantissa_bits = (int)bits;
    cfg.acc_rounding = attrs.choice("acc_rounding", "truncate", {"truncate", "rne"}) == "rne"
                           ? AccRounding::Rne
                           : AccRounding::Truncate;
    cfg.promote_interval = attrs.i64("promote_interval", 128);

    const Tensor& a_t = op_input(in, op, "a");
    const Tensor& b_t = op_input(in, op, "b");
    const uint8_t* a = e4m3_codes(a_t, op, "a");
    const uint8_t* b = e4m3_codes(b_t, op, "b");
    if (a_t.rank() < 1) fail("op fp8_gemm: input 'a' must have rank >= 1 ([..., K]), got a scalar");
    if (b_t.rank() != 2) fail("op fp8_gemm: input 'b' must have shape [N, K], got ", shape_str(b_t.shape));
    const int64_t K = a_t.dim(-1), M = leading_numel(a_t.shape, 1), N = b_t.dim(0);
    if (b_t.dim(1) != K)
        fail("op fp8_gemm: 'a' ", shape_str(a_t.shape), " and 'b' ", shape_str(b_t.shape), " disagree on K");
    const int64_t KB = fp8_num_blocks(K);
    Shape a_scale_shape = a_t.shape;
    a_scale_shape.back() = KB;
    const Tensor& a_scale = f32_input(in, op, "a_scale");
    const Tensor& b_scale = f32_input(in, op, "b_scale");
    need_shape(a_scale, a_scale_shape, op, "a_scale");
    need_shape(b_scale, {fp8_num_blocks(N), KB}, op, "b_scale");

    Shape c_shape = a_t.shape;
    c_shape.back() = N;
    Tensor c = Tensor::zeros(DType::F32, c_shape);  // [..., N]
    fp8_gemm(c.f32(), a, a_scale.f32(), b, b_scale.f32(), M, N, K, cfg);
    return TensorMap{{"c", c}};
}

const bool gemm_registered = register_op(
    {"fp8_gemm",
     "block-scaled FP8 GEMM c = a * b^T, exact or Hopper tensor-core accumulation",
     "inputs:  a [..., K] F8_E4M3 (or U8 codes), a_scale [..., ceil(K/128)] F32 (1x128 groups)\n"
     "         b [N, K] F8_E4M3 (or U8 codes), b_scale [ceil(N/128), ceil(K/128)] F32 (128x128 blocks)\n"
     "attributes:\n"
     "  accum             exact (default: double sum, the oracle) | tensorcore (Hopper emulation)\n"
     "  acc_mantissa_bits tensorcore: explicit mantissa bits of the MMA accumulator (13)\n"
     "  acc_rounding      tensorcore: truncate (default, toward zero) | rne, after every add\n"
     "  promote_interval  tensorcore: K elements between promotions to fp32 (128); 0 = never;\n"
     "                    a multiple of 128, and the K blocks it spans must have equal scales\n"
     "outputs: c [..., N] F32\n",
     {"accum", "acc_mantissa_bits", "acc_rounding", "promote_interval"},
     run_gemm});

}  // namespace
}  // namespace dsref
