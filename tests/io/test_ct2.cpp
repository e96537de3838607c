#define BOOST_TEST_MODULE ct2
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>

#include <nlohmann/json.hpp>

#include "peft/error.h"
#include "peft/io/checkpoint.h"
#include "peft/io/ct2.h"
#include "test_support.h"

using peft::io::Ct2Checkpoint;
using peft::io::DType;
using peft::io::Shape;
using peft_test::put;
using peft_test::TempDir;
using peft_test::write_file;

namespace {

// ---- independent helpers (deliberately not the library's) -------------------------

// IEEE binary16 -> float by the definition, to check the library's decoder against.
float reference_half(uint16_t h) {
  const int sign = (h >> 15) ? -1 : 1;
  const int exponent = (h >> 10) & 0x1f;
  const int mantissa = h & 0x3ff;
  if (exponent == 0) return sign * std::ldexp(static_cast<float>(mantissa), -24);
  if (exponent == 31) return mantissa ? NAN : sign * INFINITY;
  return sign * std::ldexp(static_cast<float>(mantissa + 1024), exponent - 25);
}

std::string read_bytes_at(const std::filesystem::path& p, uint64_t offset, uint64_t n) {
  std::ifstream f(p, std::ios::binary);
  f.seekg(static_cast<std::streamoff>(offset));
  std::string out(n, '\0');
  f.read(out.data(), static_cast<std::streamsize>(n));
  BOOST_REQUIRE(f.good());
  return out;
}

// Offset of a variable's data found by scanning for its serialized name, then
// stepping over rank, dims, dtype and byte count: no use of the reader under test.
uint64_t scan_data_offset(const std::string& file_bytes, const std::string& name) {
  std::string needle;
  put<uint16_t>(needle, static_cast<uint16_t>(name.size() + 1));
  needle += name;
  needle += '\0';
  const size_t at = file_bytes.find(needle);
  BOOST_REQUIRE_MESSAGE(at != std::string::npos, name << " not found in the file");
  const size_t rank_at = at + needle.size();
  const auto rank = static_cast<uint8_t>(file_bytes[rank_at]);
  return rank_at + 1 + 4u * rank + 1 + 4;
}

// ---- a small model.bin writer following the layout, for hand-built files ------------

std::string ct2_string(const std::string& s) {
  std::string out;
  put<uint16_t>(out, static_cast<uint16_t>(s.size() + 1));
  out += s;
  out += '\0';
  return out;
}

struct Var {
  std::string name;
  std::vector<uint32_t> dims;
  uint8_t dtype;  // the type id (v>=4) or item size (v<4)
  std::string bytes;
};

template <class T>
std::string bytes_of(std::initializer_list<T> values) {
  std::string out;
  for (T v : values) put<T>(out, v);
  return out;
}

std::string build_model(uint32_t version, const std::vector<Var>& vars,
                        const std::vector<std::pair<std::string, std::string>>& aliases,
                        const std::string& spec = "TestSpec", uint32_t revision = 2) {
  std::string out;
  put<uint32_t>(out, version);
  if (version >= 2) {
    out += ct2_string(spec);
    put<uint32_t>(out, revision);
  }
  put<uint32_t>(out, static_cast<uint32_t>(vars.size()));
  for (const auto& v : vars) {
    out += ct2_string(v.name);
    put<uint8_t>(out, static_cast<uint8_t>(v.dims.size()));
    for (uint32_t d : v.dims) put<uint32_t>(out, d);
    put<uint8_t>(out, v.dtype);
    // v<4 stores the element count; v>=4 the byte count.
    put<uint32_t>(out, static_cast<uint32_t>(version >= 4 ? v.bytes.size() : v.bytes.size() / v.dtype));
    out += v.bytes;
  }
  if (version >= 3) {
    put<uint32_t>(out, static_cast<uint32_t>(aliases.size()));
    for (const auto& a : aliases) out += ct2_string(a.first) + ct2_string(a.second);
  }
  return out;
}

DType dtype_named(const std::string& s) {
  static const std::map<std::string, DType> m = {{"float32", DType::F32}, {"int8", DType::I8},
                                                 {"int16", DType::I16},   {"int32", DType::I32},
                                                 {"float16", DType::F16}, {"bfloat16", DType::BF16}};
  return m.at(s);
}

}  // namespace

// ---- 1. the real faster-whisper tiny.en --------------------------------------------

