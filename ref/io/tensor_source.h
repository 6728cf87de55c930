// tensor_source.h — a read-only set of named tensors that the model's block factories load from.
//
// Two sources exist: an HF checkpoint directory (`Checkpoint`, io/safetensors.h), whose tensors stay
// in the mapped files, and the named inputs of an op (`TensorMapSource`), so that `dsref op mla` and
// `dsref op moe` build their layer through the same factories, names and shape checks as the model.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace dsref {

// One tensor of a source: metadata plus a pointer to its bytes (not necessarily aligned), which stay
// owned by the source.
struct TensorRef {
    std::string name;
    DType dtype;
    Shape shape;
    const uint8_t* data = nullptr;
    size_t nbytes = 0;
    std::string file;  // the file it lives in, for messages ("" for in-memory tensors)

    Tensor copy() const;  // owned copy, same dtype
    std::vector<float> to_f32() const;
    void to_f32_into(float* out) const;  // out: [numel], the same values as to_f32
};

class TensorSource {
public:
    virtual ~TensorSource() = default;
    virtual bool has(const std::string& name) const = 0;
    // Throws Error naming the source and the tensor when it is absent.
    virtual const TensorRef& get(const std::string& name) const = 0;
    // How messages name the source and its tensors: where() = "checkpoint DIR" or "op mla", noun() =
    // "tensor" or "input"; describe(name) = "checkpoint DIR: tensor 'X'", "op mla: input 'X'".
    virtual std::string where() const = 0;
    virtual const char* noun() const = 0;
    // Drops the tensor's pages from this process's resident memory (a mapped checkpoint's madvise);
    // its bytes stay readable and are read again from the file when next used. In-memory sources: no-op.
    virtual void release(const std::string& /*name*/) const {}
    // Asks for the tensor's bytes to be read ahead, all at once, before they are used (a mapped
    // checkpoint's madvise(MADV_WILLNEED)): the reads are queued together instead of one page fault at a
    // time. A hint only: nothing changes if it is ignored. In-memory sources: no-op.
    virtual void prefetch(const std::string& /*name*/) const {}
    std::string describe(const std::string& name) const { return where() + ": " + noun() + " '" + name + "'"; }
};

// The one shape check of loaded tensors: "<describe(name)> has shape [..], expected [..] (doc)".
// doc: the expected shape in config terms, e.g. "[kv_lora_rank+qk_rope_head_dim, hidden_size]".
void check_tensor_shape(const TensorSource& src, const TensorRef& r, const Shape& expected, const std::string& doc = "");

// The inputs of an op as a TensorSource. `op` names the op in messages; the map must outlive this.
class TensorMapSource : public TensorSource {
public:
    TensorMapSource(const TensorMap& tensors, std::string op);
    bool has(const std::string& name) const override;
    const TensorRef& get(const std::string& name) const override;
    std::string where() const override { return "op " + op_; }
    const char* noun() const override { return "input"; }

private:
    std::string op_;
    std::map<std::string, TensorRef> refs_;
};

}  // namespace dsref
