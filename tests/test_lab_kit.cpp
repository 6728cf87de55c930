// test_lab_kit.cpp — the lab kit (walkthrough/LABS.md): labs/check_kit.sh quick makes a kit in a temporary
// folder and checks that no distinctive line of a removed lab body is left in it (and that the same check
// does find them in ref/), that the kit differs from the repository only in its stubbed files, and that
// stubbed files compile. The full check (build the kit, every lab fails, one restored lab passes alone)
// is make lab-check.
#include <catch2/catch.hpp>
#include <cstdio>
#include <string>

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
