#define BOOST_TEST_MODULE bad_ct2
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "peft/error.h"
#include "peft/io/ct2.h"
#include "test_support.h"

using peft::io::Ct2Checkpoint;
using peft_test::put;
using peft_test::TempDir;
using peft_test::write_file;

namespace {

std::string ct2_string(const std::string& s) {
  std::string out;
  put<uint16_t>(out, static_cast<uint16_t>(s.size() + 1));
  out += s;
  out += '\0';
  return out;
}

// Header of a version `version` file up to and including the variable count.
std::string header(uint32_t variable_count, uint32_t version = 6) {
  std::string out;
  put<uint32_t>(out, version);
  out += ct2_string("TestSpec");
  put<uint32_t>(out, 1);
  put<uint32_t>(out, variable_count);
  return out;
}

// One variable with explicit fields, so each can be made wrong on its own.
std::string variable(const std::string& name, const std::vector<uint32_t>& dims, uint8_t dtype,
                     uint32_t nbytes, const std::string& data) {
  std::string out = ct2_string(name);
  put<uint8_t>(out, static_cast<uint8_t>(dims.size()));
  for (uint32_t d : dims) put<uint32_t>(out, d);
  put<uint8_t>(out, dtype);
  put<uint32_t>(out, nbytes);
  return out + data;
}

std::string f32_pair(const std::string& name) { return variable(name, {2}, 0, 8, std::string(8, '\x01')); }

std::string aliases(const std::vector<std::pair<std::string, std::string>>& pairs) {
  std::string out;
  put<uint32_t>(out, static_cast<uint32_t>(pairs.size()));
  for (const auto& p : pairs) out += ct2_string(p.first) + ct2_string(p.second);
  return out;
}

// A small valid v6 file: two variables, a scalar and an alias.
std::string valid_file() {
  std::string scalar;
  put<int16_t>(scalar, 6);
  return header(3) + f32_pair("enc/w") + variable("enc/num_heads", {}, 2, 2, scalar) +
         f32_pair("enc/w_scale") + aliases({{"dec/w", "enc/w"}});
}

// Writes `bytes` as model.bin in `dir` and expects Ct2Checkpoint to throw FormatError
// whose message holds the file name and every part given.
void expect_format_error(const TempDir& dir, const std::string& bytes,
                         std::initializer_list<std::string> parts) {
  const auto file = dir / "model.bin";
  write_file(file, bytes);
  std::vector<std::string> all{file.string()};
  all.insert(all.end(), parts.begin(), parts.end());
  bool thrown = false;
  try {
    Ct2Checkpoint ckpt(dir.path());
  } catch (const peft::FormatError& e) {
    thrown = true;
    bool has_all = true;
    for (const auto& p : all) has_all = has_all && std::string(e.what()).find(p) != std::string::npos;
    BOOST_CHECK_MESSAGE(has_all, "message \"" << e.what() << "\" lacks an expected part");
  }
  BOOST_CHECK_MESSAGE(thrown, "no FormatError");
}

}  // namespace

BOOST_AUTO_TEST_CASE(valid_file_is_valid) {
  // The baseline the other cases break: if this fails, they prove nothing.
  TempDir dir;
  write_file(dir / "model.bin", valid_file());
  Ct2Checkpoint ckpt(dir.path());
  BOOST_TEST(ckpt.tensors().size() == 5u);  // 3 variables, the alias, its implied scale
  BOOST_TEST(ckpt.scalar_int("enc/num_heads") == 6);
}

BOOST_AUTO_TEST_CASE(every_truncation_throws) {
  TempDir dir;
  const std::string full = valid_file();
  for (size_t n = 0; n < full.size(); ++n) {
    BOOST_TEST_CONTEXT("prefix of " << n << " bytes") {
      expect_format_error(dir, full.substr(0, n), {});
      BOOST_TEST(!Ct2Checkpoint::looks_like_ct2(dir / "model.bin") == (n < 4 + 2 + 9));
    }
  }
}

