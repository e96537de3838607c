// Whisper's log-mel front end against the reference (openai-whisper's audio.py, run by
// tests/reference/make_log_mel_fixture.py on real speech), plus shapes, edge cases and errors.
#define BOOST_TEST_MODULE log_mel
#include <ATen/ATen.h>

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "peft/audio/log_mel.h"
#include "peft/audio/wav.h"
#include "peft/error.h"
#include "test_support.h"

using namespace peft::audio;
namespace fs = std::filesystem;

namespace {

fs::path audio_fixtures() { return peft_test::fixtures_dir() / "audio"; }

nlohmann::json manifest() {
  const fs::path p = audio_fixtures() / "log_mel.json";
  BOOST_REQUIRE_MESSAGE(fs::exists(p), p << " missing: run tests/reference/make_log_mel_fixture.py");
  return nlohmann::json::parse(peft_test::read_file(p));
}

at::Tensor to_tensor(const std::vector<float>& v) {
  return at::from_blob(const_cast<float*>(v.data()), {int64_t(v.size())}, at::kFloat).clone();
}

at::Tensor read_f32(const fs::path& p, int64_t rows, int64_t cols) {
  const std::string bytes = peft_test::read_file(p);
  BOOST_REQUIRE_EQUAL(bytes.size(), size_t(rows * cols) * sizeof(float));
  at::Tensor t = at::empty({rows, cols}, at::kFloat);
  std::memcpy(t.data_ptr<float>(), bytes.data(), bytes.size());
  return t;
}

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) { return (a - b).abs().max().item<double>(); }

}  // namespace

BOOST_AUTO_TEST_CASE(mel_filters_equal_whispers_table) {
  const nlohmann::json m = manifest();
  for (int n_mels : {80, 128}) {
    const nlohmann::json& ref = m["mel_filters"][std::to_string(n_mels)];
    at::Tensor expect =
        at::zeros({ref["shape"][0].get<int64_t>(), ref["shape"][1].get<int64_t>()}, at::kFloat);
    for (const auto& e : ref["nonzero"])
      expect[e[0].get<int64_t>()][e[1].get<int64_t>()] = static_cast<float>(e[2].get<double>());
    const at::Tensor got = mel_filters(n_mels);
    BOOST_REQUIRE(got.sizes() == expect.sizes());
    const double diff = max_abs_diff(got, expect);
    BOOST_TEST_MESSAGE("mel_filters(" << n_mels << ") max abs diff vs whisper's mel_filters.npz: " << diff);
    BOOST_CHECK_LE(diff, 1e-8);
    BOOST_CHECK_EQUAL(got.ne(0).sum().item<int64_t>(), int64_t(ref["nonzero"].size()));
  }
  PEFT_CHECK_THROW_MSG(mel_filters(0), peft::ValueError, {"n_mels", "0"});
}

BOOST_AUTO_TEST_CASE(matches_openai_whisper_on_real_speech) {
  const nlohmann::json m = manifest();
  BOOST_REQUIRE_GE(m["cases"].size(), 3u);
  for (const auto& c : m["cases"]) {
    const std::string name = c["name"];
    BOOST_TEST_CONTEXT(name) {
      const WavAudio wav = read_wav((audio_fixtures() / c["wav"].get<std::string>()).string());
      BOOST_REQUIRE_EQUAL(wav.sample_rate, 16000);
      BOOST_REQUIRE_EQUAL(wav.samples.size(), c["samples"].get<size_t>());

      // The excerpt is the Debian file's samples, unchanged (checked when the package is there).
      const std::string source = c["source"];
      if (fs::exists(source)) {
        const WavAudio full = read_wav(source);
        const size_t first = c["first_sample"];
        BOOST_REQUIRE_GE(full.samples.size(), first + wav.samples.size());
        BOOST_CHECK(std::equal(wav.samples.begin(), wav.samples.end(), full.samples.begin() + first));
      }

      const int n_mels = c["n_mels"];
      const int64_t frames = c["frames"];
      const at::Tensor expect = read_f32(audio_fixtures() / c["log_mel"].get<std::string>(), n_mels, frames);
      const at::Tensor got =
          log_mel_spectrogram(to_tensor(wav.samples), n_mels, c["pad_samples"].get<int64_t>());
      BOOST_REQUIRE(got.sizes() == expect.sizes());
      const double diff = max_abs_diff(got, expect);
      BOOST_TEST_MESSAGE(name << ": max abs diff vs openai-whisper " << diff);
      BOOST_CHECK_LT(diff, 1e-4);
    }
  }
}

BOOST_AUTO_TEST_CASE(batch_items_are_independent) {
  const nlohmann::json m = manifest();
  const WavAudio a = read_wav((audio_fixtures() / "librivox-0870-80.wav").string());
  const WavAudio b = read_wav((audio_fixtures() / "cards-001-128.wav").string());
  const int64_t n = int64_t(std::min(a.samples.size(), b.samples.size()));
  const at::Tensor x = to_tensor(a.samples).slice(0, 0, n);
  const at::Tensor y = to_tensor(b.samples).slice(0, 0, n) * 0.01;  // much quieter: its own max must be used
  const at::Tensor batch = log_mel_spectrogram(at::stack({x, y}), 80);
  BOOST_REQUIRE(batch.sizes() == at::IntArrayRef({2, 80, n / 160}));
  BOOST_CHECK_LT(max_abs_diff(batch[0], log_mel_spectrogram(x, 80)), 1e-6);
  BOOST_CHECK_LT(max_abs_diff(batch[1], log_mel_spectrogram(y, 80)), 1e-6);
}

