// bpe.cpp — see bpe.h.
#include "text/bpe.h"

#include <cstdio>
#include <queue>

#include "core/error.h"
#include "text/utf8.h"

namespace dsref::text {

namespace {
constexpr size_t kCacheMax = 1 << 20;  // words kept; beyond this the cache stops growing

uint64_t pair_key(int32_t a, int32_t b) { return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b; }
}  // namespace

Bpe::Bpe(const nlohmann::json& m, const std::string& file) {
    const std::string where = file + ": model";
    if (!m.is_object()) fail(where, " is not an object");
    if (!m.contains("type") || m["type"] != "BPE")
        fail(where, ".type is ", m.contains("type") ? m["type"].dump() : "missing", " (only \"BPE\" is supported)");
    auto null_or = [&](const char* key) { return !m.contains(key) || m[key].is_null(); };
    if (!null_or("dropout") && !(m["dropout"].is_number() && m["dropout"].get<double>() == 0.0))
        fail(where, ".dropout is ", m["dropout"].dump(), " (BPE dropout is random: not supported)");
    for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
        if (!null_or(key) && !(m[key].is_string() && m[key].get<std::string>().empty()))
            fail(where, ".", key, " is ", m[key].dump(), " (not supported)");
    auto flag = [&](const char* key) {
        if (null_or(key)) return false;
        if (!m[key].is_boolean()) fail(where, ".", key, " is not a boolean");
        return m[key].get<bool>();
    };
    ignore_merges_ = flag("ignore_merges");
    byte_fallback_ = flag("byte_fallback");
    fuse_unk_ = flag("fuse_unk");

    if (!m.contains("vocab") || !m["vocab"].is_object()) fail(where, ".vocab is missing or not an object");
    vocab_.reserve(m["vocab"].size() * 2);
    int32_t max_id = -1;
    for (auto it = m["vocab"].begin(); it != m["vocab"].end(); ++it) {
        if (!it.value().is_number_integer() || it.value().get<int64_t>() < 0 || it.value().get<int64_t>() > (1 << 30))
            fail(where, ".vocab[", nlohmann::json(it.key()).dump(), "] is not a valid id");
        const int32_t id = it.value().get<int32_t>();
        vocab_[it.key()] = id;
        max_id = std::max(max_id, id);
    }
    id_to_token_.assign(max_id + 1, std::string());
    has_id_.assign(max_id + 1, false);
    for (const auto& kv : vocab_) {
        if (has_id_[kv.second]) fail(where, ".vocab: id ", kv.second, " is given to two tokens");
        id_to_token_[kv.second] = kv.first;
        has_id_[kv.second] = true;
    }
    if (!null_or("unk_token")) {
        if (!m["unk_token"].is_string()) fail(where, ".unk_token is not a string");
        unk_id_ = token_id(m["unk_token"].get<std::string>());
        if (unk_id_ < 0) fail(where, ".unk_token ", m["unk_token"].dump(), " is not in the vocab");
    }

    if (!m.contains("merges") || !m["merges"].is_array()) fail(where, ".merges is missing or not an array");
    const auto& merges = m["merges"];
    merges_.reserve(merges.size() * 2);
    for (size_t r = 0; r < merges.size(); r++) {
        const auto& e = merges[r];
        std::string a, b;
        if (e.is_string()) {  // "a b": the older form, split at the one space
            const std::string s = e.get<std::string>();
            const size_t sp = s.find(' ');
            if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
                fail(where, ".merges[", r, "] ", e.dump(), " is not two tokens separated by one space");
            a = s.substr(0, sp);
            b = s.substr(sp + 1);
        } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
            a = e[0].get<std::string>();
            b = e[1].get<std::string>();
        } else {
            fail(where, ".merges[", r, "] is neither \"a b\" nor [\"a\", \"b\"]");
        }
        const int32_t ia = token_id(a), ib = token_id(b), im = token_id(a + b);
        if (ia < 0) fail(where, ".merges[", r, "]: token ", nlohmann::json(a).dump(), " is not in the vocab");
        if (ib < 0) fail(where, ".merges[", r, "]: token ", nlohmann::json(b).dump(), " is not in the vocab");
        if (im < 0) fail(where, ".merges[", r, "]: the merged token ", nlohmann::json(a + b).dump(), " is not in the vocab");
        merges_.emplace(pair_key(ia, ib), Merge{(int32_t)r, im});  // a repeated pair keeps its first rank
    }
}

int32_t Bpe::token_id(const std::string& token) const {
    auto it = vocab_.find(token);
    return it == vocab_.end() ? -1 : it->second;
}

