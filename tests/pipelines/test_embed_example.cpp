// peft-embed-example (pipelines/embed_example.cpp), the README's embedding example: on a
// LibriVox recording it prints the whisperasr messages ("[start - end] text") and the
// peftsummarize message ("Summary [start - end]: text") it reads from the bus.
// WER bound as in test_transcribe_media.cpp (tiny.en gets 0870 right: WER 0).
#define BOOST_TEST_MODULE embed_example
#include <boost/test/unit_test.hpp>

#include <regex>
#include <sstream>
#include <string>

#include "pipelines/run_program.h"
#include "pipelines/test_media.h"
#include "pocketsphinx_testdata.h"
#include "test_support.h"

using namespace peft_test;

BOOST_AUTO_TEST_CASE(prints_captions_and_summary) {
  TestUtterance utterance;
  for (const auto& u : pocketsphinx_utterances("librivox"))
    if (u.id.find("0870") != std::string::npos) utterance = u;
  BOOST_REQUIRE_MESSAGE(!utterance.wav.empty(), "pocketsphinx-testdata is not installed");
  const ProgramResult r = run_program({pipelines_program("peft-embed-example"), utterance.wav});
  BOOST_TEST_MESSAGE("peft-embed-example: " << r.seconds << " s\n" << r.out);
  BOOST_REQUIRE_MESSAGE(r.status == 0, "exit " << r.status << ": " << r.err);

  const std::regex caption(R"(\[(\d+\.\d\d) - (\d+\.\d\d)\] (.+))");
  const std::regex summary(R"(Summary \[(\d+\.\d\d) - (\d+\.\d\d)\]: (.+))");
  std::string transcript, summary_text;
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);) {
    std::smatch m;
    if (std::regex_match(line, m, caption)) {
      BOOST_CHECK_LE(std::stod(m[1]), std::stod(m[2]));
      BOOST_CHECK_LE(std::stod(m[2]), 7.1 + 0.5);
      transcript += " " + m[3].str();
    } else if (std::regex_match(line, m, summary)) {
      BOOST_CHECK_LT(std::stod(m[1]), std::stod(m[2]));
      summary_text = m[3];
    } else {
      BOOST_ERROR("unexpected line: " << line);
    }
  }
  const double w = normalized_wer(utterance.reference, transcript);
  BOOST_TEST_MESSAGE("WER " << w);
  BOOST_CHECK_LE(w, 0.15);
  BOOST_CHECK(!summary_text.empty());
  BOOST_CHECK_LT(summary_text.size(), transcript.size());

  const ProgramResult bad = run_program({pipelines_program("peft-embed-example"), "/nonexistent.wav"});
  BOOST_CHECK_EQUAL(bad.status, 1);
  BOOST_CHECK(bad.err.find("error from") != std::string::npos);
}
