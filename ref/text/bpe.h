// bpe.h — the BPE model of an HF tokenizer.json: vocabulary, merges by rank, and the encoding of one
// pre-token (a "word") into ids.
//
// A word starts as one symbol per character (the byte-level characters for DeepSeek); then, repeatedly,
// the adjacent pair with the lowest merge rank (ties: the leftmost) is replaced by the merged token,
// until no adjacent pair has a merge (Sennrich et al. 2016, Neural Machine Translation of Rare Words with
// Subword Units, section 3.2; huggingface/tokenizers tokenizers/src/models/bpe/word.rs `merge_all`: a
// min-heap of (rank, position) over a linked list of symbols, stale entries skipped). Words seen before
// come from a cache; the result never depends on it.
//
// ignore_merges: a word that is itself in the vocabulary is that one token (tokenizers' model.rs
// `tokenize`). byte_fallback: a character not in the vocabulary becomes its UTF-8 bytes as <0xXX>
// tokens; else unk_token if set; else it is dropped, as HF drops it.
#pragma once
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

namespace dsref::text {

class Bpe {
public:
    // model: the "model" object of tokenizer.json; file names the file in errors.
    Bpe(const nlohmann::json& model, const std::string& file);
    // Appends the ids of one word (a non-empty string in the vocabulary's alphabet).
    void encode_word(const std::string& word, std::vector<int32_t>& out);
    int32_t token_id(const std::string& token) const;  // -1 when absent
    const std::string* token_of(int32_t id) const;      // nullptr when no vocabulary token has this id
    int32_t max_id() const { return (int32_t)id_to_token_.size() - 1; }
    size_t vocab_size() const { return vocab_.size(); }
    size_t merges_size() const { return merges_.size(); }

private:
    struct Merge {
        int32_t rank, id;
    };
    void merge_all(std::vector<int32_t>& syms) const;
    std::unordered_map<std::string, int32_t> vocab_;
    std::vector<std::string> id_to_token_;
    std::vector<bool> has_id_;
    std::unordered_map<uint64_t, Merge> merges_;  // (left id << 32 | right id) → rank, merged id
    bool ignore_merges_ = false, byte_fallback_ = false, fuse_unk_ = false;
    int32_t unk_id_ = -1;
    std::unordered_map<std::string, std::vector<int32_t>> cache_;
};

}  // namespace dsref::text
