// Long-form transcription of ~10 minutes: the 10 utterances of Debian's
// pocketsphinx-testdata (5 LibriVox, 5 "cards") in shuffled order, cycled, separated by
// silences of 1 to 8 s, so where each utterance's speech is is known. The issue asks
// that the segments matched to each utterance start and end within 0.5 s of its speech.
// Whisper tiny.en's segment timestamps do not meet that on this signal (4 of 80), nor do
// its word timestamps (as faster-whisper's word_timestamps=True, 26 of 80: last words
// run into the silence after them); moved onto the speech Silero VAD finds
// (transcription/speech_snapping.h, our addition) they do (80 of 80). The cases check that
// our segments and words are faster-whisper's, print how far both the plain and the
// snapped ones are from the speech, and hold the snapped ones to the criterion
// (utterance_times_within_half_a_second).
//
// The signal: 1 s of silence, then cycles of the 10 utterances, each cycle in a new
// order (Fisher-Yates), each utterance followed by 1 + k * 0.25 s of silence (k in
// 0..28), until 600 s are built. Shuffle and silences come from a 64-bit LCG (Knuth's
// MMIX constants), so tests/reference/long_audio_faster_whisper.py rebuilds the same
// signal to cross-check with faster-whisper.
//
// Where an utterance's speech really is, inside its file: 10 ms frames (160 samples),
// the level in dB of each frame's mean power; the file's noise floor is the 10th
// percentile of those levels; speech runs from the first to the last run of 3
// consecutive frames (30 ms) more than 15 dB above the floor. The recordings are
// trimmed close to the words (floor near -45 dBFS, words at -10 to -20 dBFS): the
// boundaries move by less than 0.15 s between thresholds of 15 and 20 dB.
//
// Matching: each utterance owns the stretch of the timeline from the middle of the
// silence before it to the middle of the silence after it; a segment belongs to the
// utterance whose stretch holds its midpoint. Every segment is thus assigned, so text
// decoded in a silence counts against its neighbour.
#define BOOST_TEST_MODULE whisper_long_audio
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "peft/audio/resample.h"
#include "peft/audio/vad.h"
#include "peft/audio/wav.h"
#include "peft/models/whisper.h"
#include "peft/runtime.h"
#include "peft/text/whisper_tokenizer.h"
#include "peft/transcription/speech_snapping.h"
#include "peft/transcription/whisper_decoding.h"
#include "test_support.h"

using namespace peft;

namespace {

constexpr int kRate = 16000;

std::vector<std::string> utterance_files() {
  const std::string data = "/usr/share/pocketsphinx/test/data/";
  std::vector<std::string> files;
  for (const char* id : {"0870", "0880", "0890", "0920", "0930"})
    files.push_back(data + "librivox/sense_and_sensibility_01_austen_64kb-" + id + ".wav");
  for (const char* id : {"001", "002", "003", "004", "005"}) files.push_back(data + "cards/" + id + ".wav");
  return files;
}

std::vector<float> read_16k(const std::string& path) {
  BOOST_REQUIRE_MESSAGE(peft_test::fs::exists(path),
                        path << " is missing: pocketsphinx-testdata is not installed (./setup installs it)");
  auto wav = peft::audio::read_wav(path);
  if (wav.sample_rate == kRate) return wav.samples;
  return peft::audio::Resampler(wav.sample_rate, kRate).process(wav.samples);
}

// [first, last) sample of the speech in `samples`, by the energy rule above.
std::pair<int64_t, int64_t> speech_span(const std::vector<float>& samples) {
  constexpr size_t kFrame = 160;
  const size_t frames = samples.size() / kFrame;
  std::vector<double> level(frames);
  for (size_t f = 0; f < frames; ++f) {
    double sum = 0;
    for (size_t i = f * kFrame; i < (f + 1) * kFrame; ++i)
      sum += static_cast<double>(samples[i]) * samples[i];
    level[f] = 10.0 * std::log10(sum / kFrame + 1e-20);
  }
  std::vector<double> sorted = level;
  std::sort(sorted.begin(), sorted.end());
  const double threshold = sorted[sorted.size() / 10] + 15.0;
  int64_t first = -1, last = -1;
  for (size_t f = 0; f + 3 <= frames; ++f)
    if (level[f] > threshold && level[f + 1] > threshold && level[f + 2] > threshold) {
      if (first < 0) first = static_cast<int64_t>(f);
      last = static_cast<int64_t>(f + 3);
    }
  BOOST_REQUIRE_MESSAGE(first >= 0, "no speech found by the energy rule");
  return {first * static_cast<int64_t>(kFrame), last * static_cast<int64_t>(kFrame)};
}

struct Placed {
  size_t file = 0;     // index in utterance_files()
  double start = 0;    // true speech start on the long timeline, seconds
  double end = 0;      // true speech end
  double file_at = 0;  // where the file itself begins
};

struct Signal {
  std::vector<float> samples;
  std::vector<Placed> utterances;
};

class Lcg {
 public:
  explicit Lcg(uint64_t seed) : x_(seed) {}
  uint32_t next() {
    x_ = x_ * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<uint32_t>(x_ >> 33);
  }

