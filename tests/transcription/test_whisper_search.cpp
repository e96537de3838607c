// Logit filters, the windowed log-mel and one-window searches, with token ids only (no
// tokenizer): a single-window utterance's tokens must equal faster-whisper's.
#define BOOST_TEST_MODULE whisper_search
#include <ATen/ATen.h>

#include <cmath>
#include <limits>

#include "peft/audio/log_mel.h"
#include "peft/error.h"
#include "peft/models/whisper.h"
#include "peft/runtime.h"
#include "peft/transcription/logit_filters.h"
#include "peft/transcription/search.h"
#include "peft/transcription/windowed_mel.h"
#include "transcription/tiny_en.h"
#include "transcription/whisper_reference.h"

using namespace peft;
using namespace peft::transcription;

namespace {

// whisper-tiny.en's special ids (docs: /work/shared/reference/whisper.md).
constexpr int64_t kEot = 50256, kSot = 50257, kSotPrev = 50360, kSotLm = 50359, kNoSpeech = 50361,
                  kNoTimestamps = 50362, kTs0 = 50363, kVocab = 51864;

LogitFilterConfig filter_config() {
  LogitFilterConfig c;
  c.eot = kEot;
  c.no_timestamps = kNoTimestamps;
  c.timestamp_begin = kTs0;
  c.max_initial_timestamp_index = 50;
  return c;
}

bool disabled(const at::Tensor& logits, int64_t row, int64_t id) {
  return std::isinf(logits[row][id].item<float>());
}

std::shared_ptr<const models::WhisperModel> tiny_en() { return peft_test::tiny_en().model; }

// faster-whisper's suppressed set for tiny.en: the CTranslate2 config's non-speech ids
// (what suppress_tokens = [-1] expands to) plus the task and special tokens.
std::vector<int64_t> suppress_ids() {
  auto cfg = nlohmann::json::parse(
      peft_test::read_file(peft_test::require_model_file("whisper-tiny.en/config.json")));
  std::vector<int64_t> ids = cfg.at("suppress_ids").get<std::vector<int64_t>>();
  for (int64_t id : {int64_t{50357}, int64_t{50358}, kSot, kSotPrev, kSotLm, kNoSpeech}) ids.push_back(id);
  return ids;
}

}  // namespace

BOOST_AUTO_TEST_CASE(first_step_allows_only_early_timestamps) {
  LogitFilters f(filter_config());
  at::Tensor logits = at::zeros({1, kVocab});
  f.apply(logits, {{}});
  BOOST_CHECK(disabled(logits, 0, 0));
  BOOST_CHECK(disabled(logits, 0, kEot));
  BOOST_CHECK(!disabled(logits, 0, kTs0));
  BOOST_CHECK(!disabled(logits, 0, kTs0 + 50));
  BOOST_CHECK(disabled(logits, 0, kTs0 + 51));
}

BOOST_AUTO_TEST_CASE(suppress_and_suppress_begin) {
  auto c = filter_config();
  c.timestamp_rules = false;
  c.suppress = {7};
  c.suppress_begin = {220, kEot};
  LogitFilters f(c);
  at::Tensor logits = at::zeros({2, kVocab});
  f.apply(logits, {{}, {kTs0, 100}});
  BOOST_CHECK(disabled(logits, 0, 7) && disabled(logits, 1, 7));
  BOOST_CHECK(disabled(logits, 0, 220) && disabled(logits, 0, kEot));
  BOOST_CHECK(!disabled(logits, 1, 220) && !disabled(logits, 1, kEot));
  BOOST_CHECK(!disabled(logits, 0, kNoTimestamps));  // rules off: only the suppress lists apply
}

BOOST_AUTO_TEST_CASE(timestamps_pair_up_and_never_decrease) {
  LogitFilters f(filter_config());
  // After text then a timestamp: only a timestamp (>= it) or <|endoftext|>. (<|endoftext|>
  // is made likely so that the timestamp mass rule does not take it away.)
  at::Tensor a = at::full({1, kVocab}, -100.0f);
  a[0][kEot] = 10.0f;
  f.apply(a, {{kTs0, 100, kTs0 + 20}});
  BOOST_CHECK(disabled(a, 0, 100));
  BOOST_CHECK(!disabled(a, 0, kEot));
  BOOST_CHECK(disabled(a, 0, kTs0 + 19));
  BOOST_CHECK(!disabled(a, 0, kTs0 + 20));
  // After a closed pair: no timestamp.
  at::Tensor b = at::zeros({1, kVocab});
  f.apply(b, {{kTs0, 100, kTs0 + 20, kTs0 + 20}});
  BOOST_CHECK(disabled(b, 0, kTs0 + 30));
  BOOST_CHECK(!disabled(b, 0, 100));
  BOOST_CHECK(disabled(b, 0, kNoTimestamps));
  // After a closed pair and text, the next timestamp is later than the pair's: every
  // segment has a length (faster-whisper's tokens on the multilingual fixtures need this).
  at::Tensor c = at::zeros({1, kVocab});
  f.apply(c, {{kTs0, 100, kTs0 + 20, kTs0 + 20, 100}});
  BOOST_CHECK(disabled(c, 0, kTs0 + 20));
  BOOST_CHECK(!disabled(c, 0, kTs0 + 21));
}

