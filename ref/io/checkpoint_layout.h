// checkpoint_layout.h — every tensor of an HF checkpoint, by name and shape, from the config alone.
// This file is the one place where HF tensor names and shapes are written down.
//
// Each sub-block has a table of its tensors by role (GqaTensors, MlaTensors, MlpTensors, MoeTensors,
// MtpTensors, ...). The block factories (ref/model/*_block.cpp, ref/model/mla.cpp, ref/model/mtp.cpp)
// load their weights from these tables, and `checkpoint_layout` flattens them into the list that
// `dsref init` writes, the model checks before running, and `dsref info` counts. A table takes the
// prefix of its block: "model.layers.{i}.self_attn." in a checkpoint, "" for the inputs of an op
// (`dsref op mla` takes the layer's names without the prefix).
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/config.h"

namespace dsref {

enum class InitKind {
    Embedding,  // N(0, 1)
    Linear,     // N(0, 1/in_features), so activations stay O(1)
    Norm,       // 1 + 0.1·N(0, 1)
    Bias,       // e_score_correction_bias: 0.1·N(0, 1) (may be negative), kept F32
    ProjBias,   // a projection's bias (qwen2 q/k/v_proj.bias): 0.2·N(0, 1), stored like the weights
};

struct WeightSpec {
    std::string name;
    Shape shape;
    InitKind kind = InitKind::Linear;
    bool fp8 = false;     // stored as F8_E4M3 + `<name>_scale_inv` in an FP8 checkpoint (V3 report §3.3)
    int64_t layer = -1;   // decoder layer index (num_hidden_layers.. for MTP), -1 for global tensors
    int64_t expert = -1;  // routed expert index, -1 otherwise (for active-parameter counts)
    std::string shape_doc = "";  // the shape in config terms, for messages: "[H·(qk_nope_head_dim+v_head_dim), kv_lora_rank]"
};

// Global tensors. lm_head is the embedding itself when tie_word_embeddings.
struct ModelTensors {
    WeightSpec embed, norm, lm_head;
};
ModelTensors model_tensors(const ModelConfig& c);

// Prefixes inside a checkpoint: "model.layers.{i}.", and its attention ("self_attn.") and feed-forward
// ("mlp.") sub-blocks.
std::string layer_prefix(int64_t i);
std::string attn_prefix(int64_t i);
std::string mlp_prefix(int64_t i);

// The two RMSNorm weights of decoder layer i.
struct DecoderNormTensors {
    WeightSpec input_norm, post_norm;
};
DecoderNormTensors decoder_norm_tensors(const ModelConfig& c, int64_t i);

// llama (DeepSeek LLM, R1-Distill-Llama) and qwen2 (R1-Distill-Qwen) attention under
// p = "model.layers.{i}.self_attn.". Qwen2 adds q/k/v biases (qkv_bias); o_proj has none.
struct GqaTensors {
    WeightSpec q, k, v, o;
    std::optional<WeightSpec> q_bias, k_bias, v_bias;  // [H·d_h], [H_kv·d_h] ×2 (qkv_bias)
};
GqaTensors gqa_tensors(const ModelConfig& c, const std::string& p, int64_t layer = -1);

// Multi-head Latent Attention (V2/V3) under p. The query path is either compressed (q_lora_rank > 0:
// q_a, q_a_norm, q_b) or a plain q_proj (q_lora_rank = 0, V2-Lite).
struct MlaTensors {
    std::optional<WeightSpec> q_a, q_a_norm, q_b, q;
    WeightSpec kv_a, kv_a_norm, kv_b, o;
};
MlaTensors mla_tensors(const ModelConfig& c, const std::string& p, int64_t layer = -1);

// The lightning indexer of DeepSeek Sparse Attention (V3.2) under p = "model.layers.{i}.self_attn."
// (DeepSeek-V3.2-Exp inference/model.py Indexer; transformers' DeepseekV32Indexer; the official
// convert.py keeps these names): p + "indexer." + wq_b, wk, k_norm (a LayerNorm: weight and bias),
// weights_proj. wq_b and wk are FP8 blocks in an FP8 checkpoint; weights_proj stays BF16 (the official
// Indexer builds it in the default dtype), and so do the norm's weight and bias.
struct IndexerTensors {
    WeightSpec wq_b, wk, k_norm, k_norm_bias, weights_proj;
};
IndexerTensors indexer_tensors(const ModelConfig& c, const std::string& p, int64_t layer = -1);

// One SwiGLU MLP of width I under p ("...mlp.", "...mlp.experts.{j}.", "...mlp.shared_experts.").
struct MlpTensors {
    WeightSpec gate, up, down;
};
MlpTensors mlp_tensors(const std::string& p, int64_t d, int64_t I, int64_t layer = -1, int64_t expert = -1);

// A DeepSeekMoE layer under p = "model.layers.{i}.mlp.": router, the noaux_tc correction bias, the
// routed experts and the one shared MLP of width n_shared_experts · moe_intermediate_size.
struct MoeTensors {
    WeightSpec gate;
    std::optional<WeightSpec> bias;           // topk_method noaux_tc only
    std::vector<MlpTensors> experts;          // [E]
    std::optional<MlpTensors> shared;         // n_shared_experts > 0
};
MoeTensors moe_tensors(const ModelConfig& c, const std::string& p, int64_t layer = -1);

// A multi-token-prediction module (V3 report §2.2), stored as decoder layer i ≥ num_hidden_layers:
// its own norms and projection around a full decoder layer, and the checkpoint's copies of the
// embedding and of the head (optional: the main model's are used when they are absent).
struct MtpTensors {
    WeightSpec embed, enorm, hnorm, eh_proj, head_norm, head;
};
MtpTensors mtp_tensors(const ModelConfig& c, int64_t i);

// The tables as flat lists, in checkpoint order.
std::vector<WeightSpec> flatten(const GqaTensors& t);
std::vector<WeightSpec> flatten(const MlaTensors& t);
std::vector<WeightSpec> flatten(const IndexerTensors& t);
std::vector<WeightSpec> flatten(const MlpTensors& t);
std::vector<WeightSpec> flatten(const MoeTensors& t);

// The main model (layers 0..L-1) plus `num_nextn_predict_layers` MTP layers (index L..), flattened.
std::vector<WeightSpec> checkpoint_layout(const ModelConfig& c);
// The tensors of decoder layer i only (an MTP layer's decoder part included, its MTP-only tensors not).
std::vector<WeightSpec> decoder_layer_layout(const ModelConfig& c, int64_t i, bool moe);

}  // namespace dsref