 private:
  uint64_t x_;
};

Signal build(double min_seconds = 600.0, uint64_t seed = 20261127) {
  const auto files = utterance_files();
  std::vector<std::vector<float>> audio;
  std::vector<std::pair<int64_t, int64_t>> spans;
  for (const auto& f : files) {
    audio.push_back(read_16k(f));
    spans.push_back(speech_span(audio.back()));
  }
  Lcg rng(seed);
  Signal s;
  s.samples.assign(kRate, 0.0f);
  while (static_cast<double>(s.samples.size()) < min_seconds * kRate) {
    std::vector<size_t> order(files.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    for (size_t i = order.size() - 1; i > 0; --i) std::swap(order[i], order[rng.next() % (i + 1)]);
    for (size_t i : order) {
      const auto at = static_cast<int64_t>(s.samples.size());
      Placed p;
      p.file = i;
      p.file_at = static_cast<double>(at) / kRate;
      p.start = static_cast<double>(at + spans[i].first) / kRate;
      p.end = static_cast<double>(at + spans[i].second) / kRate;
      s.utterances.push_back(p);
      s.samples.insert(s.samples.end(), audio[i].begin(), audio[i].end());
      const double gap = 1.0 + (rng.next() % 29) * 0.25;
      s.samples.resize(s.samples.size() + static_cast<size_t>(gap * kRate), 0.0f);
    }
  }
  return s;
}

// The signal and its greedy transcript with word timestamps, made once for all cases
// (one 10-minute transcription for the whole suite). Greedy (beam 1):
// with faster-whisper's default beam 5 the 10 minutes take about 3x longer (RTF 0.53
// against 0.18 on the 2-core development machine, docs/BENCHMARKS.md), several minutes
// for this suite alone; the timing question does not depend on the search.
struct Transcript {
  Signal signal;
  std::vector<transcription::Segment> segments;
  std::vector<transcription::Segment> snapped;  // segments moved onto Silero VAD's speech
  double seconds = 0;                           // audio length
};

const Transcript& transcript() {
  static const Transcript t = [] {
    configure_runtime(0);
    Transcript x;
    x.signal = build();
    x.seconds = static_cast<double>(x.signal.samples.size()) / kRate;
    const auto dir = peft_test::require_model_file("whisper-tiny.en");
    auto model = models::WhisperModel::load(dir);
    text::WhisperTokenizer tokenizer(dir / "tokenizer.json", model->dims().n_vocab);
    transcription::DecodingOptions options;
    options.beam_size = 1;
    options.word_timestamps = true;
    const auto t0 = std::chrono::steady_clock::now();
    x.segments = transcription::transcribe(*model, tokenizer, x.signal.samples, options);
    const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    BOOST_TEST_MESSAGE(x.signal.utterances.size()
                       << " utterances in " << x.seconds << " s: " << x.segments.size() << " segments in "
                       << took << " s (greedy, word timestamps); peak RSS " << usage.ru_maxrss / 1024
                       << " MiB");
    const auto v0 = std::chrono::steady_clock::now();
    auto vad = audio::SileroVad::load(peft_test::require_model_file("silero-vad/silero_vad.jit").string());
    const auto speech = vad.speech_timestamps(x.signal.samples, transcription::snapping_vad_options());
    x.snapped = x.segments;
    transcription::snap_to_speech(x.snapped, speech);
    BOOST_TEST_MESSAGE(
        speech.size() << " speech spans found and segments snapped to them in "
                      << std::chrono::duration<double>(std::chrono::steady_clock::now() - v0).count()
                      << " s");
    return x;
  }();
  return t;
}

// Segments owned by each utterance (see the matching rule at the top).
std::vector<std::vector<const transcription::Segment*>> owned_segments(
    const Signal& signal, const std::vector<transcription::Segment>& segments) {
  const auto& u = signal.utterances;
  std::vector<std::vector<const transcription::Segment*>> owned(u.size());
  for (const auto& s : segments) {
    const double mid = (s.start + s.end) / 2;
    size_t i = 0;
    while (i + 1 < u.size() && mid >= (u[i].end + u[i + 1].start) / 2) ++i;
    owned[i].push_back(&s);
  }
  return owned;
}

double overlap(double a0, double a1, double b0, double b1) { return std::min(a1, b1) - std::max(a0, b0); }

nlohmann::json faster_whisper_fixture() {
  const auto path = peft_test::fixtures_dir() / "whisper" / "long_audio_faster_whisper.json";
  return nlohmann::json::parse(peft_test::read_file(path));
}

}  // namespace

// The same signal through faster-whisper 1.2.1 with word_timestamps=True
// (tests/reference/long_audio_faster_whisper.py --word-timestamps wrote the fixture): the
// same utterance positions, and the same segments, token for token, with the same times
// and words. So where the segments lie is Whisper's and faster-whisper's doing, not ours.
BOOST_AUTO_TEST_CASE(segments_are_faster_whispers) {
  const Transcript& t = transcript();
  const nlohmann::json ref = faster_whisper_fixture();
  BOOST_REQUIRE_EQUAL(ref.at("beam_size").get<int>(), 1);
  BOOST_REQUIRE(ref.at("word_timestamps").get<bool>());
  const auto& ru = ref.at("utterances");
  BOOST_REQUIRE_EQUAL(ru.size(), t.signal.utterances.size());
  for (size_t i = 0; i < ru.size(); ++i) {
    BOOST_CHECK_EQUAL(ru[i].at("file").get<std::string>(), utterance_files()[t.signal.utterances[i].file]);
    BOOST_CHECK_SMALL(ru[i].at("start").get<double>() - t.signal.utterances[i].start, 1e-6);
    BOOST_CHECK_SMALL(ru[i].at("end").get<double>() - t.signal.utterances[i].end, 1e-6);
  }
  const auto& rs = ref.at("segments");
  BOOST_CHECK_EQUAL(t.segments.size(), rs.size());
  size_t same = 0;
  for (size_t i = 0; i < std::min(t.segments.size(), rs.size()); ++i) {
    const auto& rw = rs[i].at("words");
    bool same_words = t.segments[i].words.size() == rw.size();
    for (size_t k = 0; same_words && k < rw.size(); ++k)
      same_words = t.segments[i].words[k].word == rw[k].at("word").get<std::string>() &&
                   std::abs(t.segments[i].words[k].start - rw[k].at("start").get<double>()) < 0.02 &&
                   std::abs(t.segments[i].words[k].end - rw[k].at("end").get<double>()) < 0.02;
    const bool ok = t.segments[i].tokens == rs[i].at("tokens").get<std::vector<int64_t>>() &&
                    std::abs(t.segments[i].start - rs[i].at("start").get<double>()) < 0.02 &&
                    std::abs(t.segments[i].end - rs[i].at("end").get<double>()) < 0.02 && same_words;
    same += ok;
    BOOST_CHECK_MESSAGE(ok, "segment " << i << ": ours [" << t.segments[i].start << ", " << t.segments[i].end
                                       << "]" << t.segments[i].text << ", faster-whisper ["
                                       << rs[i].at("start").get<double>() << ", "
                                       << rs[i].at("end").get<double>() << "]"
                                       << rs[i].at("text").get<std::string>());
  }
  BOOST_TEST_MESSAGE(same << " of " << rs.size() << " segments match faster-whisper's");
}

// Segments in order inside the audio, then how far they are from the speech, plain
// (Whisper's word timing, as faster-whisper) and snapped to the VAD's speech: measured
// and printed; the next case holds the snapped ones to the criterion.
void report_times(const Transcript& t, const std::vector<transcription::Segment>& segments,
                  const std::string& label) {
  const auto& u = t.signal.utterances;
  double last_end = 0;
  int in_silence = 0, unheard = 0;
  for (const auto& s : segments) {
    BOOST_CHECK_LE(last_end, s.start + 1e-9);
    BOOST_CHECK_LE(s.start, s.end);
    BOOST_CHECK_LE(s.end, t.seconds + 1e-9);
    last_end = s.end;
    const bool on_speech = std::any_of(
        u.begin(), u.end(), [&](const Placed& p) { return overlap(s.start, s.end, p.start, p.end) > 0; });
    if (!on_speech) {
      ++in_silence;
      BOOST_TEST_MESSAGE(label << ": segment [" << s.start << ", " << s.end << "]" << s.text
                               << " lies in a silence");
    }
  }
  for (size_t i = 0; i < u.size(); ++i) {
    const bool heard = std::any_of(segments.begin(), segments.end(), [&](const transcription::Segment& s) {
      return overlap(s.start, s.end, u[i].start, u[i].end) > 0;
    });
    if (!heard) {
      ++unheard;
      BOOST_TEST_MESSAGE(label << ": utterance " << i << " (" << u[i].start << "-" << u[i].end
                               << " s) is under no segment");
    }
  }

  const auto owned = owned_segments(t.signal, segments);
  double worst = 0;
  int within = 0;
  for (size_t i = 0; i < u.size(); ++i) {
    std::string text;
    for (const auto* s : owned[i]) text += s->text;
    if (owned[i].empty()) {
      BOOST_TEST_MESSAGE(label << ": utterance " << i << ": speech " << u[i].start << "-" << u[i].end
                               << ", no segment of its own");
      continue;
    }
    const double start_error = owned[i].front()->start - u[i].start;
    const double end_error = owned[i].back()->end - u[i].end;
    const double error = std::max(std::abs(start_error), std::abs(end_error));
    worst = std::max(worst, error);
    within += error <= 0.5;
    BOOST_TEST_MESSAGE(label << ": utterance " << i << ": speech " << u[i].start << "-" << u[i].end
                             << ", segments " << owned[i].front()->start << "-" << owned[i].back()->end
                             << ", errors " << start_error << " / " << end_error << ":" << text);
  }
  BOOST_TEST_MESSAGE(label << ": " << within << " of " << u.size()
                           << " utterances have segments within 0.5 s of their speech; largest error "
                           << worst << " s; " << in_silence << " segments in silences, " << unheard
                           << " utterances under no segment");
}

BOOST_AUTO_TEST_CASE(segment_times_against_the_speech) {
  const Transcript& t = transcript();
  report_times(t, t.segments, "word timing");
  report_times(t, t.snapped, "snapped to speech");
  // Snapping moves times only: same segments, same words, same text.
  BOOST_REQUIRE_EQUAL(t.snapped.size(), t.segments.size());
  for (size_t i = 0; i < t.segments.size(); ++i) {
    BOOST_CHECK(t.snapped[i].tokens == t.segments[i].tokens);
    BOOST_CHECK_EQUAL(t.snapped[i].words.size(), t.segments[i].words.size());
  }
}

// The criterion, on the segments snapped to the speech: each utterance's
// segments start and end within 0.5 s of its speech. Measured when this was written:
// all 80, largest error 0.35 s (Whisper's word timing alone: 26 of 80, up to
// 4.06 s; its segment timestamps alone: 4 of 80, up to 8.5 s).
BOOST_AUTO_TEST_CASE(utterance_times_within_half_a_second) {
  const Transcript& t = transcript();
  const auto& u = t.signal.utterances;
  const auto owned = owned_segments(t.signal, t.snapped);
  for (size_t i = 0; i < u.size(); ++i) {
    BOOST_TEST_CONTEXT("utterance " << i << " (" << u[i].start << "-" << u[i].end << " s)") {
      BOOST_REQUIRE(!owned[i].empty());
      BOOST_CHECK_SMALL(owned[i].front()->start - u[i].start, 0.5);
      BOOST_CHECK_SMALL(owned[i].back()->end - u[i].end, 0.5);
    }
  }
}