BOOST_AUTO_TEST_CASE(real_tiny_en_header_and_tensors) {
  const auto bin = peft_test::require_model_file("whisper-tiny.en/model.bin");
  Ct2Checkpoint ckpt(bin.parent_path());
  BOOST_TEST(ckpt.format() == "ct2");
  BOOST_TEST(ckpt.path() == bin.string());
  BOOST_TEST(ckpt.binary_version() == 6u);
  BOOST_TEST(ckpt.spec() == "WhisperSpec");
  BOOST_TEST(ckpt.revision() == 3u);
  BOOST_TEST(ckpt.aliases().size() == 1u);
  BOOST_TEST(ckpt.aliases().at("decoder/projection/weight") == "decoder/embeddings/weight");
  BOOST_TEST(ckpt.tensors().size() == 148u + 1u);  // variables, then the alias

  const auto& conv = ckpt.info("encoder/conv1/weight");
  BOOST_TEST((conv.dtype == DType::F16));
  BOOST_TEST((conv.shape == Shape{384, 80, 3}));
  BOOST_TEST(conv.nbytes == 384u * 80 * 3 * 2);
  BOOST_TEST((ckpt.info("decoder/embeddings/weight").shape == Shape{51864, 384}));

  for (const char* name : {"encoder/num_heads", "decoder/num_heads"}) {
    BOOST_TEST((ckpt.info(name).dtype == DType::I16));
    BOOST_TEST(ckpt.info(name).shape.empty());
    BOOST_TEST(ckpt.scalar_int(name) == 6);
  }

  BOOST_TEST(ckpt.metadata().at("spec") == "WhisperSpec");
  BOOST_TEST(ckpt.metadata().at("revision") == 3);
  BOOST_TEST(ckpt.metadata().at("binary_version") == 6);
  BOOST_TEST(ckpt.metadata().at("lang_ids").is_array());  // from config.json
}

BOOST_AUTO_TEST_CASE(real_tiny_en_zero_copy_and_values) {
  const auto bin = peft_test::require_model_file("whisper-tiny.en/model.bin");
  const std::string file_bytes = peft_test::read_file(bin);

  peft::io::TensorData conv, bias, embed;
  {
    Ct2Checkpoint ckpt(bin);
    conv = ckpt.raw("encoder/conv1/weight");
    bias = ckpt.raw("encoder/conv1/bias");
    embed = ckpt.raw("decoder/embeddings/weight");
    const auto projection = ckpt.raw("decoder/projection/weight");
    BOOST_TEST(projection.data == embed.data);  // the alias shares the target's bytes
    BOOST_TEST(projection.info.name == "decoder/projection/weight");
    BOOST_TEST((projection.info.shape == embed.info.shape));
    BOOST_TEST((projection.info.dtype == embed.info.dtype));

    // to_float of the f16 bias equals an independent decode of the file's bytes.
    const uint64_t bias_offset = scan_data_offset(file_bytes, "encoder/conv1/bias");
    const std::string raw_bias = read_bytes_at(bin, bias_offset, 384 * 2);
    const auto floats = ckpt.to_float("encoder/conv1/bias");
    BOOST_REQUIRE(floats.size() == 384u);
    bool any_nonzero = false;
    for (size_t i = 0; i < floats.size(); ++i) {
      uint16_t h;
      std::memcpy(&h, raw_bias.data() + 2 * i, 2);
      BOOST_TEST(floats[i] == reference_half(h));
      any_nonzero = any_nonzero || floats[i] != 0.0f;
    }
    BOOST_TEST(any_nonzero);
  }
  // The checkpoint is gone; the TensorData owners keep the mapping alive.
  BOOST_TEST(conv.owner != nullptr);

  // Zero copy: the pointers sit in one mapping at the distances the file layout puts
  // them, and their bytes are the file's bytes at the scanned offsets.
  const uint64_t conv_offset = scan_data_offset(file_bytes, "encoder/conv1/weight");
  const uint64_t embed_offset = scan_data_offset(file_bytes, "decoder/embeddings/weight");
  BOOST_TEST(embed.data - conv.data ==
             static_cast<std::ptrdiff_t>(embed_offset) - static_cast<std::ptrdiff_t>(conv_offset));
  BOOST_TEST(std::memcmp(conv.data, read_bytes_at(bin, conv_offset, conv.info.nbytes).data(),
                         conv.info.nbytes) == 0);
  BOOST_TEST(std::memcmp(embed.data, read_bytes_at(bin, embed_offset, 4096).data(), 4096) == 0);
  BOOST_TEST(std::memcmp(bias.data, file_bytes.data() + scan_data_offset(file_bytes, "encoder/conv1/bias"),
                         768) == 0);
}

