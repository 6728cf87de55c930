// tensor.cpp — dtypes, shapes and element conversion for dsref::Tensor.
#include "core/tensor.h"

#include <cmath>
#include <sstream>

#include "core/error.h"
#include "core/fp4_format.h"
#include "core/fp8_format.h"

namespace dsref {

namespace {
struct DTypeInfo {
    DType t;
    const char* name;
    size_t size;
    bool is_float;
};
const DTypeInfo kDTypes[] = {
    {DType::BOOL, "BOOL", 1, false}, {DType::U8, "U8", 1, false},       {DType::I8, "I8", 1, false},
    {DType::I16, "I16", 2, false},   {DType::I32, "I32", 4, false},     {DType::I64, "I64", 8, false},
    {DType::F16, "F16", 2, true},    {DType::BF16, "BF16", 2, true},    {DType::F32, "F32", 4, true},
    {DType::F64, "F64", 8, true},    {DType::F8_E4M3, "F8_E4M3", 1, true},
    {DType::F8_E5M2, "F8_E5M2", 1, true},  {DType::F8_E8M0, "F8_E8M0", 1, true},
};
const DTypeInfo& info(DType t) { return kDTypes[(int)t]; }
}  // namespace

const char* dtype_name(DType t) { return info(t).name; }
size_t dtype_size(DType t) { return info(t).size; }
bool dtype_is_float(DType t) { return info(t).is_float; }
bool dtype_from_name(const std::string& s, DType* out) {
    for (const DTypeInfo& d : kDTypes)
        if (s == d.name) {
            *out = d.t;
            return true;
        }
    return false;
}

std::string shape_str(const Shape& s) {
    std::ostringstream os;
    os << "[";
    for (size_t i = 0; i < s.size(); i++) os << (i ? ", " : "") << s[i];
    os << "]";
    return os.str();
}

int64_t shape_numel(const Shape& s) {
    int64_t n = 1;
    for (int64_t d : s) n *= d;
    return n;
}

int64_t Tensor::dim(int i) const {
    int r = rank();
    if (i < 0) i += r;
    if (i < 0 || i >= r) fail("dimension ", i, " out of range for a tensor of shape ", shape_str(shape));
    return shape[i];
}

static void need_dtype(const Tensor& t, DType want) {
    if (t.dtype != want) fail("expected a ", dtype_name(want), " tensor, got ", dtype_name(t.dtype));
}
float* Tensor::f32() { need_dtype(*this, DType::F32); return reinterpret_cast<float*>(bytes.data()); }
const float* Tensor::f32() const {
    need_dtype(*this, DType::F32);
    return reinterpret_cast<const float*>(bytes.data());
}
int32_t* Tensor::i32() { need_dtype(*this, DType::I32); return reinterpret_cast<int32_t*>(bytes.data()); }
const int32_t* Tensor::i32() const {
    need_dtype(*this, DType::I32);
    return reinterpret_cast<const int32_t*>(bytes.data());
}

// ---- scalar conversions ----------------------------------------------------------------------------
static uint32_t bits_of(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }
static float float_of(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }

uint16_t f32_to_bf16(float f) {
    uint32_t u = bits_of(f);
    if (std::isnan(f)) return (uint16_t)((u >> 16) | 0x0040);  // keep sign, force a quiet NaN
    u += 0x7FFF + ((u >> 16) & 1);                             // round to nearest, ties to even
    return (uint16_t)(u >> 16);
}
float bf16_round(float f) { return bf16_to_f32(f32_to_bf16(f)); }

float f16_to_f32(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    const int e = (h >> 10) & 0x1F;
    const int m = h & 0x3FF;
    float v;
    if (e == 0) v = std::ldexp((float)m, -24);
    else if (e == 31) v = m ? NAN : INFINITY;
    else v = std::ldexp(1.0f + m / 1024.0f, e - 15);
    return float_of(bits_of(v) | sign);
}
uint16_t f32_to_f16(float f) {
    // Exact via double: scale into the f16 grid and let rint (ties to even) do the rounding.
    const uint16_t sign = std::signbit(f) ? 0x8000 : 0;
    double a = std::fabs((double)f);
    if (std::isnan(f)) return sign | 0x7E00;
    if (a >= 65520.0) return sign | 0x7C00;                  // rounds to infinity
    if (a < std::ldexp(1.0, -14)) {                          // subnormal (or zero)
        return sign | (uint16_t)std::nearbyint(a * std::ldexp(1.0, 24));
    }
    int e;
    double fr = std::frexp(a, &e);                           // a = fr·2^e, fr in [0.5, 1)
    double mant = std::nearbyint(fr * 2048.0);               // 11 significant bits
    if (mant == 2048.0) { mant = 1024.0; e += 1; }
    if (e - 1 + 15 >= 31) return sign | 0x7C00;
    return sign | (uint16_t)(((e - 1 + 15) << 10) | ((int)mant - 1024));
}

// ---- element conversion ------------------------------------------------------------------------------
template <class T>
static T load_le(const uint8_t* p) { T v; std::memcpy(&v, p, sizeof(T)); return v; }

static double element_f64(DType t, const uint8_t* p) {
    switch (t) {
        case DType::BOOL: return p[0] ? 1.0 : 0.0;
        case DType::U8: return p[0];
        case DType::I8: return (int8_t)p[0];
        case DType::I16: return load_le<int16_t>(p);
        case DType::I32: return load_le<int32_t>(p);
        case DType::I64: return (double)load_le<int64_t>(p);
        case DType::F16: return f16_to_f32(load_le<uint16_t>(p));
        case DType::BF16: return bf16_to_f32(load_le<uint16_t>(p));
        case DType::F32: return load_le<float>(p);
        case DType::F64: return load_le<double>(p);
        case DType::F8_E4M3: return fp8_decode(p[0], Fp8Format::E4M3);
        case DType::F8_E5M2: return fp8_decode(p[0], Fp8Format::E5M2);
        case DType::F8_E8M0: return ue8m0_decode(p[0]);
    }
    return 0.0;
}

std::vector<double> Tensor::to_f64() const {
    const int64_t n = numel();
    const size_t es = dtype_size(dtype);
    std::vector<double> out(n);
    for (int64_t i = 0; i < n; i++) out[i] = element_f64(dtype, bytes.data() + i * es);
    return out;
}

std::vector<float> Tensor::to_f32() const {
    const int64_t n = numel();
    std::vector<float> out(n);
    if (dtype == DType::F32) {
        std::memcpy(out.data(), bytes.data(), n * 4);
        return out;
    }
    const size_t es = dtype_size(dtype);
    for (int64_t i = 0; i < n; i++) out[i] = (float)element_f64(dtype, bytes.data() + i * es);
    return out;
}

std::vector<int64_t> Tensor::to_i64() const {
    const int64_t n = numel();
    const size_t es = dtype_size(dtype);
    std::vector<int64_t> out(n);
    for (int64_t i = 0; i < n; i++) {
        if (dtype == DType::I64) out[i] = load_le<int64_t>(bytes.data() + i * es);
        else out[i] = (int64_t)element_f64(dtype, bytes.data() + i * es);
    }
    return out;
}

Tensor Tensor::zeros(DType t, Shape shape) {
    Tensor x;
    x.dtype = t;
    x.shape = std::move(shape);
    x.bytes.assign(shape_numel(x.shape) * dtype_size(t), 0);
    return x;
}
Tensor Tensor::from_f32(Shape shape, const float* v) {
    Tensor x = zeros(DType::F32, std::move(shape));
    if (!x.bytes.empty()) std::memcpy(x.bytes.data(), v, x.bytes.size());
    return x;
}
Tensor Tensor::from_f32(Shape shape, const std::vector<float>& v) {
    if ((int64_t)v.size() != shape_numel(shape))
        fail("from_f32: ", v.size(), " values for shape ", shape_str(shape));
    return from_f32(std::move(shape), v.data());
}
Tensor Tensor::from_i32(Shape shape, const std::vector<int32_t>& v) {
    if ((int64_t)v.size() != shape_numel(shape))
        fail("from_i32: ", v.size(), " values for shape ", shape_str(shape));
    Tensor x = zeros(DType::I32, std::move(shape));
    if (!v.empty()) std::memcpy(x.bytes.data(), v.data(), x.bytes.size());
    return x;
}
Tensor Tensor::from_u8(Shape shape, const std::vector<uint8_t>& v, DType t) {
    if ((int64_t)v.size() != shape_numel(shape))
        fail("from_u8: ", v.size(), " values for shape ", shape_str(shape));
    Tensor x = zeros(t, std::move(shape));
    x.bytes = v;
    return x;
}
Tensor Tensor::scalar(float v) { return from_f32({}, std::vector<float>{v}); }

Tensor Tensor::encode_f32(Shape shape, const std::vector<float>& v, DType t) {
    if ((int64_t)v.size() != shape_numel(shape))
        fail("encode_f32: ", v.size(), " values for shape ", shape_str(shape));
    if (t == DType::F32) return from_f32(std::move(shape), v);
    Tensor x = zeros(t, std::move(shape));
    for (size_t i = 0; i < v.size(); i++) {
        uint16_t h;
        if (t == DType::BF16) h = f32_to_bf16(v[i]);
        else if (t == DType::F16) h = f32_to_f16(v[i]);
        else fail("encode_f32: cannot store float32 values as ", dtype_name(t));
        std::memcpy(x.bytes.data() + 2 * i, &h, 2);
    }
    return x;
}

}  // namespace dsref
