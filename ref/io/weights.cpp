// weights.cpp — float32 weights from any checkpoint storage, FP8 blocks included (spec 7.2).
#include "io/weights.h"

#include "core/error.h"
#include "core/fp8_format.h"

namespace dsref {

std::vector<float> fp8_block_dequant(const uint8_t* q, const float* scale_inv, int64_t R, int64_t C, int64_t br,
                                     int64_t bc) {
    const int64_t grid_c = (C + bc - 1) / bc;
    float decoded[256];  // every E4M3 code's value, so the loop below is a table lookup
    for (int code = 0; code < 256; code++) decoded[code] = fp8_decode((uint8_t)code, Fp8Format::E4M3);
    std::vector<float> w(R * C);
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < R; r++)
        for (int64_t c = 0; c < C; c++) w[r * C + c] = decoded[q[r * C + c]] * scale_inv[(r / br) * grid_c + c / bc];
    return w;
}

static void check_shape(const Checkpoint& ck, const TensorRef& r, const Shape& shape) {
    if (r.shape != shape)
        fail("checkpoint ", ck.dir(), ": tensor '", r.name, "' has shape ", shape_str(r.shape), ", expected ",
             shape_str(shape));
}

std::vector<float> WeightLoader::load(const std::string& name, const Shape& shape) const {
    const TensorRef& r = ckpt_.get(name);
    check_shape(ckpt_, r, shape);
    if (r.dtype == DType::F8_E4M3 || r.dtype == DType::F8_E5M2) {
        const std::string sname = name + "_scale_inv";
        if (r.dtype != DType::F8_E4M3) fail("checkpoint ", ckpt_.dir(), ": tensor '", name, "' is F8_E5M2; FP8 weights must be F8_E4M3");
        if (!ckpt_.has(sname)) fail("checkpoint ", ckpt_.dir(), ": FP8 tensor '", name, "' has no '", sname, "'");
        if (shape.size() != 2) fail("checkpoint ", ckpt_.dir(), ": FP8 tensor '", name, "' must be 2-D");
        const int64_t br = cfg_.fp8_block_rows, bc = cfg_.fp8_block_cols;
        const Shape grid = {(shape[0] + br - 1) / br, (shape[1] + bc - 1) / bc};
        const TensorRef& s = ckpt_.get(sname);
        if (s.shape != grid)
            fail("checkpoint ", ckpt_.dir(), ": tensor '", sname, "' has shape ", shape_str(s.shape), ", expected ",
                 shape_str(grid), " for a ", shape_str(shape), " weight in ", br, "x", bc, " blocks");
        const std::vector<float> scale = s.to_f32();
        return fp8_block_dequant(r.data, scale.data(), shape[0], shape[1], br, bc);
    }
    if (!dtype_is_float(r.dtype))
        fail("checkpoint ", ckpt_.dir(), ": tensor '", name, "' has non-float dtype ", dtype_name(r.dtype));
    return r.to_f32();
}

std::vector<float> WeightLoader::load_rows(const std::string& name, const Shape& shape,
                                           const std::vector<int32_t>& rows) const {
    const TensorRef& r = ckpt_.get(name);
    check_shape(ckpt_, r, shape);
    if (shape.size() != 2) fail("load_rows: '", name, "' is not 2-D");
    if (r.dtype == DType::F8_E4M3) {  // rare (embeddings stay BF16 in real checkpoints): dequantize all
        std::vector<float> all = load(name, shape), out;
        for (int32_t row : rows) out.insert(out.end(), all.begin() + row * shape[1], all.begin() + (row + 1) * shape[1]);
        return out;
    }
    if (!dtype_is_float(r.dtype))
        fail("checkpoint ", ckpt_.dir(), ": tensor '", name, "' has non-float dtype ", dtype_name(r.dtype));
    const int64_t C = shape[1];
    const size_t es = dtype_size(r.dtype);
    std::vector<float> out(rows.size() * C);
    for (size_t i = 0; i < rows.size(); i++) {
        if (rows[i] < 0 || rows[i] >= shape[0]) fail("token id ", rows[i], " is outside the vocabulary [0, ", shape[0], ")");
        Tensor one;
        one.dtype = r.dtype;
        one.shape = {C};
        one.bytes.assign(r.data + rows[i] * C * es, r.data + (rows[i] + 1) * C * es);
        std::vector<float> v = one.to_f32();
        std::copy(v.begin(), v.end(), out.begin() + i * C);
    }
    return out;
}

}  // namespace dsref
