// tensor.h — the one container dsref passes around: a dtype, a shape and little-endian row-major bytes.
//
// Compute in dsref is float32 (or double where stated); the other dtypes exist so that checkpoints,
// op inputs and op outputs can carry exactly what safetensors stores (io/safetensors.h). `to_f32()` converts
// any numeric dtype, including BF16, F16 and both FP8 formats, to float32.
#pragma once
#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <vector>

namespace dsref {

// The safetensors dtypes dsref reads and writes.
// F8_E8M0: the UE8M0 scales of DeepSeek-V4 checkpoints (core/fp4_format.h: 2^(code − 127), 0xFF NaN).
enum class DType : uint8_t { BOOL, U8, I8, I16, I32, I64, F16, BF16, F32, F64, F8_E4M3, F8_E5M2, F8_E8M0 };

const char* dtype_name(DType t);                // "F32", "BF16", "F8_E4M3", ...
bool dtype_from_name(const std::string& s, DType* out);  // false for an unknown string
size_t dtype_size(DType t);                      // bytes per element
bool dtype_is_float(DType t);                    // F16, BF16, F32, F64, F8_*

using Shape = std::vector<int64_t>;
std::string shape_str(const Shape& s);           // "[2, 3]"
int64_t shape_numel(const Shape& s);

struct Tensor {
    DType dtype = DType::F32;
    Shape shape;
    std::vector<uint8_t> bytes;  // numel * dtype_size(dtype) bytes, little-endian, row-major

    int64_t numel() const { return shape_numel(shape); }
    int64_t dim(int i) const;          // shape[i], negative i counts from the end
    int rank() const { return (int)shape.size(); }

    // Typed views. They throw if the dtype differs, so a wrong-dtype input gets a clear message.
    float* f32();
    const float* f32() const;
    int32_t* i32();
    const int32_t* i32() const;
    uint8_t* u8() { return bytes.data(); }
    const uint8_t* u8() const { return bytes.data(); }

    // Any numeric dtype, converted element by element to float32 / float64 / int64.
    std::vector<float> to_f32() const;
    std::vector<double> to_f64() const;
    std::vector<int64_t> to_i64() const;

    static Tensor zeros(DType t, Shape shape);
    static Tensor from_f32(Shape shape, const std::vector<float>& v);
    static Tensor from_f32(Shape shape, const float* v);
    static Tensor from_i32(Shape shape, const std::vector<int32_t>& v);
    static Tensor from_u8(Shape shape, const std::vector<uint8_t>& v, DType t = DType::U8);
    static Tensor scalar(float v);     // rank-0 F32
    // float32 values stored as `t` (F32, F16, BF16 with round-to-nearest-even).
    static Tensor encode_f32(Shape shape, const std::vector<float>& v, DType t);
};

// Named tensors, e.g. the contents of one safetensors file or the inputs/outputs of an op.
using TensorMap = std::map<std::string, Tensor>;

// Scalar conversions used by to_f32 and by writers.
inline float bf16_to_f32(uint16_t h) {  // exact: a bf16 is the top half of a float32
    const uint32_t u = (uint32_t)h << 16;
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
}
uint16_t f32_to_bf16(float f);   // round to nearest even; NaN stays NaN
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);    // round to nearest even
float bf16_round(float f);       // f32 → bf16 → f32

}  // namespace dsref
