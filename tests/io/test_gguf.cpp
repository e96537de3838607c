#define BOOST_TEST_MODULE gguf
#include "test_support.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <tuple>

#include "peft/error.h"
#include "peft/io/checkpoint.h"
#include "peft/io/gguf.h"
#include "peft/io/gguf_quants.h"
#include "peft/io/half.h"

namespace fs = std::filesystem;
using peft::io::DType;
using peft::io::GgufCheckpoint;
using peft::io::GgufValueType;
using peft::io::Shape;
using peft_test::put;

namespace {

fs::path golden_dir() { return peft_test::fixtures_dir() / "io" / "gguf"; }

// golden.expected (see tests/reference/make_gguf_fixture.py): per tensor, u64 name
// length, name, u64 count, f32[count] as dequantized by gguf-py.
std::vector<std::pair<std::string, std::vector<float>>> read_expected(const fs::path& p) {
  const std::string bytes = peft_test::read_file(p);
  std::vector<std::pair<std::string, std::vector<float>>> out;
  size_t pos = 0;
  auto u64 = [&]() {
    BOOST_REQUIRE(pos + 8 <= bytes.size());
    uint64_t v;
    std::memcpy(&v, bytes.data() + pos, 8);
    pos += 8;
    return v;
  };
  while (pos < bytes.size()) {
    const uint64_t name_len = u64();
    BOOST_REQUIRE(pos + name_len <= bytes.size());
    std::string name = bytes.substr(pos, name_len);
    pos += name_len;
    const uint64_t count = u64();
    BOOST_REQUIRE(pos + count * 4 <= bytes.size());
    std::vector<float> values(count);
    std::memcpy(values.data(), bytes.data() + pos, count * 4);
    pos += count * 4;
    out.emplace_back(std::move(name), std::move(values));
  }
  return out;
}

// Counts elements whose bits differ (so -0.0 vs 0.0 or a NaN would be caught too).
size_t count_bit_mismatches(const std::vector<float>& a, const std::vector<float>& b) {
  size_t n = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) n += std::memcmp(&a[i], &b[i], 4) != 0;
  return n + (a.size() > b.size() ? a.size() - b.size() : b.size() - a.size());
}

// ---- independent decoders for the real-model test (from the block layouts) -------

float f16_to_float(uint16_t h) {
  const int exponent = (h >> 10) & 0x1F;
  const int mantissa = h & 0x3FF;
  float v;
  if (exponent == 0)
    v = std::ldexp(static_cast<float>(mantissa), -24);
  else if (exponent == 31)
    v = mantissa ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity();
  else
    v = std::ldexp(static_cast<float>(mantissa + 1024), exponent - 25);
  return (h & 0x8000) ? -v : v;
}

uint16_t le16(const unsigned char* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }

// Q8_0: f16 d, 32 x int8; value q * d.
std::vector<float> decode_q8_0(const std::string& bytes) {
  std::vector<float> out;
  for (size_t b = 0; b + 34 <= bytes.size(); b += 34) {
    const auto* p = reinterpret_cast<const unsigned char*>(bytes.data() + b);
    const float d = f16_to_float(le16(p));
    for (int i = 0; i < 32; ++i) out.push_back(static_cast<float>(static_cast<signed char>(p[2 + i])) * d);
  }
  return out;
}

// Q4_1: f16 d, f16 m, 16 bytes; low nibbles are elements 0..15, high 16..31; q * d + m.
std::vector<float> decode_q4_1(const std::string& bytes) {
  std::vector<float> out;
  for (size_t b = 0; b + 20 <= bytes.size(); b += 20) {
    const auto* p = reinterpret_cast<const unsigned char*>(bytes.data() + b);
    const float d = f16_to_float(le16(p));
    const float m = f16_to_float(le16(p + 2));
    float block[32];
    for (int j = 0; j < 16; ++j) {
      block[j] = static_cast<float>(p[4 + j] & 0x0F) * d + m;
      block[j + 16] = static_cast<float>(p[4 + j] >> 4) * d + m;
    }
    out.insert(out.end(), block, block + 32);
  }
  return out;
}

