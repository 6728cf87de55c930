// test_layering.cpp — the include graph of ref/ follows the folder layering of README.md ("Layout"):
// a folder includes only itself and the folders below it, so there are no upward includes and no
// cycles between folders. A new folder must be given its place here (and in ref/README.md).
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>

namespace fs = std::filesystem;

namespace {
// What each folder of ref/ may include (besides system and third-party headers).
const std::map<std::string, std::set<std::string>> kAllowed = {
    {"core", {"core"}},
    {"fp8", {"core", "fp8"}},
    {"moe", {"core", "moe"}},
    {"rl", {"core", "rl"}},
    {"io", {"core", "fp8", "moe", "io"}},
    {"model", {"core", "fp8", "moe", "io", "model"}},
    {"ops", {"core", "fp8", "moe", "rl", "io", "model", "ops"}},
    {"tools", {"core", "fp8", "moe", "io", "model", "tools"}},
    {"cli", {"core", "fp8", "moe", "rl", "io", "model", "ops", "tools", "train", "cli", "text", "post"}},
    {"bench", {"core", "fp8", "moe", "rl", "io", "model", "ops", "tools", "bench", "text"}},
    {"train", {"core", "moe", "train"}},
    {"text", {"core", "text"}},
    {"post", {"core", "fp8", "moe", "rl", "io", "model", "train", "post"}},
};
}  // namespace

TEST_CASE("every ref/ folder has a place in the layering and includes only folders below it", "[layering]") {
    REQUIRE(fs::is_directory("ref"));
    const std::regex include_re("#include \"([a-z0-9_]+)/[^\"]+\"");
    int files = 0, edges = 0;
    for (const auto& dir : fs::directory_iterator("ref")) {
        if (!dir.is_directory()) continue;
        const std::string folder = dir.path().filename().string();
        INFO("folder ref/" << folder);
        REQUIRE(kAllowed.count(folder));  // a new folder needs its row in kAllowed
        for (const auto& f : fs::directory_iterator(dir.path())) {
            std::ifstream in(f.path());
            std::stringstream ss;
            ss << in.rdbuf();
            const std::string text = ss.str();
            files++;
            for (std::sregex_iterator m(text.begin(), text.end(), include_re), end; m != end; ++m) {
                const std::string target = (*m)[1].str();
                if (!kAllowed.count(target)) continue;  // a local header of cli/ (cli.h) or a cuda/ path
                edges++;
                INFO(f.path().string() << " includes " << target << "/");
                CHECK(kAllowed.at(folder).count(target));
            }
        }
    }
    CHECK(files > 50);   // the scan saw the library, not an empty tree
    CHECK(edges > 100);
}
