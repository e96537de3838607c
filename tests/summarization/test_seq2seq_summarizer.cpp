// T5 and BART behind summarization::TextModel, text in and text out, against
// transformers on tiny random models whose vocabularies are real tokenizers'
// (tests/reference/make_summarizer_fixture.py): the input ids equal transformers'
// tokenizers' (T5's "summarize: " prefix and </s>, BART's <s> ... </s>), generate()'s
// ids and their text equal the reference's.
#define BOOST_TEST_MODULE seq2seq_summarizer
#include <boost/test/unit_test.hpp>

#include <nlohmann/json.hpp>

#include "models/generate_kwargs.h"
#include "peft/error.h"
#include "peft/runtime.h"
#include "peft/summarization/summarizer.h"
#include "peft/summarization/text_model.h"
#include "peft/text/tokenizer.h"
#include "test_support.h"

using namespace peft;
using namespace peft::summarization;
namespace fs = std::filesystem;

namespace {

fs::path fixture() { return peft_test::fixtures_dir() / "models" / "summarizers"; }

const nlohmann::json& reference() {
  static const nlohmann::json j = nlohmann::json::parse(peft_test::read_file(fixture() / "reference.json"));
  return j;
}

void check_against_reference(const TextModel& model, const nlohmann::json& ref) {
  const std::string text = ref.at("text").get<std::string>();
  BOOST_TEST(model.prompt("", text).ids == ref.at("input_ids").get<std::vector<int64_t>>());
  for (const auto& g : ref.at("generate")) {
    const auto& kw = g.at("kwargs");
    const auto r = model.generate(model.prompt("", text), peft_test::options_from_kwargs(kw));
    BOOST_TEST(r.tokens == g.at("tokens").get<std::vector<int64_t>>(), kw.dump());
    BOOST_TEST(r.text == g.at("text").get<std::string>(), kw.dump());
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(t5_with_its_sentencepiece_model) {
  configure_runtime(0);
  // The model directory with the SentencePiece fixture as its spiece.model.
  peft_test::TempDir dir;
  fs::copy(fixture() / "t5", dir.path() / "t5");
  fs::copy_file(peft_test::fixtures_dir() / "text" / "sentencepiece" / "unigram_nmt.model",
                dir.path() / "t5" / "spiece.model");
  const auto model = TextModel::load(dir.path() / "t5");
  BOOST_TEST((model->kind() == TextModel::Kind::encoder_decoder));
  BOOST_TEST(model->architecture() == "t5");
  BOOST_TEST(model->input_budget(100) == 512);
  check_against_reference(*model, reference().at("t5"));
  // Without its tokenizer the model is refused by name.
  fs::remove(dir.path() / "t5" / "spiece.model");
  try {
    TextModel::load(dir.path() / "t5");
    BOOST_FAIL("a T5 directory without spiece.model loaded");
  } catch (const NotFoundError& e) {
    BOOST_TEST(peft_test::contains_all(e.what(), {"spiece.model"}));
  }
}

BOOST_AUTO_TEST_CASE(bart_with_its_byte_level_bpe) {
  configure_runtime(0);
  const auto model = TextModel::load(fixture() / "bart");
  BOOST_TEST(model->architecture() == "bart");
  check_against_reference(*model, reference().at("bart"));
  // A text longer than BART's 256 positions is summarized in chunks, never truncated.
  SummaryOptions o;
  o.generation.max_new_tokens = 8;
  std::string long_text;
  for (int i = 0; i < 12; ++i) long_text += reference().at("bart").at("text").get<std::string>() + " ";
  const Summary s = summarize(*model, long_text, o);
  BOOST_TEST(s.chunks > 1);
  BOOST_TEST(s.levels >= 2);
}
