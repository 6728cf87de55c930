// safetensors.cpp — memory-mapped safetensors reader, writer and HF checkpoint directories (the format
// is in safetensors.h).
#include "io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <map>
#include <set>

#include "core/error.h"
#include "io/atomic_file.h"
#include "io/regular_file.h"

namespace dsref {

using json = nlohmann::json;

static constexpr uint64_t kMaxHeader = 100u << 20;  // the reference parser's cap: 100 MB

// ---- reader ---------------------------------------------------------------------------------------------
namespace {
// A SAX pass that only records the first repeated top-level key. nlohmann's DOM parser keeps the last
// of two equal keys silently; its parser callback would catch them but makes large headers slow (the
// DOM callback parser re-examines the object as it grows). This pass is linear and allocates nothing
// beyond the set of names.
struct DuplicateKeys : nlohmann::json_sax<json> {
    int depth = 0;
    std::set<std::string> seen;
    std::string dup;
    std::string error;
    bool null() override { return true; }
    bool boolean(bool) override { return true; }
    bool number_integer(number_integer_t) override { return true; }
    bool number_unsigned(number_unsigned_t) override { return true; }
    bool number_float(number_float_t, const string_t&) override { return true; }
    bool string(string_t&) override { return true; }
    bool binary(binary_t&) override { return true; }
    bool start_object(std::size_t) override { depth++; return true; }
    bool end_object() override { depth--; return true; }
    bool start_array(std::size_t) override { depth++; return true; }
    bool end_array() override { depth--; return true; }
    bool key(string_t& k) override {
        if (depth == 1 && !seen.insert(k).second) {
            dup = k;
            return false;  // stop: the file is refused anyway
        }
        return true;
    }
    bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) override {
        error = e.what();
        return false;
    }
};
}  // namespace

