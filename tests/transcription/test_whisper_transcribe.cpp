// Long-form transcription against faster-whisper 1.2.1 on the same model files
// (tests/fixtures/whisper/faster_whisper_tiny_en.json, made by
// tests/reference/make_whisper_reference.py).
#define BOOST_TEST_MODULE whisper_transcribe
#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>

#include "peft/error.h"
#include "peft/models/whisper.h"
#include "peft/runtime.h"
#include "peft/text/whisper_tokenizer.h"
#include "peft/transcription/whisper_decoding.h"
#include "transcription/tiny_en.h"
#include "transcription/whisper_reference.h"

using namespace peft;
using namespace peft::transcription;

namespace {

using peft_test::tiny_en;

std::vector<int64_t> all_tokens(const std::vector<Segment>& segments) {
  std::vector<int64_t> out;
  for (const auto& s : segments) out.insert(out.end(), s.tokens.begin(), s.tokens.end());
  return out;
}

std::vector<int64_t> all_tokens(const nlohmann::json& segments) {
  std::vector<int64_t> out;
  for (const auto& s : segments) {
    auto t = s.at("tokens").get<std::vector<int64_t>>();
    out.insert(out.end(), t.begin(), t.end());
  }
  return out;
}

// Transcribes every reference utterance with `beam_size`; returns how many give exactly
// faster-whisper's tokens, and checks boundaries and logprobs where they do.
int matching_files(int beam_size) {
  const peft_test::TinyEn& t = tiny_en();
  DecodingOptions options;
  options.beam_size = beam_size;
  int matches = 0, total = 0;
  double ours_s = 0, theirs_s = 0;
  for (const auto& run : whisper_ref::runs(beam_size, false)) {
    const std::string file = run.at("file");
    std::vector<float> samples = whisper_ref::read_samples(file);
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<Segment> segments = transcribe(*t.model, *t.tokenizer, samples, options);
    ours_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    theirs_s += run.at("seconds").get<double>();
    const auto& ref = run.at("segments");
    const bool match = all_tokens(segments) == all_tokens(ref) && segments.size() == ref.size();
    ++total;
    matches += match;
    BOOST_TEST_MESSAGE("beam " << beam_size << " " << file << (match ? " matches" : " DIFFERS"));
    if (!match) continue;
    for (size_t i = 0; i < segments.size(); ++i) {
      BOOST_CHECK_SMALL(segments[i].start - ref[i].at("start").get<double>(), 0.02);
      BOOST_CHECK_SMALL(segments[i].end - ref[i].at("end").get<double>(), 0.02);
      BOOST_CHECK_SMALL(segments[i].avg_logprob - ref[i].at("avg_logprob").get<double>(), 1e-3);
      BOOST_CHECK_SMALL(segments[i].no_speech_prob - ref[i].at("no_speech_prob").get<double>(), 1e-3);
      BOOST_CHECK_EQUAL(segments[i].text, ref[i].at("text").get<std::string>());
      BOOST_CHECK_EQUAL(segments[i].temperature, ref[i].at("temperature").get<float>());
    }
  }
  BOOST_TEST_MESSAGE("beam " << beam_size << ": " << matches << "/" << total << " files match; decode "
                             << ours_s << " s here vs faster-whisper " << theirs_s
                             << " s when the fixture was made (2 threads)");
  return matches;
}

}  // namespace

BOOST_AUTO_TEST_CASE(beam5_matches_faster_whisper) { BOOST_CHECK_GE(matching_files(5), 9); }

BOOST_AUTO_TEST_CASE(greedy_matches_faster_whisper) { BOOST_CHECK_GE(matching_files(1), 9); }