std::string read_range(const fs::path& p, uint64_t offset, uint64_t length) {
  std::ifstream f(p, std::ios::binary);
  f.seekg(static_cast<std::streamoff>(offset));
  std::string out(length, '\0');
  f.read(out.data(), static_cast<std::streamsize>(length));
  BOOST_REQUIRE_MESSAGE(f.good(), "cannot read " << length << " bytes at " << offset << " of " << p);
  return out;
}

const fs::path kModel = "smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf";

}  // namespace

// ---- golden fixture written by gguf-py ---------------------------------------------

BOOST_AUTO_TEST_CASE(golden_metadata_has_every_value_type) {
  GgufCheckpoint ckpt(golden_dir() / "golden.gguf");
  BOOST_CHECK_EQUAL(ckpt.version(), 3u);
  BOOST_CHECK_EQUAL(ckpt.alignment(), 64u);  // from general.alignment, not the default
  BOOST_CHECK_EQUAL(ckpt.data_offset() % 64, 0u);

  const auto& md = ckpt.metadata();
  BOOST_CHECK_EQUAL(md.size(), 22u);

  using V = GgufValueType;
  // key -> (value type, element type for arrays), values from make_gguf_fixture.py.
  const std::map<std::string, std::pair<V, V>> types = {
      {"general.architecture", {V::STRING, V::STRING}},
      {"general.alignment", {V::U32, V::U32}},
      {"test.u8", {V::U8, V::U8}},
      {"test.i8", {V::I8, V::I8}},
      {"test.u16", {V::U16, V::U16}},
      {"test.i16", {V::I16, V::I16}},
      {"test.u32", {V::U32, V::U32}},
      {"test.i32", {V::I32, V::I32}},
      {"test.f32", {V::F32, V::F32}},
      {"test.bool_true", {V::BOOL, V::BOOL}},
      {"test.bool_false", {V::BOOL, V::BOOL}},
      {"test.string", {V::STRING, V::STRING}},
      {"test.u64", {V::U64, V::U64}},
      {"test.i64", {V::I64, V::I64}},
      {"test.f64", {V::F64, V::F64}},
      {"test.int_array", {V::ARRAY, V::I32}},
      {"test.float_array", {V::ARRAY, V::F32}},
      {"test.string_array", {V::ARRAY, V::STRING}},
      {"test.u64_array", {V::ARRAY, V::U64}},
      {"test.nested_array", {V::ARRAY, V::ARRAY}},
      {"test.nested_strings", {V::ARRAY, V::ARRAY}},
      {"test.deep_array", {V::ARRAY, V::ARRAY}},
  };
  for (const auto& [key, t] : types) {
    BOOST_TEST_CONTEXT("key " << key) {
      BOOST_REQUIRE(md.contains(key));
      BOOST_CHECK(ckpt.value_type(key) == t.first);
      if (t.first == V::ARRAY)
        BOOST_CHECK(ckpt.array_type(key) == t.second);
      else
        BOOST_CHECK_THROW(ckpt.array_type(key), peft::ValueError);
    }
  }
  BOOST_CHECK_THROW(ckpt.value_type("no.such.key"), peft::NotFoundError);

  BOOST_CHECK_EQUAL(md["general.architecture"].get<std::string>(), "testarch");
  BOOST_CHECK_EQUAL(md["general.alignment"].get<uint64_t>(), 64u);
  BOOST_CHECK(md["test.u8"].is_number_unsigned());
  BOOST_CHECK_EQUAL(md["test.u8"].get<uint64_t>(), 255u);
  BOOST_CHECK(md["test.i8"].is_number_integer() && !md["test.i8"].is_number_unsigned());
  BOOST_CHECK_EQUAL(md["test.i8"].get<int64_t>(), -128);
  BOOST_CHECK_EQUAL(md["test.u16"].get<uint64_t>(), 65535u);
  BOOST_CHECK_EQUAL(md["test.i16"].get<int64_t>(), -32768);
  BOOST_CHECK_EQUAL(md["test.u32"].get<uint64_t>(), 4294967295u);
  BOOST_CHECK_EQUAL(md["test.i32"].get<int64_t>(), -2147483648LL);
  BOOST_CHECK(md["test.f32"].is_number_float());
  BOOST_CHECK_EQUAL(md["test.f32"].get<double>(), -2.5);
  BOOST_CHECK(md["test.bool_true"].is_boolean() && md["test.bool_true"].get<bool>());
  BOOST_CHECK(md["test.bool_false"].is_boolean() && !md["test.bool_false"].get<bool>());
  BOOST_CHECK_EQUAL(md["test.string"].get<std::string>(), "h\xc3\xa9llo gguf");
  BOOST_CHECK(md["test.u64"].is_number_unsigned());
  BOOST_CHECK_EQUAL(md["test.u64"].get<uint64_t>(), std::numeric_limits<uint64_t>::max());
  BOOST_CHECK_EQUAL(md["test.i64"].get<int64_t>(), std::numeric_limits<int64_t>::min());
  BOOST_CHECK(md["test.f64"].is_number_float());
  BOOST_CHECK_EQUAL(md["test.f64"].get<double>(), 3.141592653589793);

  BOOST_CHECK_EQUAL(md["test.int_array"].dump(), "[1,-2,3]");
  BOOST_CHECK_EQUAL(md["test.float_array"].dump(), "[0.5,-1.25]");
  BOOST_CHECK_EQUAL(md["test.string_array"].dump(), R"(["a","","ccc"])");
  BOOST_CHECK_EQUAL(md["test.u64_array"].dump(), "[1,9223372036854775808]");
  BOOST_CHECK_EQUAL(md["test.nested_array"].dump(), "[[1,2],[3,4,5]]");
  BOOST_CHECK_EQUAL(md["test.nested_strings"].dump(), R"([["x"],["y","z"]])");
  BOOST_CHECK_EQUAL(md["test.deep_array"].dump(), "[[[7]]]");
}