void parse_safetensors(const std::string& path, const uint8_t* base, size_t size, std::vector<TensorRef>* tensors,
                       std::vector<std::pair<std::string, std::string>>* metadata) {
    tensors->clear();
    metadata->clear();
    if (size < 8) fail(path, ": truncated safetensors file (", size, " bytes, need at least 8)");
    uint64_t n = 0;
    std::memcpy(&n, base, 8);
    if (n > kMaxHeader) fail(path, ": bad header length ", n, " (limit ", kMaxHeader, ")");
    if (n > size - 8) fail(path, ": bad header length ", n, ": the file has only ", size - 8, " bytes after it");
    const char* hdr = reinterpret_cast<const char*>(base + 8);
    const uint8_t* buffer = base + 8 + n;
    const size_t buffer_size = size - 8 - n;

    // Refuse duplicate top-level names first (one linear SAX pass), then build the DOM.
    {
        DuplicateKeys d;
        json::sax_parse(hdr, hdr + n, &d);
        if (!d.dup.empty()) fail(path, ": duplicate tensor name '", d.dup, "' in the header");
        if (!d.error.empty()) fail(path, ": header is not valid JSON: ", d.error);
    }
    json h;
    try {
        h = json::parse(hdr, hdr + n);
    } catch (const json::exception& e) {
        fail(path, ": header is not valid JSON: ", e.what());
    }
    if (!h.is_object()) fail(path, ": header is not a JSON object");

    for (auto it = h.begin(); it != h.end(); ++it) {
        const std::string& name = it.key();
        const json& e = it.value();
        if (name == "__metadata__") {
            if (!e.is_object()) fail(path, ": __metadata__ is not an object");
            for (auto m = e.begin(); m != e.end(); ++m) {
                if (!m.value().is_string()) fail(path, ": __metadata__ value '", m.key(), "' is not a string");
                metadata->push_back({m.key(), m.value().get<std::string>()});
            }
            continue;
        }
        if (!e.is_object() || !e.contains("dtype") || !e.contains("shape") || !e.contains("data_offsets"))
            fail(path, ": tensor '", name, "' needs dtype, shape and data_offsets");
        TensorRef r;
        r.name = name;
        r.file = path;
        if (!e["dtype"].is_string()) fail(path, ": tensor '", name, "': dtype is not a string");
        const std::string dt = e["dtype"].get<std::string>();
        if (!dtype_from_name(dt, &r.dtype)) fail(path, ": tensor '", name, "' has unknown dtype '", dt, "'");
        if (!e["shape"].is_array()) fail(path, ": tensor '", name, "': shape is not an array");
        // The element count, checked at every step against int64 (shape_numel and every loop over the
        // tensor use int64): a product that wraps could otherwise match the byte count, e.g. [2^62, 2^62, 16]
        // of F32 is 2^128 bytes, 0 modulo 2^128. A zero dimension makes the tensor empty, but the other
        // dimensions must still multiply within int64: products over a prefix of the shape must not wrap.
        bool empty = false;
        uint64_t nonzero_numel = 1;  // product of the non-zero dimensions, <= INT64_MAX
        for (const json& d : e["shape"]) {
            if (!d.is_number_integer() || (d.is_number_unsigned() && d.get<uint64_t>() > (uint64_t)INT64_MAX) ||
                d.get<int64_t>() < 0)
                fail(path, ": tensor '", name, "': shape entries must be non-negative integers");
            const uint64_t v = (uint64_t)d.get<int64_t>();
            if (v == 0) empty = true;
            else if (nonzero_numel > (uint64_t)INT64_MAX / v)
                fail(path, ": tensor '", name, "': shape ", e["shape"].dump(), " has more than 2^63 elements");
            else nonzero_numel *= v;
            r.shape.push_back((int64_t)v);
        }
        const json& off = e["data_offsets"];
        if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
            fail(path, ": tensor '", name, "': data_offsets must be two non-negative integers");
        const uint64_t b = off[0].get<uint64_t>(), en = off[1].get<uint64_t>();
        if (b > en || en > buffer_size)
            fail(path, ": tensor '", name, "': data_offsets [", b, ", ", en, ") out of range (buffer has ", buffer_size,
                 " bytes)");
        // numel · size in 128 bits: nonzero_numel < 2^63 and size <= 8, so this cannot wrap.
        const unsigned __int128 want = empty ? 0 : (unsigned __int128)nonzero_numel * dtype_size(r.dtype);
        if (want != (unsigned __int128)(en - b)) {
            const bool fits = want <= (unsigned __int128)UINT64_MAX;
            fail(path, ": tensor '", name, "': ", en - b, " bytes for shape ", shape_str(r.shape), " of ", dt,
                 " (expected ", fits ? std::to_string((uint64_t)want) : std::string("more than 2^64"), ")");
        }
        r.data = buffer + b;
        r.nbytes = en - b;
        tensors->push_back(std::move(r));
    }
    // Offsets must tile the buffer: no overlap, no hole (as the reference implementation requires).
    std::vector<const TensorRef*> by_off;
    by_off.reserve(tensors->size());
    for (const TensorRef& t : *tensors) by_off.push_back(&t);
    std::sort(by_off.begin(), by_off.end(), [](const TensorRef* a, const TensorRef* b) {
        return a->data != b->data ? a->data < b->data : a->nbytes < b->nbytes;
    });
    const uint8_t* pos = buffer;
    for (const TensorRef* t : by_off) {
        if (t->data < pos) fail(path, ": tensor '", t->name, "' overlaps another tensor at offset ", pos - buffer);
        if (t->data > pos) fail(path, ": hole in the data buffer before tensor '", t->name, "'");
        pos = t->data + t->nbytes;
    }
    if (pos != buffer + buffer_size) fail(path, ": ", (buffer + buffer_size) - pos, " trailing bytes after the last tensor");
    std::sort(tensors->begin(), tensors->end(), [](const TensorRef& a, const TensorRef& b) { return a.name < b.name; });
}

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
    uint64_t size = 0;
    const int fd = open_regular_file(path, "safetensors file", &size);
    map_size_ = (size_t)size;
    if (map_size_ > 0) {
        map_ = ::mmap(nullptr, map_size_, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map_ == MAP_FAILED) {
            map_ = nullptr;
            const int e = errno;
            ::close(fd);
            fail(path, ": mmap failed: ", std::strerror(e));
        }
    }
    ::close(fd);
    try {
        parse_safetensors(path, static_cast<const uint8_t*>(map_), map_size_, &tensors_, &metadata_);
    } catch (...) {
        if (map_) ::munmap(map_, map_size_);
        map_ = nullptr;
        throw;
    }
}

