// weights.h — reads model weights out of a tensor source (a mapped checkpoint, or an op's inputs) as
// float32, when they are used.
//
// Float storage (F32, BF16, F16) converts element by element. FP8 storage (F8_E4M3 with a
// `<name>_scale_inv` tensor, DeepSeek-V3 report §3.3; official inference/model.py weight_dequant)
// dequantizes by multiplying each block by its scale:
//   W[r, c] = decode(q[r, c]) · scale_inv[r / br, c / bc]
// on a ceil(rows/br) × ceil(cols/bc) grid (br = bc = 128 in every release) whose edge blocks are
// partial, with fp8/fp8_quant.h's fp8_dequant_weight and its NaN policy. This is the official code's
// weight-only FP8 (`gemm_impl = "bf16"`) computed in float32: no bf16 rounding of the product and no
// activation quantization. The scale may live in another shard than its weight.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/huge_pages.h"
#include "io/checkpoint_layout.h"
#include "io/config.h"
#include "io/tensor_source.h"

namespace dsref {

// bf16 words in huge-page-backed memory (core/huge_pages.h): generation's held weights.
using Bf16Words = std::vector<uint16_t, HugePageAllocator<uint16_t>>;

class WeightLoader {
public:
    // br × bc: the FP8 block size (quantization_config.weight_block_size).
    explicit WeightLoader(const TensorSource& src, int64_t br = 128, int64_t bc = 128) : src_(src), br_(br), bc_(bc) {}
    WeightLoader(const TensorSource& src, const ModelConfig& cfg)
        : WeightLoader(src, cfg.fp8_block_rows, cfg.fp8_block_cols) {}
    bool has(const std::string& name) const { return src_.has(name); }
    // The weight as float32 [shape], checking its shape and dequantizing FP8 blocks.
    std::vector<float> load(const std::string& name, const Shape& shape, const std::string& doc = "") const;
    std::vector<float> load(const WeightSpec& s) const { return load(s.name, s.shape, s.shape_doc); }
    // The weight's bf16 words as stored [shape], for a caller that multiplies bf16 directly
    // (core/linear_bf16.h); an error naming the tensor unless it is stored BF16.
    Bf16Words load_bf16(const WeightSpec& s) const;
    // The same values written into `out` [shape] (a buffer the caller reuses: streamed experts).
    void load_into(float* out, const WeightSpec& s) const;
    // Hands the tensor's mapped pages (and its `_scale_inv`'s) back to the kernel once it has been
    // converted (TensorSource::release), so resident memory does not grow to the checkpoint's size.
    void release(const std::string& name) const {
        src_.release(name);
        if (src_.has(name + "_scale_inv")) src_.release(name + "_scale_inv");
    }
    // Queues the reads of the tensor's (and its `_scale_inv`'s) bytes at once (TensorSource::prefetch):
    // called for what a layer will read before it reads it, so the disk works while the CPU converts.
    void prefetch(const std::string& name) const {
        src_.prefetch(name);
        if (src_.has(name + "_scale_inv")) src_.prefetch(name + "_scale_inv");
    }
    // Rows of a 2-D weight (embedding lookups without converting the whole table).
    std::vector<float> load_rows(const std::string& name, const Shape& shape, const std::vector<int32_t>& rows) const;
    // Rows [r0, r1) of a 2-D float weight [shape] into out [r1 - r0, shape[1]], converted straight out of
    // the source (the head in slices, without a float32 copy of the whole table).
    void load_row_range(float* out, const WeightSpec& s, int64_t r0, int64_t r1) const;
    // Checks that the tensor exists (else "<source>: missing tensor 'NAME' (shape [..])") and has its shape.
    void check(const WeightSpec& s, const char* what = "tensor") const;
    const TensorSource& source() const { return src_; }

private:
    void load_into_impl(float* out, const std::string& name, const Shape& shape, const std::string& doc) const;
    const TensorSource& src_;
    int64_t br_, bc_;
};

}  // namespace dsref
