#define BOOST_TEST_MODULE bad_gguf
#include "test_support.h"

#include <cstring>
#include <string>
#include <vector>

#include "peft/error.h"
#include "peft/io/gguf.h"

// Every file here is built byte by byte: the reader must refuse it with a typed
// exception whose message names the file, the key or tensor, and the problem.

namespace fs = std::filesystem;
using peft::io::GgufCheckpoint;
using peft_test::put;

namespace {

constexpr uint32_t kTypeU32 = 4, kTypeString = 8, kTypeArray = 9;
constexpr uint32_t kGgmlF32 = 0, kGgmlQ8_0 = 8;

void put_str(std::string& out, const std::string& s) {
  put<uint64_t>(out, s.size());
  out += s;
}

std::string header(uint32_t version, uint64_t tensors, uint64_t kvs) {
  std::string out = "GGUF";
  put<uint32_t>(out, version);
  put<uint64_t>(out, tensors);
  put<uint64_t>(out, kvs);
  return out;
}

void kv_u32(std::string& out, const std::string& key, uint32_t value) {
  put_str(out, key);
  put<uint32_t>(out, kTypeU32);
  put<uint32_t>(out, value);
}

void kv_string(std::string& out, const std::string& key, const std::string& value) {
  put_str(out, key);
  put<uint32_t>(out, kTypeString);
  put_str(out, value);
}

// dims innermost-first, as GGUF stores them.
void tensor_info(std::string& out, const std::string& name, const std::vector<uint64_t>& dims,
                 uint32_t ggml_type, uint64_t offset) {
  put_str(out, name);
  put<uint32_t>(out, static_cast<uint32_t>(dims.size()));
  for (uint64_t d : dims) put<uint64_t>(out, d);
  put<uint32_t>(out, ggml_type);
  put<uint64_t>(out, offset);
}

void pad_to(std::string& out, size_t alignment) {
  while (out.size() % alignment) out.push_back('\0');
}

// A valid file: two key/values (one an array) and two tensors, "a" F32 [8] at 0 and
// "b" Q8_0 [2, 32] at 32, ending exactly where b's data ends.
std::string valid_file() {
  std::string f = header(3, 2, 2);
  kv_string(f, "general.architecture", "llama");
  put_str(f, "tokens");
  put<uint32_t>(f, kTypeArray);
  put<uint32_t>(f, kTypeString);
  put<uint64_t>(f, 2);
  put_str(f, "ab");
  put_str(f, "c");
  tensor_info(f, "a", {8}, kGgmlF32, 0);
  tensor_info(f, "b", {32, 2}, kGgmlQ8_0, 32);
  pad_to(f, 32);
  for (int i = 0; i < 8; ++i) put<float>(f, static_cast<float>(i));
  for (int block = 0; block < 2; ++block) {
    put<uint16_t>(f, 0x3C00);  // f16 1.0
    for (int i = 0; i < 32; ++i) put<int8_t>(f, static_cast<int8_t>(i));
  }
  return f;
}

// Writes `bytes` to a temporary file and expects a FormatError whose message holds
// the file's path and every one of `parts`.
void expect_format_error(const std::string& bytes, const std::vector<std::string>& parts) {
  peft_test::TempDir dir;
  const fs::path path = dir / "bad.gguf";
  peft_test::write_file(path, bytes);
  try {
    GgufCheckpoint ckpt(path);
    BOOST_ERROR("no exception for a file that should be refused (expected: " << parts.back() << ")");
  } catch (const peft::FormatError& e) {
    const std::string msg = e.what();
    BOOST_TEST_MESSAGE("refused as expected: " << msg);
    BOOST_CHECK_MESSAGE(msg.find(path.string()) != std::string::npos, "message lacks the file: " << msg);
    for (const auto& part : parts)
      BOOST_CHECK_MESSAGE(msg.find(part) != std::string::npos, "message lacks \"" << part << "\": " << msg);
  }
}

// A file with one tensor info and enough zero bytes after it for any data.
std::string one_tensor_file(const std::vector<uint64_t>& dims, uint32_t ggml_type, uint64_t offset = 0) {
  std::string f = header(3, 1, 0);
  tensor_info(f, "w", dims, ggml_type, offset);
  pad_to(f, 32);
  f.append(256, '\0');
  return f;
}

}  // namespace

