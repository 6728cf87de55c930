// added_tokens.cpp — see added_tokens.h. The matcher is a byte trie: at each start position, the longest
// token starting there; the first start position that has one wins (leftmost-longest).
#include "text/added_tokens.h"

#include <algorithm>
#include <map>

#include "core/error.h"

namespace dsref::text {

struct AddedTokens::Trie {
    struct Node {
        std::map<unsigned char, int> next;
        int token = -1;  // index into tokens_
    };
    std::vector<Node> nodes{1};
    int root[256];  // the root's children as a table: most bytes start no token
    Trie() { std::fill(root, root + 256, -1); }
    void add(const std::string& s, int token) {
        int n = 0;
        for (unsigned char c : s) {
            if (n == 0 && root[c] >= 0) {
                n = root[c];
                continue;
            }
            auto it = nodes[n].next.find(c);
            if (it == nodes[n].next.end()) {
                nodes.emplace_back();
                const int child = (int)nodes.size() - 1;
                if (n == 0) root[c] = child;
                nodes[n].next[c] = child;
                n = child;
            } else {
                n = it->second;
            }
        }
        if (nodes[n].token < 0) nodes[n].token = token;
    }
    // The longest token at s[i, e) : (token, length), or token -1.
    std::pair<int, size_t> longest(const std::string& s, size_t i, size_t e) const {
        int n = root[(unsigned char)s[i]], best = -1;
        size_t best_len = 0;
        if (n < 0) return {-1, 0};
        if (nodes[n].token >= 0) {
            best = nodes[n].token;
            best_len = 1;
        }
        for (size_t j = i + 1; j < e; j++) {
            auto it = nodes[n].next.find((unsigned char)s[j]);
            if (it == nodes[n].next.end()) break;
            n = it->second;
            if (nodes[n].token >= 0) {
                best = nodes[n].token;
                best_len = j + 1 - i;
            }
        }
        return {best, best_len};
    }
    bool empty() const { return nodes.size() == 1; }
};

AddedTokens::AddedTokens(const nlohmann::json& arr, const std::string& file)
    : raw_(new Trie), normalized_(new Trie) {
    // Rust regex \w (Unicode word characters) and \s (White_Space), as the single_word / strip tests use.
    const std::string w = R"([\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control}])";
    word_start_ = std::make_unique<Regex>("^" + w, false, "single_word test");
    word_end_ = std::make_unique<Regex>(w + "$", false, "single_word test");
    space_start_ = std::make_unique<Regex>(R"(^\p{White_Space}*)", false, "rstrip test");
    space_end_ = std::make_unique<Regex>(R"(\p{White_Space}*$)", false, "lstrip test");
    if (arr.is_null()) return;
    if (!arr.is_array()) fail(file, ": added_tokens is not an array");
    for (size_t i = 0; i < arr.size(); i++) {
        const auto& t = arr[i];
        const std::string where = file + ": added_tokens[" + std::to_string(i) + "]";
        if (!t.is_object() || !t.contains("id") || !t["id"].is_number_integer() || !t.contains("content") ||
            !t["content"].is_string())
            fail(where, " needs an integer \"id\" and a string \"content\"");
        auto flag = [&](const char* key, bool dflt) {
            if (!t.contains(key) || t[key].is_null()) return dflt;
            if (!t[key].is_boolean()) fail(where, ".", key, " is not a boolean");
            return t[key].get<bool>();
        };
        AddedToken a;
        a.id = t["id"].get<int32_t>();
        a.content = t["content"].get<std::string>();
        if (a.id < 0) fail(where, ".id is negative");
        if (a.content.empty()) fail(where, ".content is empty");
        a.special = flag("special", false);
        a.lstrip = flag("lstrip", false);
        a.rstrip = flag("rstrip", false);
        a.single_word = flag("single_word", false);
        a.normalized = flag("normalized", !a.special);
        tokens_.push_back(a);
    }
    for (size_t i = 0; i < tokens_.size(); i++) by_id_.emplace(tokens_[i].id, i);
    for (size_t i = 0; i < tokens_.size(); i++) (tokens_[i].normalized ? *normalized_ : *raw_).add(tokens_[i].content, (int)i);
}

AddedTokens::~AddedTokens() = default;

const AddedToken* AddedTokens::by_id(int32_t id) const {
    auto it = by_id_.find(id);
    return it == by_id_.end() ? nullptr : &tokens_[it->second];
}

void AddedTokens::split_with(const Trie& trie, const std::string& s, size_t b, size_t e, std::vector<TextPiece>& out) const {
    if (trie.empty()) {
        out.push_back({b, e, -1});
        return;
    }
    size_t start_offset = b, i = b;
    while (i < e) {
        const auto [tok, len] = trie.longest(s, i, e);
        if (tok < 0) {
            i++;
            continue;
        }
        const AddedToken& t = tokens_[tok];
        size_t start = i, stop = i + len;
        i = stop;  // the search goes on after this match, used or not
        if (t.single_word) {
            const bool start_space = start == b || !word_end_->matches(s.data() + b, start - b);
            const bool stop_space = stop == e || !word_start_->matches(s.data() + stop, e - stop);
            if (!start_space || !stop_space) continue;
        }
        if (t.lstrip) {
            size_t mb, me;
            space_end_->find(s.data() + b, start - b, &mb, &me);
            start = std::max(b + mb, start_offset);
        }
        if (t.rstrip) {
            size_t mb, me;
            space_start_->find(s.data() + stop, e - stop, &mb, &me);
            stop += me;
            i = stop;
        }
        if (start_offset < start) out.push_back({start_offset, start, -1});
        out.push_back({start, stop, t.id});
        start_offset = stop;
    }
    if (start_offset < e) out.push_back({start_offset, e, -1});
}

std::vector<TextPiece> AddedTokens::split(const std::string& s) const {
    std::vector<TextPiece> first, out;
    split_with(*raw_, s, 0, s.size(), first);
    for (const TextPiece& p : first) {
        if (p.id >= 0) out.push_back(p);
        else split_with(*normalized_, s, p.b, p.e, out);
    }
    return out;
}

}  // namespace dsref::text
