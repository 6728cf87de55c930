// weights.cpp — float32 weights from any tensor source and storage, FP8 blocks included.
#include "io/weights.h"

#include <cstring>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "fp8/fp8_quant.h"

namespace dsref {

// The NaN policy for checkpoint weights (ref/README.md "Reliability"): a NaN or Inf in a float weight is
// an error naming the tensor and its first bad element, found in the conversion pass loading makes anyway.
// (FP8 codes and scales are checked by fp8_dequant_weight, fp8/fp8_quant.h.)
static void finite_or_fail(const TensorSource& src, const std::string& name, const float* v, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!std::isfinite(v[i])) fail(src.describe(name), ": element ", i, " is ", v[i], "; weights must be finite");
}


void WeightLoader::check(const WeightSpec& s, const char* what) const {
    if (!src_.has(s.name)) fail(src_.where(), ": missing ", what, " '", s.name, "' (shape ", shape_str(s.shape), ")");
    check_tensor_shape(src_, src_.get(s.name), s.shape, s.shape_doc);
}

std::vector<float> WeightLoader::load(const std::string& name, const Shape& shape, const std::string& doc) const {
    std::vector<float> w(shape_numel(shape));
    load_into_impl(w.data(), name, shape, doc);
    return w;
}

Bf16Words WeightLoader::load_bf16(const WeightSpec& s) const {
    const TensorRef& r = src_.get(s.name);
    check_tensor_shape(src_, r, s.shape, s.shape_doc);
    if (r.dtype != DType::BF16)
        fail(src_.describe(s.name), " is stored ", dtype_name(r.dtype), "; holding bf16 weights needs BF16 storage");
    Bf16Words w(shape_numel(s.shape));
    std::memcpy(w.data(), r.data, w.size() * sizeof(uint16_t));  // r.data need not be aligned
    return w;
}

void WeightLoader::load_into(float* out, const WeightSpec& s) const { load_into_impl(out, s.name, s.shape, s.shape_doc); }

void WeightLoader::load_into_impl(float* out, const std::string& name, const Shape& shape, const std::string& doc) const {
    const TensorRef& r = src_.get(name);
    check_tensor_shape(src_, r, shape, doc);
    prefetch(name);  // the whole tensor's reads queued at once (a cold checkpoint: bench-scale)
    if (r.dtype == DType::F8_E4M3 || r.dtype == DType::F8_E5M2) {
        const std::string sname = name + "_scale_inv";
        if (r.dtype != DType::F8_E4M3) fail(src_.describe(name), " is F8_E5M2; FP8 weights must be F8_E4M3");
        if (!src_.has(sname)) fail(src_.where(), ": FP8 ", src_.noun(), " '", name, "' has no '", sname, "'");
        if (shape.size() != 2) fail(src_.where(), ": FP8 ", src_.noun(), " '", name, "' must be 2-D");
        const Shape grid = {(shape[0] + br_ - 1) / br_, (shape[1] + bc_ - 1) / bc_};
        const TensorRef& s = src_.get(sname);
        if (s.shape != grid)
            fail(src_.describe(sname), " has shape ", shape_str(s.shape), ", expected ", shape_str(grid), " for a ",
                 shape_str(shape), " weight in ", br_, "x", bc_, " blocks");
        if (!dtype_is_float(s.dtype)) fail(src_.describe(sname), " has non-float dtype ", dtype_name(s.dtype));
        const std::vector<float> scale = s.to_f32();
        // A negative scale flips the sign of a whole block; no quantizer writes one (fp8_dequant_weight
        // refuses the non-finite ones). Zero stays allowed: an all-zero block has amax = 0.
        for (size_t i = 0; i < scale.size(); i++)
            if (scale[i] < 0) fail(src_.describe(sname), ": element ", i, " is ", scale[i], "; scales must not be negative");
        try {
            fp8_dequant_weight(out, r.data, scale.data(), shape[0], shape[1], br_, bc_);
        } catch (const Error& e) {
            fail(src_.describe(name), ": ", e.what());
        }
        return;
    }
    if (!dtype_is_float(r.dtype)) fail(src_.describe(name), " has non-float dtype ", dtype_name(r.dtype));
    r.to_f32_into(out);
    finite_or_fail(src_, name, out, (size_t)shape_numel(shape));
}

void WeightLoader::load_row_range(float* out, const WeightSpec& s, int64_t r0, int64_t r1) const {
    const TensorRef& r = src_.get(s.name);
    check_tensor_shape(src_, r, s.shape, s.shape_doc);
    if (s.shape.size() != 2 || r0 < 0 || r1 < r0 || r1 > s.shape[0])
        fail("load_row_range: rows [", r0, ", ", r1, ") of ", src_.describe(s.name), " ", shape_str(s.shape));
    const int64_t C = s.shape[1];
    if (!dtype_is_float(r.dtype) || r.dtype == DType::F8_E4M3 || r.dtype == DType::F8_E5M2) {
        const std::vector<float> all = load(s);  // FP8 blocks span rows: dequantize the whole weight
        std::copy(all.begin() + r0 * C, all.begin() + r1 * C, out);
        return;
    }
    TensorRef part = r;
    const size_t es = dtype_size(r.dtype);
    part.shape = {r1 - r0, C};
    part.data = r.data + r0 * C * es;
    part.nbytes = (size_t)((r1 - r0) * C) * es;
    part.to_f32_into(out);
    finite_or_fail(src_, s.name, out, (size_t)((r1 - r0) * C));
}

std::vector<float> WeightLoader::load_rows(const std::string& name, const Shape& shape,
                                           const std::vector<int32_t>& rows) const {
    const TensorRef& r = src_.get(name);
    check_tensor_shape(src_, r, shape);
    if (shape.size() != 2) fail("load_rows: '", name, "' is not 2-D");
    for (int32_t row : rows)
        if (row < 0 || row >= shape[0]) fail("token id ", row, " is outside the vocabulary [0, ", shape[0], ")");
    if (r.dtype == DType::F8_E4M3) {  // rare (embeddings stay BF16 in real checkpoints): dequantize all
        std::vector<float> all = load(name, shape), out;
        for (int32_t row : rows) out.insert(out.end(), all.begin() + row * shape[1], all.begin() + (row + 1) * shape[1]);
        return out;
    }
    if (!dtype_is_float(r.dtype)) fail(src_.describe(name), " has non-float dtype ", dtype_name(r.dtype));
    const int64_t C = shape[1];
    const size_t es = dtype_size(r.dtype);
    std::vector<float> out(rows.size() * C);
    for (size_t i = 0; i < rows.size(); i++) {
        Tensor one;
        one.dtype = r.dtype;
        one.shape = {C};
        one.bytes.assign(r.data + rows[i] * C * es, r.data + (rows[i] + 1) * C * es);
        std::vector<float> v = one.to_f32();
        for (size_t j = 0; j < v.size(); j++)
            if (!std::isfinite(v[j]))
                fail(src_.describe(name), ": element ", (size_t)rows[i] * C + j, " (row ", rows[i], ") is ", v[j],
                     "; weights must be finite");
        std::copy(v.begin(), v.end(), out.begin() + i * C);
    }
    return out;
}

}  // namespace dsref
