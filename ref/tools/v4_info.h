// v4_info.h — `dsref info` for DeepSeek-V4: parameter counts (total, active per token, MTP apart) and the
// KV-cache size per layer type, from config.json alone. The tensors counted are those of the official
// DeepSeek-V4 inference/model.py (Block, Attention, Compressor, Indexer, Gate, MoE, ParallelHead, MTPBlock),
// one parameter per logical weight element (an FP4 byte holds two; FP8/FP4 scales are not counted; the
// hash layers' tid2eid table is an integer index, counted apart).
//
// KV cache (official Attention.kv_cache, Compressor / Indexer kv_cache): every layer keeps the last
// sliding_window rows of d_h values (a constant, not per token); a CSA layer adds d_h/4 values per token and
// its indexer index_head_dim/4; an HCA layer adds d_h/m values per token (m = 128).
#pragma once
#include <nlohmann/json.hpp>

#include "io/config_v4.h"

namespace dsref {

nlohmann::json v4_model_info(const V4Config& c);

}  // namespace dsref
