// op_layer.cpp — op attributes as a config fragment, and the check that every op input is read.
#include "ops/op_layer.h"

#include <cerrno>
#include <cstdlib>

#include "core/error.h"

namespace dsref {

nlohmann::json attrs_to_json(const OpAttrs& a, const std::vector<std::string>& keys) {
    nlohmann::json j = nlohmann::json::object();
    for (const std::string& k : keys) {
        if (!a.has(k)) continue;
        const std::string v = a.str(k, "");
        char* end = nullptr;
        errno = 0;
        const long long i = std::strtoll(v.c_str(), &end, 10);
        if (!v.empty() && *end == '\0' && errno == 0) {
            j[k] = (int64_t)i;
            continue;
        }
        errno = 0;
        const double d = std::strtod(v.c_str(), &end);
        if (!v.empty() && *end == '\0' && errno == 0) j[k] = d;
        else if (v == "true" || v == "false") j[k] = v == "true";
        else if (v == "null") j[k] = nullptr;
        else j[k] = v;
    }
    return j;
}

void rope_attrs_to_json(const OpAttrs& a, const std::string& op, nlohmann::json& j) {
    const std::vector<std::string> yarn = {"original_max_position_embeddings", "beta_fast", "beta_slow", "mscale",
                                           "mscale_all_dim"};
    if (!a.has("factor"))
        for (const std::string& k : yarn)
            if (a.has(k)) usage_fail("op ", op, ": attribute '", k, "' needs 'factor' (YaRN is on only when factor is set)");
    if (a.has("rope_theta")) j["rope_theta"] = a.f64("rope_theta", 0);
    if (a.has("factor")) {
        nlohmann::json rs = attrs_to_json(a, yarn);
        rs["type"] = "yarn";
        rs["factor"] = a.f64("factor", 0);
        if (!rs.contains("original_max_position_embeddings")) rs["original_max_position_embeddings"] = 4096;
        j["rope_scaling"] = rs;
    }
}

void parse_op_attrs(const std::function<void()>& parse) {
    try {
        parse();
    } catch (const Error& e) {
        usage_fail(e.what());
    }
}

void check_op_inputs(const std::string& op, const TensorMap& in, const std::vector<WeightSpec>& reads,
                     const std::set<std::string>& extra, const std::string& hint) {
    std::set<std::string> known(extra);
    for (const WeightSpec& s : reads) {
        known.insert(s.name);
        if (s.fp8) known.insert(s.name + "_scale_inv");  // FP8 inputs, as a checkpoint stores them
    }
    for (const auto& kv : in)
        if (!known.count(kv.first)) fail("op ", op, ": unexpected input tensor '", kv.first, "' (", hint, ")");
}

}  // namespace dsref
