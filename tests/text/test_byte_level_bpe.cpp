// Byte-level BPE pieces: the GPT-2 byte table, the pre-tokenizer against tokenizers'
// ByteLevel pre-tokenizer (fixture made by tests/reference/make_tokenizer_fixture.py),
// UTF-8 repair, merges by rank, and the errors for broken vocabularies.
#define BOOST_TEST_MODULE byte_level_bpe
#include <boost/test/unit_test.hpp>

#include <fstream>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "peft/error.h"
#include "peft/text/byte_level_bpe.h"
#include "peft/text/unicode.h"
#include "test_support.h"

using namespace peft::text;
using peft_test::fixtures_dir;

namespace {

nlohmann::json load_fixture() {
  std::ifstream f(fixtures_dir() / "text" / "whisper_tiny_en.json");
  BOOST_REQUIRE_MESSAGE(f.good(), "fixture whisper_tiny_en.json missing");
  return nlohmann::json::parse(f);
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& p : v) s += "[" + p + "]";
  return s;
}

}  // namespace

BOOST_AUTO_TEST_CASE(byte_table_is_gpt2s) {
  BOOST_CHECK_EQUAL(bytes_to_unicode(" "), "\xC4\xA0");   // U+0120 'Ġ'
  BOOST_CHECK_EQUAL(bytes_to_unicode("\n"), "\xC4\x8A");  // U+010A 'Ċ'
  BOOST_CHECK_EQUAL(bytes_to_unicode("A~"), "A~");
  BOOST_CHECK_EQUAL(bytes_to_unicode("\xAD"), "\xC5\x83");  // soft hyphen: the 68th moved byte, U+0143
  BOOST_CHECK_EQUAL(bytes_to_unicode("\xE9"), "\xC3\xA9");  // printable Latin-1 keeps its code point
  std::string all;
  for (int b = 0; b < 256; ++b) all += static_cast<char>(b);
  const std::string mapped = bytes_to_unicode(all);
  // 256 distinct code points, and the inverse restores every byte.
  std::set<int32_t> cps;
  for (size_t pos = 0; pos < mapped.size();) {
    size_t len = 0;
    cps.insert(utf8_next(mapped, pos, len));
    pos += len;
  }
  BOOST_CHECK_EQUAL(cps.size(), 256u);
  BOOST_CHECK(unicode_to_bytes(mapped) == all);
  BOOST_CHECK(!unicode_to_bytes("\xE2\x82\xAC"));  // U+20AC is not in the table
}

BOOST_AUTO_TEST_CASE(unicode_classes) {
  BOOST_CHECK(is_letter(U'é') && is_letter(U'我') && is_letter(U'ー'));
  BOOST_CHECK(!is_letter(U'1') && !is_letter(0x0301));  // combining acute is Mn
  BOOST_CHECK(is_number(U'7') && is_number(U'½') && is_number(U'Ⅻ') && is_number(U'①'));
  BOOST_CHECK(is_whitespace(' ') && is_whitespace('\t') && is_whitespace(0x85) && is_whitespace(0xA0) &&
              is_whitespace(0x3000));
  BOOST_CHECK(!is_whitespace(0x200B));  // zero-width space is not White_Space
}

