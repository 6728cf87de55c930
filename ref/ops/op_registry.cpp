// op_registry.cpp — registration, lookup and attribute parsing for the generic op runner.
#include "ops/op_registry.h"

#include <cmath>

#include <algorithm>
#include <cerrno>
#include <cstdlib>

#include "core/error.h"

namespace dsref {

static std::map<std::string, OpSpec>& registry() {
    static std::map<std::string, OpSpec> r;  // constructed on first use, so static registrars may run first
    return r;
}

bool register_op(OpSpec spec) {
    auto& r = registry();
    if (r.count(spec.name)) fail("op '", spec.name, "' registered twice");
    std::string name = spec.name;
    r.emplace(name, std::move(spec));
    return true;
}

const OpSpec* find_op(const std::string& name) {
    auto it = registry().find(name);
    return it == registry().end() ? nullptr : &it->second;
}

std::vector<const OpSpec*> list_ops() {
    std::vector<const OpSpec*> v;
    for (const auto& kv : registry()) v.push_back(&kv.second);
    return v;
}

TensorMap run_op(const std::string& name, const TensorMap& inputs, const OpAttrs& attrs) {
    const OpSpec* op = find_op(name);
    if (!op) usage_fail("unknown op '", name, "' (dsref op --list shows them)");
    for (const auto& kv : attrs.all())
        if (std::find(op->attrs.begin(), op->attrs.end(), kv.first) == op->attrs.end())
            usage_fail("op ", name, ": unknown attribute '", kv.first, "' (dsref op ", name, " --help lists them)");
    return op->run(inputs, attrs);
}

// ---- attributes ----------------------------------------------------------------------------------------
std::string OpAttrs::str(const std::string& k, const std::string& def) const {
    auto it = kv_.find(k);
    return it == kv_.end() ? def : it->second;
}

double OpAttrs::f64(const std::string& k, double def) const {
    auto it = kv_.find(k);
    if (it == kv_.end()) return def;
    const char* s = it->second.c_str();
    char* end = nullptr;
    errno = 0;
    double v = std::strtod(s, &end);
    if (it->second.empty() || *end != '\0' || errno == ERANGE)
        usage_fail("attribute ", k, "='", it->second, "' is not a number");
    return v;
}

int64_t OpAttrs::i64(const std::string& k, int64_t def) const {
    auto it = kv_.find(k);
    if (it == kv_.end()) return def;
    const char* s = it->second.c_str();
    char* end = nullptr;
    errno = 0;
    long long v = std::strtoll(s, &end, 10);
    if (it->second.empty() || *end != '\0' || errno == ERANGE)
        usage_fail("attribute ", k, "='", it->second, "' is not an integer");
    return v;
}

bool OpAttrs::boolean(const std::string& k, bool def) const {
    auto it = kv_.find(k);
    if (it == kv_.end()) return def;
    if (it->second == "true" || it->second == "1") return true;
    if (it->second == "false" || it->second == "0") return false;
    usage_fail("attribute ", k, "='", it->second, "' is not true or false");
}

std::string OpAttrs::choice(const std::string& k, const std::string& def,
                            const std::vector<std::string>& choices) const {
    std::string v = str(k, def);
    if (std::find(choices.begin(), choices.end(), v) != choices.end()) return v;
    std::string all;
    for (const std::string& c : choices) all += (all.empty() ? "" : "|") + c;
    usage_fail("attribute ", k, "='", v, "' must be one of ", all);
}

// ---- inputs ----------------------------------------------------------------------------------------------
const Tensor& op_input(const TensorMap& in, const std::string& op, const std::string& name) {
    auto it = in.find(name);
    if (it == in.end()) fail("op ", op, ": missing input tensor '", name, "'");
    return it->second;
}

const Tensor* op_optional(const TensorMap& in, const std::string& name) {
    auto it = in.find(name);
    return it == in.end() ? nullptr : &it->second;
}

std::vector<float> op_f32(const TensorMap& in, const std::string& op, const std::string& name, int rank) {
    const Tensor& t = op_input(in, op, name);
    if (!dtype_is_float(t.dtype))
        fail("op ", op, ": input '", name, "' must be a float tensor, got ", dtype_name(t.dtype));
    if (rank >= 0 && t.rank() != rank)
        fail("op ", op, ": input '", name, "' must have rank ", rank, ", got shape ", shape_str(t.shape));
    return t.to_f32();
}

void op_require_finite(const std::vector<float>& v, const std::string& op, const std::string& name) {
    for (size_t i = 0; i < v.size(); i++)
        if (!std::isfinite(v[i])) fail("op ", op, ": input '", name, "' element ", i, " is ", v[i], "; inputs must be finite");
}

double op_positive(const OpAttrs& a, const std::string& op, const std::string& k, double def) {
    const double v = a.f64(k, def);
    if (!std::isfinite(v) || !(v > 0)) usage_fail("op ", op, ": attribute ", k, "=", a.str(k, ""), " must be a finite number > 0");
    return v;
}

}  // namespace dsref