BOOST_AUTO_TEST_CASE(unsupported_binary_version) {
  TempDir dir;
  for (uint32_t version : {0u, 7u, 0xffffffffu}) {
    std::string bytes = valid_file();
    std::memcpy(bytes.data(), &version, 4);
    expect_format_error(dir, bytes, {"binary version " + std::to_string(version), "not supported"});
    BOOST_TEST(!Ct2Checkpoint::looks_like_ct2(dir / "model.bin"));
  }
}

BOOST_AUTO_TEST_CASE(bad_strings) {
  TempDir dir;
  std::string zero_length = header(1);
  zero_length += std::string("\0\0", 2);  // u16 length 0
  zero_length += std::string(20, 'x');
  expect_format_error(dir, zero_length, {"name of variable #0", "length 0"});

  std::string past_end = header(1);
  put<uint16_t>(past_end, 300);
  past_end += "abc";
  past_end += std::string(10, '\0');
  expect_format_error(dir, past_end, {"name of variable #0", "truncated"});

  std::string no_nul = header(1);
  put<uint16_t>(no_nul, 4);
  no_nul += "abcd";  // the 4th byte should be the NUL
  no_nul += std::string(20, '\0');
  expect_format_error(dir, no_nul, {"name of variable #0", "does not end with a NUL"});

  std::string inner_nul = header(1) + variable(std::string("a\0b", 3), {}, 0, 4, "1234") + aliases({});
  expect_format_error(dir, inner_nul, {"name of variable #0", "NUL before its end"});

  std::string bad_spec;
  put<uint32_t>(bad_spec, 6);
  put<uint16_t>(bad_spec, 0);
  bad_spec += std::string(20, '\0');
  expect_format_error(dir, bad_spec, {"spec name", "length 0"});
}

BOOST_AUTO_TEST_CASE(bad_rank_dims_dtype_and_size) {
  TempDir dir;
  std::string rank_huge = header(1) + ct2_string("big/rank");
  put<uint8_t>(rank_huge, 200);
  rank_huge += std::string(1000, '\x01');
  expect_format_error(dir, rank_huge, {"'big/rank'", "rank 200"});

  const uint32_t max = 0xffffffffu;
  expect_format_error(dir, header(1) + variable("huge", {max, max, max, max}, 0, 0, "") + aliases({}),
                      {"'huge'", "overflows"});
  expect_format_error(dir, header(1) + variable("sized", {2, 3}, 0, 20, std::string(20, '\0')) + aliases({}),
                      {"'sized'", "byte count 20", "24 bytes"});
  expect_format_error(dir, header(1) + variable("typed", {2}, 9, 8, std::string(8, '\0')) + aliases({}),
                      {"'typed'", "unknown dtype id 9"});
  // Data running past the end of the file.
  expect_format_error(dir, header(1) + variable("short", {1000}, 0, 4000, std::string(10, '\0')),
                      {"'short'", "truncated"});
}

BOOST_AUTO_TEST_CASE(huge_counts_refused_before_allocating) {
  TempDir dir;
  expect_format_error(dir, header(0xffffffffu) + f32_pair("a"),
                      {"variable count", "4294967295", "cannot fit"});
  std::string alias_count = header(1) + f32_pair("a");
  put<uint32_t>(alias_count, 0x7fffffffu);
  alias_count += ct2_string("b") + ct2_string("a");
  expect_format_error(dir, alias_count, {"alias count", "cannot fit"});
}

BOOST_AUTO_TEST_CASE(bad_aliases) {
  TempDir dir;
  const std::string base = header(1) + f32_pair("w");
  expect_format_error(dir, base + aliases({{"a", "b"}, {"b", "a"}}), {"alias 'a'", "loops"});
  expect_format_error(dir, base + aliases({{"x", "a"}, {"a", "b"}, {"b", "a"}}), {"alias 'x'", "loops"});
  expect_format_error(dir, base + aliases({{"self", "self"}}), {"alias 'self'", "points to itself"});
  expect_format_error(dir, base + aliases({{"dangling", "nowhere"}}),
                      {"alias 'dangling'", "'nowhere'", "not a variable"});
  expect_format_error(dir, base + aliases({{"w", "w"}}), {"alias 'w'", "name of a variable"});
  expect_format_error(dir, base + aliases({{"a", "w"}, {"a", "w"}}), {"alias 'a'", "listed twice"});
}

