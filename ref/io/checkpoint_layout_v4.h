// checkpoint_layout_v4.h — every tensor of a DeepSeek-V4 checkpoint, by name and shape, from the config
// alone: the official layout as the hub checkpoints store it and the official inference/model.py loads it
// (names without a `model.` prefix; DeepSeek-V4 inference/model.py Transformer, Block, Attention,
// Compressor, Indexer, Gate, Expert, MoE, ParallelHead, MTPBlock). The one place V4 names are written down.
//
// Global:    embed.weight [V, d] · head.weight [V, d] · norm.weight [d]
//            hc_head_fn [n, n·d] · hc_head_base [n] · hc_head_scale [1]            (n = hc_mult)
// Layer i (prefix "layers.{i}."; MTP block k: "mtp.{k}.", with its ratio compress_ratios[L + k]):
//            hc_attn_fn, hc_ffn_fn [(2+n)·n, n·d] · hc_attn_base, hc_ffn_base [(2+n)·n] ·
//            hc_attn_scale, hc_ffn_scale [3] · attn_norm.weight, ffn_norm.weight [d]
//   attn.    attn_sink [H] · wq_a.weight [q_lora, d] · q_norm.weight [q_lora] · wq_b.weight [H·d_h, q_lora] ·
//            wkv.weight [d_h, d] · kv_norm.weight [d_h] · wo_a.weight [G·R, H·d_h/G] · wo_b.weight [d, G·R]
//   attn.compressor. (ratio m > 0; c = 2 when m = 4)   ape [m, c·d_h] · wkv.weight, wgate.weight [c·d_h, d] ·
//            norm.weight [d_h]
//   attn.indexer. (m = 4)  wq_b.weight [n_I·d_I, q_lora] · weights_proj.weight [n_I, d] ·
//            compressor.{ape [4, 2·d_I], wkv.weight, wgate.weight [2·d_I, d], norm.weight [d_I]}
//   ffn.     gate.weight [E, d] · gate.bias [E] (learned routing) or gate.tid2eid I32 [V, K] (hash layers) ·
//            shared_experts.w{1,3}.weight [I, d], w2.weight [d, I] · experts.{e}.w{1,3}.weight [I, d],
//            experts.{e}.w2.weight [d, I]      (w1 gate, w3 up, w2 down)
// MTP block k adds: e_proj.weight, h_proj.weight [d, d] · enorm.weight, hnorm.weight, norm.weight [d] ·
//            hc_head_fn [n, n·d] · hc_head_base [n] · hc_head_scale [1]
// Storage (V4Spec::fp8 / fp4): in an FP8 checkpoint the official Linear layers of the default dtype are
// F8_E4M3 [out, in] with `.scale` F8_E8M0 [⌈out/128⌉, ⌈in/128⌉]; routed experts (expert_dtype fp4) are
// E2M1 packed two per byte, I8 [out, in/2], with `.scale` F8_E8M0 [out, in/32]. Everything else is float.
#pragma once
#include <string>
#include <vector>

#include "io/checkpoint_layout.h"
#include "io/config_v4.h"

namespace dsref {

struct V4Spec {
    WeightSpec w;            // name, shape, init kind, layer (L.. for MTP), expert
    bool fp4 = false;        // routed expert weight: FP4 in an expert_dtype fp4 checkpoint
    bool table = false;      // gate.tid2eid: an I32 table, not a float tensor
};

// The block prefix of layer i: "layers.{i}." for i < L, "mtp.{i − L}." for the MTP blocks.
std::string v4_layer_prefix(const V4Config& c, int64_t i);
// The compress ratio of layer i (MTP blocks included); an error naming compress_ratios if it has no entry.
int64_t v4_layer_ratio(const V4Config& c, int64_t i);
// Whether layer i routes by tid2eid (the first num_hash_layers main layers; never an MTP block).
bool v4_layer_hash(const V4Config& c, int64_t i);

// The tensors of layer i (i < L + num_nextn_predict_layers), then all of them (global first; MTP blocks only
// where compress_ratios has their entry).
std::vector<V4Spec> v4_layer_layout(const V4Config& c, int64_t i);
std::vector<V4Spec> v4_checkpoint_layout(const V4Config& c);

}  // namespace dsref