BOOST_AUTO_TEST_CASE(valid_base_file_opens) {
  // The files below are variations of this one; it must itself be accepted.
  peft_test::TempDir dir;
  peft_test::write_file(dir / "ok.gguf", valid_file());
  GgufCheckpoint ckpt(dir / "ok.gguf");
  BOOST_CHECK_EQUAL(ckpt.tensors().size(), 2u);
  BOOST_CHECK_EQUAL(ckpt.metadata()["tokens"].dump(), R"(["ab","c"])");
  BOOST_CHECK_EQUAL(ckpt.to_float("b")[31], 31.0f);
}

BOOST_AUTO_TEST_CASE(every_truncation_is_a_format_error) {
  const std::string full = valid_file();
  peft_test::TempDir dir;
  const fs::path path = dir / "cut.gguf";
  size_t refused = 0;
  for (size_t len = 0; len < full.size(); ++len) {
    peft_test::write_file(path, full.substr(0, len));
    try {
      GgufCheckpoint ckpt(path);
      BOOST_ERROR("prefix of " << len << " bytes was accepted");
    } catch (const peft::FormatError& e) {
      ++refused;
      BOOST_CHECK_MESSAGE(std::string(e.what()).find(path.string()) != std::string::npos,
                          "prefix " << len << ": message lacks the file: " << e.what());
    }
    // Any other exception type escapes and fails the test case.
  }
  BOOST_CHECK_EQUAL(refused, full.size());
}

BOOST_AUTO_TEST_CASE(truncation_messages_name_what_was_cut) {
  const std::string full = valid_file();
  // Cut inside the "tokens" string array: the message names the key.
  const size_t tokens_at = full.find("tokens");
  // (17 bytes after the count: enough for the count check, not for "ab" and "c".)
  expect_format_error(full.substr(0, tokens_at + 6 + 4 + 4 + 8 + 17), {"'tokens'", "truncated"});
  // Cut inside tensor b's info.
  const size_t b_at = full.find(std::string("\x01\0\0\0\0\0\0\0b", 9));
  expect_format_error(full.substr(0, b_at + 9 + 6), {"'b'", "truncated"});
  // Cut inside tensor b's data.
  expect_format_error(full.substr(0, full.size() - 1), {"'b'", "outside the file"});
}

BOOST_AUTO_TEST_CASE(wrong_magic) {
  std::string f = valid_file();
  f[3] = 'X';
  expect_format_error(f, {"magic", "not a GGUF file"});
}

BOOST_AUTO_TEST_CASE(unsupported_versions) {
  std::string v1 = valid_file();
  v1[4] = 1;
  expect_format_error(v1, {"version 1", "not supported"});
  std::string v99 = valid_file();
  v99[4] = 99;
  expect_format_error(v99, {"version 99"});
  std::string big_endian = valid_file();
  big_endian[4] = 0;
  big_endian[7] = 3;
  expect_format_error(big_endian, {"big-endian"});
}

BOOST_AUTO_TEST_CASE(string_length_past_the_end) {
  std::string f = header(3, 0, 1);
  put_str(f, "general.name");
  put<uint32_t>(f, kTypeString);
  put<uint64_t>(f, 1000);
  f += "abc";
  expect_format_error(f, {"'general.name'", "truncated", "1000"});

  std::string key = header(3, 0, 1);
  put<uint64_t>(key, uint64_t{1} << 63);  // key length
  key.append(16, 'k');                    // enough bytes for the count check, not for the key
  expect_format_error(key, {"metadata key #0", "truncated"});
}