BOOST_AUTO_TEST_CASE(frame_counts_and_short_input) {
  BOOST_CHECK(log_mel_spectrogram(at::zeros({kChunkSamples}), 80).sizes() ==
              at::IntArrayRef({80, kChunkFrames}));
  BOOST_CHECK(log_mel_spectrogram(at::zeros({0}), 80).sizes() == at::IntArrayRef({80, 0}));
  BOOST_CHECK(log_mel_spectrogram(at::zeros({3, 0}), 128).sizes() == at::IntArrayRef({3, 128, 0}));
  BOOST_CHECK(log_mel_spectrogram(at::ones({159}), 80).sizes() == at::IntArrayRef({80, 0}));
  // 160..200 samples: one frame, the 200-sample centre padding reflects more than once.
  for (int64_t n : {160, 199, 200, 201, 321}) {
    const at::Tensor x = at::sin(at::arange(n, at::kFloat) * 0.3);
    const at::Tensor l = log_mel_spectrogram(x, 80);
    BOOST_CHECK(l.sizes() == at::IntArrayRef({80, n / 160}));
    BOOST_CHECK(at::isfinite(l).all().item<bool>());
  }
  // openai transcribe: 30 s of zeros after the audio.
  BOOST_CHECK_EQUAL(log_mel_spectrogram(at::zeros({1000}), 80, kChunkSamples).size(1),
                    (1000 + kChunkSamples) / 160);
}

BOOST_AUTO_TEST_CASE(silence_is_the_floor) {
  // log10(1e-10) = -10 everywhere, which is also the maximum: (-10 + 4) / 4.
  const at::Tensor l = log_mel_spectrogram(at::zeros({16000}), 80);
  BOOST_CHECK_EQUAL(l.min().item<float>(), -1.5f);
  BOOST_CHECK_EQUAL(l.max().item<float>(), -1.5f);
}

BOOST_AUTO_TEST_CASE(dynamic_range_is_80_db) {
  const at::Tensor x = at::sin(at::arange(16000, at::kFloat) * 0.2) * 0.5;
  const at::Tensor l = log_mel_spectrogram(x, 80);
  BOOST_CHECK_CLOSE(l.max().item<double>() - l.min().item<double>(), 2.0, 1e-4);  // 8 decades / 4
}

BOOST_AUTO_TEST_CASE(pointer_overload_and_dtypes) {
  std::vector<float> v(4000);
  for (size_t i = 0; i < v.size(); ++i) v[i] = std::sin(0.05f * i);
  const at::Tensor a = log_mel_spectrogram(v.data(), v.size(), 80);
  const at::Tensor b = log_mel_spectrogram(to_tensor(v), 80);
  const at::Tensor c = log_mel_spectrogram(to_tensor(v).to(at::kDouble), 80);
  BOOST_CHECK(a.equal(b));
  BOOST_CHECK(c.scalar_type() == at::kFloat);
  BOOST_CHECK(c.equal(b));
}

BOOST_AUTO_TEST_CASE(non_finite_samples_are_refused) {
  at::Tensor x = at::zeros({1000});
  x[123] = std::numeric_limits<float>::quiet_NaN();
  x[500] = std::numeric_limits<float>::infinity();
  PEFT_CHECK_THROW_MSG(log_mel_spectrogram(x, 80), peft::ValueError, {"sample 123", "nan", "finite"});
  at::Tensor y = at::zeros({2, 1000});
  y[1][5] = -std::numeric_limits<float>::infinity();
  PEFT_CHECK_THROW_MSG(log_mel_spectrogram(y, 80), peft::ValueError, {"sample 5 of batch item 1", "inf"});
}

BOOST_AUTO_TEST_CASE(bad_arguments) {
  PEFT_CHECK_THROW_MSG(log_mel_spectrogram(at::zeros({1, 2, 400}), 80), peft::ValueError,
                       {"[N] or [B, N]", "3"});
  PEFT_CHECK_THROW_MSG(log_mel_spectrogram(at::zeros({400}, at::kShort), 80), peft::ValueError, {"floating"});
  PEFT_CHECK_THROW_MSG(log_mel_spectrogram(at::zeros({400}), 0), peft::ValueError, {"n_mels"});
  PEFT_CHECK_THROW_MSG(log_mel_spectrogram(at::zeros({400}), 80, -1), peft::ValueError,
                       {"pad_samples", "-1"});
  PEFT_CHECK_THROW_MSG(pad_or_trim(at::zeros({10}), -1), peft::ValueError, {"length"});
  PEFT_CHECK_THROW_MSG(pad_or_trim(at::zeros({}), 10), peft::ValueError, {"dimension"});
}

BOOST_AUTO_TEST_CASE(pad_or_trim_windows) {
  const at::Tensor audio = at::ones({1000});
  const at::Tensor padded = pad_or_trim(audio, kChunkSamples);
  BOOST_CHECK_EQUAL(padded.size(0), kChunkSamples);
  BOOST_CHECK_EQUAL(padded.sum().item<float>(), 1000.0f);
  const at::Tensor mel = at::ones({80, 3100});
  BOOST_CHECK(pad_or_trim(mel, kChunkFrames).sizes() == at::IntArrayRef({80, kChunkFrames}));
  BOOST_CHECK(pad_or_trim(at::ones({80, 20}), kChunkFrames).slice(1, 20).eq(0).all().item<bool>());
  BOOST_CHECK(pad_or_trim(mel, 3100).equal(mel));
}
