// Silero VAD against the reference (the silero-vad 6.2.3 python package, run by
// tests/reference/make_vad_fixture.py on Debian's pocketsphinx test speech and a synthetic
// file), plus streaming, silence and noise, the chunk map and bad input.
#define BOOST_TEST_MODULE vad
#include <algorithm>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "peft/audio/vad.h"
#include "peft/audio/wav.h"
#include "peft/error.h"
#include "test_support.h"

using namespace peft::audio;
namespace fs = std::filesystem;

namespace {

const char* const kDebianData = "/usr/share/pocketsphinx/test/data";

fs::path vad_fixtures() { return peft_test::fixtures_dir() / "vad"; }

const nlohmann::json& manifest() {
  static const nlohmann::json m = [] {
    const fs::path p = vad_fixtures() / "vad.json";
    BOOST_REQUIRE_MESSAGE(fs::exists(p), p << " missing: run tests/reference/make_vad_fixture.py");
    return nlohmann::json::parse(peft_test::read_file(p));
  }();
  return m;
}

// One model for the whole suite: loading the TorchScript file takes a while.
SileroVad& model() {
  static SileroVad vad = SileroVad::load(peft_test::require_model_file("silero-vad/silero_vad.jit").string());
  return vad;
}

std::vector<float> read_16k(const fs::path& p) {
  BOOST_REQUIRE_MESSAGE(fs::exists(p), p << " missing: install pocketsphinx-testdata (./setup)");
  WavAudio wav = read_wav(p.string());
  BOOST_REQUIRE_EQUAL(wav.sample_rate, kVadSampleRate);
  return std::move(wav.samples);
}

// The case's audio, put together from the parts the fixture script lists.
std::vector<float> case_audio(const nlohmann::json& c) {
  std::vector<float> audio;
  for (const auto& part : c["parts"]) {
    std::vector<float> piece;
    if (part.contains("debian"))
      piece = read_16k(fs::path(kDebianData) / part["debian"].get<std::string>());
    else if (part.contains("zeros"))
      piece.assign(part["zeros"].get<size_t>(), 0.0f);
    else
      piece = read_16k(vad_fixtures() / part["fixture"].get<std::string>());
    audio.insert(audio.end(), piece.begin(), piece.end());
  }
  BOOST_REQUIRE_EQUAL(audio.size(), c["samples"].get<size_t>());
  return audio;
}

const nlohmann::json& find_case(const std::string& name) {
  for (const auto& c : manifest()["cases"])
    if (c["name"] == name) return c;
  BOOST_FAIL("no case " << name << " in vad.json");
  throw std::logic_error("unreachable");
}

// get_speech_timestamps' keyword arguments on top of silero's own defaults.
VadOptions options_from_kwargs(const nlohmann::json& kwargs) {
  VadOptions o;
  o.min_speech_duration_ms = 250;
  o.min_silence_duration_ms = 100;
  o.speech_pad_ms = 30;
  for (const auto& [key, value] : kwargs.items()) {
    if (key == "threshold")
      o.threshold = value.get<double>();
    else if (key == "neg_threshold")
      o.neg_threshold = value.get<double>();
    else if (key == "min_speech_duration_ms")
      o.min_speech_duration_ms = value.get<int>();
    else if (key == "max_speech_duration_s")
      o.max_speech_duration_s = value.get<double>();
    else if (key == "min_silence_duration_ms")
      o.min_silence_duration_ms = value.get<int>();
    else if (key == "speech_pad_ms")
      o.speech_pad_ms = value.get<int>();
    else if (key == "use_max_poss_sil_at_max_speech")
      o.split_at_longest_silence = value.get<bool>();
    else
      BOOST_FAIL("option " << key << " in vad.json has no VadOptions counterpart");
  }
  return o;
}

std::vector<SpeechTimestamp> reference_timestamps(const nlohmann::json& c, const std::string& set) {
  std::vector<SpeechTimestamp> out;
  for (const auto& t : c["timestamps"][set]) out.push_back({t[0].get<int64_t>(), t[1].get<int64_t>()});
  return out;
}

std::string to_string(const std::vector<SpeechTimestamp>& ts) {
  std::ostringstream s;
  for (const auto& t : ts) s << "[" << t.start_sample << ", " << t.end_sample << ") ";
  return s.str();
}

std::vector<float> white_noise(size_t n, float sigma, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, sigma);
  std::vector<float> v(n);
  for (auto& x : v) x = normal(rng);
  return v;
}

}  // namespace

