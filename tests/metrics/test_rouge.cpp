// ROUGE against rouge-score 0.1.2 and the Porter stemmer against nltk's PorterStemmer
// (fixture made by tests/reference/make_metrics_fixture.py): scores to 1e-6 with and
// without stemming, stems exactly, and the tokenizer's handling of other scripts.
#define BOOST_TEST_MODULE rouge
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <fstream>

#include <nlohmann/json.hpp>

#include "peft/error.h"
#include "peft/metrics/rouge.h"
#include "test_support.h"

namespace m = peft::metrics;
using peft_test::fixtures_dir;
using Tokens = std::vector<std::string>;

namespace {

const nlohmann::json& fixture() {
  static const nlohmann::json fx = [] {
    std::ifstream f(fixtures_dir() / "metrics" / "rouge.json");
    BOOST_REQUIRE_MESSAGE(f.good(), "cannot read rouge.json");
    return nlohmann::json::parse(f);
  }();
  return fx;
}

void check_score(const m::RougeScore& got, const nlohmann::json& want, const std::string& what) {
  BOOST_TEST_CONTEXT(what) {
    BOOST_TEST(std::abs(got.precision - want[0].get<double>()) < 1e-6);
    BOOST_TEST(std::abs(got.recall - want[1].get<double>()) < 1e-6);
    BOOST_TEST(std::abs(got.fmeasure - want[2].get<double>()) < 1e-6);
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(scores_match_rouge_score) {
  const auto& pairs = fixture()["pairs"];
  BOOST_REQUIRE_GE(pairs.size(), 100u);
  for (const auto& e : pairs) {
    const std::string target = e["target"], prediction = e["prediction"];
    const bool stem = e["use_stemmer"];
    const std::string what = "'" + target + "' / '" + prediction + "' stem=" + (stem ? "1" : "0");
    const m::RougeScores s = m::rouge(target, prediction, stem);
    const auto& want = e["scores"];
    check_score(s.rouge1, want["rouge1"], what + " rouge1");
    check_score(s.rouge2, want["rouge2"], what + " rouge2");
    check_score(s.rougeL, want["rougeL"], what + " rougeL");
    check_score(s.rougeLsum, want["rougeLsum"], what + " rougeLsum");
    // The single-measure entry points agree with the combined one.
    check_score(m::rouge_n(target, prediction, 2, stem), want["rouge2"], what + " rouge_n(2)");
    check_score(m::rouge_l(target, prediction, stem), want["rougeL"], what + " rouge_l");
  }
}

BOOST_AUTO_TEST_CASE(stems_match_nltk) {
  const auto& stems = fixture()["stems"];
  BOOST_REQUIRE_GE(stems.size(), 200u);
  size_t mismatches = 0;
  for (const auto& e : stems) {
    const std::string word = e[0], want = e[1];
    const std::string got = m::porter_stem(word);
    BOOST_TEST_CONTEXT(word) { BOOST_TEST(got == want); }
    if (got != want) ++mismatches;
  }
  BOOST_TEST(mismatches == 0u);
}

BOOST_AUTO_TEST_CASE(tokenizer_drops_other_scripts) {
  BOOST_TEST(m::rouge_tokenize("Привет, мир! 你好", false).empty());
  BOOST_TEST(m::rouge_tokenize("It's U.S.A.-2024", false) == (Tokens{"it", "s", "u", "s", "a", "2024"}),
             boost::test_tools::per_element());
  // Stemming only touches tokens longer than three characters.
  BOOST_TEST(m::rouge_tokenize("flies ran runs running", true) == (Tokens{"fli", "ran", "run", "run"}),
             boost::test_tools::per_element());
  const auto s = m::rouge("Привет мир", "Привет мир", false);
  BOOST_TEST(s.rouge1.fmeasure == 0.0);
  BOOST_TEST(s.rougeLsum.fmeasure == 0.0);
}

BOOST_AUTO_TEST_CASE(invalid_utf8_separates_tokens) {
  BOOST_TEST(m::rouge_tokenize("ab\xff\xfe"
                               "cd\xc3",
                               false) == (Tokens{"ab", "cd"}),
             boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(rouge_n_needs_positive_n) {
  PEFT_CHECK_THROW_MSG(m::rouge_n("a", "a", 0, false), peft::ValueError, {"n must be positive"});
}
