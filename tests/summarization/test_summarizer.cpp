// Summaries with the default SmolLM2 (summarization/): prompts in the model's chat
// template, chunking that keeps every word, map-reduce over texts longer than a chunk,
// rolling summaries of timed text, and bad input (empty text, invalid UTF-8, options
// that cannot work).
#define BOOST_TEST_MODULE summarizer
#include <boost/test/unit_test.hpp>

#include <iterator>
#include <set>
#include <sstream>

#include "peft/error.h"
#include "peft/runtime.h"
#include "peft/summarization/rolling_summarizer.h"
#include "peft/summarization/summarizer.h"
#include "peft/summarization/text_model.h"
#include "peft/text/chat_prompt.h"
#include "peft/text/tokenizer.h"
#include "test_support.h"

using namespace peft;
using namespace peft::summarization;

namespace {

std::shared_ptr<const TextModel> smol() {
  static const auto m = [] {
    configure_runtime(0);
    return TextModel::load(peft_test::require_model_file("smollm2-135m-instruct"));
  }();
  return m;
}

// Real English prose: the long descriptions of the dataset fixture's packages.
std::string prose(size_t min_words) {
  const std::string src =
      peft_test::read_file(peft_test::fixtures_dir() / "text" / "debian_descriptions" / "Translation-en");
  std::istringstream in(src);
  std::string line, text;
  size_t words = 0;
  while (words < min_words) {
    if (!std::getline(in, line)) {
      in.clear();
      in.seekg(0);
      continue;
    }
    if (line.size() < 2 || line[0] != ' ' || line == " .") continue;
    text += line.substr(1) + " ";
    words += static_cast<size_t>(std::count(line.begin(), line.end(), ' '));
  }
  return text;
}

std::vector<std::string> words_of(const std::string& s) {
  std::istringstream in(s);
  return {std::istream_iterator<std::string>(in), {}};
}

}  // namespace

BOOST_AUTO_TEST_CASE(prompt_is_the_chat_template_with_the_text_as_ordinary_tokens) {
  const auto m = smol();
  BOOST_TEST((m->kind() == TextModel::Kind::decoder_only));
  const std::string instruction = "Summarize this.", text = "The meeting moved to 3 pm.";
  const auto t = text::parse_chat_template(m->tokenizer().chat_template);
  const std::string chat = text::render_chat(t, {{"user", instruction + "\n\n" + text}});
  BOOST_TEST(m->prompt(instruction, text).ids == m->tokenizer().encode(chat, true));
  // Markup typed in the text stays text: it is not turned into control tokens.
  const auto ids = m->prompt(instruction, "<|im_end|>").ids;
  BOOST_TEST(std::count(ids.begin(), ids.end(), m->tokenizer().token_id("<|im_end|>").value()) == 2);
}

BOOST_AUTO_TEST_CASE(chunks_cover_every_word_within_the_budget_with_overlap) {
  const auto m = smol();
  const std::string text = prose(900) + " https://example.org/" + std::string(3000, 'a');
  const auto chunks = chunk_text(*m, text, 200, 40);
  BOOST_TEST(chunks.size() > 5u);
  std::multiset<std::string> seen;
  for (const auto& c : chunks) {
    BOOST_TEST(static_cast<int64_t>(m->tokenizer().encode(" " + c).size()) <= 201);  // + one for the space
    for (const auto& w : words_of(c)) seen.insert(w);
  }
  for (const auto& w : words_of(prose(900))) BOOST_TEST(seen.count(w) > 0, w);
  // Neighbours share words.
  const auto a = words_of(chunks[0]), b = words_of(chunks[1]);
  BOOST_TEST((std::find(b.begin(), b.end(), a.back()) != b.end()));
}

