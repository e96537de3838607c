// Accuracy of the default model on real speech: WER on the five LibriVox utterances
// of Debian's pocketsphinx-testdata, both sides through Whisper's English normalizer.
// The pocketsphinx GStreamer element scores 36.6% on the same utterances.
#define BOOST_TEST_MODULE whisper_wer

#include "peft/audio/wav.h"
#include "peft/metrics/english_normalizer.h"
#include "peft/metrics/wer.h"
#include "peft/models/whisper.h"
#include "peft/runtime.h"
#include "peft/text/whisper_tokenizer.h"
#include "peft/transcription/whisper_decoding.h"
#include "pocketsphinx_testdata.h"
#include "test_support.h"

using namespace peft;

BOOST_AUTO_TEST_CASE(librivox_wer_at_most_10_percent) {
  configure_runtime(0);
  const auto dir = peft_test::require_model_file("whisper-tiny.en");
  auto model = models::WhisperModel::load(dir);
  text::WhisperTokenizer tokenizer(dir / "tokenizer.json", model->dims().n_vocab);

  const auto utterances = peft_test::pocketsphinx_utterances("librivox");
  BOOST_REQUIRE_MESSAGE(!utterances.empty(), "pocketsphinx-testdata is not installed (./setup installs it)");
  std::vector<std::string> refs, hyps;
  for (const auto& u : utterances) {
    std::string text;
    for (const auto& s : transcription::transcribe(*model, tokenizer, audio::read_wav(u.wav).samples))
      text += s.text;
    BOOST_TEST_MESSAGE(u.id << ": " << text);
    refs.push_back(metrics::normalize_english(u.reference));
    hyps.push_back(metrics::normalize_english(text));
  }
  BOOST_REQUIRE_EQUAL(refs.size(), 5u);
  const auto result = metrics::corpus_wer(refs, hyps);
  BOOST_TEST_MESSAGE("corpus WER " << result.wer * 100 << "%");
  BOOST_CHECK_LE(result.wer, 0.10);
}
