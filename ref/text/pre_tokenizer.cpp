// pre_tokenizer.cpp — see pre_tokenizer.h. Stages run depth first: each part of a piece goes through the
// remaining stages before the next part, which yields the pre-tokens in the same order as running each
// stage over all pieces.
#include "text/pre_tokenizer.h"

#include <algorithm>

#include "core/error.h"
#include "text/byte_level.h"

namespace dsref::text {

namespace {
// GPT-2's pre-tokenizer regex, as ByteLevel(use_regex=true) uses it (tokenizers byte_level.rs `RE`).
const char* kGpt2Regex = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

enum class Behavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };
}  // namespace

struct PreTokenizer::Stage {
    bool byte_level = false;
    // Split
    std::unique_ptr<Regex> re;
    Behavior behavior = Behavior::Isolated;
    bool invert = false;
    // ByteLevel
    bool add_prefix_space = false;
};

PreTokenizer::PreTokenizer(const nlohmann::json& pre, const std::string& file) {
    if (pre.is_null()) return;
    add_stage(pre, file + ": pre_tokenizer");
}

PreTokenizer::~PreTokenizer() = default;

void PreTokenizer::add_stage(const nlohmann::json& p, const std::string& where) {
    if (!p.is_object() || !p.contains("type") || !p["type"].is_string()) fail(where, " has no \"type\"");
    const std::string type = p["type"];
    auto flag = [&](const char* key, bool dflt) {
        if (!p.contains(key) || p[key].is_null()) return dflt;
        if (!p[key].is_boolean()) fail(where, ".", key, " is not a boolean");
        return p[key].get<bool>();
    };
    if (type == "Sequence") {
        if (!p.contains("pretokenizers") || !p["pretokenizers"].is_array()) fail(where, ".pretokenizers is missing");
        for (size_t i = 0; i < p["pretokenizers"].size(); i++)
            add_stage(p["pretokenizers"][i], where + ".pretokenizers[" + std::to_string(i) + "]");
        return;
    }
    auto st = std::make_unique<Stage>();
    if (type == "Split") {
        if (!p.contains("pattern") || !p["pattern"].is_object()) fail(where, ".pattern is missing");
        const auto& pat = p["pattern"];
        if (pat.contains("Regex") && pat["Regex"].is_string())
            st->re = std::make_unique<Regex>(pat["Regex"].get<std::string>(), false, where + ".pattern.Regex");
        else if (pat.contains("String") && pat["String"].is_string())
            st->re = std::make_unique<Regex>(pat["String"].get<std::string>(), true, where + ".pattern.String");
        else
            fail(where, ".pattern is neither {\"Regex\": ...} nor {\"String\": ...}");
        const std::string b = p.contains("behavior") && p["behavior"].is_string() ? p["behavior"].get<std::string>() : "";
        if (b == "Removed") st->behavior = Behavior::Removed;
        else if (b == "Isolated") st->behavior = Behavior::Isolated;
        else if (b == "MergedWithPrevious") st->behavior = Behavior::MergedWithPrevious;
        else if (b == "MergedWithNext") st->behavior = Behavior::MergedWithNext;
        else if (b == "Contiguous") st->behavior = Behavior::Contiguous;
        else fail(where, ".behavior ", p.value("behavior", nlohmann::json()).dump(), " is not one of Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous");
        st->invert = flag("invert", false);
    } else if (type == "ByteLevel") {
        st->byte_level = true;
        st->add_prefix_space = flag("add_prefix_space", true);
        if (flag("use_regex", true)) st->re = std::make_unique<Regex>(kGpt2Regex, false, where + " (GPT-2 regex)");
    } else {
        fail(where, ".type \"", type, "\" is not supported (Sequence, Split, ByteLevel are)");
    }
    stages_.push_back(std::move(st));
}

void PreTokenizer::run(const char* s, size_t n, const std::function<void(const std::string&)>& emit) const {
    if (n == 0) return;
    run_from(0, s, n, emit);
}

void PreTokenizer::run_from(size_t k, const char* s, size_t n, const std::function<void(const std::string&)>& emit) const {
    if (k == stages_.size()) {
        emit(std::string(s, n));
        return;
    }
    const Stage& st = *stages_[k];
    if (st.byte_level) {
        std::string piece;
        if (st.add_prefix_space && s[0] != ' ') piece = " ";
        piece.append(s, n);
        std::vector<std::pair<size_t, size_t>> parts;
        if (st.re) {  // Isolated split by the GPT-2 regex: matches and the text between them
            std::vector<std::pair<size_t, size_t>> m;
            st.re->find_all(piece.data(), piece.size(), m);
            size_t prev = 0;
            for (const auto& [b, e] : m) {
                if (prev < b) parts.emplace_back(prev, b);
                parts.emplace_back(b, e);
                prev = e;
            }
            if (prev < piece.size()) parts.emplace_back(prev, piece.size());
        } else {
            parts.emplace_back(0, piece.size());
        }
        for (const auto& [b, e] : parts) {
            if (b == e) continue;
            std::string mapped;
            mapped.reserve(2 * (e - b));
            append_byte_level(mapped, piece.data() + b, e - b);
            run_from(k + 1, mapped.data(), mapped.size(), emit);
        }
        return;
    }
    // Split: (offsets, is_match) over the whole piece, as normalizer.rs `split` builds them.
    std::vector<std::pair<size_t, size_t>> m;
    st.re->find_all(s, n, m);
    struct Part {
        size_t b, e;
        bool match;
    };
    std::vector<Part> parts;
    size_t prev = 0;
    for (const auto& [b, e] : m) {
        if (prev < b) parts.push_back({prev, b, false});
        parts.push_back({b, e, true});
        prev = e;
    }
    if (prev < n) parts.push_back({prev, n, false});
    if (st.invert)
        for (Part& p : parts) p.match = !p.match;
    std::vector<Part> out;  // .match now means "remove"
    switch (st.behavior) {
        case Behavior::Removed:
            for (const Part& p : parts) out.push_back({p.b, p.e, p.match});
            break;
        case Behavior::Isolated:
            for (const Part& p : parts) out.push_back({p.b, p.e, false});
            break;
        case Behavior::MergedWithPrevious: {
            bool prev_match = false;
            for (const Part& p : parts) {
                if (p.match && !prev_match && !out.empty()) out.back().e = p.e;
                else out.push_back({p.b, p.e, false});
                prev_match = p.match;
            }
            break;
        }
        case Behavior::MergedWithNext: {
            bool prev_match = false;
            for (size_t i = parts.size(); i-- > 0;) {
                const Part& p = parts[i];
                if (p.match && !prev_match && !out.empty()) out.back().b = p.b;
                else out.push_back({p.b, p.e, false});
                prev_match = p.match;
            }
            std::reverse(out.begin(), out.end());
            break;
        }
        case Behavior::Contiguous: {
            int prev_match = -1;
            for (const Part& p : parts) {
                if ((int)p.match == prev_match && !out.empty()) out.back().e = p.e;
                else out.push_back({p.b, p.e, false});
                prev_match = p.match;
            }
            break;
        }
    }
    for (const Part& p : out)
        if (!p.match && p.e > p.b) run_from(k + 1, s + p.b, p.e - p.b, emit);
}

}  // namespace dsref::text
