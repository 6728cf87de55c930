// regular_file.h — opening an input file without hanging or reading without bound.
//
// Every file dsref reads (safetensors, config.json, the shard index, op inputs) is opened here: a FIFO,
// a device, a directory or a symlink loop given where a file is expected is refused with a message naming
// the path and what it is (opening is non-blocking, so a FIFO cannot stall the open), and a text file
// larger than its cap is refused before any of it is read.
#pragma once
#include <cstdint>
#include <string>

namespace dsref {

// Opens `path` read-only and checks it is a regular file; returns the descriptor and its size.
// `what` names the role in messages ("config", "safetensors file"). Throws Error.
int open_regular_file(const std::string& path, const char* what, uint64_t* size);

// The whole of a regular text file of at most `max_bytes` bytes. Throws Error naming the path.
std::string read_regular_file(const std::string& path, const char* what, uint64_t max_bytes);

// True when something exists at `path` (a file, a directory, a dangling symlink, a loop, ...): callers
// then open it through the functions above, which say what is wrong with it.
bool path_exists(const std::string& path);

}  // namespace dsref
