// config_v4.cpp — reads and validates a DeepSeek-V4 config.json (rules in config_v4.h).
#include "io/config_v4.h"

#include <sys/stat.h>

#include <cmath>

#include "core/error.h"
#include "io/config_keys.h"
#include "io/regular_file.h"

namespace dsref {

using json = nlohmann::json;

const char* v4_layer_type_name(V4LayerType t) {
    switch (t) {
        case V4LayerType::Sliding: return "sliding_attention";
        case V4LayerType::Csa: return "compressed_sparse_attention";
        case V4LayerType::Hca: return "heavily_compressed_attention";
    }
    return "?";
}

const char* v4_compat_name(V4Compat c) { return c == V4Compat::Hf ? "hf" : "official"; }

V4Compat v4_compat_from_name(const std::string& s) {
    if (s == "official") return V4Compat::Official;
    if (s == "hf") return V4Compat::Hf;
    fail("--compat '", s, "': expected official or hf");
}

V4LayerType V4Config::layer_type(int64_t i) const {
    const int64_t m = compress_ratio.at((size_t)i);
    return m == 0 ? V4LayerType::Sliding : m == 4 ? V4LayerType::Csa : V4LayerType::Hca;
}

bool is_v4_config(const json& j) {
    if (!j.is_object()) return false;
    if (j.contains("model_type") && j["model_type"].is_string()) return j["model_type"] == "deepseek_v4";
    return j.contains("architectures") && j["architectures"].is_array() && !j["architectures"].empty() &&
           j["architectures"][0] == "DeepseekV4ForCausalLM";
}

static std::vector<int64_t> int_list(FieldReader& r, const std::string& k) {
    const json& a = r.raw()[k];
    if (!a.is_array()) r.fail_field(k, "must be a list of integers");
    std::vector<int64_t> v;
    for (const json& e : a) {
        if (!e.is_number_integer()) r.fail_field(k, "must be a list of integers, got " + e.dump());
        v.push_back(e.get<int64_t>());
    }
    return v;
}

static std::vector<std::string> str_list(FieldReader& r, const std::string& k) {
    const json& a = r.raw()[k];
    if (!a.is_array()) r.fail_field(k, "must be a list of strings");
    std::vector<std::string> v;
    for (const json& e : a) {
        if (!e.is_string()) r.fail_field(k, "must be a list of strings, got " + e.dump());
        v.push_back(e.get<std::string>());
    }
    return v;
}

// One YaRN description (rope_scaling or rope_parameters.compress), and its attention_factor when given.
struct V4Yarn {
    RopeScaling s;
    bool has_af = false;  // attention_factor present
    double af = 1.0;
};

static V4Yarn read_yarn(FieldReader& q, V4Compat compat) {
    V4Yarn y;
    std::string type = q.str_opt("rope_type", "");
    const std::string t2 = q.str_opt("type", "");
    if (type.empty()) type = t2;
    if (type == "default" || type.empty()) return y;
    if (type != "yarn") q.fail_field("rope_type", "is '" + type + "'; DeepSeek-V4 uses yarn on the compressed layers");
    RopeScaling& s = y.s;
    s.type = RopeScalingType::Yarn;
    s.factor = q.num_req("factor");
    s.original_max_position_embeddings = q.int_req("original_max_position_embeddings");
    s.beta_fast = q.num_opt("beta_fast", 32.0);
    s.beta_slow = q.num_opt("beta_slow", 1.0);
    // The official precompute_freqs_cis never scales cos/sin; transformers multiplies them by attention_factor
    // (its V4 config sets 1.0 when it builds the nested form itself).
    y.has_af = q.present("attention_factor");
    y.af = q.num_opt("attention_factor", 1.0);
    if (compat == V4Compat::Official && y.af != 1.0)
        q.fail_field("attention_factor", "must be 1 (the official code does not scale cos/sin; --compat hf scales "
                                         "them by it, as transformers does)");
    if (compat == V4Compat::Hf && !(y.af > 0 && std::isfinite(y.af)))
        q.fail_field("attention_factor", "must be a positive number");
    if (q.present("mscale") || q.present("mscale_all_dim"))
        q.fail_field("mscale", "is not used by DeepSeek-V4 (no softmax-scale correction); refusing to guess");
    return y;
}

V4Config parse_v4_config(const json& j, const std::string& src, V4Compat compat) {
    if (!is_v4_config(j)) fail(src, ": not a deepseek_v4 config");
    FieldReader r(j, src);
    V4Config c;
    c.source = src;
    c.compat = compat;
    const bool hf = compat == V4Compat::Hf;
    r.str_opt("model_type", "");
    r.present("architectures");
    c.vocab_size = r.int_req("vocab_size");
    c.hidden_size = r.int_req("hidden_size");
    c.num_hidden_layers = r.int_req("num_hidden_layers");
    c.num_attention_heads = r.int_req("num_attention_heads");
    c.head_dim = r.int_req("head_dim");
    c.q_lora_rank = r.int_req("q_lora_rank");
    c.o_groups = r.int_req("o_groups");
    c.o_lora_rank = r.int_req("o_lora_rank");
    c.sliding_window = r.int_req("sliding_window");
    c.n_routed_experts = r.int_req("n_routed_experts");
    c.n_shared_experts = r.int_req("n_shared_experts");
    c.num_experts_per_tok = r.int_req("num_experts_per_tok");
    c.moe_intermediate_size = r.int_req("moe_intermediate_size");
    c.index_n_heads = r.int_req("index_n_heads");
    c.index_head_dim = r.int_req("index_head_dim");
    c.index_topk = r.int_req("index_topk");
    c.hc_mult = r.int_req("hc_mult");
    c.hc_sinkhorn_iters = r.int_req("hc_sinkhorn_iters");
    c.hc_eps = r.num_req("hc_eps");
    c.rms_norm_eps = r.num_req("rms_norm_eps");
    c.routed_scaling_factor = r.num_req("routed_scaling_factor");
    c.swiglu_limit = r.num_req("swiglu_limit");
    c.rope_theta = r.num_req("rope_theta");
    c.compress_rope_theta = r.num_req("compress_rope_theta");
    c.max_position_embeddings = r.int_req("max_position_embeddings");
    c.num_nextn_predict_layers = r.int_opt("num_nextn_predict_layers", 0);
    c.tie_word_embeddings = r.bool_opt("tie_word_embeddings", false);
    c.bos_token_id = r.int_opt("bos_token_id", -1);
    c.eos_token_id = r.int_opt("eos_token_id", -1);
    for (const char* k : {"vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "head_dim",
                          "q_lora_rank", "o_groups", "o_lora_rank", "sliding_window", "n_routed_experts",
                          "num_experts_per_tok", "moe_intermediate_size", "index_n_heads", "index_head_dim",
                          "index_topk", "hc_sinkhorn_iters", "max_position_embeddings"})
        r.positive(k, r.raw()[k].get<int64_t>());
    if (c.hc_mult < 1) r.fail_field("hc_mult", "must be at least 1, got " + std::to_string(c.hc_mult));
    if (c.tie_word_embeddings) r.fail_field("tie_word_embeddings", "is true; DeepSeek-V4 has a separate head");
    if (c.n_shared_experts != 1)
        r.fail_field("n_shared_experts", "must be 1 (the official MoE asserts it), got " + std::to_string(c.n_shared_experts));
    if (c.num_attention_heads % c.o_groups != 0) r.fail_field("o_groups", "must divide num_attention_heads");
    if (c.num_experts_per_tok > c.n_routed_experts) r.fail_field("num_experts_per_tok", "exceeds n_routed_experts");
    if (!(c.swiglu_limit >= 0)) r.fail_field("swiglu_limit", "must be >= 0");

    // partial RoPE: qk_rope_head_dim (hub) or partial_rotary_factor · head_dim (transformers)
    const bool has_rd = r.present("qk_rope_head_dim"), has_prf = r.present("partial_rotary_factor");
    if (!has_rd && !has_prf) fail(src, ": field 'qk_rope_head_dim' (or 'partial_rotary_factor') is required");
    if (has_rd) c.qk_rope_head_dim = r.int_req("qk_rope_head_dim");
    if (has_prf) {
        const double f = r.num_req("partial_rotary_factor");
        const int64_t rd = (int64_t)(c.head_dim * f);
        if (has_rd && rd != c.qk_rope_head_dim)
            fail(src, ": fields 'partial_rotary_factor' and 'qk_rope_head_dim' disagree");
        c.qk_rope_head_dim = rd;
    }
    if (c.qk_rope_head_dim <= 0 || c.qk_rope_head_dim % 2 || c.qk_rope_head_dim > c.head_dim)
        r.fail_field("qk_rope_head_dim", "must be even and in (0, head_dim]");

    // MoE routing: the official Gate.forward normalizes iff the score is not a softmax; transformers' routers
    // normalize every score (they never read norm_topk_prob) and cannot build a softmax one.
    c.scoring_func = parse_moe_scoring(r.str_opt("scoring_func", "sqrtsoftplus"));
    const std::string tm = r.str_opt("topk_method", "noaux_tc");
    if (tm != "noaux_tc") r.fail_field("topk_method", "is '" + tm + "'; DeepSeek-V4 selects with noaux_tc (no groups)");
    const bool softmax = c.scoring_func == MoeScoring::Softmax;
    if (hf && softmax)
        r.fail_field("scoring_func", "is softmax, which transformers' DeepseekV4 cannot run (ACT2FN has no "
                                     "'softmax'); --compat hf has nothing to reproduce");
    c.norm_topk_prob = r.bool_opt("norm_topk_prob", !softmax);
    if (!c.norm_topk_prob && !softmax)
        r.fail_field("norm_topk_prob", "is false, but the official Gate.forward (and transformers) normalizes every "
                                       "non-softmax score");
    if (c.norm_topk_prob && softmax)
        r.fail_field("norm_topk_prob", "is true, but the official Gate.forward does not normalize softmax scores");
    for (const char* k : {"n_group", "topk_group"})
        if (r.present(k) && r.int_req(k) != 1) r.fail_field(k, "must be 1: DeepSeek-V4 routing has no groups");
    if (r.present("first_k_dense_replace") && r.int_req("first_k_dense_replace") != 0)
        r.fail_field("first_k_dense_replace", "must be 0: every DeepSeek-V4 layer is MoE");
    const std::string act = r.str_opt("hidden_act", "silu");
    if (act != "silu") r.fail_field("hidden_act", "is '" + act + "'; DeepSeek-V4 uses silu");
    if (r.bool_opt("attention_bias", false)) r.fail_field("attention_bias", "is true; DeepSeek-V4 has no biases");
    if (r.bool_opt("mlp_bias", false)) r.fail_field("mlp_bias", "is true; DeepSeek-V4 has no biases");
    const int64_t hkv = r.int_opt("num_key_value_heads", 1);
    if (hkv != 1) r.fail_field("num_key_value_heads", "must be 1 (one shared K=V head)");
    if (r.present("router_jitter_noise") && r.num_req("router_jitter_noise") != 0.0)
        r.fail_field("router_jitter_noise", "is nonzero (training-only noise that changes routing)");

    // layer schedule
    const int64_t L = c.num_hidden_layers;
    const bool has_cr = r.present("compress_ratios"), has_lt = r.present("layer_types");
    if (!has_cr && !has_lt) fail(src, ": field 'compress_ratios' (or 'layer_types') is required");
    int64_t m_csa = 4, m_hca = 128;
    if (r.object("compress_rates")) {
        FieldReader q = r.child("compress_rates");
        m_csa = q.int_opt("compressed_sparse_attention", 4);
        m_hca = q.int_opt("heavily_compressed_attention", 128);
        q.refuse_unread({});
    }
    if (m_csa != 4) fail(src, ": field 'compress_rates.compressed_sparse_attention' must be 4 (the overlapping compressor and indexer are defined for m = 4)");
    if (m_hca <= 0 || m_hca == 4) fail(src, ": field 'compress_rates.heavily_compressed_attention' must be positive and not 4");
    if (has_cr) {
        c.compress_ratio = int_list(r, "compress_ratios");
        if ((int64_t)c.compress_ratio.size() < L)
            r.fail_field("compress_ratios", "has " + std::to_string(c.compress_ratio.size()) + " entries for " +
                                                std::to_string(L) + " layers");
        for (int64_t m : c.compress_ratio)
            if (m != 0 && m != 4 && m != m_hca)
                r.fail_field("compress_ratios", "has " + std::to_string(m) + "; each entry is 0, 4 or " + std::to_string(m_hca));
    }
    if (has_lt) {
        const std::vector<std::string> lt = str_list(r, "layer_types");
        if ((int64_t)lt.size() != L) r.fail_field("layer_types", "must have num_hidden_layers entries");
        std::vector<int64_t> m;
        for (const std::string& t : lt) {
            if (t == "sliding_attention") m.push_back(0);
            else if (t == "compressed_sparse_attention") m.push_back(m_csa);
            else if (t == "heavily_compressed_attention") m.push_back(m_hca);
            else r.fail_field("layer_types", "has unknown layer type '" + t + "'");
        }
        if (has_cr) {
            for (int64_t i = 0; i < L; ++i)
                if (m[i] != c.compress_ratio[i])
                    fail(src, ": fields 'layer_types' and 'compress_ratios' disagree at layer ", i);
        } else {
            c.compress_ratio = m;
        }
    }
    // MTP blocks take the ratios after the first L; missing entries are an error only if MTP is used.
    const bool has_nh = r.present("num_hash_layers"), has_mlt = r.present("mlp_layer_types");
    if (!has_nh && !has_mlt) fail(src, ": field 'num_hash_layers' (or 'mlp_layer_types') is required");
    c.hash_layer.assign((size_t)L, false);
    if (has_nh) {
        const int64_t nh = r.int_req("num_hash_layers");
        if (nh < 0 || nh > L) r.fail_field("num_hash_layers", "must be in [0, num_hidden_layers]");
        for (int64_t i = 0; i < nh; ++i) c.hash_layer[(size_t)i] = true;
    }
    if (has_mlt) {
        const std::vector<std::string> mt = str_list(r, "mlp_layer_types");
        if ((int64_t)mt.size() != L) r.fail_field("mlp_layer_types", "must have num_hidden_layers entries");
        for (int64_t i = 0; i < L; ++i) {
            if (mt[i] != "hash_moe" && mt[i] != "moe") r.fail_field("mlp_layer_types", "has unknown type '" + mt[i] + "'");
            const bool h = mt[i] == "hash_moe";
            if (has_nh && h != c.hash_layer[(size_t)i])
                fail(src, ": fields 'mlp_layer_types' and 'num_hash_layers' disagree at layer ", i);
            c.hash_layer[(size_t)i] = h;
        }
    }

    // RoPE: rope_scaling (hub; the YaRN of the compressed layers) or rope_parameters {main, compress}
    // The cos/sin multiplier: official 1; transformers its attention_factor (the flat spelling: given, else 1.0
    // injected by its config; the nested one: given, else derived, 0.1·ln(factor) + 1).
    const bool has_rs = r.object("rope_scaling") != nullptr, has_rp = r.object("rope_parameters") != nullptr;
    double scale_rs = 1.0;
    if (has_rs) {
        FieldReader q = r.child("rope_scaling");
        const V4Yarn y = read_yarn(q, compat);
        c.compress_rope = y.s;
        if (y.s.is_yarn()) scale_rs = y.af;
        q.refuse_unread({});
    }
    c.compress_rope_scale = scale_rs;
    // a nested partial_rotary_factor sets transformers' rope dims (cos/sin size): it must give qk_rope_head_dim
    auto check_prf = [&](FieldReader& q) {
        if (q.present("partial_rotary_factor") &&
            (int64_t)(c.head_dim * q.num_req("partial_rotary_factor")) != c.qk_rope_head_dim)
            q.fail_field("partial_rotary_factor", "disagrees with qk_rope_head_dim / head_dim");
    };
    if (has_rp) {
        FieldReader p = r.child("rope_parameters");
        FieldReader mn = p.child("main");
        const std::string mtp = mn.str_opt("rope_type", "default");
        if (mtp != "default") mn.fail_field("rope_type", "must be default (window-only layers have no YaRN)");
        if (mn.present("rope_theta") && mn.num_req("rope_theta") != c.rope_theta)
            mn.fail_field("rope_theta", "disagrees with rope_theta");
        check_prf(mn);
        mn.refuse_unread({});
        FieldReader cp = p.child("compress");
        const V4Yarn y = read_yarn(cp, compat);
        const RopeScaling& s = y.s;
        // A nested rope_parameters without attention_factor: transformers' DeepseekV4Config injects 1.0 only when
        // it builds the nested form itself, so here it scales cos/sin by 0.1·ln(factor) + 1 (1.277 at 16) and
        // the official code does not.
        if (s.is_yarn() && !y.has_af && !hf)
            cp.fail_field("attention_factor", "is absent: transformers scales cos/sin by 0.1*ln(factor)+1 there, the "
                                              "official code does not; give 1.0 for the official code, or run with "
                                              "--compat hf to reproduce transformers");
        const double scale_rp = !s.is_yarn() ? 1.0 : y.has_af ? y.af : yarn_get_mscale(s.factor, 1.0);
        if (has_rs && scale_rp != scale_rs)
            fail(src, ": fields 'rope_scaling' and 'rope_parameters.compress' give transformers different "
                      "attention_factor (", scale_rs, " and ", scale_rp, ")");
        c.compress_rope_scale = scale_rp;
        if (cp.present("rope_theta") && cp.num_req("rope_theta") != c.compress_rope_theta)
            cp.fail_field("rope_theta", "disagrees with compress_rope_theta");
        check_prf(cp);
        cp.refuse_unread({});
        p.refuse_unread({});
        if (has_rs && (s.type != c.compress_rope.type || s.factor != c.compress_rope.factor ||
                       s.original_max_position_embeddings != c.compress_rope.original_max_position_embeddings ||
                       s.beta_fast != c.compress_rope.beta_fast || s.beta_slow != c.compress_rope.beta_slow))
            fail(src, ": fields 'rope_scaling' and 'rope_parameters.compress' disagree");
        c.compress_rope = s;
    }

    // weights
    if (r.object("quantization_config")) {
        FieldReader q = r.child("quantization_config");
        const std::string method = q.str_opt("quant_method", "");
        if (method != "fp8") q.fail_field("quant_method", "is '" + method + "', which dsref does not model (fp8)");
        const std::string fmt = q.str_opt("fmt", "e4m3");
        if (fmt != "e4m3") q.fail_field("fmt", "must be e4m3");
        q.str_opt("activation_scheme", "dynamic");  // only the W8A8 emulation would use it; not modelled
        q.str_opt("scale_fmt", "");                 // ue8m0 scales: read from the stored scale tensors' dtype
        if (q.present("weight_block_size")) {
            const json& b = q.raw()["weight_block_size"];
            if (b != json::array({128, 128})) q.fail_field("weight_block_size", "must be [128, 128]");
        }
        const std::string ed = q.str_opt("expert_dtype", "");
        if (!ed.empty() && ed != "fp4") q.fail_field("expert_dtype", "is '" + ed + "' (fp4 or absent)");
        if (ed == "fp4") c.fp4_experts = true;
        q.refuse_unread(harmless_quantization_keys());
        c.fp8_weights = true;
    }
    const std::string ed = r.str_opt("expert_dtype", "");
    if (!ed.empty() && ed != "fp4") r.fail_field("expert_dtype", "is '" + ed + "' (fp4 or absent)");
    if (ed == "fp4") c.fp4_experts = true;
    r.str_opt("torch_dtype", "");  // the storage dtype of float tensors: read per tensor
    r.str_opt("dtype", "");
    r.str_opt("scale_fmt", "");
    r.refuse_unread(harmless_config_keys());
    return c;
}

// A directory means its config.json; the file is read as load_config reads it (io/regular_file.h: a FIFO,
// directory or device is refused naming the path, and the size is bounded).
static std::string config_file(const std::string& path) {
    struct stat st;
    if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return path + "/config.json";
    return path;
}

static std::string config_text(const std::string& file) { return read_regular_file(file, "config", 16u << 20); }

bool path_is_v4_config(const std::string& path) {
    struct stat st;
    if (::stat(config_file(path).c_str(), &st) != 0) return false;  // load_config reports the missing file
    const json j = json::parse(config_text(config_file(path)), nullptr, false);
    return !j.is_discarded() && is_v4_config(j);
}

V4Config load_v4_config(const std::string& path, V4Compat compat) {
    const std::string file = config_file(path);
    json j;
    try {
        j = json::parse(config_text(file));
    } catch (const json::exception& e) {
        fail(file, ": not valid JSON (", e.what(), ")");
    }
    return parse_v4_config(j, file, compat);
}

}  // namespace dsref
