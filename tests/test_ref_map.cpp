// test_ref_map.cpp — ref/README.md's paper-to-code map and pinned-choice table name code that exists, and
// no comment or doc cites a document outside the repository.
//
//   1. Every `file: function` span of ref/README.md names a file that exists and a function defined in
//      it (a line that starts with a return type, then the name, then "("), so renaming a function
//      without updating the map fails here with the row named.
//   2. Every other path span (`ref/...`, `tests/...`, `data/...`, `walkthrough/...`, `cuda/...`, or
//      `core/rope.h`-style paths relative to ref/) and every relative markdown link exists.
//   3. The text files of ref, cuda, tests, walkthrough, data, the Makefile and README.md contain none of
//      the pointers to notes that are not part of the repository (section numbers of private specs,
//      reviewer tags, issue numbers): comments cite a paper section, the official code, transformers, a
//      walkthrough chapter or a file in the repository (ref/README.md, "Sources, and how they are cited").
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace fs = std::filesystem;

namespace {
std::string read_file(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    std::stringstream ss(text);
    for (std::string line; std::getline(ss, line);) out.push_back(line);
    return out;
}

// The `...` spans of a markdown text.
std::vector<std::string> code_spans(const std::string& md) {
    std::vector<std::string> out;
    const std::regex span("`([^`\n]+)`");
    for (std::sregex_iterator m(md.begin(), md.end(), span), end; m != end; ++m) out.push_back((*m)[1].str());
    return out;
}

// True when `file` defines `name` ("f" or "Class::method"): a non-comment line of the form
// "<return type ...> name(" — e.g. "MoeRouting moe_route(", "std::vector<float> Model::forward_hidden(".
bool defines(const std::string& file_text, const std::string& name) {
    const std::regex def("^(?:[A-Za-z_][A-Za-z0-9_:<>,*&]*\\s+)+[*&]?" + name + "\\s*\\(");  // ':' is not special
    for (const std::string& line : lines_of(file_text)) {
        if (line.rfind("//", 0) == 0) continue;
        if (std::regex_search(line, def)) return true;
    }
    return false;
}
}  // namespace

TEST_CASE("every file: function of ref/README.md's map exists", "[map]") {
    REQUIRE(fs::exists("ref/README.md"));
    const std::string md = read_file("ref/README.md");
    const std::regex file_fn("^((?:ref|tests|walkthrough|data|cuda)/[A-Za-z0-9_./-]+): ([A-Za-z_][A-Za-z0-9_:]*)$");
    int functions = 0;
    for (const std::string& s : code_spans(md)) {
        std::smatch m;
        if (!std::regex_match(s, m, file_fn)) continue;
        const std::string file = m[1].str(), name = m[2].str();
        INFO("ref/README.md names `" << s << "`");
        REQUIRE(fs::is_regular_file(file));
        CHECK(defines(read_file(file), name));
        functions++;
    }
    CHECK(functions > 80);  // the map was parsed, not skipped
    // One section per paper: DeepSeek LLM, V2, V3, DeepSeekMath, R1.
    for (const char* paper : {"2401.02954", "2405.04434", "2412.19437", "2402.03300", "2501.12948"}) {
        INFO("paper arXiv " << paper);
        CHECK(md.find(std::string("(arXiv ") + paper + ")") != std::string::npos);
    }
}

TEST_CASE("every path and link of ref/README.md exists", "[map]") {
    const std::string md = read_file("ref/README.md");
    const std::regex repo_path("^(?:ref|tests|walkthrough|data|cuda)/[A-Za-z0-9_./-]+$");
    const std::regex ref_path("^(?:core|io|fp8|moe|rl|model|ops|tools|cli|bench)/[A-Za-z0-9_.]+\\.(?:h|cpp)$");
    int paths = 0;
    for (const std::string& s : code_spans(md)) {
        if (s.find(": ") != std::string::npos) continue;  // file: function, checked above
        std::string p;
        if (std::regex_match(s, repo_path)) p = s;
        else if (std::regex_match(s, ref_path)) p = "ref/" + s;
        else continue;
        while (!p.empty() && p.back() == '/') p.pop_back();
        INFO("ref/README.md names `" << s << "`");
        CHECK(fs::exists(p));
        paths++;
    }
    const std::regex link("\\]\\(([^)#:]+)(?:#[^)]*)?\\)");
    for (std::sregex_iterator m(md.begin(), md.end(), link), end; m != end; ++m) {
        const fs::path p = fs::path("ref") / (*m)[1].str();
        INFO("ref/README.md links to " << (*m)[1].str());
        CHECK(fs::exists(p));
        paths++;
    }
    CHECK(paths > 40);
}

TEST_CASE("comments and docs cite nothing outside the repository", "[map][citations]") {
    // The patterns are assembled so that this file does not match them itself.
    const std::string sp = std::string("sp") + "ec";
    const std::regex banned(sp + " [0-9]|" + sp + " §|" + sp + " grpo|" + sp + "\\.md|\\[" "REM|\\[" "HF[0-9]|"
                            "\\[" "OFF\\]|pit" "fall [0-9]|style" "\\.md|shared" "/|issue" " [0-9]|/wo" "rk/|/ro" "ot/");
    const std::set<std::string> text_ext = {".md", ".h", ".hpp", ".cpp", ".cc", ".cu", ".cuh", ".py", ".sh", ".txt"};
    std::vector<fs::path> files = {"Makefile", "README.md"};
    for (const char* dir : {"ref", "cuda", "tests", "walkthrough", "data"})
        for (const auto& e : fs::recursive_directory_iterator(dir))
            if (e.is_regular_file() && text_ext.count(e.path().extension().string()) &&
                e.path().filename() != "test_ref_map.cpp")
                files.push_back(e.path());
    int scanned = 0;
    for (const fs::path& f : files) {
        const std::vector<std::string> lines = lines_of(read_file(f));
        scanned++;
        for (size_t i = 0; i < lines.size(); i++) {
            if (!std::regex_search(lines[i], banned)) continue;
            INFO(f.string() << ":" << i + 1 << ": " << lines[i]);
            CHECK(false);
        }
    }
    CHECK(scanned > 150);
}
