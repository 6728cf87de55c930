// init.h — random-weight checkpoints with the exact HF names and shapes (`dsref init`).
//
// Engine developers use these as test models, and the tests and demo use them as tiny fixtures.
// Every tensor of `checkpoint_layout(config)` is drawn from its own stream, seeded by (seed, name),
// so a checkpoint is reproducible bit for bit and adding a tensor kind does not move the others.
// Scales keep activations O(1): embeddings N(0,1), projections N(0, 1/in), norms 1 + 0.1·N(0,1),
// the V3 router bias 0.1·N(0,1) (+ bias_offset), qwen2's q/k/v biases 0.2·N(0,1).
//
// FP8 configs (quantization_config; DeepSeek-V3 README_WEIGHTS.md, "FP8 Weight Documentation"): every
// projection the layout marks fp8 is drawn in float32 as above, then stored F8_E4M3 with
// `<name>_scale_inv` F32 [ceil(R/br), ceil(C/bc)] (weight_block_size br × bc, default 128 × 128), by
// the weight quantizer's rule (fp8_quant.h): per block
// s = max(amax, 1e-4)/448 over the block's real elements (edge blocks are partial), q = e4m3(w / s)
// round-to-nearest-even. Embedding, head, norms, router gate, eh_proj, shared_head stay in `dtype`;
// the router bias stays F32.
#pragma once
#include <cstdint>
#include <string>

#include "io/config.h"
#include "core/tensor.h"

namespace dsref {

struct InitOptions {
    uint64_t seed = 0;
    DType dtype = DType::F32;  // storage of float weights: F32 or BF16 (e_score_correction_bias stays F32)
    int shards = 1;            // >1 writes model.safetensors.index.json and that many shards
    double bias_offset = 0.0;  // added to every e_score_correction_bias value (negative-bias test models)
    // init_checkpoint draws and writes at most about this many values at a time (whole rows; whole
    // 128-row blocks for FP8), which bounds its memory whatever the checkpoint's size.
    int64_t slice_elems = 16 << 20;
};

// Block FP8 quantization of one weight with a br × bc grid (the checkpoint's weight_block_size).
//   q [R, C] out: E4M3 codes · scale_inv [ceil(R/br), ceil(C/bc)] out · w [R, C] in
void fp8_quant_weight_blocks(uint8_t* q, float* scale_inv, const float* w, int64_t R, int64_t C, int64_t br,
                             int64_t bc);

// The tensors of a random checkpoint for `c` (FP8 configs get F8_E4M3 weights + weight_scale_inv).
TensorMap init_weights(const ModelConfig& c, const InitOptions& o);

// Writes config.json (the given config, with torch_dtype set) and the weights into `dir` (created):
// the bytes write_checkpoint(dir, init_weights(c, o), o.shards) writes, but streamed tensor by tensor
// in slices of o.slice_elems values, so the 671B layout can be written with bounded memory.
void init_checkpoint(const ModelConfig& c, const InitOptions& o, const std::string& dir);

// Deterministic N(0,1) stream (splitmix64 + Box–Muller), seeded by (seed, name).
class NormalRng {
public:
    NormalRng(uint64_t seed, const std::string& name);
    double next();

private:
    uint64_t state_;
    double spare_ = 0.0;
    bool has_spare_ = false;
    uint64_t next_u64();
};

}  // namespace dsref
