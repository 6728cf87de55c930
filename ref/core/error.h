// error.h — the two error kinds every dsref entry point throws.
//
// dsref never crashes or returns garbage on bad input: it throws one of these with a one-line message
// that names the file, tensor or field, and the CLI's top-level catch turns it into an exit code
// (Error → 1, UsageError → 2).
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace dsref {

// Bad data: a malformed file, a missing tensor, an inconsistent config field. Exit code 1.
struct Error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Bad command line: unknown option, missing argument, malformed --set value. Exit code 2.
struct UsageError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// fail("tensor ", name, " has shape ", s) — builds the message from its pieces and throws Error.
template <class... Args>
[[noreturn]] void fail(const Args&... args) {
    std::ostringstream os;
    (os << ... << args);
    throw Error(os.str());
}

template <class... Args>
[[noreturn]] void usage_fail(const Args&... args) {
    std::ostringstream os;
    (os << ... << args);
    throw UsageError(os.str());
}

// A lab stub (walkthrough/LABS.md): the lab kit replaces the body a student writes with
// `throw dsref::NotImplemented("lab NAME");`. Deliberately not an Error: a test that expects bad input to
// be refused must not pass on a stub.
struct NotImplemented : std::runtime_error {
    using std::runtime_error::runtime_error;
};

}  // namespace dsref