SafetensorsFile::~SafetensorsFile() {
    if (map_) ::munmap(map_, map_size_);
}

const TensorRef* SafetensorsFile::find(const std::string& name) const {
    auto it = std::lower_bound(tensors_.begin(), tensors_.end(), name,
                               [](const TensorRef& t, const std::string& n) { return t.name < n; });
    return (it != tensors_.end() && it->name == name) ? &*it : nullptr;
}

const TensorRef& SafetensorsFile::get(const std::string& name) const {
    const TensorRef* r = find(name);
    if (!r) fail(path_, ": no tensor named '", name, "'");
    return *r;
}

TensorMap read_safetensors(const std::string& path) {
    SafetensorsFile f(path);
    TensorMap m;
    for (const TensorRef& t : f.tensors()) m[t.name] = t.copy();
    return m;
}

// ---- writer -------------------------------------------------------------------------------------------------
void write_safetensors(const std::string& path, const TensorMap& tensors,
                       const std::vector<std::pair<std::string, std::string>>& metadata) {
    json h = json::object();
    if (!metadata.empty()) {
        json m = json::object();
        for (const auto& kv : metadata) m[kv.first] = kv.second;
        h["__metadata__"] = m;
    }
    uint64_t off = 0;
    for (const auto& kv : tensors) {
        const Tensor& t = kv.second;
        const uint64_t nb = (uint64_t)t.numel() * dtype_size(t.dtype);
        if (nb != t.bytes.size())
            fail(path, ": tensor '", kv.first, "' has ", t.bytes.size(), " bytes for shape ", shape_str(t.shape));
        h[kv.first] = {{"dtype", dtype_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {off, off + nb}}};
        off += nb;
    }
    std::string hs = h.dump();
    while (hs.size() % 8) hs.push_back(' ');
    AtomicFile f(path);  // the old file, if any, stays until the new one is complete
    const uint64_t n = hs.size();
    f.write(&n, 8);
    f.write(hs.data(), hs.size());
    for (const auto& kv : tensors) f.write(kv.second.bytes.data(), kv.second.bytes.size());
    f.commit();
}

void write_checkpoint(const std::string& dir, const TensorMap& tensors, int n_shards) {
    if (n_shards < 1) fail("write_checkpoint: n_shards must be >= 1");
    if (n_shards == 1) {
        write_safetensors(dir + "/model.safetensors", tensors, {{"format", "pt"}});
        return;
    }
    std::vector<TensorMap> shards(n_shards);
    int i = 0;
    for (const auto& kv : tensors) shards[i++ % n_shards][kv.first] = kv.second;
    json index = {{"metadata", {{"total_size", 0}}}, {"weight_map", json::object()}};
    uint64_t total = 0;
    for (int s = 0; s < n_shards; s++) {
        char name[64];
        std::snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", s + 1, n_shards);
        write_safetensors(dir + "/" + name, shards[s], {{"format", "pt"}});
        for (const auto& kv : shards[s]) {
            index["weight_map"][kv.first] = name;
            total += kv.second.bytes.size();
        }
    }
    index["metadata"]["total_size"] = total;
    write_file_atomic(dir + "/model.safetensors.index.json", index.dump(2) + "\n");
}