BOOST_AUTO_TEST_CASE(utf8_lossy_replaces_maximal_subparts) {
  BOOST_CHECK_EQUAL(utf8_lossy("ok \xC3\xA9"), "ok \xC3\xA9");
  BOOST_CHECK_EQUAL(utf8_lossy("\xE6\x88"), "\xEF\xBF\xBD");  // incomplete: one
  BOOST_CHECK_EQUAL(utf8_lossy("\xE6\x88"
                               "A"),
                    "\xEF\xBF\xBD"
                    "A");
  BOOST_CHECK_EQUAL(utf8_lossy("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
  BOOST_CHECK_EQUAL(utf8_lossy("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");                  // overlong
  BOOST_CHECK_EQUAL(utf8_lossy("\xF0\x9F\x98"), "\xEF\xBF\xBD");
}

BOOST_AUTO_TEST_CASE(pre_tokenizer_by_hand) {
  BOOST_CHECK_EQUAL(join(gpt2_pre_tokenize("I don't  know\n")), "[I][ don]['t][ ][ know][\n]");
  BOOST_CHECK_EQUAL(join(gpt2_pre_tokenize("a  b")), "[a][ ][ b]");
  BOOST_CHECK_EQUAL(join(gpt2_pre_tokenize("x\n y")), "[x][\n][ y]");
  BOOST_CHECK_EQUAL(join(gpt2_pre_tokenize("IT'S 42!?")), "[IT]['][S][ 42][!?]");
  BOOST_CHECK_EQUAL(join(gpt2_pre_tokenize("")), "");
  BOOST_CHECK_EQUAL(join(gpt2_pre_tokenize("   ")), "[   ]");
  PEFT_CHECK_THROW_MSG(gpt2_pre_tokenize("ab\xFF"), peft::ValueError, {"invalid UTF-8", "byte 2"});
}

BOOST_AUTO_TEST_CASE(pre_tokenizer_matches_tokenizers) {
  const auto fx = load_fixture();
  BOOST_REQUIRE_GE(fx.at("pre_tokenize").size(), 10u);
  for (const auto& c : fx.at("pre_tokenize")) {
    const std::string text = c.at("text");
    const auto expected = c.at("pieces").get<std::vector<std::string>>();
    BOOST_CHECK_MESSAGE(gpt2_pre_tokenize(text) == expected, "text \"" << text << "\": got "
                                                                       << join(gpt2_pre_tokenize(text))
                                                                       << ", expected " << join(expected));
  }
}

namespace {

// A vocabulary of the byte-level characters a, b, c plus merged tokens.
ByteLevelBpe small_bpe(const std::vector<std::pair<std::string, std::string>>& merges) {
  std::map<std::string, int64_t> vocab{{"a", 0}, {"b", 1}, {"c", 2}};
  for (const auto& [l, r] : merges) vocab.emplace(l + r, static_cast<int64_t>(vocab.size()));
  return ByteLevelBpe(vocab, merges, "small.json");
}

}  // namespace

BOOST_AUTO_TEST_CASE(merges_apply_by_rank_leftmost_first) {
  // "bc" outranks "ab": abc -> a|bc, not ab|c.
  BOOST_CHECK_EQUAL(join(small_bpe({{"b", "c"}, {"a", "b"}}).merge_word("abc")), "[a][bc]");
  BOOST_CHECK_EQUAL(join(small_bpe({{"a", "b"}, {"b", "c"}}).merge_word("abc")), "[ab][c]");
  // Equal pairs merge left to right without overlapping.
  BOOST_CHECK_EQUAL(join(small_bpe({{"a", "a"}}).merge_word("aaa")), "[aa][a]");
  BOOST_CHECK_EQUAL(join(small_bpe({{"a", "a"}, {"aa", "aa"}}).merge_word("aaaaa")), "[aaaa][a]");
  const auto bpe = small_bpe({{"a", "b"}});
  BOOST_CHECK((bpe.encode("abcab") == std::vector<int64_t>{3, 2, 3}));
  BOOST_CHECK((bpe.encode("abcab") == std::vector<int64_t>{3, 2, 3}));  // again, from the cache
  BOOST_CHECK(*bpe.token_bytes(3) == "ab");
  BOOST_CHECK(!bpe.token_bytes(4) && !bpe.token_bytes(-1));
}

BOOST_AUTO_TEST_CASE(broken_vocabularies_are_format_errors) {
  std::map<std::string, int64_t> vocab{{"a", 0}, {"b", 1}};
  PEFT_CHECK_THROW_MSG(ByteLevelBpe(vocab, {{"a", "b"}}, "v.json"), peft::FormatError,
                       {"v.json", "model.merges[0]", "'ab'"});
  PEFT_CHECK_THROW_MSG(ByteLevelBpe(vocab, {{"a", "z"}}, "v.json"), peft::FormatError, {"v.json", "'z'"});
  std::map<std::string, int64_t> dup{{"a", 0}, {"b", 0}};
  PEFT_CHECK_THROW_MSG(ByteLevelBpe(dup, {}, "v.json"), peft::FormatError, {"v.json", "id 0"});
  const ByteLevelBpe bpe(vocab, {}, "v.json");
  PEFT_CHECK_THROW_MSG(bpe.encode("c"), peft::FormatError, {"v.json", "'c' is missing"});
}
