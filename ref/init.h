// init.h — random-weight checkpoints with the exact HF names and shapes (`dsref init`).
//
// Engine developers use these as test models, and the tests and demo use them as tiny fixtures.
// Every tensor of `checkpoint_layout(config)` is drawn from its own stream, seeded by (seed, name),
// so a checkpoint is reproducible bit for bit and adding a tensor kind does not move the others.
// Scales keep activations O(1): embeddings N(0,1), projections N(0, 1/in), norms 1 + 0.1·N(0,1).
#pragma once
#include <cstdint>
#include <string>

#include "config.h"
#include "tensor.h"

namespace dsref {

struct InitOptions {
    uint64_t seed = 0;
    DType dtype = DType::F32;  // storage of float weights: F32 or BF16 (e_score_correction_bias stays F32)
    int shards = 1;            // >1 writes model.safetensors.index.json and that many shards
};

// The tensors of a random checkpoint for `c` (FP8 configs get F8_E4M3 weights + weight_scale_inv).
TensorMap init_weights(const ModelConfig& c, const InitOptions& o);

// Writes config.json (the given config, with torch_dtype set) and the weights into `dir` (created).
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