BOOST_AUTO_TEST_CASE(empty_text_runs_no_model_and_invalid_utf8_is_reported) {
  const auto m = smol();
  SummaryOptions o;
  o.generation.max_new_tokens = 16;
  const Summary empty = summarize(*m, " \n\t ", o);
  BOOST_TEST(empty.text.empty());
  BOOST_TEST(empty.chunks == 0);
  const Summary bad = summarize(*m, "The weather is sunny \xff\xfe today in Paris.", o);
  BOOST_TEST(bad.warnings.size() == 1u);
  BOOST_TEST(!bad.text.empty());
}

BOOST_AUTO_TEST_CASE(long_text_is_summarized_by_map_reduce) {
  const auto m = smol();
  SummaryOptions o;
  o.generation.max_new_tokens = 24;
  o.chunk_tokens = 256;
  const std::string text = prose(700);
  const Summary s = summarize(*m, text, o);
  BOOST_TEST_MESSAGE(s.chunks << " chunks, " << s.levels << " levels: " << s.text);
  BOOST_TEST(s.chunks >= 3);
  BOOST_TEST(s.levels >= 2);
  BOOST_TEST(!s.text.empty());
  BOOST_TEST(words_of(s.text).size() < 60u);
}

BOOST_AUTO_TEST_CASE(options_that_cannot_work_are_refused) {
  const auto m = smol();
  SummaryOptions o;
  o.chunk_tokens = 100;
  o.generation.max_new_tokens = 64;  // a chunk must hold twice the summary
  BOOST_CHECK_THROW(summarize(*m, prose(50), o), ValueError);
  o.generation.max_new_tokens = 16;
  o.overlap_tokens = 80;
  BOOST_CHECK_THROW(summarize(*m, prose(50), o), ValueError);
  BOOST_CHECK_THROW(TextModel::load(peft_test::fixtures_dir() / "no_such_model"), NotFoundError);
  // A Whisper directory is no summarizer.
  BOOST_CHECK_THROW(TextModel::load(peft_test::fixtures_dir() / "peft" / "whisper_random"), ValueError);
}

BOOST_AUTO_TEST_CASE(rolling_summaries_follow_stream_time) {
  RollingOptions o;
  o.window_seconds = 20;
  o.hop_seconds = 10;
  o.summary.generation.max_new_tokens = 12;
  RollingSummarizer r(smol(), o);
  const auto sentences = words_of(prose(200));
  std::vector<SpanSummary> got;
  // One 5-second segment of 8 words at a time, 0 .. 50 s.
  for (int k = 0; k < 10; ++k) {
    std::string seg;
    for (int w = 0; w < 8; ++w) seg += sentences[static_cast<size_t>(k * 8 + w)] + " ";
    for (auto& s : r.push(seg, 5.0 * k, 5.0 * k + 5)) got.push_back(s);
  }
  // Boundaries at 20, 30, 40, 50 s: windows [0, 20], [10, 30], [20, 40], [30, 50].
  BOOST_TEST_REQUIRE(got.size() == 4u);
  for (size_t i = 0; i < got.size(); ++i) {
    BOOST_TEST(got[i].start == 10.0 * i);
    BOOST_TEST(got[i].end == 20.0 + 10.0 * i);
    BOOST_TEST(!got[i].final);
    BOOST_TEST(!got[i].text.empty());
  }
  // A burst that passes several boundaries gives one summary.
  const auto burst = r.push("and then many hours later the meeting ended", 50, 95);
  BOOST_TEST_REQUIRE(burst.size() == 1u);
  BOOST_TEST(burst[0].start == 40.0);  // the window before the first boundary passed (60 s) ...
  BOOST_TEST(burst[0].end == 90.0);    // ... to the last one (90 s)
  const SpanSummary fin = r.finish();
  BOOST_TEST(fin.final);
  BOOST_TEST(fin.start == 0.0);
  BOOST_TEST(fin.end == 95.0);
  BOOST_TEST(!fin.text.empty());
  BOOST_CHECK_THROW(r.push("x", 5, 4), ValueError);
  RollingOptions bad = o;
  bad.hop_seconds = 30;  // more than the window
  BOOST_CHECK_THROW(RollingSummarizer(smol(), bad), ValueError);
}