const std::string* Bpe::token_of(int32_t id) const {
    if (id < 0 || id >= (int32_t)id_to_token_.size() || !has_id_[id]) return nullptr;
    return &id_to_token_[id];
}

// LAB(bpe) task: apply the merges to the symbol ids of one word: while some adjacent pair (a, b) has a merge, replace the
// LAB(bpe) pair of lowest rank (the leftmost on a tie) by the merged id (bpe.h; Sennrich et al., section 3.2).
// LAB(bpe) hint: merges_.find(pair_key(a, b)) gives {rank, id}; rescanning the word after each merge is correct (and
// LAB(bpe) hint: enough for the tests); long words want a min-heap of (rank, position) over a linked list.
void Bpe::merge_all(std::vector<int32_t>& syms) const {
    // LAB(bpe): begin
    const int n = (int)syms.size();
    if (n < 2) return;
    if (n <= 8) {  // short words: scan for the lowest rank directly (the same order as the heap below)
        while (syms.size() >= 2) {
            int best = -1;
            Merge bm{INT32_MAX, -1};
            for (size_t i = 0; i + 1 < syms.size(); i++) {
                auto it = merges_.find(pair_key(syms[i], syms[i + 1]));
                if (it != merges_.end() && it->second.rank < bm.rank) {
                    bm = it->second;
                    best = (int)i;
                }
            }
            if (best < 0) return;
            syms[best] = bm.id;
            syms.erase(syms.begin() + best + 1);
        }
        return;
    }
    // A linked list of symbols and a min-heap of candidate merges ordered by (rank, position).
    std::vector<int32_t> prev(n), next(n);
    std::vector<bool> alive(n, true);
    for (int i = 0; i < n; i++) {
        prev[i] = i - 1;
        next[i] = i + 1 < n ? i + 1 : -1;
    }
    struct Cand {
        int32_t rank, pos, id;
        bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
    };
    std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap;
    auto push = [&](int pos) {
        const int nx = next[pos];
        if (nx < 0) return;
        auto it = merges_.find(pair_key(syms[pos], syms[nx]));
        if (it != merges_.end()) heap.push(Cand{it->second.rank, pos, it->second.id});
    };
    for (int i = 0; i + 1 < n; i++) push(i);
    while (!heap.empty()) {
        const Cand c = heap.top();
        heap.pop();
        if (!alive[c.pos] || next[c.pos] < 0) continue;
        const int right = next[c.pos];
        auto it = merges_.find(pair_key(syms[c.pos], syms[right]));
        if (it == merges_.end() || it->second.id != c.id) continue;  // stale: a neighbour changed
        syms[c.pos] = c.id;
        alive[right] = false;
        next[c.pos] = next[right];
        if (next[right] >= 0) prev[next[right]] = c.pos;
        if (prev[c.pos] >= 0) push(prev[c.pos]);
        push(c.pos);
    }
    size_t k = 0;
    for (int i = 0; i >= 0 && i < n; i = next[i]) syms[k++] = syms[i];
    syms.resize(k);
    // LAB(bpe): end
}

void Bpe::encode_word(const std::string& word, std::vector<int32_t>& out) {
    if (ignore_merges_) {
        const int32_t id = token_id(word);
        if (id >= 0) {
            out.push_back(id);
            return;
        }
    }
    auto hit = cache_.find(word);
    if (hit != cache_.end()) {
        out.insert(out.end(), hit->second.begin(), hit->second.end());
        return;
    }
    std::vector<int32_t> syms;
    syms.reserve(word.size());
    bool last_unk = false;
    for (size_t i = 0; i < word.size();) {
        int len = utf8_seq_len(word, i);
        if (len == 0) len = 1;  // not reached: pieces are valid UTF-8
        const std::string ch = word.substr(i, len);
        i += len;
        const int32_t id = token_id(ch);
        if (id >= 0) {
            syms.push_back(id);
            last_unk = false;
            continue;
        }
        if (byte_fallback_) {
            std::vector<int32_t> bytes;
            for (unsigned char b : ch) {
                char name[8];
                std::snprintf(name, sizeof name, "<0x%02X>", b);
                const int32_t bid = token_id(name);
                if (bid < 0) break;
                bytes.push_back(bid);
            }
            if (bytes.size() == ch.size()) {
                syms.insert(syms.end(), bytes.begin(), bytes.end());
                last_unk = false;
                continue;
            }
        }
        if (unk_id_ >= 0) {
            if (!(fuse_unk_ && last_unk)) syms.push_back(unk_id_);
            last_unk = true;
        }
    }
    merge_all(syms);
    out.insert(out.end(), syms.begin(), syms.end());
    if (cache_.size() < kCacheMax) cache_.emplace(word, std::move(syms));
}

}  // namespace dsref::text
