// fp8_format.h — small floating-point formats, bit-exact: FP8 E4M3FN and E5M2, plus a generic eXmY
// description for experiments (E5M6 from the V3 report, BF16 = E8M7). The formats are those of
// Micikevicius et al. 2022, "FP8 Formats for Deep Learning" (arXiv 2209.05433, Table 1; the OCP OFP8
// specification); DeepSeek-V3 report §3.3 (E4M3 for all tensors, §3.3.2; E5M6, §3.3.3).
//
// A clean reference: scalar code, no tables, no intrinsics. Every code decodes to an exact float32
// (or double for wide formats), and encode is round-to-nearest-even with an explicit overflow mode:
//
//   saturate  CUDA `__NV_SATFINITE` (PTX cvt.rn.satfinite): ±inf and finite values that round above
//             the largest finite value become ±max. NaN stays NaN.
//   nan       PyTorch's / ml_dtypes' cast (`__NV_NOSAT`): a value that rounds above max becomes the
//             overflow code: NaN for E4M3FN (it has no infinity; |x| > 464 → NaN, ±inf → NaN), ±inf for
//             IEEE-like formats such as E5M2 (|x| ≥ 61440 → ±inf).
//
// NaN inputs become the format's canonical NaN with the input's sign: E4M3FN S.1111.111 (0x7F / 0xFF),
// IEEE-like formats the quiet NaN S.1…1.10…0 (E5M2 0x7E / 0xFE). A negative value that rounds to zero
// gives −0 (0x80). This is bit-for-bit what ml_dtypes 0.6 does (data/fp8/README.md).
//
// The generic eXmY description (FloatFormat) has two conventions for the all-ones exponent:
//   Ieee       e = all ones: m = 0 is ±inf, m ≠ 0 is NaN. Max finite = (2 − 2^−Y)·2^(2^X − 2 − bias).
//              Used by E5M2, E5M6 and BF16 (E8M7).
//   FiniteNan  "FN": no infinities; only e = all ones with m = all ones is NaN, the other all-ones-exponent
//              codes are normal numbers. Max finite = (2 − 2^(1−Y))·2^(2^X − 1 − bias). Used by E4M3FN.
// The bias is 2^(X−1) − 1 for every named format. E5M6's inf/NaN convention is not stated in the V3
// report (it is only a storage format there); we take the IEEE one, i.e. E5M6 is FP16 with its
// mantissa cut from 10 to 6 bits: max 65024, min normal 2^−14, subnormals m·2^−20.
//
// Codes are held in the low 1+X+Y bits of a uint32_t: sign, then exponent, then mantissa.
#pragma once
#include <cstdint>
#include <string>

namespace dsref {

enum class Fp8Format { E4M3, E5M2 };
enum class Fp8Overflow { Saturate, Nan };

// How a format uses its all-ones exponent (see the file header).
enum class FloatSpecials { Ieee, FiniteNan };

// An eXmY floating-point format: 1 sign bit, X exponent bits, Y explicit mantissa bits.
struct FloatFormat {
    int exp_bits;            // X, 2..8
    int man_bits;            // Y, 1..23
    int bias;                // exponent bias, 2^(X-1) - 1 for every named format
    FloatSpecials specials;  // meaning of the all-ones exponent
};

extern const FloatFormat kFormatE4M3;  // E4M3FN: bias 7, no inf, NaN 0x7F/0xFF, max 448, subnormals m·2^-9
extern const FloatFormat kFormatE5M2;  // bias 15, IEEE, ±inf 0x7C/0xFC, max 57344, subnormals m·2^-16
extern const FloatFormat kFormatE5M6;  // bias 15, IEEE (our choice, see above), max 65024
extern const FloatFormat kFormatBF16;  // E8M7, bias 127, IEEE: the top 16 bits of a float32

const FloatFormat& fp8_float_format(Fp8Format f);  // kFormatE4M3 or kFormatE5M2

// "e4m3" → E4M3FN, "e5m2", and any other "eXmY" (2 ≤ X ≤ 8, 1 ≤ Y ≤ 23) → IEEE convention with bias
// 2^(X-1) - 1 (so "e5m6" and "e8m7" = BF16). Returns false for anything else.
bool float_format_parse(const std::string& name, FloatFormat* out);
std::string float_format_name(const FloatFormat& f);  // "e4m3", "e5m6", ...

int float_format_bits(const FloatFormat& f);           // 1 + X + Y
double float_format_max(const FloatFormat& f);         // largest finite value
double float_format_min_normal(const FloatFormat& f);  // 2^(1 - bias)
uint32_t float_format_max_code(const FloatFormat& f);  // code of +max (sign bit clear)

// The value of one code (only the low 1+X+Y bits are read). Exact: every value fits in a double (and in a
// float32 for every format allowed here). NaN codes give a quiet NaN with the code's sign bit.
double float_decode(uint32_t code, const FloatFormat& f);

// Round-to-nearest-even encode of a float32 with the given overflow mode (file header).
uint32_t float_encode(float x, const FloatFormat& f, Fp8Overflow overflow);

// x rounded to the format and decoded back: float_decode(float_encode(x)).
float float_round(float x, const FloatFormat& f, Fp8Overflow overflow);

// ---- the two FP8 formats ---------------------------------------------------------------------------

// The float32 value of one FP8 code. E4M3FN: bias 7, no infinities, NaN = 0x7F/0xFF, max 448,
// subnormals m·2^-9. E5M2: bias 15, IEEE-like, ±inf = 0x7C/0xFC, NaN for e=31, m≠0. NaN keeps the sign bit.
float fp8_decode(uint8_t code, Fp8Format f);

// Round-to-nearest-even FP8 code of x (overflow as in the file header).
uint8_t fp8_encode(float x, Fp8Format f, Fp8Overflow overflow);

}  // namespace dsref
