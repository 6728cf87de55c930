// regular_file.cpp — non-blocking open, regular-file check and bounded read (see regular_file.h).
#include "io/regular_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/error.h"

namespace dsref {

static const char* kind_of(mode_t m) {
    if (S_ISDIR(m)) return "a directory";
    if (S_ISFIFO(m)) return "a FIFO";
    if (S_ISCHR(m)) return "a character device";
    if (S_ISBLK(m)) return "a block device";
    if (S_ISSOCK(m)) return "a socket";
    return "not a regular file";
}

int open_regular_file(const std::string& path, const char* what, uint64_t* size) {
    if (path.empty()) fail("empty path given for the ", what);
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
    const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        const int e = errno;
        if (e == ENOENT) fail(path, ": cannot open the ", what, ": it does not exist");
        if (e == ELOOP) fail(path, ": cannot open the ", what, ": symbolic link loop");
        fail(path, ": cannot open the ", what, ": ", std::strerror(e));
    }
    struct stat st;
    if (::fstat(fd, &st) != 0) {
        const int e = errno;
        ::close(fd);
        fail(path, ": cannot stat the ", what, ": ", std::strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        ::close(fd);
        fail(path, ": the ", what, " is ", kind_of(st.st_mode), ", expected a regular file");
    }
    // Back to blocking reads (a regular file never blocks, but keep the usual semantics).
    const int fl = ::fcntl(fd, F_GETFL);
    if (fl >= 0) ::fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    *size = (uint64_t)st.st_size;
    return fd;
}

std::string read_regular_file(const std::string& path, const char* what, uint64_t max_bytes) {
    uint64_t size = 0;
    const int fd = open_regular_file(path, what, &size);
    if (size > max_bytes) {
        ::close(fd);
        fail(path, ": the ", what, " has ", size, " bytes, more than the limit of ", max_bytes);
    }
    std::string s(size, '\0');
    size_t got = 0;
    while (got < size) {
        const ssize_t n = ::read(fd, &s[got], size - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += (size_t)n;
    }
    ::close(fd);
    if (got != size) fail(path, ": short read of the ", what, " (", got, " of ", size, " bytes)");
    return s;
}

bool path_exists(const std::string& path) {
    struct stat st;
    return ::lstat(path.c_str(), &st) == 0;
}

}  // namespace dsref
