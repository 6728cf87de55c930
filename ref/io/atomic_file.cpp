// atomic_file.cpp — temporary file, fsync, rename (see atomic_file.h).
#include "io/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "core/error.h"

namespace dsref {

namespace {
// The folder part of `path` ("." when none) and the file name.
void split_path(const std::string& path, std::string* dir, std::string* name) {
    const size_t s = path.find_last_of('/');
    *dir = s == std::string::npos ? "." : (s == 0 ? "/" : path.substr(0, s));
    *name = s == std::string::npos ? path : path.substr(s + 1);
}
}  // namespace

AtomicFile::AtomicFile(const std::string& path) : path_(path) {
    if (path.empty()) fail("empty output path");
    std::string dir, name;
    split_path(path, &dir, &name);
    struct stat st;
    if (name.empty() || name == "." || name == ".." || (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)))
        fail(path, ": cannot write the output: it is a directory");
    if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
        fail(path, ": cannot write the output: the folder ", dir, " does not exist");
    std::string t = (dir == "/" ? "" : dir) + "/." + name + ".XXXXXX.tmp";
    std::vector<char> buf(t.begin(), t.end());
    buf.push_back('\0');
    fd_ = ::mkstemps(buf.data(), 4);
    if (fd_ < 0) fail(path, ": cannot write the output: ", std::strerror(errno));
    tmp_ = buf.data();
    // mkstemp creates the file 0600; give it the mode an ordinary create would (0666 less the umask).
    const mode_t um = ::umask(0);
    ::umask(um);
    ::fchmod(fd_, 0666 & ~um);
}

AtomicFile::~AtomicFile() {
    if (done_) return;
    if (fd_ >= 0) ::close(fd_);
    ::unlink(tmp_.c_str());
}

void AtomicFile::pwrite(const void* data, size_t n, uint64_t off) {
    const char* b = static_cast<const char*>(data);
    while (n > 0) {
        const ssize_t w = ::pwrite(fd_, b, n, (off_t)off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) fail(path_, ": write failed: ", w < 0 ? std::strerror(errno) : "no progress");
        b += w;
        n -= (size_t)w;
        off += (uint64_t)w;
    }
    if (off > end_) end_ = off;
}

void AtomicFile::write(const void* data, size_t n) { pwrite(data, n, end_); }

void AtomicFile::commit() {
    if (done_) return;
    if (::fsync(fd_) != 0) fail(path_, ": write failed (fsync): ", std::strerror(errno));
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) fail(path_, ": write failed (close): ", std::strerror(errno));
    if (::rename(tmp_.c_str(), path_.c_str()) != 0)
        fail(path_, ": cannot rename the finished output into place: ", std::strerror(errno));
    done_ = true;
    // The rename is durable once the folder is synced; a failure here does not undo the (complete) file.
    std::string dir, name;
    split_path(path_, &dir, &name);
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        ::fsync(dfd);
        ::close(dfd);
    }
}

void write_file_atomic(const std::string& path, const std::string& bytes) {
    AtomicFile f(path);
    f.write(bytes.data(), bytes.size());
    f.commit();
}

}  // namespace dsref
