#define BOOST_TEST_MODULE bad_safetensors
#include "test_support.h"

#include "peft/error.h"
#include "peft/io/safetensors.h"

using namespace peft::io;
using peft_test::TempDir;
namespace fs = std::filesystem;

namespace {

std::string with_header(const std::string& header, const std::string& data) {
  std::string out;
  peft_test::put<uint64_t>(out, header.size());
  return out + header + data;
}

std::string entry(const std::string& dtype, const std::string& shape, const std::string& offsets) {
  return R"({"dtype":")" + dtype + R"(","shape":)" + shape + R"(,"data_offsets":)" + offsets + "}";
}

// One valid tensor "a": U8 [4] at [0, 4], followed by 4 bytes.
const std::string kData4 = "\x01\x02\x03\x04";

struct BadFile {
  TempDir dir;
  fs::path path;
  explicit BadFile(const std::string& bytes) : path(dir / "bad.safetensors") {
    peft_test::write_file(path, bytes);
  }
};

}  // namespace

#define EXPECT_FORMAT_ERROR(bytes, ...)                                       \
  do {                                                                        \
    BadFile bad_(bytes);                                                      \
    PEFT_CHECK_THROW_MSG(SafetensorsCheckpoint(bad_.path), peft::FormatError, \
                         {"bad.safetensors", __VA_ARGS__});                   \
  } while (0)

BOOST_AUTO_TEST_CASE(too_short_or_bad_header_length) {
  EXPECT_FORMAT_ERROR("", "header length", "0 bytes");
  EXPECT_FORMAT_ERROR("\x10\x00\x00", "header length", "too short");
  std::string beyond;
  peft_test::put<uint64_t>(beyond, 100);
  EXPECT_FORMAT_ERROR(beyond + "{}", "header length", "100 bytes runs past the end");
  std::string huge;
  peft_test::put<uint64_t>(huge, uint64_t{1} << 63);
  EXPECT_FORMAT_ERROR(huge + "{}", "header length", "9223372036854775808", "limit");
}

BOOST_AUTO_TEST_CASE(missing_file_is_io_error) {
  TempDir dir;
  PEFT_CHECK_THROW_MSG(SafetensorsCheckpoint(dir / "none.safetensors"), peft::IoError, {"none.safetensors"});
}

BOOST_AUTO_TEST_CASE(every_prefix_of_a_valid_file_is_rejected) {
  const std::string valid =
      peft_test::read_file(peft_test::fixtures_dir() / "io/safetensors/all_dtypes.safetensors");
  {
    BadFile whole(valid);
    BOOST_CHECK_NO_THROW(SafetensorsCheckpoint(whole.path));
  }
  for (size_t n = 0; n < valid.size(); ++n) {
    BOOST_TEST_CONTEXT("prefix of " << n << " bytes") {
      BadFile bad(valid.substr(0, n));
      PEFT_CHECK_THROW_MSG(SafetensorsCheckpoint(bad.path), peft::FormatError, {"bad.safetensors"});
    }
  }
}

BOOST_AUTO_TEST_CASE(header_not_an_object_or_not_json) {
  EXPECT_FORMAT_ERROR(with_header("[1, 2]", ""), "header", "must be a JSON object, got array");
  EXPECT_FORMAT_ERROR(with_header("42", ""), "header", "got number");
  EXPECT_FORMAT_ERROR(with_header(R"({"a": )", ""), "header byte", "invalid JSON");
  // Invalid UTF-8 inside a string: nlohmann's lexer validates it.
  EXPECT_FORMAT_ERROR(with_header("{\"\xff\xfe\": 1}", ""), "header byte 3", "invalid JSON");
  EXPECT_FORMAT_ERROR(
      with_header(R"({"a": )" + entry("U8", "[4]", "[0,4]") + ",\"a\":" + entry("U8", "[4]", "[0,4]") + "}",
                  kData4),
      "header key 'a'", "twice");
}

