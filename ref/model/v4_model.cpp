// v4_model.cpp — the DeepSeek-V4 forward (equations in v4_model.h).
#include "model/v4_model.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/hyper_connection.h"
#include "core/linear.h"
#include "core/rmsnorm.h"
#include "core/swiglu.h"
#include "fp8/fp4_dequant.h"
#include "fp8/fp8_quant.h"
#include "io/checkpoint_layout_v4.h"
#include "moe/moe_gate.h"

namespace dsref {

size_t V4Cache::bytes() const {
    size_t n = 0;
    for (const V4LayerCache& l : layers) n += l.bytes();
    return n;
}

V4Model::V4Model(const std::string& dir, V4Compat compat)
    : cfg_(load_v4_config(dir, compat)), ckpt_(dir), loader_(ckpt_) {
    hf_layout_ = ckpt_.has("model.embed_tokens.weight");
    for (V4Spec s : v4_checkpoint_layout(cfg_)) {
        if (s.w.layer >= cfg_.num_hidden_layers && !ckpt_.has(stored(s.w.name))) continue;  // MTP: checked when used
        shapes_[s.w.name] = s.w.shape;
        s.w.name = stored(s.w.name);
        if (s.table) {
            const TensorRef& r = ckpt_.get(s.w.name);
            check_tensor_shape(ckpt_, r, s.w.shape, "[vocab_size, num_experts_per_tok]");
            if (r.dtype != DType::I32 && r.dtype != DType::I64)
                fail(ckpt_.describe(s.w.name), " must be I32 or I64 (expert ids), got ", dtype_name(r.dtype));
        } else {
            check_weight(s);
        }
    }
    const int64_t dr = cfg_.qk_rope_head_dim;
    inv_window_ = rope_inv_freq(dr, cfg_.rope_theta, RopeScaling{});  // official: no YaRN without compression
    inv_compress_ = rope_inv_freq(dr, cfg_.compress_rope_theta, cfg_.compress_rope);
}

// The `.scale` sidecar of a quantized weight: "x.weight" → "x.scale" (official Linear: weight.scale = scale).
static std::string scale_name(const std::string& w) {
    const std::string suf = ".weight";
    if (w.size() <= suf.size() || w.compare(w.size() - suf.size(), suf.size(), suf) != 0)
        fail("v4 model: quantized tensor '", w, "' does not end in .weight");
    return w.substr(0, w.size() - suf.size()) + ".scale";
}

// s.w.name is the stored name. Float: the loader's check. F8_E4M3 [out, in] + `.scale` [⌈out/128⌉, ⌈in/128⌉];
// FP4 (routed experts): I8/U8 [out, in/2] + `.scale` F8_E8M0/U8 [out, in/32].
void V4Model::check_weight(const V4Spec& s) const {
    if (!ckpt_.has(s.w.name)) fail(ckpt_.where(), ": missing tensor '", s.w.name, "' (shape ", shape_str(s.w.shape), ")");
    const TensorRef& r = ckpt_.get(s.w.name);
    if (r.dtype != DType::F8_E4M3 && r.dtype != DType::I8 && r.dtype != DType::U8) return loader_.check(s.w);
    if (s.w.shape.size() != 2) fail(ckpt_.describe(s.w.name), " is ", dtype_name(r.dtype), " but not a 2-D weight");
    const int64_t R = s.w.shape[0], C = s.w.shape[1];
    const bool fp4 = r.dtype != DType::F8_E4M3;
    if (fp4 && (!s.fp4 || C % kFp4Block))
        fail(ckpt_.describe(s.w.name), " is ", dtype_name(r.dtype), ": packed FP4 is read for routed experts with "
             "in_features divisible by 32 only");
    check_tensor_shape(ckpt_, r, fp4 ? Shape{R, C / 2} : s.w.shape, fp4 ? "FP4, two codes per byte" : "");
    const std::string sn = scale_name(s.w.name);
    if (!ckpt_.has(sn)) fail(ckpt_.where(), ": quantized tensor '", s.w.name, "' has no '", sn, "'");
    const TensorRef& sc = ckpt_.get(sn);
    check_tensor_shape(ckpt_, sc, fp4 ? Shape{R, C / kFp4Block} : Shape{(R + 127) / 128, (C + 127) / 128},
                       fp4 ? "one UE8M0 scale per 32 values" : "one scale per 128x128 block");
    if (fp4 ? (sc.dtype != DType::F8_E8M0 && sc.dtype != DType::U8) : !dtype_is_float(sc.dtype))
        fail(ckpt_.describe(sn), " has dtype ", dtype_name(sc.dtype), fp4 ? ", expected F8_E8M0" : ", expected a float");
}

std::vector<float> V4Model::load_weight(const std::string& name, const Shape& shape) const {
    const std::string st = stored(name);
    const TensorRef& r = ckpt_.get(st);
    if (r.dtype != DType::F8_E4M3 && r.dtype != DType::I8 && r.dtype != DType::U8) return loader_.load(st, shape);
    const int64_t R = shape[0], C = shape[1];
    const TensorRef& sc = ckpt_.get(scale_name(st));
    std::vector<float> out;
    try {
        if (r.dtype == DType::F8_E4M3) {  // 128x128 blocks, the scale as its float value (UE8M0 or F32)
            out.resize((size_t)(R * C));
            const std::vector<float> scale = sc.to_f32();
            for (size_t i = 0; i < scale.size(); ++i)
                if (!(scale[i] >= 0) || !std::isfinite(scale[i]))
                    fail("element ", i, " of '", scale_name(st), "' is ", scale[i], "; scales must be finite and >= 0");
            fp8_dequant_weight(out.data(), r.data, scale.data(), R, C, 128, 128);
        } else {
            out = fp4_dequantize(r.data, sc.data, R, C, scale_name(st));
        }
    } catch (const Error& e) {
        fail(ckpt_.describe(st), ": ", e.what());
    }
    return out;
}

std::string V4Model::stored(const std::string& n) const {
    if (!hf_layout_) return n;
    if (n == "head.weight") return n;
    if (n == "embed.weight") return "model.embed_tokens.weight";
    if (n == "norm.weight") return "model.norm.weight";
    if (n.rfind("hc_head_", 0) == 0) return "model.hc_head.hc_" + n.substr(8);
    const std::string kv = ".attn.kv_norm.weight";
    if (n.size() > kv.size() && n.compare(n.size() - kv.size(), kv.size(), kv) == 0)
        return "model." + n.substr(0, n.size() - kv.size()) + ".attn.norm.weight";
    return "model." + n;
}

const std::vector<float>& V4Model::w(const std::string& name) {
    auto it = weights_.find(name);
    if (it != weights_.end()) return it->second;
    auto sh = shapes_.find(name);
    if (sh == shapes_.end()) {  // an MTP tensor that check skipped: check it now
        for (V4Spec s : v4_checkpoint_layout(cfg_))
            if (s.w.name == name) {
                s.w.name = stored(name);
                check_weight(s);
                sh = shapes_.emplace(name, s.w.shape).first;
            }
        if (sh == shapes_.end()) fail("v4 model: '", name, "' is not a tensor of the V4 layout");
    }
    return weights_[name] = load_weight(name, sh->second);
}

const std::vector<int32_t>& V4Model::table(const std::string& name) {
    auto it = tables_.find(name);
    if (it != tables_.end()) return it->second;
    const TensorRef& r = ckpt_.get(stored(name));
    std::vector<int32_t> v((size_t)shape_numel(r.shape));
    for (size_t i = 0; i < v.size(); ++i) {
        int64_t e;
        if (r.dtype == DType::I32) {
            int32_t x;
            std::memcpy(&x, r.data + 4 * i, 4);
            e = x;
        } else {
            std::memcpy(&e, r.data + 8 * i, 8);
        }
        if (e < 0 || e >= cfg_.n_routed_experts)
            fail(ckpt_.describe(stored(name)), ": entry ", e, " at row ", i / (size_t)cfg_.num_experts_per_tok,
                 " is outside [0, n_routed_experts = ", cfg_.n_routed_experts, ")");
        v[i] = (int32_t)e;
    }
    return tables_[name] = std::move(v);
}

static HcParams hc_params(const V4Config& c) {
    HcParams p;
    p.n = c.hc_mult, p.iters = c.hc_sinkhorn_iters, p.hc_eps = c.hc_eps, p.norm_eps = c.rms_norm_eps;
    return p;
}

void V4Model::block(int64_t i, std::vector<float>& h, int64_t T, const std::vector<int32_t>& ids,
                    V4LayerCache& cache, Trace* trace) {
    const V4Config& c = cfg_;
    const int64_t d = c.hidden_size, n = c.hc_mult, M = (2 + n) * n;
    const std::string p = v4_layer_prefix(c, i), a = p + "attn.", f = p + "ffn.", si = "." + std::to_string(i);
    const HcParams hp = hc_params(c);
    const bool hf = c.compat == V4Compat::Hf;
    std::vector<float> y((size_t)(T * d)), pre((size_t)(T * n)), post((size_t)(T * n)), comb((size_t)(T * n * n));
    std::vector<float> nh((size_t)(T * n * d));
    (void)M;

    // attention sub-layer
    hc_pre(y.data(), pre.data(), post.data(), comb.data(), h.data(), w(p + "hc_attn_fn").data(),
           w(p + "hc_attn_scale").data(), w(p + "hc_attn_base").data(), T, d, hp);
    trace_f32(trace, "hc_pre" + si, {T, n}, pre.data());
    trace_f32(trace, "hc_post" + si, {T, n}, post.data());
    trace_f32(trace, "hc_comb" + si, {T, n, n}, comb.data());
    rmsnorm_forward(y.data(), y.data(), w(p + "attn_norm.weight").data(), T, d, (float)c.rms_norm_eps);
    V4AttnDims D;
    D.d = d, D.H = c.num_attention_heads, D.d_h = c.head_dim, D.d_r = c.qk_rope_head_dim, D.q_lora = c.q_lora_rank;
    D.G = c.o_groups, D.R = c.o_lora_rank, D.window = c.sliding_window, D.ratio = v4_layer_ratio(c, i);
    D.n_I = c.index_n_heads, D.d_I = c.index_head_dim, D.topk = c.index_topk, D.eps = c.rms_norm_eps;
    D.rope_scale = D.ratio > 0 ? c.compress_rope_scale : 1.0;  // window-only layers: transformers' "main", unscaled
    V4AttnWeights W;
    W.wq_a = w(a + "wq_a.weight").data(), W.q_norm = w(a + "q_norm.weight").data(), W.wq_b = w(a + "wq_b.weight").data();
    W.wkv = w(a + "wkv.weight").data(), W.kv_norm = w(a + "kv_norm.weight").data();
    W.wo_a = w(a + "wo_a.weight").data(), W.wo_b = w(a + "wo_b.weight").data(), W.sink = w(a + "attn_sink").data();
    auto comp = [&](const std::string& q) {
        return V4CompressorWeights{w(q + "wkv.weight").data(), w(q + "wgate.weight").data(), w(q + "ape").data(),
                                   w(q + "norm.weight").data()};
    };
    if (D.ratio > 0) {
        const V4CompressorWeights cw = comp(a + "compressor.");
        W.c_wkv = cw.wkv, W.c_wgate = cw.wgate, W.c_ape = cw.ape, W.c_norm = cw.norm;
    }
    if (D.ratio == 4) {
        W.i_wq_b = w(a + "indexer.wq_b.weight").data(), W.i_weights_proj = w(a + "indexer.weights_proj.weight").data();
        W.i_comp = comp(a + "indexer.compressor.");
    }
    const V4AttnOut ao = v4_attention_step(y.data(), T, D, W, D.ratio > 0 ? inv_compress_ : inv_window_, cache);
    trace_f32(trace, "attn" + si, {T, d}, ao.out.data());
    trace_f32(trace, "window_attn" + si, {T, D.H, D.d_h}, ao.window_attn.data());
    if (D.ratio > 0)
        trace_f32(trace, "compressed_kv" + si, {(int64_t)ao.compressed_kv.size() / D.d_h, D.d_h}, ao.compressed_kv.data());
    if (D.ratio == 4) {
        if (trace && trace->wants("index_topk" + si))
            trace->record("index_topk" + si, Tensor::from_i32({T, ao.kk}, ao.index_topk));
        trace_f32(trace, "index_scores" + si, {T, (int64_t)ao.index_scores.size() / std::max<int64_t>(T, 1)},
                  ao.index_scores.data());
        trace_f32(trace, "index_margin" + si, {T}, ao.index_margin.data());
    }
    hc_post(nh.data(), ao.out.data(), h.data(), post.data(), comb.data(), T, d, hp);
    h.swap(nh);

    // MoE sub-layer
    hc_pre(y.data(), pre.data(), post.data(), comb.data(), h.data(), w(p + "hc_ffn_fn").data(),
           w(p + "hc_ffn_scale").data(), w(p + "hc_ffn_base").data(), T, d, hp);
    trace_f32(trace, "hc_ffn_pre" + si, {T, n}, pre.data());
    trace_f32(trace, "hc_ffn_post" + si, {T, n}, post.data());
    trace_f32(trace, "hc_ffn_comb" + si, {T, n, n}, comb.data());
    rmsnorm_forward(y.data(), y.data(), w(p + "ffn_norm.weight").data(), T, d, (float)c.rms_norm_eps);
    const int64_t E = c.n_routed_experts, K = c.num_experts_per_tok, I = c.moe_intermediate_size;
    MoeGateConfig g;
    g.E = E, g.K = K, g.n_group = 1, g.topk_group = 1, g.scoring = c.scoring_func, g.topk_method = MoeTopk::NoauxTc;
    g.norm_topk_prob = c.norm_topk_prob, g.routed_scaling_factor = c.routed_scaling_factor;
    g.norm_eps = hf ? 1e-20 : 0.0;  // transformers' routers divide by (sum + 1e-20)
    std::vector<float> logits((size_t)(T * E));
    linear_forward(logits.data(), y.data(), w(f + "gate.weight").data(), T, d, E);
    MoeRouting rt;
    if (v4_layer_hash(c, i)) {
        const std::vector<int64_t> tid(ids.begin(), ids.end());
        rt = moe_route_hash(logits.data(), table(f + "gate.tid2eid").data(), c.vocab_size, tid.data(), T, g,
                            f + "gate.tid2eid");
    } else {
        rt = moe_route(logits.data(), w(f + "gate.bias").data(), T, g);
    }
    if (trace && trace->wants("topk_idx" + si)) trace->record("topk_idx" + si, Tensor::from_i32({T, K}, rt.topk_idx));
    trace_f32(trace, "topk_weight" + si, {T, K}, rt.topk_weight.data());
    std::vector<float> out((size_t)(T * d), 0.0f);
    // transformers clamps with swiglu_limit 0 as well (gate ≤ 0, up in [0, 0]): every expert, shared and routed,
    // then outputs exactly 0; the official Expert clamps only when swiglu_limit > 0
    const bool zero_ffn = hf && c.swiglu_limit == 0.0;
    if (!zero_ffn)
        swiglu_forward_clamped(out.data(), y.data(), w(f + "shared_experts.w1.weight").data(),
                               w(f + "shared_experts.w3.weight").data(), w(f + "shared_experts.w2.weight").data(), T, d,
                               I, (float)c.swiglu_limit);
    std::vector<float> routed((size_t)(T * d), 0.0f);
    for (int64_t e = 0; e < E && !zero_ffn; ++e) {  // experts in id order, their tokens in order: thread-count independent
        std::vector<int64_t> rows, slot;
        for (int64_t t = 0; t < T; ++t)
            for (int64_t k = 0; k < K; ++k)
                if (rt.topk_idx[t * K + k] == e) rows.push_back(t), slot.push_back(k);
        if (rows.empty()) continue;
        const int64_t nr = (int64_t)rows.size();
        std::vector<float> xe((size_t)(nr * d)), ye((size_t)(nr * d));
        for (int64_t r = 0; r < nr; ++r) std::copy(y.begin() + rows[r] * d, y.begin() + (rows[r] + 1) * d, xe.begin() + r * d);
        const std::string q = f + "experts." + std::to_string(e) + ".";
        if (hf) {  // transformers DeepseekV4Experts: w2 · act, then × g_k
            swiglu_forward_clamped(ye.data(), xe.data(), w(q + "w1.weight").data(), w(q + "w3.weight").data(),
                                   w(q + "w2.weight").data(), nr, d, I, (float)c.swiglu_limit);
            for (int64_t r = 0; r < nr; ++r) {
                const float g_k = rt.topk_weight[rows[r] * K + slot[r]];
                for (int64_t j = 0; j < d; ++j) ye[r * d + j] *= g_k;
            }
        } else {  // official Expert.forward(x, weights): the activation × g_k (float32), then w2
            std::vector<float> ge((size_t)(nr * I)), ue((size_t)(nr * I));
            linear_forward(ge.data(), xe.data(), w(q + "w1.weight").data(), nr, d, I);
            linear_forward(ue.data(), xe.data(), w(q + "w3.weight").data(), nr, d, I);
            swiglu_gate_clamped(ge.data(), ue.data(), nr * I, (float)c.swiglu_limit);
            for (int64_t r = 0; r < nr; ++r) {
                const float g_k = rt.topk_weight[rows[r] * K + slot[r]];
                for (int64_t j = 0; j < I; ++j) ge[r * I + j] *= g_k;
            }
            linear_forward(ye.data(), ge.data(), w(q + "w2.weight").data(), nr, I, d);
        }
        for (int64_t r = 0; r < nr; ++r)
            for (int64_t j = 0; j < d; ++j) routed[rows[r] * d + j] += ye[r * d + j];
    }
    for (int64_t j = 0; j < T * d; ++j) out[j] += routed[j];
    hc_post(nh.data(), out.data(), h.data(), post.data(), comb.data(), T, d, hp);
    h.swap(nh);
    trace_f32(trace, "hidden" + si, {T, n, d}, h.data());
}

std::vector<float> V4Model::head(const std::vector<float>& h, int64_t T, const std::string& p) {
    const int64_t d = cfg_.hidden_size, V = cfg_.vocab_size;
    std::vector<float> y((size_t)(T * d)), logits((size_t)(T * V));
    hc_head(y.data(), h.data(), w(p + "hc_head_fn").data(), w(p + "hc_head_scale").data(), w(p + "hc_head_base").data(),
            T, d, hc_params(cfg_));
    rmsnorm_forward(y.data(), y.data(), w(p + "norm.weight").data(), T, d, (float)cfg_.rms_norm_eps);
    linear_forward(logits.data(), y.data(), w("head.weight").data(), T, d, V);
    return logits;
}

static void check_ids(const V4Config& c, const std::vector<int32_t>& tokens) {
    for (int32_t t : tokens)
        if (t < 0 || t >= c.vocab_size) fail("token id ", t, " is outside the vocabulary [0, ", c.vocab_size, ")");
}

std::vector<float> V4Model::forward(const std::vector<int32_t>& tokens, V4Cache& cache, Trace* trace,
                                    std::vector<float>* hidden) {
    const int64_t T = (int64_t)tokens.size(), d = cfg_.hidden_size, n = cfg_.hc_mult, L = cfg_.num_hidden_layers;
    if (T == 0) fail("forward: no tokens");
    check_ids(cfg_, tokens);
    if (cache.layers.empty()) cache.layers.resize((size_t)L);
    const std::vector<float>& emb = w("embed.weight");
    std::vector<float> h((size_t)(T * n * d));
    for (int64_t t = 0; t < T; ++t)
        for (int64_t k = 0; k < n; ++k) std::copy(emb.begin() + tokens[t] * d, emb.begin() + (tokens[t] + 1) * d, h.begin() + (t * n + k) * d);
    for (int64_t i = 0; i < L; ++i) block(i, h, T, tokens, cache.layers[(size_t)i], trace);
    cache.len += T;
    if (hidden) *hidden = h;
    return head(h, T, "");
}

std::vector<float> V4Model::mtp_forward(const std::vector<float>& hidden, const std::vector<int32_t>& tokens, int64_t k,
                                        Trace* trace) {
    const int64_t T = (int64_t)tokens.size() - 1, d = cfg_.hidden_size, n = cfg_.hc_mult, L = cfg_.num_hidden_layers;
    if (k < 0 || k >= cfg_.num_nextn_predict_layers)
        fail(cfg_.source, ": field 'num_nextn_predict_layers' is ", cfg_.num_nextn_predict_layers, "; MTP block ", k,
             " does not exist");
    if (T < 1) fail("--mtp: multi-token prediction needs at least 2 tokens");
    if (cfg_.compat == V4Compat::Hf)
        fail("--mtp with --compat hf: transformers' DeepseekV4ForCausalLM has no MTP block (it drops the mtp.* tensors)");
    if ((int64_t)hidden.size() != (T + 1) * n * d) fail("mtp: hidden holds ", hidden.size(), " values, expected ", (T + 1) * n * d);
    v4_layer_ratio(cfg_, L + k);  // the block needs its compress_ratios entry (transformers' layer_types has none)
    const std::string p = v4_layer_prefix(cfg_, L + k);
    const std::vector<float>& emb = w("embed.weight");
    std::vector<float> e((size_t)(T * d)), ep((size_t)(T * d)), hn((size_t)(T * n * d)), x((size_t)(T * n * d));
    for (int64_t t = 0; t < T; ++t) std::copy(emb.begin() + tokens[t + 1] * d, emb.begin() + (tokens[t + 1] + 1) * d, e.begin() + t * d);
    rmsnorm_forward(e.data(), e.data(), w(p + "enorm.weight").data(), T, d, (float)cfg_.rms_norm_eps);
    linear_forward(ep.data(), e.data(), w(p + "e_proj.weight").data(), T, d, d);
    rmsnorm_forward(hn.data(), hidden.data(), w(p + "hnorm.weight").data(), T * n, d, (float)cfg_.rms_norm_eps);
    linear_forward(x.data(), hn.data(), w(p + "h_proj.weight").data(), T * n, d, d);
    for (int64_t t = 0; t < T; ++t)
        for (int64_t s = 0; s < n; ++s)
            for (int64_t j = 0; j < d; ++j) x[(t * n + s) * d + j] += ep[t * d + j];
    const std::vector<int32_t> ids(tokens.begin() + 1, tokens.end());
    V4LayerCache cache;
    block(L + k, x, T, ids, cache, trace);
    return head(x, T, p);
}

}  // namespace dsref

namespace dsref {

GenerateResult v4_generate(V4Model& model, const std::vector<int32_t>& prompt, int64_t max_new, const SamplingParams& sp,
                           bool stop_at_eos) {
    if (prompt.empty()) usage_fail("generate: the prompt needs at least one token");
    if (max_new < 0) usage_fail("--max-new must be >= 0");
    const int64_t V = model.config().vocab_size, eos = model.config().eos_token_id;
    Sampler sampler(sp);
    GenerateResult r;
    if (max_new == 0) return r;
    V4Cache cache;
    std::vector<float> logits = model.forward(prompt, cache);
    logits.erase(logits.begin(), logits.end() - V);
    for (int64_t n = 0; n < max_new; n++) {
        const int32_t next = sampler.sample(logits.data(), V);
        r.tokens.push_back(next);
        r.logits.insert(r.logits.end(), logits.begin(), logits.end());
        if ((stop_at_eos && next == eos) || n + 1 == max_new) break;
        logits = model.forward({next}, cache);
    }
    return r;
}

}  // namespace dsref
