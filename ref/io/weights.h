// weights.h — reads model weights out of a mapped checkpoint as float32, when they are used.
//
// Float storage (F32, BF16, F16) converts element by element. FP8 storage (F8_E4M3 with a
// `<name>_scale_inv` tensor, spec 7.2) dequantizes by multiplying each 128×128 block by its scale:
//   W[r, c] = decode(q[r, c]) · scale_inv[r / 128, c / 128]
// on a ceil(rows/128) × ceil(cols/128) grid whose edge blocks are partial. This is the official
// code's weight-only FP8 ("gemm_impl=bf16", spec 9) computed in float32 — no bf16 rounding of the
// product and no activation quantization. The scale may live in another shard than its weight.
#pragma once
#include <string>
#include <vector>

#include "io/config.h"
#include "io/safetensors.h"

namespace dsref {

// W = decode(q) · scale_inv per block. q: [R, C] codes · scale_inv: [ceil(R/br), ceil(C/bc)] → [R, C]
std::vector<float> fp8_block_dequant(const uint8_t* q, const float* scale_inv, int64_t R, int64_t C,
                                     int64_t br = 128, int64_t bc = 128);

class WeightLoader {
public:
    WeightLoader(const Checkpoint& ckpt, const ModelConfig& cfg) : ckpt_(ckpt), cfg_(cfg) {}
    bool has(const std::string& name) const { return ckpt_.has(name); }
    // The weight as float32 [shape], checking its shape and dequantizing FP8 blocks.
    std::vector<float> load(const std::string& name, const Shape& shape) const;
    // Rows [r0, r0 + n) of a 2-D weight (embedding lookups without converting the whole table).
    std::vector<float> load_rows(const std::string& name, const Shape& shape, const std::vector<int32_t>& rows) const;
    const Checkpoint& checkpoint() const { return ckpt_; }

private:
    const Checkpoint& ckpt_;
    const ModelConfig& cfg_;
};

}  // namespace dsref