BOOST_AUTO_TEST_CASE(golden_tensors_match_gguf_py_dequantization) {
  GgufCheckpoint ckpt(golden_dir() / "golden.gguf");
  const std::vector<std::tuple<std::string, DType, Shape>> want = {
      {"f32", DType::F32, {4, 64}},    {"f16", DType::F16, {4, 64}},    {"bf16", DType::BF16, {4, 64}},
      {"q8_0", DType::Q8_0, {4, 64}},  {"q4_0", DType::Q4_0, {4, 64}},  {"q4_1", DType::Q4_1, {4, 64}},
      {"q5_0", DType::Q5_0, {4, 64}},  {"q5_1", DType::Q5_1, {4, 64}},  {"q2_k", DType::Q2_K, {2, 512}},
      {"q3_k", DType::Q3_K, {2, 512}}, {"q4_k", DType::Q4_K, {2, 512}}, {"q5_k", DType::Q5_K, {2, 512}},
      {"q6_k", DType::Q6_K, {2, 512}},
  };
  BOOST_REQUIRE_EQUAL(ckpt.tensors().size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    const auto& [name, dtype, shape] = want[i];
    const auto& info = ckpt.tensors()[i];
    BOOST_TEST_CONTEXT("tensor " << name) {
      BOOST_CHECK_EQUAL(info.name, name);
      BOOST_CHECK(info.dtype == dtype);
      BOOST_CHECK(info.shape == shape);
      BOOST_CHECK_EQUAL(info.numel, static_cast<uint64_t>(shape[0] * shape[1]));
      BOOST_CHECK_EQUAL(info.nbytes, *peft::io::storage_bytes(dtype, info.numel));
    }
  }

  // Every product in these decoders is exact in float (f16 scale x small integer), so
  // ours and gguf-py's numpy agree bit for bit; no tolerance is needed.
  const auto expected = read_expected(golden_dir() / "golden.expected");
  BOOST_REQUIRE_EQUAL(expected.size(), want.size());
  for (const auto& [name, values] : expected) {
    BOOST_TEST_CONTEXT("tensor " << name) {
      const std::vector<float> ours = ckpt.to_float(name);
      BOOST_CHECK_EQUAL(ours.size(), values.size());
      BOOST_CHECK_EQUAL(count_bit_mismatches(ours, values), 0u);
      // A decoder returning zeros would be caught above; make sure the data is not trivial.
      size_t nonzero = 0;
      for (float v : values) nonzero += v != 0.0f;
      BOOST_CHECK_GT(nonzero, values.size() / 2);
    }
  }
}

