// init.cpp — random HF checkpoints for every supported architecture.
#include "tools/init.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>

#include "core/error.h"
#include "core/fp8_format.h"
#include "fp8/fp8_quant.h"
#include "io/atomic_file.h"
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

// The values of one tensor, drawn in order from its own stream, `n` at a time (a tensor is written in
// slices, so `init` holds one slice, never a whole 3.7 GB embedding).
class ValueStream {
public:
    ValueStream(const WeightSpec& s, uint64_t seed, double bias_offset)
        : s_(s), rng_(seed, s.name), in_(s.shape.size() == 2 ? (double)s.shape[1] : 1.0), bias_offset_(bias_offset) {}
    void next(float* v, int64_t n) {
        for (int64_t i = 0; i < n; i++) {
            const double z = rng_.next();
            switch (s_.kind) {
                case InitKind::Embedding: v[i] = (float)z; break;
                case InitKind::Linear: v[i] = (float)(z / std::sqrt(in_)); break;
                case InitKind::Norm: v[i] = (float)(1.0 + 0.1 * z); break;
                case InitKind::Bias: v[i] = (float)(0.1 * z + bias_offset_); break;
                case InitKind::ProjBias: v[i] = (float)(0.2 * z); break;
            }
        }
    }

private:
    const WeightSpec& s_;
    NormalRng rng_;
    double in_, bias_offset_;
};

