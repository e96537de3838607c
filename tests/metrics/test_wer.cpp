// WER against jiwer 4.0.0 (fixture made by tests/reference/make_metrics_fixture.py):
// counts and rates of single pairs and corpora, the empty-reference cases, and the
// splitting rules of jiwer's default transform.
#define BOOST_TEST_MODULE wer
#include <boost/test/unit_test.hpp>

#include <fstream>

#include <nlohmann/json.hpp>

#include "peft/error.h"
#include "peft/metrics/wer.h"
#include "test_support.h"

namespace m = peft::metrics;
using peft_test::fixtures_dir;
using Words = std::vector<std::string>;

namespace {

const nlohmann::json& fixture() {
  static const nlohmann::json fx = [] {
    std::ifstream f(fixtures_dir() / "metrics" / "wer.json");
    BOOST_REQUIRE_MESSAGE(f.good(), "cannot read wer.json");
    return nlohmann::json::parse(f);
  }();
  return fx;
}

void check_counts(const m::WordCounts& c, const nlohmann::json& e, const std::string& what) {
  BOOST_TEST_CONTEXT(what) {
    BOOST_TEST(c.hits == e["hits"].get<size_t>());
    BOOST_TEST(c.substitutions == e["substitutions"].get<size_t>());
    BOOST_TEST(c.deletions == e["deletions"].get<size_t>());
    BOOST_TEST(c.insertions == e["insertions"].get<size_t>());
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(pairs_match_jiwer) {
  const auto& pairs = fixture()["pairs"];
  BOOST_REQUIRE_GE(pairs.size(), 50u);
  for (const auto& e : pairs) {
    const std::string ref = e["reference"], hyp = e["hypothesis"];
    const std::string what = "'" + ref + "' vs '" + hyp + "'";
    check_counts(m::align(ref, hyp), e, what);
    // Exact: both sides divide the same integers in double precision.
    BOOST_TEST_CONTEXT(what) { BOOST_TEST(m::wer(ref, hyp) == e["wer"].get<double>()); }
  }
}

BOOST_AUTO_TEST_CASE(corpora_match_jiwer) {
  for (const auto& e : fixture()["corpora"]) {
    const auto refs = e["references"].get<Words>();
    const auto hyps = e["hypotheses"].get<Words>();
    const m::CorpusWer r = m::corpus_wer(refs, hyps);
    check_counts(r.total, e, "corpus of " + std::to_string(refs.size()));
    BOOST_TEST(r.wer == e["wer"].get<double>());
    BOOST_TEST(r.utterances.size() == refs.size());
  }
}

BOOST_AUTO_TEST_CASE(librivox_slip_is_two_substitutions) {
  // "ill disposed" heard as "old sposed": two substitutions out of eight words.
  const auto c = m::align("he was not an ill disposed young man", "he was not an old sposed young man");
  BOOST_TEST(c.substitutions == 2u);
  BOOST_TEST(c.hits == 6u);
  BOOST_TEST(m::wer(c) == 0.25);
}

BOOST_AUTO_TEST_CASE(empty_reference_is_a_value_error) {
  // jiwer 4.0.0 reports the insertion count as "wer" here; the counts agree, the rate
  // is refused.
  for (const auto& e : fixture()["empty_reference"]) {
    const std::string ref = e["reference"], hyp = e["hypothesis"];
    check_counts(m::align(ref, hyp), e, "'" + ref + "' vs '" + hyp + "'");
    PEFT_CHECK_THROW_MSG(m::wer(ref, hyp), peft::ValueError, {"reference has no words"});
  }
  PEFT_CHECK_THROW_MSG(m::corpus_wer({"", " "}, {"a", ""}), peft::ValueError, {"undefined", "1 inserted"});
}

BOOST_AUTO_TEST_CASE(corpus_length_mismatch) {
  PEFT_CHECK_THROW_MSG(m::corpus_wer({"a", "b"}, {"a"}), peft::ValueError, {"2 references", "1 hypotheses"});
}

BOOST_AUTO_TEST_CASE(split_follows_jiwer_default_transform) {
  BOOST_TEST(m::split_words("  a  b   c ") == (Words{"a", "b", "c"}), boost::test_tools::per_element());
  // A lone tab is not a separator for jiwer (it splits on ' ' only)...
  BOOST_TEST(m::split_words("a\tb c") == (Words{"a\tb", "c"}), boost::test_tools::per_element());
  // ...but a run of two whitespace characters is, and so are stripped ends.
  BOOST_TEST(m::split_words("\ta\t\tb\n") == (Words{"a", "b"}), boost::test_tools::per_element());
  BOOST_TEST(m::split_words("a\u3000\u3000b") == (Words{"a", "b"}), boost::test_tools::per_element());
  BOOST_TEST(m::split_words("").empty());
  BOOST_TEST(m::split_words(" \n ").empty());
}

BOOST_AUTO_TEST_CASE(invalid_utf8_is_replaced) {
  const auto w = m::split_words("ok \xff\xfe bad\xc3");
  BOOST_TEST(w == (Words{"ok", "\xEF\xBF\xBD\xEF\xBF\xBD", "bad\xEF\xBF\xBD"}),
             boost::test_tools::per_element());
  BOOST_TEST(m::align("a \xff", "a \xfe").hits == 2u);  // both become U+FFFD
}

BOOST_AUTO_TEST_CASE(tie_breaking_follows_rapidfuzz) {
  // Two substitutions or one deletion plus one insertion cost the same; jiwer (through
  // rapidfuzz) reports the substitutions.
  const auto c = m::align("a b", "b c");
  BOOST_TEST(c.substitutions == 2u);
  const auto& e = fixture()["pairs"][4];
  BOOST_REQUIRE(e["reference"] == "a b");
  check_counts(c, e, "a b / b c");
}