BOOST_AUTO_TEST_CASE(probabilities_match_the_python_model) {
  double worst = 0.0;
  size_t chunks = 0;
  for (const auto& c : manifest()["cases"]) {
    const std::vector<float> audio = case_audio(c);
    const std::vector<float> got = model().speech_probabilities(audio);
    const auto expect = c["probabilities"].get<std::vector<double>>();
    BOOST_REQUIRE_EQUAL(got.size(), expect.size());
    double diff = 0.0;
    for (size_t i = 0; i < got.size(); ++i) diff = std::max(diff, std::abs(got[i] - expect[i]));
    BOOST_CHECK_MESSAGE(diff <= 1e-4, c["name"] << ": max probability difference " << diff);
    worst = std::max(worst, diff);
    chunks += got.size();
  }
  BOOST_TEST_MESSAGE("speech probabilities vs silero-vad python over " << chunks << " chunks: max abs diff "
                                                                       << worst);
}

BOOST_AUTO_TEST_CASE(timestamps_match_get_speech_timestamps) {
  for (const auto& c : manifest()["cases"]) {
    const std::vector<float> audio = case_audio(c);
    const std::vector<float> probs = model().speech_probabilities(audio);
    const auto ref_probs = c["probabilities"].get<std::vector<float>>();
    for (const auto& [set, kwargs] : manifest()["option_sets"].items()) {
      const VadOptions options = options_from_kwargs(kwargs);
      const auto expect = reference_timestamps(c, set);
      // The segmentation alone, on the reference's own probabilities...
      const auto from_ref = speech_timestamps_from_probabilities(ref_probs, int64_t(audio.size()), options);
      BOOST_CHECK_MESSAGE(from_ref == expect, c["name"] << " / " << set << ": got " << to_string(from_ref)
                                                        << "expected " << to_string(expect));
      // ...and end to end on ours.
      const auto from_ours = speech_timestamps_from_probabilities(probs, int64_t(audio.size()), options);
      BOOST_CHECK_MESSAGE(from_ours == expect, c["name"] << " / " << set << " (our probabilities): got "
                                                         << to_string(from_ours) << "expected "
                                                         << to_string(expect));
    }
  }
}

BOOST_AUTO_TEST_CASE(default_options_are_faster_whispers_silence_and_padding) {
  const VadOptions d;
  BOOST_CHECK_EQUAL(d.threshold, 0.5);
  BOOST_CHECK(!d.neg_threshold);
  BOOST_CHECK_CLOSE(d.effective_neg_threshold(), 0.35, 1e-9);
  BOOST_CHECK_EQUAL(d.min_speech_duration_ms, 250);
  BOOST_CHECK(std::isinf(d.max_speech_duration_s));
  BOOST_CHECK_EQUAL(d.min_silence_duration_ms, 2000);
  BOOST_CHECK_EQUAL(d.speech_pad_ms, 400);
  VadOptions low;
  low.threshold = 0.1;
  BOOST_CHECK_EQUAL(low.effective_neg_threshold(), 0.01);  // floored like the reference

  const nlohmann::json& c = find_case("synthetic");
  const std::vector<float> audio = case_audio(c);
  const auto got = model().speech_timestamps(audio);
  BOOST_CHECK_MESSAGE(got == reference_timestamps(c, "peft_default"), "got " << to_string(got));
  VadOptions faster_whisper;
  faster_whisper.min_speech_duration_ms = 0;
  const auto fw = model().speech_timestamps(audio, faster_whisper);
  BOOST_CHECK_MESSAGE(fw == reference_timestamps(c, "faster_whisper"), "got " << to_string(fw));
  BOOST_CHECK_EQUAL(fw.size(), 2u);  // the two utterances, split at the 3 s of silence
}

