// lab_expect.h — element-by-element comparison whose failure message is what a student needs
// (walkthrough/LABS.md): the first element that differs, its expected and its actual value, how many
// differ, and the equation to check. Used by the tests that grade the labs.
//
// check_elements(what, got, want, tol, equation) CHECKs |got[i] − want[i]| ≤ tol at every i (tol = 0:
// exactly equal). NaN agrees with nothing, not even NaN (use it only where no NaN is expected); ±inf
// agrees only with the same infinity. Sizes must match. Integers and bytes print as numbers.
#pragma once
#include <catch2/catch.hpp>

#include <cmath>
#include <cstddef>
#include <sstream>
#include <string>
#include <type_traits>

namespace dsref_test {

namespace detail {
template <class T> double as_double(const T& v) { return (double)v; }
template <class T> std::string show(const T& v) {
    std::ostringstream s;
    s.precision(9);
    if (std::is_integral<T>::value) s << (long long)v;
    else s << (double)v;
    return s.str();
}
}  // namespace detail

template <class A, class B>
void check_elements(const std::string& what, const A& got, const B& want, double tol, const char* equation) {
    if ((size_t)got.size() != (size_t)want.size()) FAIL(what << ": " << got.size() << " values, expected " << want.size());
    size_t first = got.size(), bad = 0;
    for (size_t i = 0; i < (size_t)got.size(); i++) {
        const double g = detail::as_double(got[i]), w = detail::as_double(want[i]);
        const bool ok = (g == w) || std::fabs(g - w) <= tol;  // inf == inf; NaN fails both
        if (!ok) {
            if (bad == 0) first = i;
            bad++;
        }
    }
    std::ostringstream msg;
    if (bad) {
        msg << what << ": first mismatch at index " << first << " (of " << got.size() << "; " << bad
            << " differ): expected " << detail::show(want[first]) << ", got " << detail::show(got[first]);
        if (tol > 0) msg << " (tolerance " << tol << ")";
        msg << "; check: " << equation;
    }
    INFO(msg.str());
    CHECK(bad == 0);
}

}  // namespace dsref_test