BOOST_AUTO_TEST_CASE(real_tiny_en_vocabulary_and_open_checkpoint) {
  const auto bin = peft_test::require_model_file("whisper-tiny.en/model.bin");
  Ct2Checkpoint ckpt(bin.parent_path());
  const auto& vocab = ckpt.vocabulary();
  BOOST_TEST(vocab.size() == 51864u);
  BOOST_REQUIRE(vocab.size() > 50257u);
  BOOST_TEST(vocab[0] == "!");
  BOOST_TEST(vocab[50256] == "<|endoftext|>");
  BOOST_TEST(vocab[50257] == "<|startoftranscript|>");
  BOOST_TEST(vocab.back() == "<|30.00|>");

  BOOST_TEST(Ct2Checkpoint::looks_like_ct2(bin));
  BOOST_TEST(!Ct2Checkpoint::looks_like_ct2(bin.parent_path() / "config.json"));
  auto opened = peft::io::open_checkpoint(bin.parent_path());
  BOOST_TEST(opened->format() == "ct2");
  BOOST_TEST(opened->tensors().size() == 149u);
}

// ---- 2. reference fixtures written by the ctranslate2 package ----------------------

namespace {
void check_reference_fixture(const std::string& label) {
  const auto dir = peft_test::fixtures_dir() / "io" / "ct2";
  const nlohmann::json expected = nlohmann::json::parse(peft_test::read_file(dir / "expected.json"));
  const nlohmann::json& e = expected.at(label);
  Ct2Checkpoint ckpt(dir / label);

  BOOST_TEST(ckpt.binary_version() == e.at("binary_version").get<uint32_t>());
  BOOST_TEST(ckpt.spec() == e.at("spec").get<std::string>());
  BOOST_TEST(ckpt.revision() == e.at("revision").get<uint32_t>());
  BOOST_TEST(ckpt.metadata().at("unk_token") == "<unk>");  // config.json
  BOOST_TEST(ckpt.vocabulary() == expected.at("vocabulary").get<std::vector<std::string>>());

  const auto& vars = e.at("variables");
  const auto first = ckpt.raw(vars.at(0).at("name").get<std::string>());
  const uint64_t first_offset = vars.at(0).at("offset").get<uint64_t>();
  for (const auto& v : vars) {
    const auto name = v.at("name").get<std::string>();
    BOOST_TEST_CONTEXT(label << " " << name) {
      const auto t = ckpt.raw(name);
      BOOST_TEST((t.info.dtype == dtype_named(v.at("dtype"))));
      BOOST_TEST((t.info.shape == v.at("shape").get<Shape>()));
      BOOST_TEST(t.info.nbytes == v.at("nbytes").get<uint64_t>());
      BOOST_TEST(t.data - first.data ==
                 static_cast<std::ptrdiff_t>(v.at("offset").get<uint64_t>() - first_offset));
      if (v.contains("value")) BOOST_TEST(ckpt.scalar_int(name) == v.at("value").get<int64_t>());
    }
  }
  std::map<std::string, std::string> aliases = e.at("aliases");
  BOOST_TEST((ckpt.aliases() == aliases));

  for (const auto& [name, original] : e.at("originals").items()) {
    BOOST_TEST_CONTEXT(label << " " << name) {
      const auto want = original.at("values").get<std::vector<float>>();
      const auto t = ckpt.raw(name);
      BOOST_TEST((t.info.shape == original.at("shape").get<Shape>()));
      if (t.info.dtype == DType::I8) {
        // Rounded to the nearest step: |q/scale - x| <= 0.5/scale (+ float slack).
        const auto scale = ckpt.to_float(name + "_scale");
        const auto got = peft::io::ct2_dequantize_int8(t, ckpt.raw(name + "_scale"));
        BOOST_REQUIRE(got.size() == want.size());
        const size_t cols = want.size() / scale.size();
        for (size_t i = 0; i < want.size(); ++i)
          BOOST_TEST(std::fabs(got[i] - want[i]) <= 0.5f / scale[i / cols] + 1e-6f);
      } else {
        // float16 rounding of values in [-1, 1] is within 2^-11; float32 is exact.
        BOOST_TEST((t.info.dtype == (label == "tiny-f16" ? DType::F16 : DType::F32)));
        const float tolerance = t.info.dtype == DType::F16 ? 1.0f / 2048 : 0.0f;
        const auto got = ckpt.to_float(name);
        BOOST_REQUIRE(got.size() == want.size());
        for (size_t i = 0; i < want.size(); ++i) BOOST_TEST(std::fabs(got[i] - want[i]) <= tolerance);
      }
    }
  }
}
}  // namespace

