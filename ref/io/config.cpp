// config.cpp — parsing and validation of HF config.json (spec 1).
#include "io/config.h"

#include <sys/stat.h>

#include <fstream>

#include "core/error.h"

namespace dsref {

using json = nlohmann::json;

const char* arch_name(Arch a) {
    switch (a) {
        case Arch::Llama: return "llama";
        case Arch::DeepseekV2: return "deepseek_v2";
        case Arch::DeepseekV3: return "deepseek_v3";
    }
    return "?";
}

bool ModelConfig::is_moe_layer(int64_t i) const {
    return has_moe() && i >= first_k_dense_replace && i % moe_layer_freq == 0;
}

namespace {
// Typed field readers: each names the file and the field on error.
struct Reader {
    const json& j;
    const std::string& src;
    bool present(const char* k) const { return j.contains(k) && !j[k].is_null(); }
    int64_t int_req(const char* k) const {
        if (!present(k)) fail(src, ": missing required field '", k, "'");
        return int_at(j[k], k);
    }
    int64_t int_opt(const char* k, int64_t def) const { return present(k) ? int_at(j[k], k) : def; }
    int64_t int_at(const json& v, const std::string& k) const {
        if (v.is_number_integer()) return v.get<int64_t>();
        if (v.is_number_float() && v.get<double>() == (double)(int64_t)v.get<double>()) return (int64_t)v.get<double>();
        fail(src, ": field '", k, "' must be an integer, got ", v.dump());
    }
    double num_opt(const char* k, double def) const { return present(k) ? num_at(j[k], k) : def; }
    double num_at(const json& v, const std::string& k) const {
        if (!v.is_number()) fail(src, ": field '", k, "' must be a number, got ", v.dump());
        return v.get<double>();
    }
    bool bool_opt(const char* k, bool def) const {
        if (!present(k)) return def;
        if (!j[k].is_boolean()) fail(src, ": field '", k, "' must be true or false, got ", j[k].dump());
        return j[k].get<bool>();
    }
    std::string str_opt(const char* k, const std::string& def) const {
        if (!present(k)) return def;
        if (!j[k].is_string()) fail(src, ": field '", k, "' must be a string, got ", j[k].dump());
        return j[k].get<std::string>();
    }
    void positive(const char* k, int64_t v) const {
        if (v <= 0) fail(src, ": field '", k, "' must be positive, got ", v);
    }
};

// eos_token_id may be an int or a list of ints (the first is used).
int64_t token_id(const json& j, const char* k) {
    if (!j.contains(k) || j[k].is_null()) return -1;
    if (j[k].is_number_integer()) return j[k].get<int64_t>();
    if (j[k].is_array() && !j[k].empty() && j[k][0].is_number_integer()) return j[k][0].get<int64_t>();
    return -1;
}
}  // namespace

void parse_rope_section(const json& j, const std::string& src, ModelConfig& c) {
    Reader r{j, src};
    c.rope_theta = r.num_opt("rope_theta", 10000.0);
    if (!(c.rope_theta > 1)) fail(src, ": field 'rope_theta' must be > 1, got ", c.rope_theta);
    // rope_scaling: absent / null → plain RoPE.
    if (r.present("rope_scaling")) {
        const json& rs = j["rope_scaling"];
        const std::string f = src + " rope_scaling";
        if (!rs.is_object()) fail(src, ": field 'rope_scaling' must be an object or null");
        Reader q{rs, f};
        std::string type = q.str_opt("type", q.str_opt("rope_type", ""));
        if (type == "default") type = "none";
        if (type != "yarn" && type != "none")
            fail(src, ": rope_scaling type '", type, "' is not supported (yarn, or null for plain RoPE)");
        c.rope_scaling.type = type == "yarn" ? RopeScalingType::Yarn : RopeScalingType::None;
        if (type == "yarn") {
            c.rope_scaling.factor = q.num_opt("factor", 0.0);
            if (!(c.rope_scaling.factor > 0))
                fail(src, ": field 'rope_scaling.factor' must be > 0, got ", rs.value("factor", json()).dump());
            c.rope_scaling.original_max_position_embeddings = q.int_opt("original_max_position_embeddings", 0);
            if (c.rope_scaling.original_max_position_embeddings <= 0)
                fail(src, ": field 'rope_scaling.original_max_position_embeddings' must be a positive integer");
            c.rope_scaling.beta_fast = q.num_opt("beta_fast", 32.0);
            c.rope_scaling.beta_slow = q.num_opt("beta_slow", 1.0);
            c.rope_scaling.mscale = q.num_opt("mscale", 1.0);
            c.rope_scaling.mscale_all_dim = q.num_opt("mscale_all_dim", 0.0);
            if (!(c.rope_scaling.beta_fast > 0) || !(c.rope_scaling.beta_slow > 0))
                fail(src, ": fields 'rope_scaling.beta_fast' and 'beta_slow' must be positive");
        }
    }
}

void parse_mla_section(const json& j, const std::string& src, ModelConfig& c) {
    Reader r{j, src};
    c.q_lora_rank = r.int_opt("q_lora_rank", 0);  // null → 0 → no query compression
    c.kv_lora_rank = r.int_req("kv_lora_rank");
    c.qk_nope_head_dim = r.int_req("qk_nope_head_dim");
    c.qk_rope_head_dim = r.int_req("qk_rope_head_dim");
    c.v_head_dim = r.int_req("v_head_dim");
    if (c.q_lora_rank < 0) fail(src, ": field 'q_lora_rank' must be null or non-negative");
    r.positive("kv_lora_rank", c.kv_lora_rank);
    r.positive("qk_nope_head_dim", c.qk_nope_head_dim);
    r.positive("qk_rope_head_dim", c.qk_rope_head_dim);
    r.positive("v_head_dim", c.v_head_dim);
    if (c.qk_rope_head_dim % 2) fail(src, ": field 'qk_rope_head_dim' must be even, got ", c.qk_rope_head_dim);
}

void parse_moe_section(const json& j, const std::string& src, ModelConfig& c) {
    Reader r{j, src};
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
        fail(src, ": ", e.what());
    }
    c.norm_topk_prob = r.bool_opt("norm_topk_prob", false);
    c.num_nextn_predict_layers = r.int_opt("num_nextn_predict_layers", 0);
    if (c.n_routed_experts < 0) fail(src, ": field 'n_routed_experts' must be non-negative");
    if (c.moe_layer_freq <= 0) fail(src, ": field 'moe_layer_freq' must be positive");
    if (c.first_k_dense_replace < 0) fail(src, ": field 'first_k_dense_replace' must be non-negative");
    if (c.num_nextn_predict_layers < 0) fail(src, ": field 'num_nextn_predict_layers' must be non-negative");
}

