// test_safetensors.cpp — covers ref/safetensors.{h,cpp} and the dtype conversions of ref/core/tensor.cpp:
// round trips of every dtype, sharded == unsharded, and one clear error per malformed-file case.
#include <catch2/catch.hpp>
#include <cstring>

#include "core/error.h"
#include "io/safetensors.h"
#include "test_util.h"

using namespace dsref;
using dsref_test::TempDir;

namespace {

// A file from a header string and a buffer of `nbuf` zero bytes (for malformed-file cases).
void write_raw(const std::string& path, const std::string& header, size_t nbuf, int64_t header_len_override = -1) {
    std::string s(8, '\0');
    uint64_t n = header_len_override >= 0 ? (uint64_t)header_len_override : header.size();
    std::memcpy(&s[0], &n, 8);
    s += header;
    s += std::string(nbuf, '\0');
    dsref_test::write_text(path, s);
}

std::string error_of(const std::string& path) {
    try {
        SafetensorsFile f(path);
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

}  // namespace

TEST_CASE("safetensors round trip keeps every dtype, shape and byte", "[ref][io]") {
    TempDir dir;
    TensorMap m;
    m["f32"] = Tensor::from_f32({2, 3}, {1, -2, 3.5f, 0, 1e-30f, -7});
    m["bf16"] = Tensor::encode_f32({3}, {1.0f, -2.5f, 3.140625f}, DType::BF16);
    m["f16"] = Tensor::encode_f32({2}, {0.5f, -65504.0f}, DType::F16);
    m["e4m3"] = Tensor::from_u8({4}, {0x38, 0x7E, 0xFE, 0x01}, DType::F8_E4M3);
    m["e5m2"] = Tensor::from_u8({3}, {0x3C, 0x7B, 0x7C}, DType::F8_E5M2);
    m["i32"] = Tensor::from_i32({2, 2}, {1, -2, 3, 2147483647});
    Tensor i64 = Tensor::zeros(DType::I64, {2});
    int64_t v64[2] = {-5, 1ll << 40};
    std::memcpy(i64.bytes.data(), v64, 16);
    m["i64"] = i64;
    m["u8"] = Tensor::from_u8({3}, {0, 128, 255});
    m["scalar"] = Tensor::scalar(42.0f);
    m["empty"] = Tensor::zeros(DType::F32, {0, 4});
    write_safetensors(dir.file("a.safetensors"), m);

    TensorMap r = read_safetensors(dir.file("a.safetensors"));
    REQUIRE(r.size() == m.size());
    for (const auto& kv : m) {
        INFO(kv.first);
        REQUIRE(r.count(kv.first));
        CHECK(r[kv.first].dtype == kv.second.dtype);
        CHECK(r[kv.first].shape == kv.second.shape);
        CHECK(r[kv.first].bytes == kv.second.bytes);
    }
    // Hand-derived decodes (ref/core/fp8_format.h): e4m3 0x38 = 1, 0x7E = 448, 0xFE = -448, 0x01 = 2^-9;
    // e5m2 0x3C = 1, 0x7B = 57344, 0x7C = +inf; bf16 keeps 3.140625 exactly.
    CHECK(r["e4m3"].to_f32() == std::vector<float>{1.0f, 448.0f, -448.0f, 0.001953125f});
    std::vector<float> e5 = r["e5m2"].to_f32();
    CHECK(e5[0] == 1.0f);
    CHECK(e5[1] == 57344.0f);
    CHECK(std::isinf(e5[2]));
    CHECK(r["bf16"].to_f32() == std::vector<float>{1.0f, -2.5f, 3.140625f});
    CHECK(r["f16"].to_f32() == std::vector<float>{0.5f, -65504.0f});
    CHECK(r["i64"].to_i64() == std::vector<int64_t>{-5, 1ll << 40});
    CHECK(r["scalar"].rank() == 0);
    CHECK(r["scalar"].to_f32() == std::vector<float>{42.0f});
}

TEST_CASE("bf16 and f16 conversions round to nearest even", "[ref][io]") {
    // 1 + 2^-8 is exactly half-way between bf16 1.0 and 1 + 2^-7: ties go to the even mantissa (1.0).
    CHECK(bf16_round(1.0f + std::ldexp(1.0f, -8)) == 1.0f);
    // 1 + 3·2^-8 is half-way between 1 + 2^-7 (odd) and 1 + 2^-6 (even): rounds up to 1 + 2^-6.
    CHECK(bf16_round(1.0f + 3 * std::ldexp(1.0f, -8)) == 1.0f + std::ldexp(1.0f, -6));
    CHECK(f32_to_bf16(1.0f) == 0x3F80);
    CHECK(std::isnan(bf16_to_f32(f32_to_bf16(NAN))));
    CHECK(f32_to_f16(1.0f) == 0x3C00);
    CHECK(f32_to_f16(65504.0f) == 0x7BFF);
    CHECK(f32_to_f16(65520.0f) == 0x7C00);  // the tie above max rounds to infinity
    CHECK(f32_to_f16(std::ldexp(1.0f, -24)) == 0x0001);
    CHECK(f16_to_f32(0x0001) == std::ldexp(1.0f, -24));
    CHECK(f32_to_f16(1.0f + std::ldexp(1.0f, -11)) == 0x3C00);  // tie to even
}

TEST_CASE("a sharded checkpoint reads the same tensors as an unsharded one", "[ref][io]") {
    TempDir one, three;
    TensorMap m;
    for (int i = 0; i < 7; i++) m["t" + std::to_string(i)] = Tensor::from_f32({2, 2}, dsref_test::randn(4, i));
    write_checkpoint(one.path, m, 1);
    write_checkpoint(three.path, m, 3);
    Checkpoint a(one.path), b(three.path);
    CHECK(a.n_files() == 1);
    CHECK(b.n_files() == 3);
    REQUIRE(a.names() == b.names());
    for (const std::string& n : a.names()) CHECK(a.load_f32(n, {2, 2}) == b.load_f32(n, {2, 2}));
    CHECK_THROWS_WITH(b.get("nope"), Catch::Contains("has no tensor 'nope'"));
    CHECK_THROWS_WITH(a.load_f32("t0", {4}), Catch::Contains("'t0' has shape [2, 2], expected [4]"));
}

TEST_CASE("an index that points to a missing shard or tensor is refused", "[ref][io]") {
    TempDir dir;
    write_safetensors(dir.file("s1.safetensors"), {{"a", Tensor::scalar(1)}});
    dsref_test::write_text(dir.file("model.safetensors.index.json"), R"({"weight_map": {"a": "s1.safetensors", "b": "s2.safetensors"}})");
    CHECK_THROWS_WITH(Checkpoint(dir.path), Catch::Contains("shard 's2.safetensors' does not exist"));
    dsref_test::write_text(dir.file("model.safetensors.index.json"), R"({"weight_map": {"b": "s1.safetensors"}})");
    CHECK_THROWS_WITH(Checkpoint(dir.path), Catch::Contains("tensor 'b' is mapped to s1.safetensors, which does not contain it"));
    dsref_test::write_text(dir.file("model.safetensors.index.json"), R"({"nothing": 1})");
    CHECK_THROWS_WITH(Checkpoint(dir.path), Catch::Contains("weight_map"));
    TempDir empty;
    CHECK_THROWS_WITH(Checkpoint(empty.path), Catch::Contains("no model.safetensors or model.safetensors.index.json"));
}

TEST_CASE("every malformed safetensors file gets its own clear error", "[ref][io]") {
    TempDir dir;
    const std::string p = dir.file("bad.safetensors");
    const std::string ok = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";

    dsref_test::write_text(p, "abc");
    CHECK_THAT(error_of(p), Catch::Contains("truncated"));

    write_raw(p, ok, 8, 1000);  // claims a longer header than the file holds
    CHECK_THAT(error_of(p), Catch::Contains("bad header length 1000"));

    write_raw(p, ok, 8, (int64_t)200 << 20);
    CHECK_THAT(error_of(p), Catch::Contains("bad header length"));

    write_raw(p, "{not json", 0);
    CHECK_THAT(error_of(p), Catch::Contains("not valid JSON"));

    write_raw(p, R"({"a":{"dtype":"F33","shape":[2],"data_offsets":[0,8]}})", 8);
    CHECK_THAT(error_of(p), Catch::Contains("unknown dtype 'F33'"));

    write_raw(p, R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8);
    CHECK_THAT(error_of(p), Catch::Contains("tensor 'a': 8 bytes for shape [3]"));

    write_raw(p, R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 4);
    CHECK_THAT(error_of(p), Catch::Contains("out of range"));

    write_raw(p, R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12);
    CHECK_THAT(error_of(p), Catch::Contains("overlaps"));

    write_raw(p, R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8);
    CHECK_THAT(error_of(p), Catch::Contains("hole"));

    write_raw(p, R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 8);
    CHECK_THAT(error_of(p), Catch::Contains("trailing bytes"));

    write_raw(p, R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8);
    CHECK_THAT(error_of(p), Catch::Contains("duplicate tensor name 'a'"));

    write_raw(p, R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4);
    CHECK_THAT(error_of(p), Catch::Contains("non-negative"));

    write_raw(p, R"({"a":{"dtype":"F32","shape":[1]}})", 4);
    CHECK_THAT(error_of(p), Catch::Contains("needs dtype, shape and data_offsets"));

    CHECK_THAT(error_of(dir.file("missing.safetensors")), Catch::Contains("cannot open"));

    // The good header is accepted, metadata included.
    write_raw(p, R"({"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 8);
    CHECK(error_of(p).empty());
}