BOOST_AUTO_TEST_CASE(reference_fixture_int8) {
  check_reference_fixture("tiny-int8");
  Ct2Checkpoint ckpt(peft_test::fixtures_dir() / "io" / "ct2" / "tiny-int8");
  // As CTranslate2's loader does, the alias of a quantized weight also gets the scale.
  BOOST_TEST(ckpt.contains("decoder/projection/weight_scale"));
  BOOST_TEST(ckpt.raw("decoder/projection/weight_scale").data ==
             ckpt.raw("decoder/embeddings/weight_scale").data);
}

BOOST_AUTO_TEST_CASE(reference_fixture_float16) {
  check_reference_fixture("tiny-f16");
  Ct2Checkpoint ckpt(peft_test::fixtures_dir() / "io" / "ct2" / "tiny-f16" / "model.bin");
  BOOST_TEST(!ckpt.contains("decoder/projection/weight_scale"));
}

// ---- 3. hand-built files: version 5 and the older layouts ---------------------------

namespace {
std::vector<Var> sample_vars() {
  return {
      {"w", {2, 3}, 0, bytes_of<float>({1.f, -2.f, 3.5f, 0.f, 4.f, -0.25f})},
      {"heads", {}, 2, bytes_of<int16_t>({-7})},
      {"q", {2, 2}, 1, bytes_of<int8_t>({127, -64, 10, -127})},
      {"q_scale", {2}, 0, bytes_of<float>({127.f, 12.7f})},
      {"h", {2}, 4, bytes_of<uint16_t>({0x3c00, 0xc000})},  // 1, -2
      {"b", {1}, 5, bytes_of<uint16_t>({0x3fc0})},          // 1.5
      {"i", {1}, 3, bytes_of<int32_t>({-100000})},
      {"f", {}, 0, bytes_of<float>({12.f})},
  };
}
}  // namespace

BOOST_AUTO_TEST_CASE(hand_built_version_5) {
  TempDir dir;
  write_file(dir / "model.bin",
             build_model(5, sample_vars(), {{"x", "y"}, {"y", "w"}, {"qa", "q"}}, "MySpec", 7));
  Ct2Checkpoint ckpt(dir.path());
  BOOST_TEST(ckpt.binary_version() == 5u);
  BOOST_TEST(ckpt.spec() == "MySpec");
  BOOST_TEST(ckpt.revision() == 7u);
  BOOST_TEST(ckpt.metadata().at("binary_version") == 5);
  BOOST_TEST(ckpt.vocabulary().empty());
  BOOST_TEST(ckpt.tensors().size() == 8u + 3u + 1u);  // + aliases + implied "qa_scale"

  BOOST_TEST((ckpt.to_float("w") == std::vector<float>{1.f, -2.f, 3.5f, 0.f, 4.f, -0.25f}));
  BOOST_TEST((ckpt.to_float("h") == std::vector<float>{1.f, -2.f}));
  BOOST_TEST((ckpt.to_float("b") == std::vector<float>{1.5f}));
  BOOST_TEST((ckpt.to_float("i") == std::vector<float>{-100000.f}));
  BOOST_TEST(ckpt.scalar_int("heads") == -7);
  BOOST_TEST(ckpt.scalar_int("f") == 12);
  BOOST_TEST((ckpt.info("i").dtype == DType::I32));
  BOOST_TEST((ckpt.info("b").dtype == DType::BF16));

  // Alias chain x -> y -> w.
  BOOST_TEST(ckpt.raw("x").data == ckpt.raw("w").data);
  BOOST_TEST((ckpt.info("x").shape == Shape{2, 3}));
  BOOST_TEST(ckpt.aliases().at("x") == "y");

  const auto deq = peft::io::ct2_dequantize_int8(ckpt.raw("q"), ckpt.raw("q_scale"));
  BOOST_TEST((deq == std::vector<float>{1.f, -64.f / 127.f, 10.f / 12.7f, -127.f / 12.7f}));
  const auto deq_alias = peft::io::ct2_dequantize_int8(ckpt.raw("qa"), ckpt.raw("qa_scale"));
  BOOST_TEST((deq_alias == deq));
}