// ---- hand-built files: v2 and the default alignment ---------------------------------

namespace {
void put_str(std::string& out, const std::string& s) {
  put<uint64_t>(out, s.size());
  out += s;
}
}  // namespace

BOOST_AUTO_TEST_CASE(version_2_with_default_alignment) {
  std::string f = "GGUF";
  put<uint32_t>(f, 2);  // version
  put<uint64_t>(f, 2);  // tensors
  put<uint64_t>(f, 2);  // key/values
  put_str(f, "general.name");
  put<uint32_t>(f, 8);
  put_str(f, "v2");
  put_str(f, "x.i16s");
  put<uint32_t>(f, 9);
  put<uint32_t>(f, 3);
  put<uint64_t>(f, 2);
  put<int16_t>(f, -7);
  put<int16_t>(f, 300);
  // "w": F32 dims innermost-first [3, 2] -> shape [2, 3]; "q": Q8_0 one block at 32.
  put_str(f, "w");
  put<uint32_t>(f, 2);
  put<uint64_t>(f, 3);
  put<uint64_t>(f, 2);
  put<uint32_t>(f, 0);
  put<uint64_t>(f, 0);
  put_str(f, "q");
  put<uint32_t>(f, 1);
  put<uint64_t>(f, 32);
  put<uint32_t>(f, 8);
  put<uint64_t>(f, 32);
  const size_t header_end = f.size();
  while (f.size() % 32) f.push_back('\0');  // default alignment
  const size_t data_start = f.size();
  for (int i = 0; i < 6; ++i) put<float>(f, 0.5f * static_cast<float>(i) - 1.0f);
  while (f.size() < data_start + 32) f.push_back('\0');
  put<uint16_t>(f, peft::io::float_to_half(0.25f));
  for (int i = 0; i < 32; ++i) put<int8_t>(f, static_cast<int8_t>(i - 16));

  peft_test::TempDir dir;
  peft_test::write_file(dir / "v2.gguf", f);
  GgufCheckpoint ckpt(dir / "v2.gguf");
  BOOST_CHECK_EQUAL(ckpt.version(), 2u);
  BOOST_CHECK_EQUAL(ckpt.alignment(), 32u);
  BOOST_CHECK_GT(data_start, header_end);  // the padding really is exercised
  BOOST_CHECK_EQUAL(ckpt.data_offset(), data_start);
  BOOST_CHECK_EQUAL(ckpt.metadata()["general.name"].get<std::string>(), "v2");
  BOOST_CHECK_EQUAL(ckpt.metadata()["x.i16s"].dump(), "[-7,300]");
  BOOST_CHECK(ckpt.array_type("x.i16s") == GgufValueType::I16);

  BOOST_CHECK(ckpt.info("w").shape == (Shape{2, 3}));
  const auto w = ckpt.to_float("w");
  BOOST_CHECK((w == std::vector<float>{-1.0f, -0.5f, 0.0f, 0.5f, 1.0f, 1.5f}));
  const auto q = ckpt.to_float("q");
  BOOST_REQUIRE_EQUAL(q.size(), 32u);
  for (int i = 0; i < 32; ++i) BOOST_CHECK_EQUAL(q[i], 0.25f * static_cast<float>(i - 16));
}

// ---- formats gguf-py cannot dequantize: Q8_1 and Q8_K, checked by hand ----------------