BOOST_AUTO_TEST_CASE(huge_array_count_is_refused_before_allocating) {
  std::string f = header(3, 0, 1);
  put_str(f, "big");
  put<uint32_t>(f, kTypeArray);
  put<uint32_t>(f, kTypeU32);
  put<uint64_t>(f, uint64_t{1} << 62);
  put<uint32_t>(f, 1);
  expect_format_error(f, {"'big'", "4611686018427387904", "cannot fit"});

  // Strings take at least their 8-byte length each: 3 of them cannot fit in 20 bytes.
  std::string s = header(3, 0, 1);
  put_str(s, "strs");
  put<uint32_t>(s, kTypeArray);
  put<uint32_t>(s, kTypeString);
  put<uint64_t>(s, 3);
  s.append(20, '\0');
  expect_format_error(s, {"'strs'", "cannot fit"});
}

BOOST_AUTO_TEST_CASE(huge_tensor_and_metadata_counts) {
  std::string tensors = header(3, uint64_t{1} << 62, 0);
  tensors.append(64, '\0');
  expect_format_error(tensors, {"tensor count", "4611686018427387904", "cannot fit"});
  std::string kvs = header(3, 0, ~uint64_t{0});
  kvs.append(64, '\0');
  expect_format_error(kvs, {"metadata count", "18446744073709551615", "cannot fit"});
}

BOOST_AUTO_TEST_CASE(nested_array_too_deep) {
  std::string f = header(3, 0, 1);
  put_str(f, "deep");
  put<uint32_t>(f, kTypeArray);
  for (int level = 0; level < 40; ++level) {  // arrays of one array, 40 deep
    put<uint32_t>(f, kTypeArray);
    put<uint64_t>(f, 1);
  }
  put<uint32_t>(f, kTypeU32);
  put<uint64_t>(f, 1);
  put<uint32_t>(f, 7);
  expect_format_error(f, {"'deep'", "nested more than"});
}

BOOST_AUTO_TEST_CASE(unknown_value_types) {
  std::string f = header(3, 0, 1);
  put_str(f, "odd");
  put<uint32_t>(f, 13);
  put<uint32_t>(f, 0);
  expect_format_error(f, {"'odd'", "unknown value type 13"});

  std::string a = header(3, 0, 1);
  put_str(a, "odd_array");
  put<uint32_t>(a, kTypeArray);
  put<uint32_t>(a, 0xFFFFFFFF);
  put<uint64_t>(a, 1);
  put<uint32_t>(a, 0);
  expect_format_error(a, {"'odd_array'", "unknown value type 4294967295"});
}

BOOST_AUTO_TEST_CASE(unknown_and_unsupported_ggml_types) {
  expect_format_error(one_tensor_file({32}, 99), {"tensor 'w'", "unknown ggml type 99"});
  expect_format_error(one_tensor_file({256}, 16), {"tensor 'w'", "ggml type 16", "IQ2_XXS", "not supported"});
}

BOOST_AUTO_TEST_CASE(dims_whose_product_overflows) {
  expect_format_error(one_tensor_file({uint64_t{1} << 32, uint64_t{1} << 32}, kGgmlF32),
                      {"tensor 'w'", "too many elements"});
  expect_format_error(one_tensor_file({uint64_t{1} << 63}, kGgmlF32), {"tensor 'w'", "out of range"});
  // Fits in elements but not in bytes: 2^62 F32 elements are 2^64 bytes.
  expect_format_error(one_tensor_file({uint64_t{1} << 62}, kGgmlF32), {"tensor 'w'", "overflows 64 bits"});
}

BOOST_AUTO_TEST_CASE(too_many_dimensions) {
  expect_format_error(one_tensor_file({1, 1, 1, 1, 1}, kGgmlF32),
                      {"tensor 'w'", "5 dimensions", "at most 4"});
  std::string f = header(3, 1, 0);
  put_str(f, "w");
  put<uint32_t>(f, 0xFFFFFFFF);
  f.append(32, '\0');
  expect_format_error(f, {"tensor 'w'", "4294967295 dimensions"});
}

