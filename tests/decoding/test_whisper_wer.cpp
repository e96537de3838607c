// Accuracy of the default model on real speech: WER on the five LibriVox utterances
// of Debian's pocketsphinx-testdata, both sides through Whisper's English normalizer.
// The pocketsphinx GStreamer element scores 36.6% on the same utterances.
#define BOOST_TEST_MODULE whisper_wer
#include <fstream>
#include <regex>

#include "peft/audio/wav.h"
#include "peft/decoding/whisper_decoding.h"
#include "peft/metrics/english_normalizer.h"
#include "peft/metrics/wer.h"
#include "peft/models/whisper.h"
#include "peft/runtime.h"
#include "peft/text/whisper_tokenizer.h"
#include "test_support.h"

using namespace peft;

BOOST_AUTO_TEST_CASE(librivox_wer_at_most_10_percent) {
  configure_runtime(0);
  const auto dir = peft_test::require_model_file("whisper-tiny.en");
  auto model = models::WhisperModel::load(dir);
  text::WhisperTokenizer tokenizer(dir / "tokenizer.json", model->dims().n_vocab);

  const std::string data = "/usr/share/pocketsphinx/test/data/librivox/";
  std::ifstream list(data + "transcription");
  BOOST_REQUIRE_MESSAGE(list.good(), "pocketsphinx-testdata is not installed (./setup installs it)");
  // Lines look like "<s> words </s> (file-id)".
  const std::regex line_re(R"(<s>\s*(.*?)\s*</s>\s*\((.+)\))");
  std::vector<std::string> refs, hyps;
  for (std::string line; std::getline(list, line);) {
    std::smatch m;
    if (!std::regex_search(line, m, line_re)) continue;
    const auto wav = audio::read_wav(data + m[2].str() + ".wav");
    std::string text;
    for (const auto& s : decoding::transcribe(*model, tokenizer, wav.samples)) text += s.text;
    BOOST_TEST_MESSAGE(m[2].str() << ": " << text);
    refs.push_back(metrics::normalize_english(m[1].str()));
    hyps.push_back(metrics::normalize_english(text));
  }
  BOOST_REQUIRE_EQUAL(refs.size(), 5u);
  const auto result = metrics::corpus_wer(refs, hyps);
  BOOST_TEST_MESSAGE("corpus WER " << result.wer * 100 << "%");
  BOOST_CHECK_LE(result.wer, 0.10);
}
