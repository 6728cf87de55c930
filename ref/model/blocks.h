// blocks.h — the two kinds of sub-block a decoder layer is made of, and the KV cache they share.
//
//   h = h + Attention(RMSNorm(h))      GQA (llama) or MLA (V2/V3)
//   h = h + FeedForward(RMSNorm(h))    dense SwiGLU or DeepSeekMoE
//
// Each concrete block owns its float32 weights, loaded from the checkpoint when the block is made,
// so the model can hold one layer at a time (or all of them, for generation).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "io/config.h"
#include "core/trace.h"
#include "io/weights.h"
#include "model/precision.h"

namespace dsref {

// One layer's cache. What the two buffers hold depends on the attention kind:
//   GQA:        a = K rows [H_kv·d_h],            b = V rows [H_kv·d_h]
//   MLA absorb: a = normalized latent [d_c],      b = k_pe after RoPE [d_r]
//   MLA naive:  a = decompressed K [H·(d_n+d_r)], b = V [H·d_v]
//   DSA (V3.2): index_k = the indexer's keys [d_I] (model/dsa_indexer.h), besides a and b
struct LayerCache {
    std::vector<float> a, b;
    std::vector<float> index_k;
};

struct KVCache {
    int64_t len = 0;                 // tokens cached (the next token's position)
    std::vector<LayerCache> layers;  // one per decoder layer
    size_t bytes() const;            // float32 bytes held
};

// The two MLA paths (model/mla.h); both compute the same attention.
enum class MlaPath { Naive, Absorb };
MlaPath mla_path_from_name(const std::string& name);  // "naive" | "absorb", else a UsageError
const char* mla_path_name(MlaPath p);

// The DSA indexer's precision (V3.2, model/dsa_indexer.h): exact float32, or the official FP8 path.
enum class IndexerMode { Exact, Fp8 };
IndexerMode indexer_mode_from_name(const std::string& name);  // "exact" | "fp8", else a UsageError
const char* indexer_mode_name(IndexerMode m);

struct ForwardOptions {
    MlaPath attn = MlaPath::Absorb;  // MLA path (V2/V3); GQA models have one path
    IndexerMode indexer = IndexerMode::Exact;  // DSA indexer (V3.2)
    // Whose rounding points to reproduce (model/precision.h); the default is dsref's float32. An
    // emulation mode fixes the MLA path to the reference's own (hf-bf16 naive, official absorbed).
    PrecisionPolicy precision;
    // Stream the routed experts (model/moe_block.h): each is dequantized only when a token is routed
    // to it, into a reused buffer, and its mapped pages are released after use. Same bits as holding
    // them; the model turns it off when it keeps every layer (generation). Float32 path only: an
    // emulation mode holds its experts.
    bool stream_experts = true;
    // Hold the GQA and dense-MLP projections (and the head) as the checkpoint's bf16 words instead of
    // float32 (model/held_weight.h): half the bytes a decode step reads. Generation of dense llama-kind
    // models stored BF16, float32 policy only (model.cpp refuses the rest). The same bits as float32
    // weights (core/linear_bf16.h sums in linear_forward's order).
    bool hold_bf16 = false;
    // Checks attn.{i}, hidden.{i} and the logits for NaN/Inf (core/trace.h: FiniteGuard). Shared by the
    // copies of these options a model hands its layers, so an allowed warning is printed once.
    std::shared_ptr<FiniteGuard> finite = std::make_shared<FiniteGuard>();
};

class AttentionBlock {
public:
    virtual ~AttentionBlock() = default;
    // out: [T, d] · x: [T, d] normalized input; queries at positions pos0..pos0+T-1, where
    // pos0 = the number of tokens already in `cache`; appends this step's entries to `cache`.
    virtual void forward(float* out, const float* x, int64_t T, int64_t pos0, LayerCache& cache, Trace* trace,
                         int64_t layer) const = 0;
};

class FeedForwardBlock {
public:
    virtual ~FeedForwardBlock() = default;
    // out: [T, d] · x: [T, d] normalized input
    virtual void forward(float* out, const float* x, int64_t T, Trace* trace, int64_t layer) const = 0;
};

// The blocks of a decoder layer, reading their weights (io/checkpoint_layout.h names them) under the
// block's prefix: attn_prefix(i) = "model.layers.{i}.self_attn.", mlp_prefix(i) = "model.layers.{i}.mlp.",
// or "" for the inputs of an op.
// `prec`: the rounding points to reproduce (model/precision.h; default float32).
// hold_bf16: ForwardOptions::hold_bf16.
std::unique_ptr<AttentionBlock> make_gqa_block(const ModelConfig& c, const WeightLoader& w, const std::string& prefix,
                                               const PrecisionPolicy& prec = PrecisionPolicy(), bool hold_bf16 = false);
// MLA (V2/V3, model/mla.h) on the given path.
// With a deepseek_v32 config the block runs DeepSeek Sparse Attention, its indexer in mode `indexer`.
std::unique_ptr<AttentionBlock> make_mla_block(const ModelConfig& c, const WeightLoader& w, const std::string& prefix,
                                               MlaPath path, const PrecisionPolicy& prec = PrecisionPolicy(),
                                               IndexerMode indexer = IndexerMode::Exact);
std::unique_ptr<FeedForwardBlock> make_dense_mlp_block(const ModelConfig& c, const WeightLoader& w,
                                                       const std::string& prefix, int64_t width,
                                                       const PrecisionPolicy& prec = PrecisionPolicy(),
                                                       bool hold_bf16 = false);

}  // namespace dsref
