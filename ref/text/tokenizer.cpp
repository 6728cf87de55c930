// tokenizer.cpp — see tokenizer.h.
#include "text/tokenizer.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "text/byte_level.h"
#include "text/utf8.h"

namespace dsref::text {

std::unique_ptr<Tokenizer> Tokenizer::load(const std::string& path) {
    std::string file = path;
    if (std::filesystem::is_directory(path)) file = (std::filesystem::path(path) / "tokenizer.json").string();
    std::ifstream in(file, std::ios::binary);
    if (!in) fail(file, ": cannot open the tokenizer file");
    std::stringstream ss;
    ss << in.rdbuf();
    return std::make_unique<Tokenizer>(ss.str(), file);
}

Tokenizer::Tokenizer(const std::string& json_text, const std::string& file) : file_(file) {
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(json_text);
    } catch (const nlohmann::json::exception& e) {
        fail(file, ": not valid JSON: ", e.what());
    }
    if (!j.is_object()) fail(file, ": the top level is not an object");
    if (!j.contains("model")) fail(file, ": model is missing");
    // normalizer: the identity only (NFC/NFKC would need Unicode tables dsref does not carry)
    if (j.contains("normalizer") && !j["normalizer"].is_null()) {
        const auto& n = j["normalizer"];
        const bool empty_seq = n.is_object() && n.value("type", "") == "Sequence" && n.contains("normalizers") &&
                               n["normalizers"].is_array() && n["normalizers"].empty();
        if (!empty_seq)
            fail(file, ": normalizer ", n.dump().substr(0, 120),
                 " is not supported (only null or an empty Sequence: dsref has no Unicode normalization)");
    }
    if (j.contains("post_processor") && !j["post_processor"].is_null()) {
        const auto& p = j["post_processor"];
        if (!p.is_object() || p.value("type", "") != "ByteLevel")
            fail(file, ": post_processor of type ", p.is_object() ? p.value("type", "?") : p.dump(),
                 " is not supported (only ByteLevel, which adds no ids)");
    }
    if (j.contains("decoder") && !j["decoder"].is_null()) {
        const auto& d = j["decoder"];
        if (!d.is_object() || d.value("type", "") != "ByteLevel")
            fail(file, ": decoder of type ", d.is_object() ? d.value("type", "?") : d.dump(), " is not supported (only ByteLevel)");
        byte_level_decoder_ = true;
    }
    bpe_ = std::make_unique<Bpe>(j["model"], file);
    pre_ = std::make_unique<PreTokenizer>(j.contains("pre_tokenizer") ? j["pre_tokenizer"] : nlohmann::json(), file);
    added_ = std::make_unique<AddedTokens>(j.contains("added_tokens") ? j["added_tokens"] : nlohmann::json(), file);
    for (size_t i = 0; i < added_->tokens().size(); i++) {
        const AddedToken& t = added_->tokens()[i];
        const int32_t v = bpe_->token_id(t.content);
        if (v >= 0 && v != t.id)
            fail(file, ": added_tokens[", i, "] ", nlohmann::json(t.content).dump(), " has id ", t.id,
                 " but the vocab gives it ", v);
    }
}

int32_t Tokenizer::id_space() const {
    int32_t m = bpe_->max_id();
    for (const AddedToken& t : added_->tokens()) m = std::max(m, t.id);
    return m + 1;
}

int32_t Tokenizer::token_id(const std::string& token) const {
    for (const AddedToken& t : added_->tokens())
        if (t.content == token) return t.id;
    return bpe_->token_id(token);
}

std::vector<int32_t> Tokenizer::encode(const std::string& text) {
    const size_t bad = first_invalid_utf8(text);
    if (bad != std::string::npos) fail("the text is not valid UTF-8 at byte offset ", bad);
    std::vector<int32_t> ids;
    ids.reserve(text.size() / 3 + 4);
    for (const TextPiece& p : added_->split(text)) {
        if (p.id >= 0) {
            ids.push_back(p.id);
            continue;
        }
        pre_->run(text.data() + p.b, p.e - p.b, [&](const std::string& word) { bpe_->encode_word(word, ids); });
    }
    return ids;
}

std::string Tokenizer::decode_bytes(const std::vector<int32_t>& ids) const {
    std::string out;
    for (size_t i = 0; i < ids.size(); i++) {
        const AddedToken* a = added_->by_id(ids[i]);
        const std::string* tok = a ? &a->content : bpe_->token_of(ids[i]);
        if (!tok) fail("token id ", ids[i], " at position ", i, " is not in the tokenizer (", file_, ", ids 0..", id_space() - 1, ")");
        if (!byte_level_decoder_) {  // no decoder: HF joins the tokens with spaces
            if (i) out += ' ';
            out += *tok;
            continue;
        }
        std::string bytes;
        bool all = true;
        for (size_t k = 0; k < tok->size();) {
            int len = utf8_seq_len(*tok, k);
            if (len == 0) len = 1;
            const int b = len > 0 ? unicode_to_byte(utf8_decode_at(*tok, k, len)) : -1;
            if (b < 0) {
                all = false;
                break;
            }
            bytes += (char)b;
            k += len;
        }
        out += all ? bytes : *tok;
    }
    return out;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const { return utf8_lossy(decode_bytes(ids)); }

}  // namespace dsref::text

namespace dsref::text {

int32_t Tokenizer::bos_id() const {
    const std::filesystem::path cfg = std::filesystem::path(file_).parent_path() / "tokenizer_config.json";
    std::ifstream in(cfg, std::ios::binary);
    if (in) {
        nlohmann::json j;
        try {
            in >> j;
        } catch (const nlohmann::json::exception& e) {
            fail(cfg.string(), ": not valid JSON: ", e.what());
        }
        if (j.is_object() && j.contains("bos_token") && !j["bos_token"].is_null()) {
            const auto& b = j["bos_token"];
            std::string s;
            if (b.is_string()) s = b.get<std::string>();
            else if (b.is_object() && b.contains("content") && b["content"].is_string()) s = b["content"].get<std::string>();
            else fail(cfg.string(), ": bos_token is neither a string nor {\"content\": ...}");
            const int32_t id = token_id(s);
            if (id < 0) fail(cfg.string(), ": bos_token ", b.dump(), " is not a token of ", file_);
            return id;
        }
    }
    const int32_t id = token_id("<\uFF5Cbegin\u2581of\u2581sentence\uFF5C>");
    if (id < 0) fail(file_, ": no BOS token (no tokenizer_config.json bos_token next to it, no <｜begin▁of▁sentence｜>)");
    return id;
}

}  // namespace dsref::text