BOOST_AUTO_TEST_CASE(hand_built_older_versions) {
  for (uint32_t version : {4u, 3u, 2u, 1u}) {
    BOOST_TEST_CONTEXT("version " << version) {
      TempDir dir;
      std::vector<Var> vars;
      if (version >= 4) {
        vars = sample_vars();
      } else {  // item sizes: f32 4, i16 2, i8 1
        vars = {{"w", {2, 3}, 4, bytes_of<float>({1.f, -2.f, 3.5f, 0.f, 4.f, -0.25f})},
                {"heads", {}, 2, bytes_of<int16_t>({-7})},
                {"q", {2, 2}, 1, bytes_of<int8_t>({127, -64, 10, -127})}};
      }
      std::vector<std::pair<std::string, std::string>> aliases;
      if (version >= 3) aliases = {{"x", "w"}};
      write_file(dir / "model.bin", build_model(version, vars, aliases));
      Ct2Checkpoint ckpt(dir / "model.bin");
      BOOST_TEST(ckpt.binary_version() == version);
      BOOST_TEST(ckpt.spec() == (version >= 2 ? "TestSpec" : ""));
      BOOST_TEST(ckpt.revision() == (version >= 2 ? 2u : 1u));
      BOOST_TEST((ckpt.to_float("w") == std::vector<float>{1.f, -2.f, 3.5f, 0.f, 4.f, -0.25f}));
      BOOST_TEST((ckpt.info("q").dtype == DType::I8));
      BOOST_TEST(ckpt.scalar_int("heads") == -7);
      BOOST_TEST(ckpt.contains("x") == (version >= 3));
      BOOST_TEST(Ct2Checkpoint::looks_like_ct2(dir / "model.bin"));
    }
  }
}

BOOST_AUTO_TEST_CASE(vocabulary_txt_and_json) {
  TempDir dir;
  write_file(dir / "model.bin", build_model(6, sample_vars(), {}));
  // Tokens keep spaces and a trailing '\r' exactly; no final newline.
  write_file(dir / "vocabulary.txt", std::string("<s>\nhello world\n\n a\r\n\xc3\xa9t\xc3\xa9"));
  {
    Ct2Checkpoint ckpt(dir.path());
    BOOST_TEST((ckpt.vocabulary() ==
                std::vector<std::string>{"<s>", "hello world", "", " a\r", "\xc3\xa9t\xc3\xa9"}));
  }
  write_file(dir / "vocabulary.txt", "a\nb\n");  // the final newline adds no empty token
  {
    Ct2Checkpoint ckpt(dir.path());
    BOOST_TEST((ckpt.vocabulary() == std::vector<std::string>{"a", "b"}));
  }
  write_file(dir / "vocabulary.json", R"(["x y", "\n", "z"])");  // preferred over .txt
  {
    Ct2Checkpoint ckpt(dir.path());
    BOOST_TEST((ckpt.vocabulary() == std::vector<std::string>{"x y", "\n", "z"}));
  }
}

BOOST_AUTO_TEST_CASE(scalar_int_and_dequantize_errors) {
  TempDir dir;
  auto vars = sample_vars();
  vars.push_back({"half", {}, 0, bytes_of<float>({1.5f})});
  vars.push_back({"big", {}, 0, bytes_of<float>({1e30f})});
  write_file(dir / "model.bin", build_model(6, vars, {}));
  Ct2Checkpoint ckpt(dir.path());
  const std::string file = (dir / "model.bin").string();
  PEFT_CHECK_THROW_MSG(ckpt.scalar_int("missing"), peft::NotFoundError, {file, "missing"});
  PEFT_CHECK_THROW_MSG(ckpt.scalar_int("w"), peft::FormatError, {file, "'w'", "not a scalar"});
  PEFT_CHECK_THROW_MSG(ckpt.scalar_int("half"), peft::FormatError, {file, "'half'", "not an integer"});
  PEFT_CHECK_THROW_MSG(ckpt.scalar_int("big"), peft::FormatError, {file, "'big'", "not an integer"});
  PEFT_CHECK_THROW_MSG(ckpt.raw("nope"), peft::NotFoundError, {file, "nope"});
  PEFT_CHECK_THROW_MSG(peft::io::ct2_dequantize_int8(ckpt.raw("w"), ckpt.raw("q_scale")), peft::ShapeError,
                       {"'w'", "I8"});
  PEFT_CHECK_THROW_MSG(peft::io::ct2_dequantize_int8(ckpt.raw("q"), ckpt.raw("w")), peft::ShapeError,
                       {"'q'", "'w'", "rows"});
}
