// init_v4.cpp — random DeepSeek-V4 checkpoints (rules in init_v4.h).
#include "tools/init_v4.h"

#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <numeric>

#include "core/error.h"
#include "io/checkpoint_layout_v4.h"
#include "io/regular_file.h"
#include "io/safetensors.h"

namespace dsref {

void init_v4_checkpoint(const std::string& config_path, const InitOptions& o, const std::string& dir) {
    if (o.dtype != DType::F32 && o.dtype != DType::BF16) usage_fail("init: --dtype must be f32 or bf16");
    if (!std::isfinite(o.bias_offset)) usage_fail("init: --bias-offset must be a finite number");
    const V4Config c = load_v4_config(config_path);
    if (c.fp8_weights) fail(c.source, ": field 'quantization_config': init writes float V4 checkpoints only");
    if (c.fp4_experts) fail(c.source, ": field 'expert_dtype' fp4: init writes float V4 checkpoints only");
    const std::vector<V4Spec> layout = v4_checkpoint_layout(c);
    double total = 0;
    for (const V4Spec& s : layout) total += (double)shape_numel(s.w.shape);
    if (total > 4e8)
        fail(c.source, ": ", total, " parameters; init builds V4 checkpoints in memory and stops at 4e8 "
             "(cut num_hidden_layers / n_routed_experts for a test model)");
    TensorMap m;
    for (const V4Spec& s : layout) {
        NormalRng rng(o.seed, s.w.name);
        const int64_t n = shape_numel(s.w.shape);
        if (s.table) {  // K distinct experts per token id
            const int64_t V = s.w.shape[0], K = s.w.shape[1], E = c.n_routed_experts;
            std::vector<int32_t> t((size_t)(V * K));
            std::vector<double> z((size_t)E);
            std::vector<int32_t> id((size_t)E);
            for (int64_t v = 0; v < V; ++v) {
                for (auto& x : z) x = rng.next();
                std::iota(id.begin(), id.end(), 0);
                std::partial_sort(id.begin(), id.begin() + K, id.end(), [&](int32_t a, int32_t b) { return z[a] > z[b]; });
                std::copy(id.begin(), id.begin() + K, t.begin() + v * K);
            }
            m[s.w.name] = Tensor::from_i32(s.w.shape, t);
            continue;
        }
        std::vector<float> v((size_t)n);
        const double in = s.w.shape.size() == 2 ? (double)s.w.shape[1] : 1.0;
        for (int64_t i = 0; i < n; ++i) {
            const double zz = rng.next();
            switch (s.w.kind) {
                case InitKind::Embedding: v[i] = (float)zz; break;
                case InitKind::Linear: v[i] = (float)(zz / std::sqrt(in)); break;
                case InitKind::Norm: v[i] = (float)(1.0 + 0.1 * zz); break;
                case InitKind::Bias: v[i] = (float)(0.1 * zz + o.bias_offset); break;
                case InitKind::ProjBias: v[i] = (float)(0.2 * zz); break;
            }
        }
        m[s.w.name] = Tensor::encode_f32(s.w.shape, v, s.w.kind == InitKind::Bias ? DType::F32 : o.dtype);
    }
    ::mkdir(dir.c_str(), 0755);
    struct stat st;
    if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) fail(dir, ": cannot create the output directory");
    struct stat cs;
    const std::string file = (::stat(config_path.c_str(), &cs) == 0 && S_ISDIR(cs.st_mode)) ? config_path + "/config.json" : config_path;
    nlohmann::json cfg = nlohmann::json::parse(read_regular_file(file, "config", 16u << 20));
    cfg["torch_dtype"] = (o.dtype == DType::BF16) ? "bfloat16" : "float32";
    {
        std::ofstream f(dir + "/config.json");
        f << cfg.dump(2) << "\n";
        if (!f) fail(dir, "/config.json: write failed");
    }
    write_checkpoint(dir, m, o.shards);
}

}  // namespace dsref
