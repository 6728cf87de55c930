// init_v4.h — random DeepSeek-V4 checkpoints in the official layout (`dsref init` on a deepseek_v4 config).
//
// Every tensor of io/checkpoint_layout_v4.h, drawn as tools/init.h draws the V3 ones (each from its own
// NormalRng stream seeded by (seed, name): projections N(0, 1/in), norms 1 + 0.1·N(0,1), embeddings N(0,1),
// the routing bias 0.1·N(0,1) (+ bias_offset)), with the V4 kinds: the mHC bases, `attn_sink` and the
// compressors' `ape` 0.2·N(0,1), the mHC scales 1 + 0.1·N(0,1). `gate.tid2eid` (hash layers) is I32
// [V, K]: row t holds K distinct experts, the K largest of E draws of the row's stream, largest first.
// Float storage only (F32 or BF16); a config with FP8 weights or FP4 experts is refused naming the field.
// The tensors are built in memory: meant for tiny and cut models.
#pragma once
#include <string>

#include "io/config_v4.h"
#include "tools/init.h"

namespace dsref {

// config_path: the config.json (or its directory), written back into `dir` with torch_dtype set.
void init_v4_checkpoint(const std::string& config_path, const InitOptions& o, const std::string& dir);

}  // namespace dsref
