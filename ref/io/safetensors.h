// safetensors.h — read (memory-mapped) and write safetensors files, and open HF checkpoint directories.
//
// Format (huggingface/safetensors README.md): 8-byte little-endian header length N, N bytes of JSON
// {name: {dtype, shape, data_offsets: [begin, end)}, "__metadata__": {...}}, then the byte buffer.
// Offsets are relative to the buffer. Every malformed file is refused with a message that names the
// file and, where there is one, the tensor: truncated file, bad header length, bad JSON, duplicate
// names, unknown dtype, a size that does not match the shape, offsets out of range, overlapping or
// leaving holes.
//
// A checkpoint directory holds either `model.safetensors` or `model.safetensors.index.json`
// ({"weight_map": {tensor: file}}) plus its shards. Tensors stay in the mapped files and are
// converted to float32 only when they are used (`load_f32`).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/tensor_source.h"

namespace dsref {

class SafetensorsFile {
public:
    explicit SafetensorsFile(const std::string& path);  // maps and validates; throws Error
    ~SafetensorsFile();
    SafetensorsFile(const SafetensorsFile&) = delete;
    SafetensorsFile& operator=(const SafetensorsFile&) = delete;

    const std::string& path() const { return path_; }
    const std::vector<TensorRef>& tensors() const { return tensors_; }  // sorted by name
    const TensorRef* find(const std::string& name) const;               // nullptr if absent
    const TensorRef& get(const std::string& name) const;                // throws, naming file and tensor
    const std::vector<std::pair<std::string, std::string>>& metadata() const { return metadata_; }

private:
    std::string path_;
    void* map_ = nullptr;
    size_t map_size_ = 0;
    std::vector<TensorRef> tensors_;
    std::vector<std::pair<std::string, std::string>> metadata_;
};

// Validates a safetensors image of `size` bytes at `base` (what SafetensorsFile maps; the fuzz harness
// passes its input). `path` names it in messages; the refs point into `base`. Nothing is allocated in
// proportion to a size the header claims: every claim is checked against `size` first.
void parse_safetensors(const std::string& path, const uint8_t* base, size_t size, std::vector<TensorRef>* tensors,
                       std::vector<std::pair<std::string, std::string>>* metadata);

// Reads a whole file into memory (op inputs, diff).
TensorMap read_safetensors(const std::string& path);

// Writes tensors (sorted by name, contiguous, header padded to 8 bytes) atomically (io/atomic_file.h):
// an existing file at `path` is replaced only by the complete new one.
void write_safetensors(const std::string& path, const TensorMap& tensors,
                       const std::vector<std::pair<std::string, std::string>>& metadata = {});

// Writes `tensors` split over `n_shards` files model-0000i-of-0000n.safetensors plus
// model.safetensors.index.json in `dir` (n_shards = 1 writes model.safetensors). Tensors are dealt
// out round-robin in name order, so a weight and its `weight_scale_inv` land in different shards.
void write_checkpoint(const std::string& dir, const TensorMap& tensors, int n_shards = 1);

// An HF checkpoint directory: one file or an index plus shards.
class Checkpoint : public TensorSource {
public:
    explicit Checkpoint(const std::string& dir);  // throws Error naming the directory / index
    const std::string& dir() const { return dir_; }
    bool has(const std::string& name) const override;
    const TensorRef& get(const std::string& name) const override;  // throws "checkpoint DIR has no tensor NAME"
    // madvise(MADV_DONTNEED) on the pages the tensor spans: the mapping is read-only, so they are
    // simply read from the file (or the page cache) again if the tensor is used again.
    void release(const std::string& name) const override;
    // madvise(MADV_WILLNEED) on the same pages: the kernel queues their reads at once.
    void prefetch(const std::string& name) const override;
    std::string where() const override { return "checkpoint " + dir_; }
    const char* noun() const override { return "tensor"; }
    // The tensor as float32, after checking its shape; the message names the tensor and both shapes.
    std::vector<float> load_f32(const std::string& name, const Shape& expected) const;
    std::vector<std::string> names() const;
    size_t n_files() const { return files_.size(); }

private:
    std::string dir_;
    std::vector<std::unique_ptr<SafetensorsFile>> files_;
    std::vector<std::pair<std::string, const TensorRef*>> index_;  // sorted by name
};

}  // namespace dsref