BOOST_AUTO_TEST_CASE(timestamp_mass_forces_a_timestamp) {
  LogitFilters f(filter_config());
  // 1501 timestamps at logit 0 outweigh one text token at logit 5 (log 1501 = 7.3).
  at::Tensor logits = at::full({1, kVocab}, -100.0f);
  logits[0][42] = 5.0f;
  logits.slice(1, kTs0, kVocab).fill_(0.0f);
  f.apply(logits, {{kTs0, 100}});
  BOOST_CHECK(disabled(logits, 0, 42));
  // One text token at 8 wins: text stays allowed.
  at::Tensor text = at::full({1, kVocab}, -100.0f);
  text[0][42] = 8.0f;
  text.slice(1, kTs0, kVocab).fill_(0.0f);
  f.apply(text, {{kTs0, 100}});
  BOOST_CHECK(!disabled(text, 0, 42));
}

// The long file's windows computed piecewise equal the whole-file spectrogram with its global floor.
BOOST_AUTO_TEST_CASE(windowed_mel_equals_whole_file) {
  configure_runtime(0);
  std::vector<float> samples = whisper_ref::long_audio();
  at::Tensor whole = audio::log_mel_spectrogram(samples.data(), samples.size(), 80,
                                                audio::kHopLength);  // faster-whisper's padding
  WindowedLogMel mel(samples.data(), samples.size());
  BOOST_REQUIRE_EQUAL(mel.content_frames() + 1, whole.size(1));
  for (int64_t seek : {int64_t{0}, int64_t{1234}, mel.content_frames() - 1000}) {
    const int64_t count = std::min<int64_t>(3000, mel.content_frames() - seek);
    at::Tensor w = mel.window(seek);
    BOOST_REQUIRE_EQUAL(w.size(1), 3000);
    const float diff = (w.slice(1, 0, count) - whole.slice(1, seek, seek + count)).abs().max().item<float>();
    BOOST_CHECK_MESSAGE(diff <= 1e-5f, "seek " << seek << ": max diff " << diff);
    if (count < 3000) BOOST_CHECK_EQUAL(w.slice(1, count).abs().max().item<float>(), 0.0f);
  }
  samples[777] = std::numeric_limits<float>::quiet_NaN();
  PEFT_CHECK_THROW_MSG(WindowedLogMel(samples.data(), samples.size()), ValueError, {"777", "NaN"});
}

// One window from [sot]: the tokens equal what faster-whisper emitted for the (single-
// window) utterance, segment tokens concatenated.
BOOST_AUTO_TEST_CASE(single_window_tokens_match_faster_whisper) {
  configure_runtime(0);
  auto model = tiny_en();
  LogitFilterConfig c = filter_config();
  c.suppress = suppress_ids();
  c.suppress_begin = {220, kEot};
  LogitFilters filters(c);
  SpecialIds ids{kSot, kEot, kNoSpeech, kNoTimestamps};
  std::mt19937_64 rng(0);
  for (int beam : {5, 1}) {
    int matches = 0, total = 0;
    int index = 0;
    for (const auto& run : whisper_ref::runs(beam, false)) {
      // Every other utterance: the full set runs through transcribe() in whisper_transcribe.
      if (index++ % 2 != 0) continue;
      const std::string file = run.at("file");
      std::vector<float> samples = whisper_ref::read_samples(file);
      WindowedLogMel mel(samples.data(), samples.size());
      at::Tensor features = model->encode(mel.window(0).unsqueeze(0));
      SearchOptions so;
      so.beam_size = beam;
      WindowResult r = generate_window(*model, features, {kSot}, ids, filters, so, rng);
      std::vector<int64_t> expected;
      for (const auto& s : run.at("segments")) {
        auto t = s.at("tokens").get<std::vector<int64_t>>();
        expected.insert(expected.end(), t.begin(), t.end());
      }
      const bool match = r.tokens == expected;
      matches += match;
      ++total;
      BOOST_TEST_MESSAGE("beam " << beam << " " << file << (match ? " matches" : " DIFFERS"));
      if (!match || run.at("segments").size() != 1) continue;
      const auto& seg = run.at("segments")[0];
      const double avg = r.cumulative_logprob / (r.tokens.size() + 1.0);
      BOOST_CHECK_CLOSE_FRACTION(avg, seg.at("avg_logprob").get<double>(), 1e-3);
      BOOST_CHECK_SMALL(r.no_speech_prob - seg.at("no_speech_prob").get<double>(), 1e-3);
    }
    BOOST_TEST_MESSAGE("beam " << beam << ": " << matches << "/" << total << " windows match");
    BOOST_CHECK_EQUAL(matches, total);
  }
}