BOOST_AUTO_TEST_CASE(tensor_entry_fields) {
  auto one = [](const std::string& e) { return with_header(R"({"t":)" + e + "}", kData4); };
  EXPECT_FORMAT_ERROR(one("[1]"), "tensor 't'", "entry must be an object");
  EXPECT_FORMAT_ERROR(one(R"({"shape":[4],"data_offsets":[0,4]})"), "tensor 't'", "missing 'dtype'");
  EXPECT_FORMAT_ERROR(one(R"({"dtype":"U8","data_offsets":[0,4]})"), "tensor 't'", "missing 'shape'");
  EXPECT_FORMAT_ERROR(one(R"({"dtype":"U8","shape":[4]})"), "tensor 't'", "missing 'data_offsets'");
  EXPECT_FORMAT_ERROR(one(R"({"dtype":8,"shape":[4],"data_offsets":[0,4]})"), "tensor 't'",
                      "'dtype' must be a string");
  EXPECT_FORMAT_ERROR(one(entry("F8_E9M9", "[4]", "[0,4]")), "tensor 't'", "unknown", "F8_E9M9");
  EXPECT_FORMAT_ERROR(one(entry("Q4_0", "[4]", "[0,4]")), "tensor 't'", "Q4_0");
  EXPECT_FORMAT_ERROR(one(entry("U8", "4", "[0,4]")), "tensor 't'", "'shape' must be an array");
  EXPECT_FORMAT_ERROR(one(entry("U8", "[2.5]", "[0,4]")), "tensor 't'", "non-integer");
  EXPECT_FORMAT_ERROR(one(entry("U8", "[-4]", "[0,4]")), "tensor 't'", "negative dimension -4");
  EXPECT_FORMAT_ERROR(one(entry("U8", "[4294967296,4294967296,4]", "[0,4]")), "tensor 't'", "2^63");
  EXPECT_FORMAT_ERROR(one(entry("U8", "[18446744073709551615]", "[0,4]")), "tensor 't'", "too large");
  EXPECT_FORMAT_ERROR(one(entry("I64", "[2305843009213693952]", "[0,4]")), "tensor 't'",
                      "too large for dtype");
  EXPECT_FORMAT_ERROR(one(entry("U8", "[4]", "[4,0]")), "tensor 't'", "[4, 0]", "reversed");
  EXPECT_FORMAT_ERROR(one(entry("U8", "[4]", "[0,8]")), "tensor 't'", "[0, 8]", "past the end");
  EXPECT_FORMAT_ERROR(one(entry("U8", "[4]", "[0]")), "tensor 't'", "'data_offsets' must be [begin, end]");
  EXPECT_FORMAT_ERROR(one(entry("U8", "[4]", "[-1,3]")), "tensor 't'", "non-negative");
  EXPECT_FORMAT_ERROR(one(entry("F32", "[4]", "[0,4]")), "tensor 't'", "size mismatch", "needs 16");
}

BOOST_AUTO_TEST_CASE(overlaps_and_holes) {
  const std::string data8 = kData4 + kData4;
  EXPECT_FORMAT_ERROR(
      with_header(R"({"a":)" + entry("U8", "[6]", "[0,6]") + R"(,"b":)" + entry("U8", "[4]", "[4,8]") + "}",
                  data8),
      "tensor 'b'", "overlap tensor 'a'");
  // Reported whichever order the header lists them in.
  EXPECT_FORMAT_ERROR(
      with_header(R"({"b":)" + entry("U8", "[4]", "[2,6]") + R"(,"a":)" + entry("U8", "[4]", "[0,4]") + "}",
                  data8),
      "tensor 'b'", "overlap tensor 'a'");
  EXPECT_FORMAT_ERROR(
      with_header(R"({"a":)" + entry("U8", "[2]", "[0,2]") + R"(,"b":)" + entry("U8", "[4]", "[4,8]") + "}",
                  data8),
      "tensor 'b'", "hole", "[2, 4)");
  EXPECT_FORMAT_ERROR(with_header(R"({"a":)" + entry("U8", "[4]", "[0,4]") + "}", data8), "data buffer",
                      "[4, 8)", "trailing");
  // Zero-size tensors take no bytes and may sit at the same offset as a neighbour.
  BadFile ok(with_header(
      R"({"e":)" + entry("U8", "[0]", "[0,0]") + R"(,"a":)" + entry("U8", "[4]", "[0,4]") + "}", kData4));
  BOOST_CHECK_NO_THROW(SafetensorsCheckpoint(ok.path));
}

