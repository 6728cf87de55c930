// op_registry.h — the generic op runner behind `dsref op` and the CUDA golden tests.
//
// An op takes named input tensors and string attributes and returns named output tensors. Each op
// file registers its ops with a static registrar:
//
//     static const bool registered = register_op({
//         "rmsnorm", "y = x / rms(x) * weight",
//         "inputs:  x [..., d], weight [d]\nattributes: eps (1e-6)\noutputs: y [..., d]\n",
//         {"eps"},
//         [](const TensorMap& in, const OpAttrs& a) { ... return TensorMap{{"y", y}}; }});
//
// The library is linked with --whole-archive so that every registrar runs. An attribute that is not
// in the op's list is a usage error (a typo must not silently fall back to a default).
#pragma once
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace dsref {

// Attribute values as given to `--set key=value`; typed getters parse them and name the key on error.
class OpAttrs {
public:
    OpAttrs() = default;
    explicit OpAttrs(std::map<std::string, std::string> kv) : kv_(std::move(kv)) {}
    void set(const std::string& k, const std::string& v) { kv_[k] = v; }
    bool has(const std::string& k) const { return kv_.count(k) != 0; }
    std::string str(const std::string& k, const std::string& def) const;
    double f64(const std::string& k, double def) const;      // int or float, exponent form allowed
    int64_t i64(const std::string& k, int64_t def) const;
    bool boolean(const std::string& k, bool def) const;     // true/false (also 1/0)
    // One of `choices`, else a UsageError listing them.
    std::string choice(const std::string& k, const std::string& def, const std::vector<std::string>& choices) const;
    const std::map<std::string, std::string>& all() const { return kv_; }

private:
    std::map<std::string, std::string> kv_;
};

using OpFn = std::function<TensorMap(const TensorMap& inputs, const OpAttrs& attrs)>;

struct OpSpec {
    std::string name;
    std::string summary;             // one line, for `dsref op --list`
    std::string help;                // inputs, attributes (with defaults) and outputs, with shapes
    std::vector<std::string> attrs;  // accepted attribute names
    OpFn run;
};

bool register_op(OpSpec spec);                 // returns true; throws on a duplicate name
const OpSpec* find_op(const std::string& name);  // nullptr if unknown
std::vector<const OpSpec*> list_ops();         // sorted by name

// Runs an op after checking that every attribute is one it accepts. Throws UsageError for an unknown
// op or attribute, Error for bad tensors.
TensorMap run_op(const std::string& name, const TensorMap& inputs, const OpAttrs& attrs);

// Input helpers for op implementations; their errors name the op and the tensor.
const Tensor& op_input(const TensorMap& in, const std::string& op, const std::string& name);
const Tensor* op_optional(const TensorMap& in, const std::string& name);
// float32 values of a float input (any float dtype), after checking its rank (-1 = any).
std::vector<float> op_f32(const TensorMap& in, const std::string& op, const std::string& name, int rank = -1);
// The NaN/Inf policy for op inputs (README.md "Reliability"): the math ops (rmsnorm, rope, attention,
// swiglu) refuse a non-finite input element, naming the op, the tensor and the element, as the forward
// pass refuses a non-finite weight. (The FP8 ops take NaN and Inf on purpose: they encode them.)
void op_require_finite(const std::vector<float>& v, const std::string& op, const std::string& name);
// A float attribute that must be finite and > 0 (eps, theta, factor); else a UsageError naming it.
double op_positive(const OpAttrs& a, const std::string& op, const std::string& k, double def);

}  // namespace dsref
