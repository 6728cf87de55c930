// model_info.h — what `dsref info` reports about a config: parameter counts and KV-cache sizes.
//
// Parameters are counted from `checkpoint_layout`, the same list `init` writes and the model checks,
// so the count is the number of stored weight elements (FP8 scales excluded). The convention:
//
//   total    every tensor of the main model (layers 0..L-1): embedding, every layer's attention,
//            norms, dense MLP, router (+ bias), ALL routed and shared experts, model.norm, lm_head.
//   active   what one token's forward multiplies with: total minus the (E − K) routed experts it does
//            not use in each MoE layer, and minus the embedding table (a lookup reads one row; it is
//            not a product). lm_head counts (it is a product with every row). With tied embeddings
//            the table is the head and counts.
//   mtp      the MTP modules (layers L..) apart, their own unique weights only (enorm, hnorm,
//            eh_proj, the decoder layer, shared_head.norm); `mtp_copies` are the copies of the
//            embedding and head that V3 also stores there.
//
// With the real configs (data/configs) this gives V3 671.0B / 36.6B (+ MTP 11.6B, copies 1.9B,
// stored total 684.5B, the hub's "685B"), V2 235.7B / 20.9B, V2-Lite 15.7B / 2.45B — the papers'
// 671B/37B, 236B/21B and 15.7B/2.4B. Counting the embedding as active would give 37.6B, 21.4B and
// 2.66B; V2-Lite's 2.4B shows the papers leave the embedding out. V3's stored weights plus its
// weight_scale_inv grids come to 684,531,386,000 elements in 91,991 tensors, exactly the real
// checkpoint's tensor listing (model.safetensors.index.json of deepseek-ai/DeepSeek-V3 on the HF hub,
// 163 shards): an aggregate check of the layout.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>

#include "io/config.h"

namespace dsref {

struct ParamCounts {
    int64_t total = 0;       // main model (layers 0..L-1, embedding, norm, head)
    int64_t active = 0;      // used per token by the main model
    int64_t mtp_total = 0;   // the MTP modules (layers L..), counted apart, without the copies below
    int64_t mtp_copies = 0;  // layers L..: embed_tokens and shared_head.head (copies of embedding and head)
    int64_t fp8_scales = 0;  // FP8 configs: weight_scale_inv elements of every layer, MTP included
    int64_t tensors = 0;     // tensors a full checkpoint stores (MTP layers and weight_scale_inv included)
};
ParamCounts count_params(const ModelConfig& c);

// Values cached per token per layer by the model's own attention (GQA: 2·H_kv·d_h; MLA absorbed:
// d_c + d_r).
int64_t kv_values_per_token_layer(const ModelConfig& c);

// What a float32 prefill of T tokens reads and holds on the default path of model/model.h (one layer
// at a time, streamed experts on `threads` threads, the head in slices), from the config alone.
// Stored bytes follow the config: FP8 weights 1 byte + their F32 scales, the router bias F32, every
// other tensor torch_dtype (bf16/f16: 2, else 4). Upper bounds: each MoE layer reads min(E, T·K)
// experts (fewer when tokens share experts).
//   bytes_read   the layers' held tensors + those experts + T embedding rows + model.norm + the head
//   anonymous    float32 copies of the largest layer's held tensors + one expert per thread + one head
//                slice + the activations, the logits [T, V] and the KV cache
//   peak         anonymous + the mapped pages of that layer and its experts (released after each layer)
struct ForwardEstimate {
    double bytes_read = 0, anonymous = 0, peak = 0;
};
ForwardEstimate estimate_forward(const ModelConfig& c, int64_t T, int threads);

// Everything `dsref info` prints: architecture, parameters, KV-cache bytes, the config values used.
nlohmann::json model_info(const ModelConfig& c);

}  // namespace dsref