static std::vector<float> random_values(const WeightSpec& s, uint64_t seed, double bias_offset) {
    std::vector<float> v(shape_numel(s.shape));
    ValueStream(s, seed, bias_offset).next(v.data(), (int64_t)v.size());
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

// ---- streamed writing --------------------------------------------------------------------------------
// init_checkpoint writes the files write_checkpoint would write for init_weights, byte for byte, but
// tensor by tensor: every header is computed from the layout first, then each tensor is drawn in
// slices and written at its offset (pwrite), so the memory held is one slice (≈ 64 MB), whatever the
// checkpoint's size.
namespace {
struct OutTensor {
    std::string name;
    DType dtype;
    Shape shape;
    int shard = 0;
    uint64_t off = 0;  // offset in its shard's data buffer
    uint64_t nbytes() const { return (uint64_t)shape_numel(shape) * dtype_size(dtype); }
};

struct ShardFile {
    std::string name;
    std::unique_ptr<AtomicFile> file;  // written beside its final name, renamed into place at the end
    uint64_t data_start = 0;           // 8 + header length
};

void pwrite_all(const ShardFile& f, const void* p, uint64_t n, uint64_t off) {
    f.file->pwrite(p, n, f.data_start + off);
}

// A folder that already holds a checkpoint is refused: a stale index or shard left beside the new
// files would be loaded in their place (the index wins over model.safetensors).
void refuse_existing_checkpoint(const std::string& dir) {
    DIR* d = ::opendir(dir.c_str());
    if (!d) return;
    std::string found;
    while (const dirent* e = ::readdir(d)) {
        const std::string n = e->d_name;
        const bool st = n.size() > 12 && n.compare(n.size() - 12, 12, ".safetensors") == 0;
        if (n == "config.json" || n == "model.safetensors.index.json" || st) {
            found = n;
            break;
        }
    }
    ::closedir(d);
    if (!found.empty())
        fail(dir, ": already holds a checkpoint (", found, "); init writes only into a new or empty folder");
}
}  // namespace

void init_checkpoint(const ModelConfig& c, const InitOptions& o, const std::string& dir) {
    if (o.dtype != DType::F32 && o.dtype != DType::BF16) usage_fail("init: --dtype must be f32 or bf16");
    if (!std::isfinite(o.bias_offset)) usage_fail("init: --bias-offset must be a finite number");
    if (o.shards < 1) fail("write_checkpoint: n_shards must be >= 1");
    if (dir.empty()) fail("init: empty output folder name");
    ::mkdir(dir.c_str(), 0755);
    struct stat st;
    if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) fail(dir, ": cannot create the output directory");
    refuse_existing_checkpoint(dir);
    nlohmann::json cfg = c.raw;
    cfg["torch_dtype"] = (o.dtype == DType::BF16) ? "bfloat16" : "float32";

    // 1. Every output tensor, in name order (as a TensorMap holds them), dealt round-robin to shards.
    const std::vector<WeightSpec> layout = checkpoint_layout(c);
    const int64_t br = c.fp8_block_rows, bc = c.fp8_block_cols;
    std::map<std::string, OutTensor> out;
    for (const WeightSpec& s : layout) {
        if (c.fp8_weights && s.fp8) {
            out[s.name] = {s.name, DType::F8_E4M3, s.shape};
            const Shape grid = {(s.shape[0] + br - 1) / br, (s.shape[1] + bc - 1) / bc};
            out[s.name + "_scale_inv"] = {s.name + "_scale_inv", DType::F32, grid};
        } else {
            out[s.name] = {s.name, (s.kind == InitKind::Bias) ? DType::F32 : o.dtype, s.shape};
        }
    }
    const int n = o.shards;
    std::vector<ShardFile> files(n);
    for (int i = 0; i < n; i++) {
        char name[64];
        std::snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", i + 1, n);
        files[i].name = n == 1 ? "model.safetensors" : name;
        files[i].file = std::make_unique<AtomicFile>(dir + "/" + files[i].name);
    }
    // 2. The headers (write_safetensors' JSON: metadata, then every tensor; padded to 8 bytes).
    std::vector<nlohmann::json> headers(n, nlohmann::json::object());
    std::vector<uint64_t> sizes(n, 0);
    {
        int i = 0;
        for (auto& kv : out) {
            OutTensor& t = kv.second;
            t.shard = i++ % n;
            t.off = sizes[t.shard];
            sizes[t.shard] += t.nbytes();
            headers[t.shard][t.name] = {
                {"dtype", dtype_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {t.off, t.off + t.nbytes()}}};
        }
    }
    for (int i = 0; i < n; i++) {
        headers[i]["__metadata__"] = {{"format", "pt"}};
        std::string hs = headers[i].dump();
        while (hs.size() % 8) hs.push_back(' ');
        ShardFile& f = files[i];
        const uint64_t hn = hs.size();
        f.data_start = 0;
        pwrite_all(f, &hn, 8, 0);
        pwrite_all(f, hs.data(), hn, 8);
        f.data_start = 8 + hn;
    }
    // 3. Each tensor in slices of whole rows (whole 128-row FP8 block rows), drawn and written in order.
    if (o.slice_elems < 1) fail("init: slice_elems must be >= 1");
    for (const WeightSpec& s : layout) {
        ValueStream vs(s, o.seed, o.bias_offset);
        const OutTensor& t = out.at(s.name);
        const int64_t R = s.shape.empty() ? 1 : s.shape[0], C = shape_numel(s.shape) / std::max<int64_t>(R, 1);
        const bool fp8 = c.fp8_weights && s.fp8;
        int64_t rows = std::max<int64_t>(1, o.slice_elems / std::max<int64_t>(C, 1));
        if (fp8) rows = std::max<int64_t>(1, rows / br) * br;
        std::vector<float> v;
        std::vector<uint8_t> q;
        std::vector<float> scale;
        for (int64_t r0 = 0; r0 < R; r0 += rows) {
            const int64_t nr = std::min(rows, R - r0);
            v.resize(nr * C);
            vs.next(v.data(), nr * C);
            if (fp8) {
                const OutTensor& ts = out.at(s.name + "_scale_inv");
                const int64_t CB = (C + bc - 1) / bc, RB = (nr + br - 1) / br;
                q.resize(nr * C);
                scale.resize(RB * CB);
                fp8_quant_weight_blocks(q.data(), scale.data(), v.data(), nr, C, br, bc);
                pwrite_all(files[t.shard], q.data(), q.size(), t.off + r0 * C);
                pwrite_all(files[ts.shard], scale.data(), scale.size() * 4, ts.off + (r0 / br) * CB * 4);
            } else {
                const Tensor e = Tensor::encode_f32({nr * C}, v, t.dtype);
                pwrite_all(files[t.shard], e.bytes.data(), e.bytes.size(), t.off + r0 * C * dtype_size(t.dtype));
            }
        }
    }
    for (ShardFile& f : files) f.file->commit();
    // config.json last: a folder without it is visibly unfinished.
    if (n == 1) {
        write_file_atomic(dir + "/config.json", cfg.dump(2) + "\n");
        return;
    }
    // 4. The index (write_checkpoint's).
    nlohmann::json index = {{"metadata", {{"total_size", 0}}}, {"weight_map", nlohmann::json::object()}};
    uint64_t total = 0;
    for (const auto& kv : out) {
        index["weight_map"][kv.first] = files[kv.second.shard].name;
        total += kv.second.nbytes();
    }
    index["metadata"]["total_size"] = total;
    write_file_atomic(dir + "/model.safetensors.index.json", index.dump(2) + "\n");
    write_file_atomic(dir + "/config.json", cfg.dump(2) + "\n");
}

}  // namespace dsref