BOOST_AUTO_TEST_CASE(q8_1_and_q8_k_blocks) {
  std::string q81;
  put<uint16_t>(q81, peft::io::float_to_half(0.5f));
  put<uint16_t>(q81, peft::io::float_to_half(123.0f));  // the sum cache must not leak in
  for (int i = 0; i < 32; ++i) put<int8_t>(q81, static_cast<int8_t>(3 * i - 50));
  std::vector<float> out(32);
  peft::io::dequantize_blocks(DType::Q8_1, reinterpret_cast<const uint8_t*>(q81.data()), 32, out.data());
  for (int i = 0; i < 32; ++i) BOOST_CHECK_EQUAL(out[i], 0.5f * static_cast<float>(3 * i - 50));

  std::string q8k;
  put<float>(q8k, 0.125f);
  for (int i = 0; i < 256; ++i) put<int8_t>(q8k, static_cast<int8_t>(i - 128));
  for (int i = 0; i < 16; ++i) put<int16_t>(q8k, 999);
  BOOST_REQUIRE_EQUAL(q8k.size(), peft::io::block_bytes(DType::Q8_K));
  out.assign(256, 0.0f);
  peft::io::dequantize_blocks(DType::Q8_K, reinterpret_cast<const uint8_t*>(q8k.data()), 256, out.data());
  for (int i = 0; i < 256; ++i) BOOST_CHECK_EQUAL(out[i], 0.125f * static_cast<float>(i - 128));
}

BOOST_AUTO_TEST_CASE(dequantize_blocks_refuses_partial_blocks_and_plain_types) {
  std::vector<uint8_t> src(64, 0);
  std::vector<float> out(64);
  PEFT_CHECK_THROW_MSG(peft::io::dequantize_blocks(DType::Q8_0, src.data(), 33, out.data()), peft::ValueError,
                       {"Q8_0", "33", "whole number"});
  PEFT_CHECK_THROW_MSG(peft::io::dequantize_blocks(DType::F32, src.data(), 4, out.data()), peft::ValueError,
                       {"F32", "not a ggml block"});
}

BOOST_AUTO_TEST_CASE(ggml_type_numbers) {
  // Numbers from ggml.h's enum ggml_type (also gguf-py's GGMLQuantizationType).
  const std::vector<std::pair<uint32_t, DType>> known = {
      {0, DType::F32},   {1, DType::F16},   {2, DType::Q4_0},  {3, DType::Q4_1},  {6, DType::Q5_0},
      {7, DType::Q5_1},  {8, DType::Q8_0},  {9, DType::Q8_1},  {10, DType::Q2_K}, {11, DType::Q3_K},
      {12, DType::Q4_K}, {13, DType::Q5_K}, {14, DType::Q6_K}, {15, DType::Q8_K}, {24, DType::I8},
      {25, DType::I16},  {26, DType::I32},  {27, DType::I64},  {28, DType::F64},  {30, DType::BF16},
  };
  for (const auto& [number, dtype] : known) {
    BOOST_TEST_CONTEXT("ggml type " << number) {
      const auto got = peft::io::dtype_from_ggml_type(number);
      BOOST_REQUIRE(got.has_value());
      BOOST_CHECK(*got == dtype);
    }
  }
  for (uint32_t unsupported : {4u, 5u, 16u, 23u, 29u, 34u, 39u, 1000u})
    BOOST_CHECK(!peft::io::dtype_from_ggml_type(unsupported).has_value());
}

// ---- the real default model -----------------------------------------------------------

BOOST_AUTO_TEST_CASE(smollm2_q4_1_header_and_metadata) {
  const fs::path path = peft_test::require_model_file(kModel.string());
  GgufCheckpoint ckpt(path);
  BOOST_CHECK_EQUAL(ckpt.version(), 3u);
  BOOST_CHECK_EQUAL(ckpt.tensors().size(), 272u);
  BOOST_CHECK_EQUAL(ckpt.metadata().size(), 33u);
  BOOST_CHECK_EQUAL(ckpt.alignment(), 32u);
  const auto& md = ckpt.metadata();
  BOOST_CHECK_EQUAL(md["general.architecture"].get<std::string>(), "llama");
  BOOST_CHECK_EQUAL(md["llama.embedding_length"].get<uint64_t>(), 576u);
  const auto& tokens = md["tokenizer.ggml.tokens"];
  BOOST_REQUIRE(tokens.is_array());
  BOOST_CHECK_EQUAL(tokens.size(), 49152u);
  BOOST_CHECK(ckpt.array_type("tokenizer.ggml.tokens") == GgufValueType::STRING);
  BOOST_CHECK_EQUAL(tokens[0].get<std::string>(), "<|endoftext|>");

  const auto& embd = ckpt.info("token_embd.weight");
  BOOST_CHECK(embd.shape == (Shape{49152, 576}));
  BOOST_CHECK(embd.dtype == DType::Q8_0);
  const auto& attn_k = ckpt.info("blk.0.attn_k.weight");
  BOOST_CHECK(attn_k.shape == (Shape{192, 576}));
  BOOST_CHECK(attn_k.dtype == DType::Q4_1);
  const auto& norm = ckpt.info("blk.0.attn_norm.weight");
  BOOST_CHECK(norm.shape == (Shape{576}));
  BOOST_CHECK(norm.dtype == DType::F32);
  BOOST_CHECK_THROW(ckpt.info("no.such.tensor"), peft::NotFoundError);
  BOOST_CHECK_THROW(ckpt.raw("no.such.tensor"), peft::NotFoundError);
}