BOOST_AUTO_TEST_CASE(streaming_in_odd_pieces_equals_whole_audio) {
  const std::vector<float> audio = case_audio(find_case("synthetic"));
  const std::vector<float> whole = model().speech_probabilities(audio);
  const size_t sizes[] = {1, 511, 513, 1000, 7, 512, 3000, 64, 2};
  std::vector<float> streamed;
  size_t pos = 0;
  for (size_t k = 0; pos < audio.size(); ++k) {
    const size_t n = std::min(sizes[k % std::size(sizes)], audio.size() - pos);
    const auto got = model().feed(audio.data() + pos, n);
    streamed.insert(streamed.end(), got.begin(), got.end());
    pos += n;
    BOOST_REQUIRE_EQUAL(model().samples_fed(), int64_t(pos));
    BOOST_REQUIRE_EQUAL(streamed.size(), pos / kVadChunkSamples);
  }
  const auto last = model().finish();
  BOOST_CHECK_EQUAL(last.size(), audio.size() % kVadChunkSamples ? 1u : 0u);
  streamed.insert(streamed.end(), last.begin(), last.end());
  BOOST_CHECK_EQUAL(model().samples_fed(), 0);
  BOOST_REQUIRE_EQUAL(streamed.size(), whole.size());
  for (size_t i = 0; i < whole.size(); ++i)
    BOOST_REQUIRE_MESSAGE(streamed[i] == whole[i],
                          "chunk " << i << ": " << streamed[i] << " vs " << whole[i]);
  // finish() starts a fresh stream: the same audio again gives the same result.
  BOOST_CHECK(model().speech_probabilities(audio) == whole);
}

BOOST_AUTO_TEST_CASE(state_carries_across_chunks) {
  // Without the carried state and context the probabilities of a chunk would not depend
  // on what came before; they do.
  const std::vector<float> audio = case_audio(find_case("synthetic"));
  const auto whole = model().speech_probabilities(audio);
  const size_t skip = 40 * kVadChunkSamples;
  const auto tail = model().speech_probabilities(std::vector<float>(audio.begin() + skip, audio.end()));
  double diff = 0.0;
  for (size_t i = 0; i < tail.size(); ++i) diff = std::max(diff, double(std::abs(tail[i] - whole[i + 40])));
  BOOST_CHECK_GT(diff, 1e-3);
}

BOOST_AUTO_TEST_CASE(silence_and_low_noise_are_not_speech) {
  const std::vector<float> silence(10 * kVadSampleRate, 0.0f);
  const std::vector<float> noise = white_noise(10 * kVadSampleRate, 0.003f, 7);
  for (const auto* audio : {&silence, &noise}) {
    const auto probs = model().speech_probabilities(*audio);
    BOOST_REQUIRE_EQUAL(probs.size(), audio->size() / kVadChunkSamples + 1);
    const float peak = *std::max_element(probs.begin(), probs.end());
    BOOST_TEST_MESSAGE((audio == &silence ? "silence" : "noise") << ": peak probability " << peak);
    BOOST_CHECK_LT(peak, 0.5f);
    BOOST_CHECK(model().speech_timestamps(*audio).empty());
    VadOptions silero;
    silero.min_silence_duration_ms = 100;
    silero.speech_pad_ms = 30;
    BOOST_CHECK(model().speech_timestamps(*audio, silero).empty());
  }
  // The synthetic file's leading second of noise stays outside every segment but the
  // padding, and its digital silence is cut out.
  const nlohmann::json& c = find_case("synthetic");
  const auto ts = model().speech_timestamps(case_audio(c));
  BOOST_REQUIRE_EQUAL(ts.size(), 2u);
  BOOST_CHECK_GE(ts[0].start_sample, kVadSampleRate - 400 * 16);
  BOOST_CHECK_LT(ts[0].end_sample, ts[1].start_sample);
}

