// config_keys.h — how parse_config reads config.json so that nothing it does not model passes silently.
//
// The rule (for engine developers a silent wrong answer is the worst bug): every key of config.json is
// either
//   1. read by the parser through a FieldReader, which records that it looked at the key and checks
//      its type and range (a value dsref does not model, e.g. `attention_bias: true`, is refused there,
//      with the field named), or
//   2. on the allow-list below (kHarmlessConfigKeys): keys known not to change the forward, each group
//      with the reason it does not.
// Anything else is refused by FieldReader::refuse_unread: "field 'X' is not modelled by dsref".
// A new HF field therefore fails loudly until someone models it (read it in io/config.cpp) or shows
// it harmless (add it here, in the group that says why).
//
// Nested objects (rope_parameters, rope_scaling, quantization_config) get their own FieldReader via
// `object`, whose messages name the field as "rope_parameters.factor", and their own allow-list.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "core/error.h"

namespace dsref {

// A group of keys that do not change the forward, and why.
struct HarmlessKeyGroup {
    const char* why;
    std::vector<const char*> keys;
};

// The allow-list of top-level config.json keys (io/config_keys.cpp lists them with their reasons).
const std::vector<HarmlessKeyGroup>& harmless_config_keys();
// The allow-list inside quantization_config.
const std::vector<HarmlessKeyGroup>& harmless_quantization_keys();

// Typed reads of one JSON object's fields. Every lookup (present or not) marks the key as read; the
// messages name `source` and the field (with the object's prefix, e.g. "rope_parameters.factor").
// A null value counts as absent.
class FieldReader {
public:
    // j must outlive the reader. prefix: "" at the top level, "rope_parameters." inside an object.
    FieldReader(const nlohmann::json& j, std::string source, std::string prefix = "");

    const std::string& source() const { return src_; }
    std::string field(const std::string& k) const { return prefix_ + k; }  // "rope_parameters.factor"
    const nlohmann::json& raw() const { return j_; }  // the object itself

    bool present(const std::string& k);  // contains k with a non-null value
    int64_t int_req(const std::string& k);
    int64_t int_opt(const std::string& k, int64_t def);
    double num_req(const std::string& k);
    double num_opt(const std::string& k, double def);
    bool bool_opt(const std::string& k, bool def);
    std::string str_opt(const std::string& k, const std::string& def);
    // The nested object at k (nullptr when absent or null; an Error when it is not an object).
    const nlohmann::json* object(const std::string& k);
    // A reader for the nested object at k (which must be present), prefixed "<prefix>k.".
    FieldReader child(const std::string& k);

    void positive(const std::string& k, int64_t v) const;  // "field 'k' must be positive, got v"
    [[noreturn]] void fail_field(const std::string& k, const std::string& what) const;  // "<src>: field 'k' what"

    // Refuses the first key of the object that was neither read nor listed in `harmless`.
    void refuse_unread(const std::vector<HarmlessKeyGroup>& harmless) const;

private:
    const nlohmann::json& j_;
    std::string src_, prefix_;
    std::set<std::string> read_;
    const nlohmann::json* get(const std::string& k);  // marks read; nullptr when absent or null
};

}  // namespace dsref