BOOST_AUTO_TEST_CASE(smollm2_raw_is_zero_copy_and_dequantizes_like_independent_decoders) {
  const fs::path path = peft_test::require_model_file(kModel.string());
  auto ckpt = std::make_unique<GgufCheckpoint>(path);

  // Absolute data offsets as reported by gguf-py's GGUFReader for this file.
  const std::vector<std::pair<std::string, uint64_t>> cases = {
      {"token_embd.weight", 1785664},
      {"blk.0.ffn_down.weight", 31868992},
  };
  std::vector<peft::io::TensorData> kept;
  for (const auto& [name, absolute] : cases) {
    BOOST_TEST_CONTEXT("tensor " << name) {
      const peft::io::TensorData t = ckpt->raw(name);
      auto mapping = std::static_pointer_cast<const peft::io::MappedFile>(t.owner);
      BOOST_REQUIRE(mapping);
      BOOST_CHECK_EQUAL(mapping->path(), path.string());
      BOOST_CHECK(t.data == mapping->data() + absolute);
      BOOST_CHECK_GE(absolute, ckpt->data_offset());
      BOOST_CHECK_EQUAL((absolute - ckpt->data_offset()) % ckpt->alignment(), 0u);
      BOOST_CHECK(mapping->contains(absolute, t.info.nbytes));

      const std::string bytes = read_range(path, absolute, t.info.nbytes);
      BOOST_CHECK(std::memcmp(bytes.data(), t.data, bytes.size()) == 0);
      const std::vector<float> independent =
          t.info.dtype == DType::Q8_0 ? decode_q8_0(bytes) : decode_q4_1(bytes);
      BOOST_CHECK(t.info.dtype == (name == "token_embd.weight" ? DType::Q8_0 : DType::Q4_1));
      BOOST_REQUIRE_EQUAL(independent.size(), t.info.numel);
      const std::vector<float> ours = ckpt->to_float(name);
      BOOST_CHECK_EQUAL(count_bit_mismatches(ours, independent), 0u);
      kept.push_back(t);
    }
  }

  // The TensorData owns the mapping: it stays readable after the checkpoint is gone.
  const std::string first_bytes = read_range(path, cases[0].second, 64);
  ckpt.reset();
  BOOST_REQUIRE(!kept.empty());
  BOOST_CHECK(std::memcmp(kept[0].data, first_bytes.data(), 64) == 0);
}

BOOST_AUTO_TEST_CASE(open_checkpoint_finds_gguf_by_file_and_directory) {
  const fs::path path = peft_test::require_model_file(kModel.string());
  for (const fs::path& p : {path, path.parent_path()}) {
    BOOST_TEST_CONTEXT("path " << p) {
      auto ckpt = peft::io::open_checkpoint(p);
      BOOST_REQUIRE(ckpt);
      BOOST_CHECK_EQUAL(ckpt->format(), "gguf");
      BOOST_CHECK(dynamic_cast<GgufCheckpoint*>(ckpt.get()) != nullptr);
      BOOST_CHECK_EQUAL(ckpt->tensors().size(), 272u);
    }
  }
  // The magic decides, not the extension.
  peft_test::TempDir dir;
  fs::copy_file(golden_dir() / "golden.gguf", dir / "renamed.bin");
  auto renamed = peft::io::open_checkpoint(dir / "renamed.bin");
  BOOST_CHECK_EQUAL(renamed->format(), "gguf");
}
