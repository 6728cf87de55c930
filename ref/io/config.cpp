// config.cpp — parsing and validation of HF config.json. Every field goes through a FieldReader
// (io/config_keys.h), and whatever was not read must be on the allow-list of harmless keys.
#include "io/config.h"

#include <sys/stat.h>

#include <cmath>
#include <fstream>

#include "core/error.h"
#include "io/regular_file.h"

namespace dsref {

using json = nlohmann::json;

const char* arch_name(Arch a) {
    switch (a) {
        case Arch::Llama: return "llama";
        case Arch::Qwen2: return "qwen2";
        case Arch::DeepseekV2: return "deepseek_v2";
        case Arch::DeepseekV3: return "deepseek_v3";
        case Arch::DeepseekV32: return "deepseek_v32";
    }
    return "?";
}

bool ModelConfig::is_moe_layer(int64_t i) const {
    return has_moe() && i >= first_k_dense_replace && i % moe_layer_freq == 0;
}

MoeGateConfig ModelConfig::moe_gate() const {
    MoeGateConfig g;
    g.E = n_routed_experts;
    g.K = num_experts_per_tok;
    g.n_group = n_group;
    g.topk_group = topk_group;
    g.scoring = scoring_func;
    g.topk_method = topk_method;
    g.norm_topk_prob = norm_topk_prob;
    g.routed_scaling_factor = routed_scaling_factor;
    return g;
}

namespace {

// eos_token_id may be an int or a list of ints (the first is used); they only stop `generate`.
int64_t token_id(FieldReader& r, const char* k) {
    if (!r.present(k)) return -1;
    const json& v = r.raw()[k];
    if (v.is_number_integer()) return v.get<int64_t>();
    if (v.is_array()) {
        for (const json& e : v)
            if (!e.is_number_integer()) r.fail_field(k, "must be an integer or a list of integers, got " + v.dump());
        return v.empty() ? -1 : v[0].get<int64_t>();
    }
    r.fail_field(k, "must be an integer or a list of integers, got " + v.dump());
}

// One RoPE description, read from `rope_scaling` or `rope_parameters`.
struct RopeSpec {
    bool has_theta = false;
    double theta = 0;
    RopeScaling s;
};

// transformers' cos/sin multiplier for YaRN ("attention_factor", modeling_rope_utils.py
// _compute_yarn_parameters): the given attention_factor, else get_mscale(s, mscale) /
// get_mscale(s, mscale_all_dim) when both keys are non-zero, else get_mscale(s) = 0.1·ln s + 1.
double hf_yarn_attention_factor(const RopeScaling& s, bool has_mscale, bool has_mscale_all_dim, bool has_af, double af) {
    if (has_af) return af;
    if (has_mscale && has_mscale_all_dim && s.mscale != 0 && s.mscale_all_dim != 0)
        return yarn_get_mscale(s.factor, s.mscale) / yarn_get_mscale(s.factor, s.mscale_all_dim);
    return yarn_get_mscale(s.factor, 1.0);
}

// hf_check: refuse YaRN configs on which transformers and the official code disagree (config files;
// the op attributes are the official ModelArgs fields and have no cos/sin factor).
RopeSpec read_rope_object(FieldReader& q, bool hf_check) {
    RopeSpec out;
    const bool has_type = q.present("type"), has_rope_type = q.present("rope_type");
    const std::string t_type = q.str_opt("type", ""), t_rope_type = q.str_opt("rope_type", "");
    if (has_type && has_rope_type && t_type != t_rope_type)
        fail(q.source(), ": fields '", q.field("type"), "' (", t_type, ") and '", q.field("rope_type"), "' (",
             t_rope_type, ") disagree");
    const std::string type_field = has_rope_type ? "rope_type" : "type";
    const std::string type = has_rope_type ? t_rope_type : t_type;
    if (q.present("rope_theta")) {
        out.has_theta = true;
        out.theta = q.num_req("rope_theta");
    }
    if (q.present("partial_rotary_factor") && q.num_req("partial_rotary_factor") != 1.0)
        q.fail_field("partial_rotary_factor", "is " + q.raw()["partial_rotary_factor"].dump() +
                                                  "; dsref rotates whole heads (partial rotary RoPE is not modelled)");
    RopeScaling& s = out.s;
    if (type.empty() || type == "default" || type == "none") {
        s.type = RopeScalingType::None;
    } else if (type == "yarn") {
        s.type = RopeScalingType::Yarn;
        s.factor = q.num_req("factor");
        if (!(s.factor > 0) || !std::isfinite(s.factor))
            q.fail_field("factor", "must be > 0, got " + q.raw()["factor"].dump());
        s.original_max_position_embeddings = q.int_req("original_max_position_embeddings");
        q.positive("original_max_position_embeddings", s.original_max_position_embeddings);
        s.beta_fast = q.num_opt("beta_fast", 32.0);
        s.beta_slow = q.num_opt("beta_slow", 1.0);
        if (!(s.beta_fast > 0)) q.fail_field("beta_fast", "must be positive");
        if (!(s.beta_slow > 0)) q.fail_field("beta_slow", "must be positive");
        const bool has_m = q.present("mscale"), has_m_all = q.present("mscale_all_dim");
        s.mscale = q.num_opt("mscale", 1.0);
        s.mscale_all_dim = q.num_opt("mscale_all_dim", 0.0);
        if (!q.bool_opt("truncate", true))
            q.fail_field("truncate", "is false; dsref uses the truncated (floor/ceil) YaRN correction range of the "
                                     "official code (model.py precompute_freqs_cis)");
        const bool has_af = q.present("attention_factor");
        const double af = q.num_opt("attention_factor", 1.0);
        // The official code never scales cos/sin (the YaRN magnitude goes into the softmax scale, mla.h);
        // transformers multiplies them by its attention factor. dsref models the configs where the two
        // agree (mscale == mscale_all_dim, every released DeepSeek config) and refuses the others.
        const double hf = hf_yarn_attention_factor(s, has_m, has_m_all, has_af, af);
        if (hf_check && std::fabs(hf - 1.0) > 1e-12)
            fail(q.source(), ": fields '", q.field("mscale"), "' and '", q.field("mscale_all_dim"), "'",
                 has_af ? " (and '" + q.field("attention_factor") + "')" : std::string(),
                 " make transformers multiply cos/sin by ", hf,
                 ", which the official DeepSeek code never does; dsref refuses rather than pick one "
                 "(give mscale == mscale_all_dim, as every released DeepSeek config does)");
    } else if (type == "llama3") {
        s.type = RopeScalingType::Llama3;
        s.factor = q.num_req("factor");
        if (!(s.factor > 0) || !std::isfinite(s.factor))
            q.fail_field("factor", "must be > 0, got " + q.raw()["factor"].dump());
        s.low_freq_factor = q.num_req("low_freq_factor");
        s.high_freq_factor = q.num_req("high_freq_factor");
        if (!(s.low_freq_factor > 0)) q.fail_field("low_freq_factor", "must be > 0");
        if (!(s.high_freq_factor > s.low_freq_factor))
            q.fail_field("high_freq_factor", "must be larger than low_freq_factor (" +
                                                 std::to_string(s.low_freq_factor) + ")");
        s.original_max_position_embeddings = q.int_req("original_max_position_embeddings");
        q.positive("original_max_position_embeddings", s.original_max_position_embeddings);
    } else {
        q.fail_field(type_field, "is '" + type + "', which dsref does not model (default, yarn, llama3)");
    }
    q.refuse_unread({});
    return out;
}

// The first RoPE field on which two descriptions differ, or "" when they agree.
std::string rope_difference(const RopeScaling& a, const RopeScaling& b) {
    if (a.type != b.type) return "rope_type";
    if (a.type == RopeScalingType::None) return "";
    if (a.factor != b.factor) return "factor";
    if (a.original_max_position_embeddings != b.original_max_position_embeddings)
        return "original_max_position_embeddings";
    if (a.beta_fast != b.beta_fast) return "beta_fast";
    if (a.beta_slow != b.beta_slow) return "beta_slow";
    if (a.mscale != b.mscale) return "mscale";
    if (a.mscale_all_dim != b.mscale_all_dim) return "mscale_all_dim";
    if (a.low_freq_factor != b.low_freq_factor) return "low_freq_factor";
    if (a.high_freq_factor != b.high_freq_factor) return "high_freq_factor";
    return "";
}

// DeepSeek-V3's MoE fields whose absence cannot be filled in safely. transformers 5 writes V3 configs
// without scoring_func / topk_method / norm_topk_prob because DeepseekV3TopkRouter hard-codes sigmoid
// scores, noaux_tc selection and normalisation (as the V3 hub config and the official code use), so
// those default to the V3 values. The others have defaults that differ between DeepseekV3Config
// (n_group 8, topk_group 4, routed_scaling_factor 2.5) and the official ModelArgs (1, 1, 1.0), so a
// V3 config with routed experts must give them.
void v3_moe_defaults(FieldReader& r, ModelConfig& c) {
    if (!r.present("scoring_func")) c.scoring_func = MoeScoring::Sigmoid;
    if (!r.present("topk_method")) c.topk_method = MoeTopk::NoauxTc;
    if (!r.present("norm_topk_prob")) c.norm_topk_prob = true;
    if (c.n_routed_experts > 0)
        for (const char* k : {"n_group", "topk_group", "routed_scaling_factor"})
            if (!r.present(k))
                fail(r.source(), ": missing required field '", k,
                     "' (a ", arch_name(c.arch), " config with routed experts must give it: transformers' and the official "
                     "code's defaults differ)");
}

}  // namespace

void parse_rope_section(FieldReader& r, ModelConfig& c, bool config_file) {
    const std::string& src = r.source();
    const bool has_top_theta = r.present("rope_theta");
    const double top_theta = r.num_opt("rope_theta", 10000.0);
    if (r.present("partial_rotary_factor") && r.num_req("partial_rotary_factor") != 1.0)
        r.fail_field("partial_rotary_factor", "is not 1; dsref rotates whole heads (partial rotary RoPE is not modelled)");
    const bool has_scaling = r.object("rope_scaling") != nullptr, has_params = r.object("rope_parameters") != nullptr;
    RopeSpec scaling, params;
    if (has_scaling) {
        FieldReader q = r.child("rope_scaling");
        scaling = read_rope_object(q, config_file && c.is_mla());
    }
    if (has_params) {
        FieldReader q = r.child("rope_parameters");
        params = read_rope_object(q, config_file && c.is_mla());
    }
    // theta: top-level rope_theta, rope_parameters.rope_theta (or, rarely, rope_scaling.rope_theta);
    // all that are given must agree.
    struct Theta {
        const char* field;
        bool given;
        double value;
    };
    const Theta thetas[] = {{"rope_theta", has_top_theta, top_theta},
                            {"rope_parameters.rope_theta", params.has_theta, params.theta},
                            {"rope_scaling.rope_theta", scaling.has_theta, scaling.theta}};
    const Theta* first = nullptr;
    for (const Theta& t : thetas) {
        if (!t.given) continue;
        if (first && t.value != first->value)
            fail(src, ": fields '", first->field, "' (", first->value, ") and '", t.field, "' (", t.value,
                 ") disagree");
        if (!first) first = &t;
    }
    c.rope_theta = first ? first->value : 10000.0;  // transformers' default_theta
    if (!(c.rope_theta > 1) || !std::isfinite(c.rope_theta))
        fail(src, ": field '", first ? first->field : "rope_theta", "' must be > 1, got ", c.rope_theta);
    if (has_scaling && has_params) {
        const std::string f = rope_difference(scaling.s, params.s);
        if (!f.empty())
            fail(src, ": fields 'rope_scaling.", f, "' and 'rope_parameters.", f,
                 "' disagree (transformers 4 and 5 spellings of the same RoPE must describe the same one)");
    }
    c.rope_scaling = has_params ? params.s : scaling.s;
}

void parse_mla_section(FieldReader& r, ModelConfig& c) {
    c.q_lora_rank = r.int_opt("q_lora_rank", 0);  // null → 0 → no query compression
    c.kv_lora_rank = r.int_req("kv_lora_rank");
    c.qk_nope_head_dim = r.int_req("qk_nope_head_dim");
    c.qk_rope_head_dim = r.int_req("qk_rope_head_dim");
    c.v_head_dim = r.int_req("v_head_dim");
    if (c.q_lora_rank < 0) r.fail_field("q_lora_rank", "must be null or non-negative");
    r.positive("kv_lora_rank", c.kv_lora_rank);
    r.positive("qk_nope_head_dim", c.qk_nope_head_dim);
    r.positive("qk_rope_head_dim", c.qk_rope_head_dim);
    r.positive("v_head_dim", c.v_head_dim);
    if (c.qk_rope_head_dim % 2) r.fail_field("qk_rope_head_dim", "must be even, got " + std::to_string(c.qk_rope_head_dim));
}

void parse_moe_section(FieldReader& r, ModelConfig& c) {
    c.n_routed_experts = r.int_opt("n_routed_experts", 0);
    c.n_shared_experts = r.int_opt("n_shared_experts", 0);
    c.num_experts_per_tok = r.int_opt("num_experts_per_tok", 0);
    c.moe_intermediate_size = r.int_opt("moe_intermediate_size", 0);
    c.n_group = r.int_opt("n_group", 1);
    c.topk_group = r.int_opt("topk_group", 1);
    c.first_k_dense_replace = r.int_opt("first_k_dense_replace", 0);
    c.moe_layer_freq = r.int_opt("moe_layer_freq", 1);
    c.routed_scaling_factor = r.num_opt("routed_scaling_factor", 1.0);
    try {
        c.scoring_func = parse_moe_scoring(r.str_opt("scoring_func", "softmax"));
        c.topk_method = parse_moe_topk(r.str_opt("topk_method", "greedy"));
    } catch (const Error& e) {
        fail(r.source(), ": ", e.what());
    }
    c.norm_topk_prob = r.bool_opt("norm_topk_prob", false);
    c.num_nextn_predict_layers = r.int_opt("num_nextn_predict_layers", 0);
    if (c.n_routed_experts < 0) r.fail_field("n_routed_experts", "must be non-negative");
    if (c.moe_layer_freq <= 0) r.fail_field("moe_layer_freq", "must be positive");
    if (c.first_k_dense_replace < 0) r.fail_field("first_k_dense_replace", "must be non-negative");
    if (c.num_nextn_predict_layers < 0) r.fail_field("num_nextn_predict_layers", "must be non-negative");
    // The gate's own checks (moe/moe_gate.h), here once, so that `info` and `init` refuse a MoE config
    // that `forward` would refuse (groups not dividing the experts, topk_group > n_group, k > experts).
    // Only when some layer is MoE (the first multiple of moe_layer_freq at or after first_k_dense_replace),
    // as the model checks it: a config whose layers are all dense may leave the gate fields unset.
    const int64_t first_moe = (c.first_k_dense_replace + c.moe_layer_freq - 1) / c.moe_layer_freq * c.moe_layer_freq;
    if (c.n_routed_experts > 0 && first_moe < c.num_hidden_layers) {
        const MoeGateConfig g = c.moe_gate();
        try {
            moe_gate_check(g, -1);
        } catch (const Error& e) {
            fail(r.source(), ": ", e.what());
        }
    }
}

// DeepSeek Sparse Attention (V3.2; DeepSeek-V3.2-Exp inference/model.py Indexer). The indexer's query
// comes from MLA's compressed query qr, so q_lora_rank must be positive; its RoPE covers the first
// qk_rope_head_dim of index_head_dim dims. transformers' DeepseekV32Config defaults (64, 128, 2048) are
// not assumed: a config must say them.
void parse_indexer_section(FieldReader& r, ModelConfig& c) {
    c.index_n_heads = r.int_req("index_n_heads");
    c.index_head_dim = r.int_req("index_head_dim");
    c.index_topk = r.int_req("index_topk");
    r.positive("index_n_heads", c.index_n_heads);
    r.positive("index_head_dim", c.index_head_dim);
    r.positive("index_topk", c.index_topk);
    if (c.index_head_dim < c.qk_rope_head_dim)
        r.fail_field("index_head_dim", "is " + std::to_string(c.index_head_dim) + ", less than qk_rope_head_dim = " +
                                           std::to_string(c.qk_rope_head_dim) + " (the indexer's RoPE dims)");
    if (c.q_lora_rank <= 0)
        r.fail_field("q_lora_rank", "must be positive in a deepseek_v32 config (the indexer's query is wq_b(qr) of "
                                    "MLA's compressed query)");
    // transformers 5 writes every layer as "indexed_attention" and the MLP kinds it derives from
    // first_k_dense_replace; both must agree with what dsref runs.
    if (r.present("layer_types")) {
        const json& lt = r.raw()["layer_types"];
        if (!lt.is_array() || (int64_t)lt.size() != c.num_hidden_layers)
            r.fail_field("layer_types", "must be a list of num_hidden_layers = " + std::to_string(c.num_hidden_layers) +
                                            " strings");
        for (size_t i = 0; i < lt.size(); i++)
            if (lt[i] != "indexed_attention")
                r.fail_field("layer_types", "[" + std::to_string(i) + "] is " + lt[i].dump() +
                                                "; every deepseek_v32 layer is \"indexed_attention\"");
    }
    if (r.present("mlp_layer_types")) {
        const json& mt = r.raw()["mlp_layer_types"];
        if (!mt.is_array() || (int64_t)mt.size() != c.num_hidden_layers)
            r.fail_field("mlp_layer_types", "must be a list of num_hidden_layers = " +
                                                std::to_string(c.num_hidden_layers) + " strings");
        for (int64_t i = 0; i < c.num_hidden_layers; i++) {
            const char* want = c.is_moe_layer(i) ? "sparse" : "dense";
            if (mt[i] != want)
                r.fail_field("mlp_layer_types", "[" + std::to_string(i) + "] is " + mt[i].dump() + ", but " +
                                                    "first_k_dense_replace / moe_layer_freq make layer " +
                                                    std::to_string(i) + " \"" + want + "\"");
        }
    }
}

void parse_rope_section(const json& j, const std::string& src, ModelConfig& c) {
    FieldReader r(j, src);
    parse_rope_section(r, c, false);
}
void parse_mla_section(const json& j, const std::string& src, ModelConfig& c) {
    FieldReader r(j, src);
    parse_mla_section(r, c);
}
void parse_moe_section(const json& j, const std::string& src, ModelConfig& c) {
    FieldReader r(j, src);
    parse_moe_section(r, c);
}

// Qwen2 (transformers' modeling_qwen2.py Qwen2Attention): q/k/v projections with biases, o_proj without,
// GQA with half-split RoPE. The sliding-window attention of Qwen2 is not modelled, so every layer must use
// full attention: use_sliding_window false (then sliding_window and max_window_layers are unused), and
// transformers 5's layer_types, when given, all "full_attention".
static void parse_qwen2_section(FieldReader& r, ModelConfig& c) {
    c.qkv_bias = true;
    if (r.bool_opt("use_sliding_window", false))
        r.fail_field("use_sliding_window", "is true; dsref does not model Qwen2's sliding-window attention");
    if (r.present("sliding_window") && r.int_req("sliding_window") <= 0)
        r.fail_field("sliding_window", "must be a positive integer or null");
    if (r.present("max_window_layers") && r.int_req("max_window_layers") < 0)
        r.fail_field("max_window_layers", "must be a non-negative integer");
    if (r.bool_opt("use_mrope", false)) r.fail_field("use_mrope", "is true; multimodal RoPE is not modelled");
    if (r.present("layer_types")) {
        const json& lt = r.raw()["layer_types"];
        if (!lt.is_array() || (int64_t)lt.size() != c.num_hidden_layers)
            r.fail_field("layer_types", "must be a list of num_hidden_layers = " + std::to_string(c.num_hidden_layers) +
                                            " strings");
        for (size_t i = 0; i < lt.size(); i++)
            if (lt[i] != "full_attention")
                r.fail_field("layer_types", "[" + std::to_string(i) + "] is " + lt[i].dump() +
                                                "; dsref models full attention only (no sliding window)");
    }
}

// quantization_config (DeepSeek-V3 report §3.3; HF's fine-grained FP8 config): block-FP8 weights,
// dynamic 1×128 activation scales, and V3.1's optional power-of-two (ue8m0) scales.
static void parse_quantization(FieldReader& r, ModelConfig& c) {
    bool has_qc = false;
    std::string qc_fmt;
    if (r.object("quantization_config")) {
        has_qc = true;
        FieldReader q = r.child("quantization_config");
        const std::string method = q.str_opt("quant_method", "");
        if (method != "fp8")
            q.fail_field("quant_method", "is '" + method + "', which dsref does not model (fp8)");
        c.fp8_weights = true;
        const std::string fmt = q.str_opt("fmt", "e4m3");
        if (fmt != "e4m3") q.fail_field("fmt", "is '" + fmt + "'; DeepSeek's FP8 weights are e4m3");
        const std::string act = q.str_opt("activation_scheme", "dynamic");
        if (act != "dynamic")
            q.fail_field("activation_scheme", "is '" + act + "'; dsref models dynamic (per-1x128) activation scales");
        if (q.present("weight_block_size")) {
            const json& b = q.raw()["weight_block_size"];
            if (!b.is_array() || b.size() != 2 || !b[0].is_number_integer() || !b[1].is_number_integer() ||
                b[0].get<int64_t>() <= 0 || b[1].get<int64_t>() <= 0)
                q.fail_field("weight_block_size", "must be two positive integers, got " + b.dump());
            c.fp8_block_rows = b[0].get<int64_t>();
            c.fp8_block_cols = b[1].get<int64_t>();
        }
        qc_fmt = q.str_opt("scale_fmt", "");
        q.refuse_unread(harmless_quantization_keys());
    }
    const std::string top_fmt = r.str_opt("scale_fmt", "");
    if (!qc_fmt.empty() && !top_fmt.empty() && qc_fmt != top_fmt)
        fail(r.source(), ": fields 'scale_fmt' (", top_fmt, ") and 'quantization_config.scale_fmt' (", qc_fmt,
             ") disagree");
    const std::string fmt = qc_fmt.empty() ? top_fmt : qc_fmt;
    const char* field = qc_fmt.empty() ? "scale_fmt" : "quantization_config.scale_fmt";
    if (fmt == "ue8m0") c.fp8_scale_fmt = Fp8ScaleFmt::Ue8m0;
    else if (!fmt.empty()) fail(r.source(), ": field '", field, "' is '", fmt, "', which dsref does not model (ue8m0)");
    if (!fmt.empty() && !has_qc)
        fail(r.source(), ": field 'scale_fmt' is given but there is no quantization_config (FP8 weights)");
}

ModelConfig parse_config(const json& j, const std::string& src) {
    if (!j.is_object()) fail(src, ": config is not a JSON object");
    FieldReader r(j, src);
    ModelConfig c;
    c.source = src;
    c.raw = j;

    // Architecture: model_type first, then architectures[0].
    const std::string mt = r.str_opt("model_type", "");
    std::string archs;
    if (r.present("architectures")) {
        const json& a = j["architectures"];
        if (!a.is_array()) r.fail_field("architectures", "must be a list of strings, got " + a.dump());
        for (const json& e : a)
            if (!e.is_string()) r.fail_field("architectures", "must be a list of strings, got " + a.dump());
        if (!a.empty()) archs = a[0].get<std::string>();
    }
    if (mt == "llama" || (mt.empty() && archs == "LlamaForCausalLM")) c.arch = Arch::Llama;
    else if (mt == "qwen2" || (mt.empty() && archs == "Qwen2ForCausalLM")) c.arch = Arch::Qwen2;
    else if (mt == "deepseek_v2" || (mt.empty() && archs == "DeepseekV2ForCausalLM")) c.arch = Arch::DeepseekV2;
    else if (mt == "deepseek_v3" || (mt.empty() && archs == "DeepseekV3ForCausalLM")) c.arch = Arch::DeepseekV3;
    else if (mt == "deepseek_v32" || (mt.empty() && archs == "DeepseekV32ForCausalLM")) c.arch = Arch::DeepseekV32;
    else if (mt == "deepseek_v4" || (mt.empty() && archs == "DeepseekV4ForCausalLM"))
        fail(src, ": deepseek_v4: `dsref info` reads this config (io/config_v4.h) and the V4 blocks exist "
                  "(model/v4_attention.h, core/hyper_connection.h), but the full V4 forward, generate and init "
                  "are not implemented yet");
    else fail(src, ": unsupported architecture (model_type '", mt, "', architectures '", archs,
              "'); dsref runs llama (DeepSeek LLM, R1-Distill-Llama), qwen2 (R1-Distill-Qwen), deepseek_v2, "
              "deepseek_v3 and deepseek_v32");

    c.hidden_size = r.int_req("hidden_size");
    c.num_hidden_layers = r.int_req("num_hidden_layers");
    c.num_attention_heads = r.int_req("num_attention_heads");
    c.vocab_size = r.int_req("vocab_size");
    c.intermediate_size = r.int_req("intermediate_size");
    r.positive("hidden_size", c.hidden_size);
    r.positive("num_hidden_layers", c.num_hidden_layers);
    r.positive("num_attention_heads", c.num_attention_heads);
    r.positive("vocab_size", c.vocab_size);
    r.positive("intermediate_size", c.intermediate_size);
    c.num_key_value_heads = r.int_opt("num_key_value_heads", c.num_attention_heads);
    c.rms_norm_eps = r.num_opt("rms_norm_eps", 1e-6);
    if (!(c.rms_norm_eps > 0)) r.fail_field("rms_norm_eps", "must be positive");
    c.max_position_embeddings = r.int_opt("max_position_embeddings", 0);
    c.tie_word_embeddings = r.bool_opt("tie_word_embeddings", false);
    c.bos_token_id = token_id(r, "bos_token_id");
    c.eos_token_id = token_id(r, "eos_token_id");
    // The storage dtype (transformers 4 `torch_dtype`, 5 `dtype`): informative only, each tensor is read in
    // the dtype it is stored in.
    c.torch_dtype = r.str_opt("torch_dtype", "");
    const std::string dtype = r.str_opt("dtype", "");
    if (c.torch_dtype.empty()) c.torch_dtype = dtype;
    const std::string act = r.str_opt("hidden_act", "silu");
    if (act != "silu") r.fail_field("hidden_act", "is '" + act + "'; only silu (SwiGLU) is modelled");
    if (r.bool_opt("attention_bias", false))
        r.fail_field("attention_bias", "is true; dsref models no attention biases for this architecture");
    if (r.bool_opt("mlp_bias", false)) r.fail_field("mlp_bias", "is true; dsref models no MLP biases");
    // transformers 4 split each projection into pretraining_tp slices and summed them: the same product
    // up to float rounding (transformers 5 ignores the field). Any positive value is the same model.
    if (r.int_opt("pretraining_tp", 1) < 1) r.fail_field("pretraining_tp", "must be a positive integer");

    parse_rope_section(r, c);

    if (c.arch == Arch::Llama || c.arch == Arch::Qwen2) {
        if (c.arch == Arch::Qwen2) parse_qwen2_section(r, c);
        c.head_dim = r.int_opt("head_dim", 0);
        if (c.head_dim == 0) {
            if (c.hidden_size % c.num_attention_heads != 0)
                fail(src, ": hidden_size ", c.hidden_size, " is not divisible by num_attention_heads ",
                     c.num_attention_heads, " and no head_dim is given");
            c.head_dim = c.hidden_size / c.num_attention_heads;
        }
        r.positive("head_dim", c.head_dim);
        if (c.head_dim % 2) r.fail_field("head_dim", "must be even for RoPE, got " + std::to_string(c.head_dim));
        r.positive("num_key_value_heads", c.num_key_value_heads);
        if (c.num_key_value_heads > c.num_attention_heads)
            fail(src, ": num_key_value_heads ", c.num_key_value_heads, " exceeds num_attention_heads ",
                 c.num_attention_heads);
        if (c.rope_scaling.is_yarn())
            fail(src, ": rope_scaling yarn on a ", arch_name(c.arch),
                 " config is not supported (dsref models YaRN for MLA only; Llama 3 scaling is rope_type llama3)");
        r.refuse_unread(harmless_config_keys());
        return c;
    }
    if (c.rope_scaling.type == RopeScalingType::Llama3)
        fail(src, ": rope_type llama3 on a ", arch_name(c.arch), " config is not supported (DeepSeek MLA uses YaRN)");

    // ---- DeepSeek V2 / V3: MLA + MoE fields ----
    // head_dim: DeepseekV2/V3Config overwrite it with qk_rope_head_dim (the RoPE dimension); never read
    // as an attention head size.
    c.head_dim = r.int_opt("head_dim", 0);
    parse_mla_section(r, c);
    parse_moe_section(r, c);
    if (c.arch == Arch::DeepseekV3 || c.arch == Arch::DeepseekV32) v3_moe_defaults(r, c);
    if (c.has_indexer()) parse_indexer_section(r, c);
    // qk_head_dim (written by transformers 5) is derived; it must say the same.
    if (r.present("qk_head_dim") && r.int_req("qk_head_dim") != c.qk_head_dim())
        r.fail_field("qk_head_dim", "is " + std::to_string(r.int_req("qk_head_dim")) + ", but qk_nope_head_dim + " +
                                        "qk_rope_head_dim = " + std::to_string(c.qk_head_dim()));
    // rope_interleave (transformers' V3): true = the checkpoint's adjacent RoPE pairs, which is what the
    // official code and dsref compute; false would pair x[j] with x[j + d_r/2].
    if (!r.bool_opt("rope_interleave", true))
        r.fail_field("rope_interleave", "is false; dsref rotates the checkpoint's adjacent (2j, 2j+1) pairs as the "
                                        "official code does (half-split pairing of MLA is not modelled)");
    parse_quantization(r, c);
    r.refuse_unread(harmless_config_keys());
    return c;
}

ModelConfig load_config(const std::string& path) {
    struct stat st;
    std::string file = path;
    if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) file = path + "/config.json";
    // A real config.json is a few kB; 16 MB leaves room for any annotated one and bounds the parse.
    const std::string text = read_regular_file(file, "config", 16u << 20);
    json j;
    try {
        j = json::parse(text);
    } catch (const json::exception& e) {
        fail(file, ": not valid JSON: ", e.what());
    }
    return parse_config(j, file);
}

}  // namespace dsref
