// model.cpp — embedding → decoder layers (MLA/GQA + dense MLP or DeepSeekMoE) → final norm → lm_head.
#include "model/model.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <set>

#include "core/error.h"
#include "core/linear.h"
#include "core/linear_bf16.h"
#include "core/rmsnorm.h"
#include "io/checkpoint_layout.h"
#include "model/moe_block.h"

namespace dsref {

size_t KVCache::bytes() const {
    size_t n = 0;
    for (const LayerCache& l : layers) n += (l.a.size() + l.b.size() + l.index_k.size()) * sizeof(float);
    return n;
}

Model::Model(const std::string& dir, ModelOptions opt)
    : cfg_(load_config(dir)), opt_(std::move(opt)), ckpt_(dir), loader_(ckpt_, cfg_) {
    if (opt_.keep_weights) opt_.fwd.stream_experts = false;  // kept layers hold their experts
    PrecisionPolicy& prec = opt_.fwd.precision;
    prec.check_config(cfg_);
    prec.scale_fmt = cfg_.fp8_scale_fmt;  // official-fp8's act_quant uses the checkpoint's scale_fmt
    bool any_moe = false;
    for (int64_t i = 0; i < cfg_.num_hidden_layers; i++) any_moe = any_moe || cfg_.is_moe_layer(i);
    if (any_moe) moe_gate_config(cfg_);  // the MoE fields, before any weight is read (the error names the field)
    check_checkpoint();
    if (opt_.fwd.hold_bf16) {  // model/held_weight.h: the dense llama-kind blocks of a kept model only
        if (!opt_.keep_weights) fail("holding bf16 weights is for generation (the model keeps its layers)");
        if (cfg_.is_mla() || any_moe)
            fail(cfg_.source, ": holding bf16 weights covers GQA attention and dense MLPs; ", arch_name(cfg_.arch),
                 " has ", cfg_.is_mla() ? "MLA attention" : "MoE layers");
        if (!prec.none()) fail("holding bf16 weights runs in float32 only, not with --emulate");
    }
    if (opt_.keep_weights)
        for (int64_t i = 0; i < cfg_.num_hidden_layers; i++)
            kept_.emplace_back(cfg_, loader_, i, cfg_.is_moe_layer(i), opt_.fwd);
    if (opt_.keep_weights && prec.none()) {
        if (opt_.fwd.hold_bf16)
            head16_ = loader_.load_bf16(model_tensors(cfg_).lm_head);
        else
            head_ = loader_.load(model_tensors(cfg_).lm_head);
    }
}

// Every tensor the config implies must be there with its shape, before any compute starts.
void Model::check_checkpoint() const {
    for (const WeightSpec& s : checkpoint_layout(cfg_)) {
        if (s.layer >= cfg_.num_hidden_layers) continue;  // MTP layers: read by model/mtp.h only
        loader_.check(s);
    }
    // What the config does not imply. A decoder layer beyond num_hidden_layers (+ the MTP layers) means
    // config and checkpoint disagree on the depth: an error, not a run on the first layers. Anything
    // else unused is named in one warning line.
    std::set<std::string> known;
    for (const WeightSpec& s : checkpoint_layout(cfg_)) {
        known.insert(s.name);
        known.insert(s.name + "_scale_inv");
    }
    const int64_t L_all = cfg_.num_hidden_layers + cfg_.num_nextn_predict_layers;
    std::vector<std::string> unused;
    for (const std::string& n : ckpt_.names()) {
        if (known.count(n)) continue;
        const std::string pre = "model.layers.";
        if (n.compare(0, pre.size(), pre) == 0) {
            const char* p = n.c_str() + pre.size();
            char* end = nullptr;
            const long long i = std::strtoll(p, &end, 10);
            if (end != p && *end == '.' && i >= L_all)
                fail(ckpt_.where(), ": tensor '", n, "' belongs to decoder layer ", i, ", but ", cfg_.source,
                     " has num_hidden_layers ", cfg_.num_hidden_layers, " (+ num_nextn_predict_layers ",
                     cfg_.num_nextn_predict_layers, "): config and checkpoint disagree on the layer count");
        }
        unused.push_back(n);
    }
    if (!unused.empty()) {
        std::string list;
        for (size_t k = 0; k < unused.size() && k < 3; k++) list += (k ? ", " : "") + unused[k];
        std::fprintf(stderr, "dsref: warning: %s: %zu tensor(s) not used by this config: %s%s\n", ckpt_.where().c_str(),
                     unused.size(), list.c_str(), unused.size() > 3 ? ", ..." : "");
    }
}

void Model::check_tokens(const std::vector<int32_t>& tokens) const {
    for (int32_t t : tokens)
        if (t < 0 || t >= cfg_.vocab_size) fail("token id ", t, " is outside the vocabulary [0, ", cfg_.vocab_size, ")");
}

std::vector<float> Model::forward_hidden(const std::vector<int32_t>& tokens, KVCache& cache, Trace* trace) {
    const int64_t T = (int64_t)tokens.size(), d = cfg_.hidden_size, L = cfg_.num_hidden_layers;
    if (T == 0) fail("forward: no tokens");
    check_tokens(tokens);
    if (cache.layers.empty()) cache.layers.resize(L);
    const int64_t pos0 = cache.len;

    const ModelTensors g = model_tensors(cfg_);
    const PrecisionPolicy& prec = opt_.fwd.precision;
    std::vector<float> h = loader_.load_rows(g.embed.name, g.embed.shape, tokens);  // [T, d]
    prec.round(h.data(), T * d);  // the embedding as the emulated reference holds it (bf16)
    const auto t0 = std::chrono::steady_clock::now();
    const MoeStreamStats s0 = moe_stream_stats();
    double dense_bytes = 0;  // checkpoint bytes of the layers' held (non-expert) tensors read so far
    const std::vector<WeightSpec> layout = checkpoint_layout(cfg_);
    for (int64_t i = 0; i < L; i++) {
        if (opt_.keep_weights) {
            kept_[i].forward(h.data(), T, pos0, cache.layers[i], trace);
        } else {
            // Queue the reads of what this layer holds (streamed experts: once routed, moe_block.cpp), and
            // with the last layer the head's, so that the disk reads while the CPU converts and multiplies.
            for (const WeightSpec& s : layout)
                if (s.layer == i && !(opt_.fwd.stream_experts && prec.none() && s.expert >= 0)) loader_.prefetch(s.name);
            if (i + 1 == L) loader_.prefetch(g.lm_head.name);
            {
                const DecoderLayer layer(cfg_, loader_, i, cfg_.is_moe_layer(i), opt_.fwd);
                layer.forward(h.data(), T, pos0, cache.layers[i], trace);
            }
            // The layer's float32 weights are gone; its mapped pages go too (Checkpoint::release).
            for (const WeightSpec& s : layout)
                if (s.layer == i) loader_.release(s.name);
        }
        if (opt_.progress) {
            for (const WeightSpec& s : layout) {
                if (s.layer != i || (opt_.fwd.stream_experts && prec.none() && s.expert >= 0) || kept_.size()) continue;
                dense_bytes += (double)ckpt_.get(s.name).nbytes;
                if (ckpt_.has(s.name + "_scale_inv")) dense_bytes += (double)ckpt_.get(s.name + "_scale_inv").nbytes;
            }
            const MoeStreamStats st = moe_stream_stats();
            const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            const double eta = el / (double)(i + 1) * (double)(L - i - 1);
            char line[200];
            std::snprintf(line, sizeof line, "\rdsref: layer %lld/%lld, experts loaded %lld, %.2f GB read, %.1f s, ETA %.1f s ",
                          (long long)(i + 1), (long long)L, (long long)(st.experts - s0.experts),
                          (dense_bytes + (double)(st.bytes - s0.bytes)) / 1e9, el, eta);
            std::fputs(line, stderr);
            if (i + 1 == L) std::fputs("\n", stderr);
            std::fflush(stderr);
        }
    }
    loader_.release(g.embed.name);
    cache.len += T;
    std::vector<float> x(T * d);  // [T, d]
    prec.rmsnorm(x.data(), h.data(), prec.load(loader_, g.norm).data(), T, d, (float)cfg_.rms_norm_eps);
    return x;
}

std::vector<float> Model::lm_head(const float* x, int64_t rows) const {
    const int64_t d = cfg_.hidden_size, V = cfg_.vocab_size;
    std::vector<float> logits(rows * V);  // [rows, V]
    const PrecisionPolicy& prec = opt_.fwd.precision;
    const WeightSpec head = model_tensors(cfg_).lm_head;
    if (!prec.none()) {
        prec.linear(logits.data(), x, prec.load(loader_, head), rows, d, V);
        return logits;
    }
    if (!head_.empty()) {  // kept (generation): the same tiles as the slices below, so the same bits
        linear_forward(logits.data(), x, head_.data(), rows, d, V);
        return logits;
    }
    if (!head16_.empty()) {  // kept as bf16 words (hold_bf16): core/linear_bf16.h
        linear_forward_bf16(logits.data(), x, head16_.data(), rows, d, V);
        return logits;
    }
    // Float32: the head in slices of kHeadSlice rows (V3: 129280 × 7168 would be 3.7 GB as float32).
    // Every output of linear_forward is summed in an order fixed by its row and column alone (core/linear.h),
    // so the slices give the logits of one linear_forward over all V rows, bit for bit.
    constexpr int64_t kHeadSlice = 64 * kTileN;
    const int64_t n_slice = std::min(V, kHeadSlice);
    std::vector<float> w(n_slice * d), part(rows * n_slice);  // [slice, d], [rows, slice]
    for (int64_t v0 = 0; v0 < V; v0 += kHeadSlice) {
        const int64_t n = std::min(kHeadSlice, V - v0);
        loader_.load_row_range(w.data(), head, v0, v0 + n);
        linear_forward(part.data(), x, w.data(), rows, d, n);
        for (int64_t r = 0; r < rows; r++) std::copy(part.begin() + r * n, part.begin() + (r + 1) * n, logits.begin() + r * V + v0);
        if (!opt_.keep_weights) loader_.release(head.name);  // the slice's mapped pages
    }
    return logits;
}

std::vector<float> Model::forward(const std::vector<int32_t>& tokens, KVCache& cache, Trace* trace, bool last_only) {
    const std::vector<float> x = forward_hidden(tokens, cache, trace);  // [T, d]
    const int64_t T = (int64_t)tokens.size(), rows = last_only ? 1 : T;
    std::vector<float> logits = lm_head(x.data() + (T - rows) * cfg_.hidden_size, rows);
    opt_.fwd.finite->check("logits", logits.data(), rows, cfg_.vocab_size);
    return logits;
}

std::vector<float> Model::prefill(const std::vector<int32_t>& tokens, Trace* trace, bool last_only) {
    KVCache cache;
    return forward(tokens, cache, trace, last_only);
}

}  // namespace dsref
