// atomic_file.h — writing an output file so that a failed or killed run never leaves a partial one.
//
// Every file dsref writes (--out safetensors, checkpoint shards and index, config.json, token lists) goes
// through AtomicFile: the bytes go to a fresh temporary file in the same folder (".NAME.XXXXXX.tmp",
// created with mkstemp, so two runs never share one), are fsync'ed, and the temporary file is renamed
// over NAME (rename(2) within one file system is atomic) and the folder fsync'ed. Until commit() the
// old NAME, if any, is untouched; on any error, or when the object dies uncommitted, the temporary file
// is removed. A run killed outright (SIGKILL, SIGXFSZ) leaves at most its hidden temporary file, never a
// truncated NAME.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace dsref {

class AtomicFile {
public:
    // Opens a temporary file beside `path`. `path` must be non-empty and must not name a directory.
    // Throws Error naming `path`.
    explicit AtomicFile(const std::string& path);
    ~AtomicFile();  // removes the temporary file unless committed
    AtomicFile(const AtomicFile&) = delete;
    AtomicFile& operator=(const AtomicFile&) = delete;

    void write(const void* data, size_t n);                // appends at the current end
    void pwrite(const void* data, size_t n, uint64_t off);  // writes at byte `off`
    void commit();  // fsync, close, rename over `path`, fsync the folder. Throws Error naming `path`.

    const std::string& path() const { return path_; }

private:
    std::string path_, tmp_;
    int fd_ = -1;
    uint64_t end_ = 0;
    bool done_ = false;
};

// The whole of `bytes` written to `path` through an AtomicFile.
void write_file_atomic(const std::string& path, const std::string& bytes);

}  // namespace dsref