BOOST_AUTO_TEST_CASE(to_original_maps_back) {
  std::vector<float> ramp(5 * kVadSampleRate);
  for (size_t i = 0; i < ramp.size(); ++i) ramp[i] = float(i);
  const std::vector<SpeechTimestamp> segments = {{16000, 32000}, {48000, 64000}};
  const SpeechChunks chunks = collect_speech_chunks(ramp, segments);
  BOOST_REQUIRE_EQUAL(chunks.audio.size(), 32000u);
  BOOST_CHECK_EQUAL(chunks.audio[0], 16000.0f);
  BOOST_CHECK_EQUAL(chunks.audio[15999], 31999.0f);
  BOOST_CHECK_EQUAL(chunks.audio[16000], 48000.0f);
  BOOST_CHECK_EQUAL(chunks.audio[31999], 63999.0f);
  BOOST_CHECK_CLOSE(chunks.to_original(0.0), 1.0, 1e-9);
  BOOST_CHECK_CLOSE(chunks.to_original(0.5), 1.5, 1e-9);
  BOOST_CHECK_CLOSE(chunks.to_original(1.0), 3.0, 1e-9);        // start of the second segment
  BOOST_CHECK_CLOSE(chunks.to_original(1.0, true), 2.0, 1e-9);  // end of the first
  BOOST_CHECK_CLOSE(chunks.to_original(1.25, true), 3.25, 1e-9);
  BOOST_CHECK_CLOSE(chunks.to_original(2.0, true), 4.0, 1e-9);
  BOOST_CHECK_CLOSE(chunks.to_original(2.5), 4.5, 1e-9);  // past the end: last segment's offset
  PEFT_CHECK_THROW_MSG(chunks.to_original(-1.0), peft::ValueError, {"to_original", "negative"});
  PEFT_CHECK_THROW_MSG(chunks.to_original(std::nan("")), peft::ValueError, {"to_original"});

  const SpeechChunks none = collect_speech_chunks(ramp, {});
  BOOST_CHECK(none.audio.empty());
  BOOST_CHECK_EQUAL(none.to_original(1.5), 1.5);

  PEFT_CHECK_THROW_MSG(collect_speech_chunks(ramp, {{48000, 64000}, {16000, 32000}}), peft::ValueError,
                       {"segment 1"});
  PEFT_CHECK_THROW_MSG(collect_speech_chunks(ramp, {{0, 90000}}), peft::ValueError, {"segment 0", "80000"});
  PEFT_CHECK_THROW_MSG(collect_speech_chunks(ramp, {{100, 50}}), peft::ValueError, {"segment 0"});

  // On real speech: each segment's start in the collected audio maps to its original start.
  const std::vector<float> audio = case_audio(find_case("synthetic"));
  VadOptions faster_whisper;
  faster_whisper.min_speech_duration_ms = 0;
  const auto ts = model().speech_timestamps(audio, faster_whisper);
  const SpeechChunks speech = collect_speech_chunks(audio, ts);
  BOOST_REQUIRE_EQUAL(speech.segments.size(), ts.size());
  int64_t offset = 0;
  for (const auto& t : ts) {
    BOOST_CHECK_CLOSE(speech.to_original(double(offset) / kVadSampleRate),
                      double(t.start_sample) / kVadSampleRate, 1e-9);
    offset += t.end_sample - t.start_sample;
    BOOST_CHECK_CLOSE(speech.to_original(double(offset) / kVadSampleRate, true),
                      double(t.end_sample) / kVadSampleRate, 1e-9);
  }
  BOOST_CHECK_EQUAL(speech.audio.size(), size_t(offset));
  BOOST_CHECK_LT(speech.audio.size(), audio.size());
}