BOOST_AUTO_TEST_CASE(tensor_data_out_of_range) {
  expect_format_error(one_tensor_file({8}, kGgmlF32, 4096), {"tensor 'w'", "outside the file"});
  // An offset that wraps around when added to the data section start.
  expect_format_error(one_tensor_file({8}, kGgmlF32, ~uint64_t{31}), {"tensor 'w'", "outside the file"});
  // Too long for what is left, though it starts inside.
  expect_format_error(one_tensor_file({1024}, kGgmlF32, 0), {"tensor 'w'", "outside the file"});
}

BOOST_AUTO_TEST_CASE(overlapping_tensors) {
  std::string f = header(3, 2, 0);
  tensor_info(f, "a", {16}, kGgmlF32, 0);  // [0, 64)
  tensor_info(f, "b", {8}, kGgmlF32, 32);  // [32, 64)
  pad_to(f, 32);
  f.append(128, '\0');
  expect_format_error(f, {"tensor 'b'", "overlaps", "'a'"});

  // Listed in the other order, found all the same.
  std::string g = header(3, 2, 0);
  tensor_info(g, "late", {8}, kGgmlF32, 64);
  tensor_info(g, "early", {32}, kGgmlF32, 0);  // [0, 128) covers [64, 96)
  pad_to(g, 32);
  g.append(128, '\0');
  expect_format_error(g, {"tensor 'late'", "overlaps", "'early'"});
}

BOOST_AUTO_TEST_CASE(misaligned_offset) {
  expect_format_error(one_tensor_file({8}, kGgmlF32, 8),
                      {"tensor 'w'", "offset 8", "not a multiple of the alignment 32"});
}

BOOST_AUTO_TEST_CASE(bad_alignment_values) {
  for (uint32_t alignment : {0u, 48u, 3u}) {
    std::string f = header(3, 0, 1);
    kv_u32(f, "general.alignment", alignment);
    expect_format_error(f, {"'general.alignment'", std::to_string(alignment), "not a nonzero power of two"});
  }
  std::string wrong_type = header(3, 0, 1);
  kv_string(wrong_type, "general.alignment", "32");
  expect_format_error(wrong_type, {"'general.alignment'", "must be a u32", "string"});
}

BOOST_AUTO_TEST_CASE(duplicate_tensor_name) {
  std::string f = header(3, 2, 0);
  tensor_info(f, "a", {8}, kGgmlF32, 0);
  tensor_info(f, "a", {8}, kGgmlF32, 32);
  pad_to(f, 32);
  f.append(64, '\0');
  expect_format_error(f, {"tensor 'a'", "listed twice"});
}

BOOST_AUTO_TEST_CASE(duplicate_metadata_key) {
  std::string f = header(3, 0, 2);
  kv_u32(f, "llama.block_count", 30);
  kv_u32(f, "llama.block_count", 31);
  expect_format_error(f, {"'llama.block_count'", "more than once"});
}

BOOST_AUTO_TEST_CASE(block_type_not_whole_blocks) {
  expect_format_error(one_tensor_file({33}, kGgmlQ8_0), {"tensor 'w'", "33", "whole number", "Q8_0"});
  // Whole blocks in total (2 x 48 = 96 = 3 blocks) but rows of 1.5 blocks.
  expect_format_error(one_tensor_file({48, 2}, kGgmlQ8_0), {"tensor 'w'", "48", "whole number"});
  expect_format_error(one_tensor_file({128}, 14), {"tensor 'w'", "256-element Q6_K"});
  // No dims is a scalar: one element, not a whole block.
  expect_format_error(one_tensor_file({}, kGgmlQ8_0), {"tensor 'w'", "innermost dimension 1 "});
}

BOOST_AUTO_TEST_CASE(missing_file_is_an_io_error) {
  peft_test::TempDir dir;
  PEFT_CHECK_THROW_MSG(GgufCheckpoint(dir / "absent.gguf"), peft::IoError, {"absent.gguf", "cannot open"});
}
