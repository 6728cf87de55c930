// init.cpp — random HF checkpoints for every supported architecture.
#include "tools/init.h"

#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <fstream>

#include "core/error.h"
#include "core/fp8_format.h"
#include "fp8/fp8_quant.h"
#include "io/checkpoint_layout.h"
#include "io/safetensors.h"

namespace dsref {

NormalRng::NormalRng(uint64_t seed, const std::string& name) {
    uint64_t h = 1469598103934665603ull ^ seed;  // FNV-1a over the name, mixed with the seed
    for (unsigned char ch : name) h = (h ^ ch) * 1099511628211ull;
    state_ = h;
}

uint64_t NormalRng::next_u64() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

double NormalRng::next() {
    if (has_spare_) {
        has_spare_ = false;
        return spare_;
    }
    const double u1 = ((double)(next_u64() >> 11) + 0.5) * (1.0 / 9007199254740992.0);  // (0, 1)
    const double u2 = (double)(next_u64() >> 11) * (1.0 / 9007199254740992.0);
    const double r = std::sqrt(-2.0 * std::log(u1)), a = 2.0 * M_PI * u2;
    spare_ = r * std::sin(a);
    has_spare_ = true;
    return r * std::cos(a);
}

static std::vector<float> random_values(const WeightSpec& s, uint64_t seed, double bias_offset) {
    NormalRng rng(seed, s.name);
    const int64_t n = shape_numel(s.shape);
    std::vector<float> v(n);
    const double in = s.shape.size() == 2 ? (double)s.shape[1] : 1.0;
    for (int64_t i = 0; i < n; i++) {
        const double z = rng.next();
        switch (s.kind) {
            case InitKind::Embedding: v[i] = (float)z; break;
            case InitKind::Linear: v[i] = (float)(z / std::sqrt(in)); break;
            case InitKind::Norm: v[i] = (float)(1.0 + 0.1 * z); break;
            case InitKind::Bias: v[i] = (float)(0.1 * z + bias_offset); break;
            case InitKind::ProjBias: v[i] = (float)(0.2 * z); break;
        }
    }
    return v;
}

void fp8_quant_weight_blocks(uint8_t* q, float* scale_inv, const float* w, int64_t R, int64_t C, int64_t br,
                             int64_t bc) {
    if (br < 1 || bc < 1) fail("fp8_quant_weight_blocks: block size ", br, "x", bc, " must be positive");
    const int64_t RB = (R + br - 1) / br, CB = (C + bc - 1) / bc;
    for (int64_t rb = 0; rb < RB; rb++)
        for (int64_t cb = 0; cb < CB; cb++) {
            const int64_t r0 = rb * br, r1 = std::min(R, r0 + br), c0 = cb * bc, c1 = std::min(C, c0 + bc);
            float amax = 0.0f;  // over the block's real elements only
            for (int64_t r = r0; r < r1; r++)
                for (int64_t col = c0; col < c1; col++) {
                    if (!std::isfinite(w[r * C + col])) fail("fp8 quantization: w[", r, ", ", col, "] is not finite");
                    amax = std::max(amax, std::fabs(w[r * C + col]));
                }
            const float s = fp8_scale_from_amax(amax, Fp8ScaleFmt::Fp32);
            scale_inv[rb * CB + cb] = s;
            for (int64_t r = r0; r < r1; r++)
                for (int64_t col = c0; col < c1; col++)
                    q[r * C + col] = fp8_encode(w[r * C + col] / s, Fp8Format::E4M3, Fp8Overflow::Saturate);
        }
}

TensorMap init_weights(const ModelConfig& c, const InitOptions& o) {
    if (o.dtype != DType::F32 && o.dtype != DType::BF16) usage_fail("init: --dtype must be f32 or bf16");
    if (!std::isfinite(o.bias_offset)) usage_fail("init: --bias-offset must be a finite number");
    TensorMap m;
    for (const WeightSpec& s : checkpoint_layout(c)) {
        std::vector<float> v = random_values(s, o.seed, o.bias_offset);
        if (c.fp8_weights && s.fp8) {  // F8_E4M3 codes + weight_scale_inv (README_WEIGHTS.md)
            const int64_t R = s.shape[0], C = s.shape[1], br = c.fp8_block_rows, bc = c.fp8_block_cols;
            const Shape grid = {(R + br - 1) / br, (C + bc - 1) / bc};
            std::vector<uint8_t> q(R * C);
            std::vector<float> scale(grid[0] * grid[1]);
            fp8_quant_weight_blocks(q.data(), scale.data(), v.data(), R, C, br, bc);
            Tensor t;
            t.dtype = DType::F8_E4M3;
            t.shape = s.shape;
            t.bytes.assign(q.begin(), q.end());
            m[s.name] = std::move(t);
            m[s.name + "_scale_inv"] = Tensor::from_f32(grid, scale);
            continue;
        }
        const DType t = (s.kind == InitKind::Bias) ? DType::F32 : o.dtype;  // the router bias stays F32, as in V3
        m[s.name] = Tensor::encode_f32(s.shape, v, t);
    }
    return m;
}

void init_checkpoint(const ModelConfig& c, const InitOptions& o, const std::string& dir) {
    TensorMap weights = init_weights(c, o);
    ::mkdir(dir.c_str(), 0755);
    struct stat st;
    if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) fail(dir, ": cannot create the output directory");
    nlohmann::json cfg = c.raw;
    cfg["torch_dtype"] = (o.dtype == DType::BF16) ? "bfloat16" : "float32";
    std::ofstream f(dir + "/config.json");
    f << cfg.dump(2) << "\n";
    if (!f) fail(dir, "/config.json: write failed");
    f.close();
    write_checkpoint(dir, weights, o.shards);
}

}  // namespace dsref
