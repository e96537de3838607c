// Whisper's EnglishTextNormalizer and BasicTextNormalizer against openai-whisper
// (fixture made by tests/reference/make_metrics_fixture.py): every fixture string must
// normalize exactly as Whisper's Python code does.
#define BOOST_TEST_MODULE english_normalizer
#include <boost/test/unit_test.hpp>

#include <fstream>

#include <nlohmann/json.hpp>

#include "peft/metrics/english_normalizer.h"
#include "peft/metrics/wer.h"
#include "test_support.h"

namespace m = peft::metrics;
using peft_test::fixtures_dir;

namespace {

const nlohmann::json& fixture() {
  static const nlohmann::json fx = [] {
    std::ifstream f(fixtures_dir() / "metrics" / "normalizer.json");
    BOOST_REQUIRE_MESSAGE(f.good(), "cannot read normalizer.json");
    return nlohmann::json::parse(f);
  }();
  return fx;
}

}  // namespace

BOOST_AUTO_TEST_CASE(english_matches_whisper) {
  const auto& cases = fixture()["english"];
  BOOST_REQUIRE_GE(cases.size(), 60u);
  size_t exact = 0;
  for (const auto& e : cases) {
    const std::string in = e["input"], want = e["output"];
    const std::string got = m::normalize_english(in);
    BOOST_TEST_CONTEXT("'" + in + "'") { BOOST_TEST(got == want); }
    if (got == want) ++exact;
  }
  BOOST_TEST_MESSAGE("english: " << exact << " of " << cases.size() << " exact");
}

BOOST_AUTO_TEST_CASE(basic_matches_whisper) {
  for (const auto& e : fixture()["basic"]) {
    const std::string in = e["input"];
    BOOST_TEST_CONTEXT("'" + in + "'") {
      BOOST_TEST(m::normalize_basic(in, false) == e["output"].get<std::string>());
      BOOST_TEST(m::normalize_basic(in, true) == e["output_remove_diacritics"].get<std::string>());
    }
  }
}

BOOST_AUTO_TEST_CASE(librivox_wer_after_normalizing) {
  // The normalizer removes the case/punctuation differences, leaving the real slip.
  const std::string ref = m::normalize_english("he was not an ill disposed young man");
  const std::string hyp = m::normalize_english("He was not an old-sposed young man.");
  BOOST_TEST(hyp == "he was not an old sposed young man");
  BOOST_TEST(m::wer(ref, hyp) == 0.25);
  BOOST_TEST(m::normalize_english("Five, five.") == "55");
}

BOOST_AUTO_TEST_CASE(invalid_utf8_becomes_a_space) {
  // U+FFFD is a symbol (So), so Whisper's rules turn it into a separator.
  BOOST_TEST(m::normalize_english("ab\xff"
                                  "cd") == "ab cd");
  BOOST_TEST(m::normalize_basic("ab\xc3", false) == "ab ");
  BOOST_TEST(m::normalize_english_numbers("twenty one") == "21");
}