BOOST_AUTO_TEST_CASE(duplicate_variable) {
  TempDir dir;
  expect_format_error(dir, header(2) + f32_pair("twice") + f32_pair("twice") + aliases({}),
                      {"'twice'", "listed twice"});
}

BOOST_AUTO_TEST_CASE(old_layout_errors) {
  TempDir dir;
  // v3 stores an item size and an element count instead of a dtype id and byte count.
  std::string bad_item;
  put<uint32_t>(bad_item, 3);
  bad_item += ct2_string("S");
  put<uint32_t>(bad_item, 1);
  put<uint32_t>(bad_item, 1);
  bad_item += variable("odd", {2}, 3, 2, std::string(6, '\0')) + aliases({});
  expect_format_error(dir, bad_item, {"'odd'", "unknown item size 3"});

  std::string bad_count;
  put<uint32_t>(bad_count, 3);
  bad_count += ct2_string("S");
  put<uint32_t>(bad_count, 1);
  put<uint32_t>(bad_count, 1);
  bad_count += variable("cnt", {2}, 4, 3, std::string(12, '\0')) + aliases({});
  expect_format_error(dir, bad_count, {"'cnt'", "element count 3"});
}

BOOST_AUTO_TEST_CASE(trailing_garbage_is_an_error) {
  // CTranslate2 writes nothing after the alias table; bytes there mean a damaged or
  // misread file (see the reader), so they are refused rather than ignored.
  TempDir dir;
  expect_format_error(dir, valid_file() + "junk", {"4 unexpected trailing bytes"});
}

BOOST_AUTO_TEST_CASE(bad_config_and_vocabulary) {
  TempDir dir;
  write_file(dir / "model.bin", valid_file());
  const std::string config = (dir / "config.json").string();
  write_file(dir / "config.json", "{not json");
  PEFT_CHECK_THROW_MSG(Ct2Checkpoint(dir.path()), peft::FormatError, {config, "not valid JSON"});
  write_file(dir / "config.json", "[1, 2]");
  PEFT_CHECK_THROW_MSG(Ct2Checkpoint(dir.path()), peft::FormatError,
                       {config, "expected a JSON object", "array"});
  write_file(dir / "config.json", "{\"spec\": \"Other\", \"x\": 1}");
  {
    Ct2Checkpoint ckpt(dir.path());
    BOOST_TEST(ckpt.metadata().at("x") == 1);
    BOOST_TEST(ckpt.metadata().at("spec") == "TestSpec");  // the file's header wins
  }

  const std::string vocab = (dir / "vocabulary.json").string();
  write_file(dir / "vocabulary.json", "{\"a\": 1}");
  PEFT_CHECK_THROW_MSG(Ct2Checkpoint(dir.path()), peft::FormatError, {vocab, "expected an array"});
  write_file(dir / "vocabulary.json", "[\"a\", 2]");
  PEFT_CHECK_THROW_MSG(Ct2Checkpoint(dir.path()), peft::FormatError, {vocab, "token 1", "expected a string"});
  write_file(dir / "vocabulary.json", "[\"a\"");
  PEFT_CHECK_THROW_MSG(Ct2Checkpoint(dir.path()), peft::FormatError, {vocab, "not valid JSON"});
}

BOOST_AUTO_TEST_CASE(missing_files) {
  TempDir dir;
  PEFT_CHECK_THROW_MSG(Ct2Checkpoint(dir.path()), peft::NotFoundError, {(dir / "model.bin").string()});
  BOOST_TEST(!Ct2Checkpoint::looks_like_ct2(dir / "model.bin"));
}