BOOST_AUTO_TEST_CASE(bad_input) {
  std::vector<float> audio = white_noise(4000, 0.01f, 3);
  audio[1234] = std::numeric_limits<float>::quiet_NaN();
  PEFT_CHECK_THROW_MSG(model().speech_probabilities(audio), peft::ValueError, {"sample 1234", "NaN"});
  audio[1234] = 0.0f;
  audio[3999] = -std::numeric_limits<float>::infinity();
  PEFT_CHECK_THROW_MSG(model().speech_timestamps(audio), peft::ValueError, {"sample 3999", "infinite"});

  // Streaming: the index counts from the start of the stream, and the bad call consumes nothing.
  model().reset();
  BOOST_CHECK_EQUAL(model().feed(std::vector<float>(1000, 0.0f)).size(), 1u);
  std::vector<float> bad(10, 0.0f);
  bad[5] = std::numeric_limits<float>::infinity();
  PEFT_CHECK_THROW_MSG(model().feed(bad), peft::ValueError, {"sample 1005", "infinite"});
  BOOST_CHECK_EQUAL(model().samples_fed(), 1000);
  model().reset();

  BOOST_CHECK(model().speech_probabilities({}).empty());
  BOOST_CHECK(model().speech_timestamps({}).empty());
  BOOST_CHECK(model().finish().empty());

  const std::vector<float> ok(16000, 0.0f);
  PEFT_CHECK_THROW_MSG(model().speech_probabilities(ok, 44100), peft::ValueError, {"44100", "16000"});
  PEFT_CHECK_THROW_MSG(model().speech_timestamps(ok, VadOptions{}, 8000), peft::ValueError, {"8000"});

  VadOptions o;
  o.threshold = 1.5;
  PEFT_CHECK_THROW_MSG(model().speech_timestamps(ok, o), peft::ValueError, {"threshold", "1.5"});
  o = VadOptions{};
  o.neg_threshold = std::nan("");
  PEFT_CHECK_THROW_MSG(model().speech_timestamps(ok, o), peft::ValueError, {"neg_threshold"});
  o = VadOptions{};
  o.min_silence_duration_ms = -1;
  PEFT_CHECK_THROW_MSG(speech_timestamps_from_probabilities({}, 0, o), peft::ValueError,
                       {"min_silence_duration_ms"});
  o = VadOptions{};
  o.max_speech_duration_s = 0.0;
  PEFT_CHECK_THROW_MSG(speech_timestamps_from_probabilities({}, 0, o), peft::ValueError,
                       {"max_speech_duration_s"});
  PEFT_CHECK_THROW_MSG(speech_timestamps_from_probabilities({0.9f, 0.9f}, 512), peft::ValueError,
                       {"2 probabilities", "512 samples", "expected 1"});
}

BOOST_AUTO_TEST_CASE(bad_model_files) {
  peft_test::TempDir dir;
  const std::string missing = (dir / "missing.jit").string();
  PEFT_CHECK_THROW_MSG(SileroVad::load(missing), peft::IoError, {missing, "cannot open"});
  PEFT_CHECK_THROW_MSG(SileroVad::load(dir.path().string()), peft::IoError, {dir.path().string()});

  const fs::path empty = dir / "empty.jit";
  peft_test::write_file(empty, "");
  PEFT_CHECK_THROW_MSG(SileroVad::load(empty.string()), peft::FormatError, {empty.string()});

  const fs::path garbage = dir / "garbage.jit";
  peft_test::write_file(garbage, std::string(4096, '\x5a'));
  PEFT_CHECK_THROW_MSG(SileroVad::load(garbage.string()), peft::FormatError,
                       {garbage.string(), "TorchScript"});

  // The real model cut in half: a zip archive without its central directory.
  const std::string real = peft_test::read_file(peft_test::require_model_file("silero-vad/silero_vad.jit"));
  const fs::path truncated = dir / "truncated.jit";
  peft_test::write_file(truncated, real.substr(0, real.size() / 2));
  PEFT_CHECK_THROW_MSG(SileroVad::load(truncated.string()), peft::FormatError, {truncated.string()});
}