BOOST_AUTO_TEST_CASE(bad_metadata) {
  const std::string a = R"("a":)" + entry("U8", "[4]", "[0,4]");
  EXPECT_FORMAT_ERROR(with_header(R"({"__metadata__":["x"],)" + a + "}", kData4), "__metadata__",
                      "must be an object");
  EXPECT_FORMAT_ERROR(with_header(R"({"__metadata__":{"format":"pt","n":1},)" + a + "}", kData4),
                      "__metadata__ key 'n'", "must be a string, got number");
}

BOOST_AUTO_TEST_CASE(bad_index_files) {
  TempDir dir;
  {
    std::string shard = with_header(R"({"a":)" + entry("U8", "[4]", "[0,4]") + "}", kData4);
    peft_test::write_file(dir / "s1.safetensors", shard);
    peft_test::write_file(dir / "s2.safetensors",
                          with_header(R"({"c":)" + entry("U8", "[4]", "[0,4]") + "}", kData4));
  }
  auto index = [&](const std::string& weight_map) {
    const fs::path p = dir / "model.safetensors.index.json";
    peft_test::write_file(p, R"({"metadata": {"total_size": 4}, "weight_map": )" + weight_map + "}");
    return p;
  };
  BOOST_CHECK_NO_THROW(SafetensorsCheckpoint(index(R"({"a": "s1.safetensors"})")));

  PEFT_CHECK_THROW_MSG(
      SafetensorsCheckpoint(index(R"({"a": "missing.safetensors"})")), peft::NotFoundError,
      {"model.safetensors.index.json", "weight_map['a']", "missing.safetensors", "does not exist"});
  PEFT_CHECK_THROW_MSG(SafetensorsCheckpoint(index(R"({"a": "s1.safetensors", "b": "s1.safetensors"})")),
                       peft::FormatError,
                       {"model.safetensors.index.json", "weight_map['b']", "not in its shard"});
  // Listed in s2 but stored only in s1 (and s2's "c" is listed in s1).
  PEFT_CHECK_THROW_MSG(SafetensorsCheckpoint(index(R"({"a": "s2.safetensors", "c": "s1.safetensors"})")),
                       peft::FormatError, {"weight_map['a']", "not in its shard", "s2.safetensors"});
  // The same tensor stored in two shards.
  {
    peft_test::write_file(
        dir / "s3.safetensors",
        with_header(R"({"b":)" + entry("U8", "[2]", "[0,2]") + R"(,"a":)" + entry("U8", "[2]", "[2,4]") + "}",
                    kData4));
    PEFT_CHECK_THROW_MSG(SafetensorsCheckpoint(index(R"({"a": "s1.safetensors", "b": "s3.safetensors"})")),
                         peft::FormatError, {"tensor 'a'", "also stored in shard", "s1.safetensors"});
  }
  for (const std::string escape : {"../s1.safetensors", "sub/../../s1.safetensors", "/etc/passwd", ""}) {
    BOOST_TEST_CONTEXT("shard path '" << escape << "'") {
      PEFT_CHECK_THROW_MSG(SafetensorsCheckpoint(index(R"({"a": ")" + escape + R"("})")), peft::FormatError,
                           {"model.safetensors.index.json", "weight_map['a']", "not a relative path inside"});
    }
  }
  PEFT_CHECK_THROW_MSG(SafetensorsCheckpoint(index(R"(["a"])")), peft::FormatError,
                       {"model.safetensors.index.json", "weight_map", "must be an object"});
  PEFT_CHECK_THROW_MSG(SafetensorsCheckpoint(index(R"({"a": 3})")), peft::FormatError,
                       {"weight_map['a']", "shard must be a file name"});
  // A shard holding a tensor the index does not list.
  PEFT_CHECK_THROW_MSG(SafetensorsCheckpoint(index(R"({"b": "s3.safetensors"})")), peft::FormatError,
                       {"s3.safetensors", "tensor 'a'", "not listed in the weight_map"});
  // A broken shard reports the shard's own name.
  peft_test::write_file(dir / "s4.safetensors", "\x01\x02");
  PEFT_CHECK_THROW_MSG(SafetensorsCheckpoint(index(R"({"a": "s4.safetensors"})")), peft::FormatError,
                       {"s4.safetensors", "header length"});
}
