// config_keys.cpp — the allow-list of config.json keys that do not change the forward, and the field
// reader that refuses everything else (rule in config_keys.h).
#include "io/config_keys.h"

namespace dsref {

using json = nlohmann::json;

// Keys that parse_config does not read because they cannot change dsref's forward. A key that changes
// the math only for some values (use_sliding_window, attention_bias, rope_interleave, pretraining_tp
// ...) is NOT listed here: the parser reads it and refuses the values it does not model.
const std::vector<HarmlessKeyGroup>& harmless_config_keys() {
    static const std::vector<HarmlessKeyGroup> groups = {
        {"bookkeeping written by transformers and the hub: names, versions, pointers to remote code "
         "(dsref implements the architecture itself, from model_type)",
         {"transformers_version", "_name_or_path", "name_or_path", "auto_map", "_commit_hash"}},
        {"options of the HF runtime that never change one forward pass: KV caching, extra outputs, "
         "the padding id (dsref has no padding)",
         {"use_cache", "output_attentions", "output_hidden_states", "output_router_logits", "return_dict",
          "pad_token_id"}},
        {"training only: initialisation, dropout (0 at inference), auxiliary balance losses, expert "
         "placement for training/serving",
         {"initializer_range", "attention_dropout", "aux_loss_alpha", "seq_aux", "router_aux_loss_coef", "ep_size"}},
        {"PretrainedConfig fields for other heads and models (transformers' to_dict writes them for every "
         "class): labels and problem type of *ForSequenceClassification heads, and feed-forward chunking, "
         "which no decoder dsref runs applies (it would split rows, not change them)",
         {"id2label", "label2id", "problem_type", "chunk_size_feed_forward"}},
    };
    return groups;
}

const std::vector<HarmlessKeyGroup>& harmless_quantization_keys() {
    static const std::vector<HarmlessKeyGroup> groups = {
        {"which modules a quantizer should leave unquantized: dsref reads every tensor in the dtype it "
         "is stored in (an F8_E4M3 tensor with its weight_scale_inv, or a float one)",
         {"modules_to_not_convert"}},
    };
    return groups;
}

FieldReader::FieldReader(const json& j, std::string source, std::string prefix)
    : j_(j), src_(std::move(source)), prefix_(std::move(prefix)) {
    if (!j_.is_object()) fail(src_, ": ", prefix_.empty() ? "config" : "field '" + prefix_.substr(0, prefix_.size() - 1) + "'",
                              " is not a JSON object");
}

const json* FieldReader::get(const std::string& k) {
    read_.insert(k);
    auto it = j_.find(k);
    if (it == j_.end() || it->is_null()) return nullptr;
    return &*it;
}

void FieldReader::fail_field(const std::string& k, const std::string& what) const {
    fail(src_, ": field '", field(k), "' ", what);
}

bool FieldReader::present(const std::string& k) { return get(k) != nullptr; }

// A value for a message, cut short (a 64-entry layer_types list is not worth printing whole).
static std::string short_dump(const json& v) {
    std::string s = v.dump();
    return s.size() <= 60 ? s : s.substr(0, 57) + "...";
}

// An integer that fits int64 (a float beyond ±2^63 would make the cast undefined; found by fuzzing).
static bool integral(const json& v) {
    if (v.is_number_unsigned()) return v.get<uint64_t>() <= (uint64_t)INT64_MAX;
    if (v.is_number_integer()) return true;
    if (!v.is_number_float()) return false;
    const double d = v.get<double>();
    return d >= -9.2233720368547758e18 && d < 9.2233720368547758e18 && d == (double)(int64_t)d;
}

int64_t FieldReader::int_req(const std::string& k) {
    const json* v = get(k);
    if (!v) fail(src_, ": missing required field '", field(k), "'");
    if (!integral(*v)) fail_field(k, "must be an integer, got " + short_dump(*v));
    return v->is_number_integer() ? v->get<int64_t>() : (int64_t)v->get<double>();
}

int64_t FieldReader::int_opt(const std::string& k, int64_t def) { return present(k) ? int_req(k) : def; }

double FieldReader::num_req(const std::string& k) {
    const json* v = get(k);
    if (!v) fail(src_, ": missing required field '", field(k), "'");
    if (!v->is_number()) fail_field(k, "must be a number, got " + short_dump(*v));
    return v->get<double>();
}

double FieldReader::num_opt(const std::string& k, double def) { return present(k) ? num_req(k) : def; }

bool FieldReader::bool_opt(const std::string& k, bool def) {
    const json* v = get(k);
    if (!v) return def;
    if (!v->is_boolean()) fail_field(k, "must be true or false, got " + short_dump(*v));
    return v->get<bool>();
}

std::string FieldReader::str_opt(const std::string& k, const std::string& def) {
    const json* v = get(k);
    if (!v) return def;
    if (!v->is_string()) fail_field(k, "must be a string, got " + short_dump(*v));
    return v->get<std::string>();
}

const json* FieldReader::object(const std::string& k) {
    const json* v = get(k);
    if (v && !v->is_object()) fail_field(k, "must be an object or null, got " + short_dump(*v));
    return v;
}

FieldReader FieldReader::child(const std::string& k) {
    const json* v = object(k);
    if (!v) fail(src_, ": missing required field '", field(k), "'");
    return FieldReader(*v, src_, prefix_ + k + ".");
}

void FieldReader::positive(const std::string& k, int64_t v) const {
    if (v <= 0) fail_field(k, "must be positive, got " + std::to_string(v));
}

void FieldReader::refuse_unread(const std::vector<HarmlessKeyGroup>& harmless) const {
    for (auto it = j_.begin(); it != j_.end(); ++it) {
        const std::string& k = it.key();
        if (read_.count(k)) continue;
        bool ok = false;
        for (const HarmlessKeyGroup& g : harmless)
            for (const char* h : g.keys) ok = ok || k == h;
        if (!ok)
            fail(src_, ": field '", field(k), "' (", short_dump(it.value()),
                 ") is not modelled by dsref and may change the forward; it is refused rather than ignored "
                 "(if it is known not to matter, add it to the allow-list in ref/io/config_keys.cpp)");
    }
}

}  // namespace dsref