// ~64 s of utterances and silences: several windows, seeks to the last timestamp,
// prompts from the previous window.
BOOST_AUTO_TEST_CASE(long_file_segments_match_faster_whisper) {
  const peft_test::TinyEn& t = tiny_en();
  std::vector<float> samples = whisper_ref::long_audio();
  const nlohmann::json ref = whisper_ref::runs(5, true).back();
  BOOST_REQUIRE_EQUAL(ref.at("file").get<std::string>(), "long");
  std::vector<Segment> segments = transcribe(*t.model, *t.tokenizer, samples, DecodingOptions{});
  const auto& rs = ref.at("segments");
  BOOST_REQUIRE_EQUAL(segments.size(), rs.size());
  for (size_t i = 0; i < segments.size(); ++i) {
    BOOST_TEST_MESSAGE(segments[i].start << " " << segments[i].end << segments[i].text);
    BOOST_CHECK_SMALL(segments[i].start - rs[i].at("start").get<double>(), 0.5);
    BOOST_CHECK_SMALL(segments[i].end - rs[i].at("end").get<double>(), 0.5);
  }
  BOOST_CHECK(all_tokens(segments) == all_tokens(rs));
}

BOOST_AUTO_TEST_CASE(bad_input) {
  const peft_test::TinyEn& t = tiny_en();
  BOOST_CHECK(transcribe(*t.model, *t.tokenizer, {}, DecodingOptions{}).empty());
  std::vector<float> samples(16000, 0.0f);
  samples[1234] = std::numeric_limits<float>::infinity();
  PEFT_CHECK_THROW_MSG(transcribe(*t.model, *t.tokenizer, samples, DecodingOptions{}), ValueError,
                       {"1234", "infinite"});
  samples[1234] = 0;
  DecodingOptions bad;
  bad.beam_size = 0;
  PEFT_CHECK_THROW_MSG(transcribe(*t.model, *t.tokenizer, samples, bad), ValueError, {"beam_size"});
  bad = DecodingOptions{};
  bad.temperatures = {0.0f, -0.2f};
  PEFT_CHECK_THROW_MSG(transcribe(*t.model, *t.tokenizer, samples, bad), ValueError, {"temperatures"});
  bad = DecodingOptions{};
  bad.no_speech_threshold = 1.5f;
  PEFT_CHECK_THROW_MSG(transcribe(*t.model, *t.tokenizer, samples, bad), ValueError, {"no_speech_threshold"});
}

BOOST_AUTO_TEST_CASE(compression_ratio_is_zlibs) {
  // Python: len(b) / len(zlib.compress(b)): 100 / 12 for b"a" * 100, 100 / 13 for b"ab" * 50.
  BOOST_CHECK_CLOSE(compression_ratio(std::string(100, 'a')), 100.0 / 12.0, 1e-9);
  std::string ab;
  for (int i = 0; i < 50; ++i) ab += "ab";
  BOOST_CHECK_CLOSE(compression_ratio(ab), 100.0 / 13.0, 1e-9);
}

// suppress_tokens = [-1] must expand to the set CTranslate2's converter stored for this
// model (config.json suppress_ids), plus faster-whisper's task and special tokens.
BOOST_AUTO_TEST_CASE(default_suppressed_tokens_are_faster_whispers) {
  const peft_test::TinyEn& t = tiny_en();
  auto cfg = nlohmann::json::parse(
      peft_test::read_file(peft_test::require_model_file("whisper-tiny.en/config.json")));
  std::vector<int64_t> expected = cfg.at("suppress_ids").get<std::vector<int64_t>>();
  for (int64_t id : {50357, 50358, 50257, 50359, 50360, 50361}) expected.push_back(id);
  std::sort(expected.begin(), expected.end());
  expected.erase(std::unique(expected.begin(), expected.end()), expected.end());
  std::vector<int64_t> got = suppressed_tokens(*t.tokenizer, {-1});
  BOOST_CHECK_EQUAL_COLLECTIONS(got.begin(), got.end(), expected.begin(), expected.end());
  BOOST_CHECK(suppressed_tokens(*t.tokenizer, {}).empty());
}
