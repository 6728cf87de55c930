// test_lab_kit.cpp — the lab kit (walkthrough/LABS.md): labs/check_kit.sh quick makes a kit in a temporary
// folder and checks that no distinctive line of a removed lab body is left in it (and that the same check
// does find them in ref/), that the kit differs from the repository only in its stubbed files, and that
// stubbed files compile. The full check (build the kit, every lab fails, one restored lab passes alone)
// is make lab-check.
#include <catch2/catch.hpp>
#include <cstdio>
#include <string>

#include "test_util.h"

TEST_CASE("lab kit: no removed body leaks, only the stubbed files differ, stubs compile", "[labs]") {
    FILE* p = popen("labs/check_kit.sh quick 2>&1", "r");
    REQUIRE(p != nullptr);
    std::string out;
    char buf[4096];
    while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
    const int rc = pclose(p);
    INFO(out);
    REQUIRE(rc == 0);
    CHECK(out.find("check_kit") != std::string::npos);
}

// The grader's explanation of a failure (labs/lab_test.sh): from a Catch2 console report it keeps the
// first failed check only, names its test case and place, turns "a == Approx( b )" into got/expected,
// and keeps the message (the index of the first mismatch). A canned report, so no build is needed.
TEST_CASE("lab-test explains the first failure: test case, place, got vs expected, the message", "[labs]") {
    const std::string dashes(79, '-'), dots(79, '.');
    const std::string report = dashes + "\nRMSNorm matches the golden rows\n" + dashes + "\ntests/t.cpp:10\n" + dots +
                               "\n\ntests/t.cpp:12: FAILED:\n  CHECK( y[1] == Approx(2.0) )\nwith expansion:\n"
                               "  1.5f == Approx( 2.0 )\nwith message:\n  y: first mismatch at index 1\n\n"
                               "tests/t.cpp:13: FAILED:\n  CHECK( second )\nwith expansion:\n  false\n\n";
    const dsref_test::TempDir dir;
    const std::string path = dir.file("report.txt");
    FILE* f = std::fopen(path.c_str(), "w");
    REQUIRE(f != nullptr);
    std::fputs(report.c_str(), f);
    std::fclose(f);
    FILE* p = popen(("labs/lab_test.sh --first-failure < '" + path + "' 2>&1").c_str(), "r");
    REQUIRE(p != nullptr);
    std::string out;
    char buf[4096];
    while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
    REQUIRE(pclose(p) == 0);
    INFO(out);
    CHECK(out.find("first failure: \"RMSNorm matches the golden rows\" at tests/t.cpp:12") != std::string::npos);
    CHECK(out.find("got 1.5f, expected 2.0") != std::string::npos);
    CHECK(out.find("y: first mismatch at index 1") != std::string::npos);
    CHECK(out.find("second") == std::string::npos);  // only the first failure
}