ModelConfig parse_config(const json& j, const std::string& src) {
    if (!j.is_object()) fail(src, ": config is not a JSON object");
    Reader r{j, src};
    ModelConfig c;
    c.source = src;
    c.raw = j;

    // Architecture: model_type first, then architectures[0].
    std::string mt = r.str_opt("model_type", "");
    std::string archs = (j.contains("architectures") && j["architectures"].is_array() && !j["architectures"].empty() &&
                         j["architectures"][0].is_string())
                            ? j["architectures"][0].get<std::string>()
                            : "";
    if (mt == "llama" || archs == "LlamaForCausalLM") c.arch = Arch::Llama;
    else if (mt == "deepseek_v2" || archs == "DeepseekV2ForCausalLM") c.arch = Arch::DeepseekV2;
    else if (mt == "deepseek_v3" || archs == "DeepseekV3ForCausalLM") c.arch = Arch::DeepseekV3;
    else fail(src, ": unsupported architecture (model_type '", mt, "', architectures '", archs,
              "'); dsref runs llama (DeepSeek LLM), deepseek_v2 and deepseek_v3");

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
    if (!(c.rms_norm_eps > 0)) fail(src, ": field 'rms_norm_eps' must be positive");
    c.max_position_embeddings = r.int_opt("max_position_embeddings", 0);
    c.tie_word_embeddings = r.bool_opt("tie_word_embeddings", false);
    c.bos_token_id = token_id(j, "bos_token_id");
    c.eos_token_id = token_id(j, "eos_token_id");
    c.torch_dtype = r.str_opt("torch_dtype", "");
    const std::string act = r.str_opt("hidden_act", "silu");
    if (act != "silu") fail(src, ": field 'hidden_act' is '", act, "'; only silu (SwiGLU) is supported");
    if (r.bool_opt("attention_bias", false)) fail(src, ": field 'attention_bias' true is not supported");
    if (r.bool_opt("mlp_bias", false)) fail(src, ": field 'mlp_bias' true is not supported");

    parse_rope_section(j, src, c);

    if (c.arch == Arch::Llama) {
        c.head_dim = r.int_opt("head_dim", 0);
        if (c.head_dim == 0) {
            if (c.hidden_size % c.num_attention_heads != 0)
                fail(src, ": hidden_size ", c.hidden_size, " is not divisible by num_attention_heads ",
                     c.num_attention_heads, " and no head_dim is given");
            c.head_dim = c.hidden_size / c.num_attention_heads;
        }
        r.positive("head_dim", c.head_dim);
        if (c.head_dim % 2) fail(src, ": field 'head_dim' must be even for RoPE, got ", c.head_dim);
        r.positive("num_key_value_heads", c.num_key_value_heads);
        if (c.num_key_value_heads > c.num_attention_heads)
            fail(src, ": num_key_value_heads ", c.num_key_value_heads, " exceeds num_attention_heads ",
                 c.num_attention_heads);
        if (c.rope_scaling.is_yarn())
            fail(src, ": rope_scaling yarn on a llama config is not supported (DeepSeek LLM uses plain RoPE)");
        return c;
    }

    // ---- DeepSeek V2 / V3: MLA + MoE fields ----
    c.head_dim = r.int_opt("head_dim", 0);
    parse_mla_section(j, src, c);
    parse_moe_section(j, src, c);

    if (r.present("quantization_config")) {
        const json& q = j["quantization_config"];
        if (!q.is_object()) fail(src, ": field 'quantization_config' must be an object");
        Reader qr{q, src + " quantization_config"};
        const std::string method = qr.str_opt("quant_method", "");
        if (method != "fp8") fail(src, ": quantization_config.quant_method '", method, "' is not supported (fp8)");
        c.fp8_weights = true;
        if (q.contains("weight_block_size")) {
            const json& b = q["weight_block_size"];
            if (!b.is_array() || b.size() != 2 || !b[0].is_number_integer() || !b[1].is_number_integer() ||
                b[0].get<int64_t>() <= 0 || b[1].get<int64_t>() <= 0)
                fail(src, ": quantization_config.weight_block_size must be two positive integers");
            c.fp8_block_rows = b[0].get<int64_t>();
            c.fp8_block_cols = b[1].get<int64_t>();
        }
    }
    return c;
}

ModelConfig load_config(const std::string& path) {
    struct stat st;
    std::string file = path;
    if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) file = path + "/config.json";
    std::ifstream f(file);
    if (!f) fail(file, ": cannot open");
    json j;
    try {
        j = json::parse(f);
    } catch (const json::exception& e) {
        fail(file, ": not valid JSON: ", e.what());
    }
    return parse_config(j, file);
}

}  // namespace dsref
