// Batched transcription against faster-whisper's BatchedInferencePipeline on the same
// samples and model (tests/reference/make_whisper_batched_reference.py): same segments,
// tokens and times; the batch size changes nothing but speed; bad input is refused.
#define BOOST_TEST_MODULE whisper_batched
#include <cmath>
#include <limits>

#include "peft/audio/vad.h"
#include "peft/error.h"
#include "peft/models/whisper.h"
#include "peft/runtime.h"
#include "peft/text/whisper_tokenizer.h"
#include "peft/transcription/batched_transcription.h"
#include "transcription/whisper_reference.h"

using namespace peft;

namespace {

struct Fixture {
  std::shared_ptr<const models::WhisperModel> model =
      models::WhisperModel::load(peft_test::require_model_file("whisper-tiny.en"));
  text::WhisperTokenizer tokenizer{peft_test::require_model_file("whisper-tiny.en/tokenizer.json"),
                                   model->dims().n_vocab};
  audio::SileroVad vad = audio::SileroVad::load(peft_test::require_model_file("silero-vad/silero_vad.jit"));
};

Fixture& fx() {
  static Fixture f;
  return f;
}

const nlohmann::json& reference() {
  static const nlohmann::json doc = [] {
    std::ifstream f(peft_test::fixtures_dir() / "whisper" / "faster_whisper_batched_tiny_en.json");
    BOOST_REQUIRE(f.good());
    return nlohmann::json::parse(f);
  }();
  return doc;
}

}  // namespace

BOOST_AUTO_TEST_CASE(segments_match_faster_whisper_batched_pipeline) {
  configure_runtime(0);
  const std::vector<float> audio = whisper_ref::long_audio();
  for (const auto& run : reference().at("results")) {
    transcription::DecodingOptions o;
    o.beam_size = run.at("beam_size").get<int>();
    o.without_timestamps = run.at("without_timestamps").get<bool>();
    transcription::BatchedOptions b;
    b.batch_size = 4;
    const auto segments =
        transcription::transcribe_batched(*fx().model, fx().tokenizer, fx().vad, audio, o, b);
    const auto& expected = run.at("segments");
    BOOST_TEST_CONTEXT("beam " << o.beam_size << " without_timestamps " << o.without_timestamps) {
      BOOST_REQUIRE_EQUAL(segments.size(), expected.size());
      for (size_t i = 0; i < segments.size(); ++i) {
        const auto& e = expected[i];
        BOOST_TEST_MESSAGE(segments[i].start << "-" << segments[i].end << segments[i].text);
        BOOST_CHECK(segments[i].tokens == e.at("tokens").get<std::vector<int64_t>>());
        BOOST_CHECK_EQUAL(segments[i].text, e.at("text").get<std::string>());
        // faster-whisper rounds times to 2-3 decimals.
        BOOST_CHECK_SMALL(segments[i].start - e.at("start").get<double>(), 0.011);
        BOOST_CHECK_SMALL(segments[i].end - e.at("end").get<double>(), 0.011);
        BOOST_CHECK_SMALL(segments[i].avg_logprob - e.at("avg_logprob").get<double>(), 2e-3);
        BOOST_CHECK_SMALL(segments[i].no_speech_prob - e.at("no_speech_prob").get<double>(), 1e-3);
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(batch_size_does_not_change_the_result) {
  configure_runtime(0);
  const std::vector<float> audio = whisper_ref::long_audio();
  transcription::DecodingOptions o;
  o.beam_size = 1;
  transcription::BatchedOptions one, many;
  one.batch_size = 1;
  many.batch_size = 8;
  const auto a = transcription::transcribe_batched(*fx().model, fx().tokenizer, fx().vad, audio, o, one);
  const auto b = transcription::transcribe_batched(*fx().model, fx().tokenizer, fx().vad, audio, o, many);
  BOOST_REQUIRE_EQUAL(a.size(), b.size());
  BOOST_REQUIRE_GE(a.size(), 2u);
  for (size_t i = 0; i < a.size(); ++i) {
    BOOST_CHECK(a[i].tokens == b[i].tokens);
    BOOST_CHECK_EQUAL(a[i].start, b[i].start);
  }
}

BOOST_AUTO_TEST_CASE(silence_gives_nothing_and_bad_input_is_refused) {
  configure_runtime(0);
  const std::vector<float> silence(16000 * 20, 0.0f);
  BOOST_CHECK(transcription::transcribe_batched(*fx().model, fx().tokenizer, fx().vad, silence).empty());
  BOOST_CHECK(transcription::transcribe_batched(*fx().model, fx().tokenizer, fx().vad, {}).empty());
  std::vector<float> bad(16000, 0.1f);
  bad[4321] = std::numeric_limits<float>::infinity();
  PEFT_CHECK_THROW_MSG(transcription::transcribe_batched(*fx().model, fx().tokenizer, fx().vad, bad),
                       ValueError, {"sample 4321"});
  transcription::BatchedOptions zero;
  zero.batch_size = 0;
  PEFT_CHECK_THROW_MSG(
      transcription::transcribe_batched(*fx().model, fx().tokenizer, fx().vad, silence, {}, zero), ValueError,
      {"batch_size"});
}