// ---- checkpoint directory --------------------------------------------------------------------------------
Checkpoint::Checkpoint(const std::string& dir) : dir_(dir) {
    const std::string index_path = dir + "/model.safetensors.index.json";
    const std::string single = dir + "/model.safetensors";
    std::vector<std::pair<std::string, std::string>> wanted;  // tensor → file, from the index
    if (path_exists(index_path)) {
        // Its size is real bytes, not a claim: capped like a safetensors header.
        const std::string text = read_regular_file(index_path, "checkpoint index", kMaxHeader);
        json idx;
        try {
            idx = json::parse(text);
        } catch (const json::exception& e) {
            fail(index_path, ": not valid JSON: ", e.what());
        }
        if (!idx.is_object() || !idx.contains("weight_map") || !idx["weight_map"].is_object())
            fail(index_path, ": missing the 'weight_map' object");
        std::map<std::string, const SafetensorsFile*> shard_of;  // file name → opened shard (linear in tensors)
        for (auto it = idx["weight_map"].begin(); it != idx["weight_map"].end(); ++it) {
            if (!it.value().is_string()) fail(index_path, ": weight_map entry '", it.key(), "' is not a string");
            const std::string fn = it.value().get<std::string>();
            if (fn.find('/') != std::string::npos) fail(index_path, ": shard name '", fn, "' must be a plain file name");
            if (fn.empty() || fn == "." || fn == "..") fail(index_path, ": shard name '", fn, "' is not a file name");
            wanted.push_back({it.key(), fn});
            shard_of[fn] = nullptr;
        }
        for (auto& kv : shard_of) {  // in name order
            if (!path_exists(dir + "/" + kv.first)) fail(index_path, ": shard '", kv.first, "' does not exist");
            files_.push_back(std::make_unique<SafetensorsFile>(dir + "/" + kv.first));
            kv.second = files_.back().get();
        }
        for (const auto& w : wanted) {
            const TensorRef* r = shard_of.at(w.second)->find(w.first);
            if (!r) fail(index_path, ": tensor '", w.first, "' is mapped to ", w.second, ", which does not contain it");
            index_.push_back({w.first, r});
        }
    } else if (path_exists(single)) {
        files_.push_back(std::make_unique<SafetensorsFile>(single));
        for (const TensorRef& t : files_[0]->tensors()) index_.push_back({t.name, &t});
    } else {
        fail(dir, ": no model.safetensors or model.safetensors.index.json");
    }
    std::sort(index_.begin(), index_.end());
}

bool Checkpoint::has(const std::string& name) const {
    auto it = std::lower_bound(index_.begin(), index_.end(), name,
                               [](const std::pair<std::string, const TensorRef*>& e, const std::string& n) {
                                   return e.first < n;
                               });
    return it != index_.end() && it->first == name;
}

const TensorRef& Checkpoint::get(const std::string& name) const {
    auto it = std::lower_bound(index_.begin(), index_.end(), name,
                               [](const std::pair<std::string, const TensorRef*>& e, const std::string& n) {
                                   return e.first < n;
                               });
    if (it == index_.end() || it->first != name) fail("checkpoint ", dir_, " has no tensor '", name, "'");
    return *it->second;
}

std::vector<float> Checkpoint::load_f32(const std::string& name, const Shape& expected) const {
    const TensorRef& r = get(name);
    check_tensor_shape(*this, r, expected);
    if (!dtype_is_float(r.dtype)) fail(describe(name), " has non-float dtype ", dtype_name(r.dtype));
    return r.to_f32();
}

namespace {
// madvise on the whole pages a tensor's bytes span
void advise_pages(const TensorRef& r, int advice) {
    if (r.nbytes == 0) return;
    static const uintptr_t page = (uintptr_t)::sysconf(_SC_PAGESIZE);
    const uintptr_t b = (uintptr_t)r.data & ~(page - 1), e = ((uintptr_t)r.data + r.nbytes + page - 1) & ~(page - 1);
    ::madvise((void*)b, e - b, advice);
}
}  // namespace

void Checkpoint::release(const std::string& name) const {
    // Pages shared with a neighbouring tensor are dropped too; they are re-read if that one is used.
    advise_pages(get(name), MADV_DONTNEED);
}

void Checkpoint::prefetch(const std::string& name) const { advise_pages(get(name), MADV_WILLNEED); }

std::vector<std::string> Checkpoint::names() const {
    std::vector<std::string> n;
    for (const auto& e : index_) n.push_back(e.first);
    return n;
}

}  // namespace dsref