// Temperature > 0 (the fallback path): best_of samples from a seeded generator, so the
// same seed gives the same tokens, and every sample obeys the timestamp rules.
BOOST_AUTO_TEST_CASE(sampling_is_seeded_and_follows_the_rules) {
  configure_runtime(0);
  auto model = tiny_en();
  LogitFilterConfig c = filter_config();
  c.suppress = suppress_ids();
  LogitFilters filters(c);
  SpecialIds ids{kSot, kEot, kNoSpeech, kNoTimestamps};
  std::vector<float> samples = whisper_ref::read_samples("/usr/share/pocketsphinx/test/data/cards/001.wav");
  WindowedLogMel mel(samples.data(), samples.size());
  at::Tensor features = model->encode(mel.window(0).unsqueeze(0));
  SearchOptions so;
  so.beam_size = 1;
  so.temperature = 1.0f;
  so.num_hypotheses = 3;
  so.max_length = 40;
  std::mt19937_64 a(7), b(7);
  WindowResult ra = generate_window(*model, features, {kSot}, ids, filters, so, a);
  WindowResult rb = generate_window(*model, features, {kSot}, ids, filters, so, b);
  BOOST_CHECK(ra.tokens == rb.tokens);
  BOOST_REQUIRE(!ra.tokens.empty());
  BOOST_CHECK_GE(ra.tokens.front(), kTs0);
  BOOST_CHECK_LE(ra.tokens.front(), kTs0 + 50);
  BOOST_CHECK_LE(ra.tokens.size(), 20u);  // max_length 40 allows 40 / 2 steps
  BOOST_CHECK(std::isfinite(ra.cumulative_logprob) && ra.cumulative_logprob < 0);
}

// Several windows in one batch (batched offline transcription): each window's tokens,
// scores and no-speech probability equal its own single-window search; with an empty
// prompt the tokens are faster-whisper's. Also with a previous-text prompt (decoded in
// one call before the search) and a window batch that mixes rows of unequal lengths.
BOOST_AUTO_TEST_CASE(batched_windows_equal_single_windows) {
  configure_runtime(0);
  auto model = tiny_en();
  LogitFilterConfig c = filter_config();
  c.suppress = suppress_ids();
  c.suppress_begin = {220, kEot};
  LogitFilters filters(c);
  SpecialIds ids{kSot, kEot, kNoSpeech, kNoTimestamps};
  std::mt19937_64 rng(0);
  std::vector<at::Tensor> windows;
  std::vector<std::vector<int64_t>> expected;
  int index = 0;
  for (const auto& run : whisper_ref::runs(1, false)) {
    if (index++ % 2 != 1) continue;  // the utterances the single-window test skips
    std::vector<float> samples = whisper_ref::read_samples(run.at("file"));
    WindowedLogMel mel(samples.data(), samples.size());
    windows.push_back(mel.window(0));
    std::vector<int64_t> tokens;
    for (const auto& s : run.at("segments")) {
      auto t = s.at("tokens").get<std::vector<int64_t>>();
      tokens.insert(tokens.end(), t.begin(), t.end());
    }
    expected.push_back(tokens);
  }
  BOOST_REQUIRE_GE(windows.size(), 4u);
  at::Tensor features = model->encode(at::stack(windows));
  const std::vector<int64_t> prev_prompt = {kSotPrev, 383, 1110, 318, 3621, 13, kSot};
  for (int beam : {1, 5})
    for (const auto& prompt : {std::vector<int64_t>{kSot}, prev_prompt}) {
      if (beam == 1 && prompt.size() > 1) continue;  // keeps the suite short; beam 5 covers the prefill
      SearchOptions so;
      so.beam_size = beam;
      std::vector<WindowResult> batched = generate_windows(*model, features, prompt, ids, filters, so, rng);
      BOOST_REQUIRE_EQUAL(batched.size(), windows.size());
      for (size_t w = 0; w < windows.size(); ++w) {
        WindowResult single = generate_window(*model, features.narrow(0, static_cast<int64_t>(w), 1), prompt,
                                              ids, filters, so, rng);
        BOOST_TEST_CONTEXT("beam " << beam << " prompt " << prompt.size() << " window " << w) {
          BOOST_CHECK(batched[w].tokens == single.tokens);
          BOOST_CHECK_SMALL(batched[w].cumulative_logprob - single.cumulative_logprob, 1e-3f);
          BOOST_CHECK_SMALL(batched[w].no_speech_prob - single.no_speech_prob, 1e-4f);
          if (prompt.size() == 1 && beam == 1) BOOST_CHECK(batched[w].tokens == expected[w]);
        }
      }
    }
  // Rows of different windows must not be mixed in the cache.
  models::WhisperKVCache cache = model->start(features.narrow(0, 0, 2));
  PEFT_CHECK_THROW_MSG(cache.select(at::tensor(std::vector<int64_t>{1, 0}, at::kLong)), ValueError, {"mix"});
}
