// VadGate on real speech (LibriVox utterances of pocketsphinx-testdata) with silences
// and noise between them: speech passes unchanged, long silences become zeros, the
// output is the input's timeline, and the cut does not depend on the chunking.
#define BOOST_TEST_MODULE vad_gate
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <limits>
#include <random>

#include "peft/audio/vad_gate.h"
#include "peft/audio/wav.h"
#include "peft/error.h"
#include "test_support.h"

using namespace peft::audio;

namespace {

constexpr int kRate = 16000;

SileroVad load_vad() {
  return SileroVad::load(peft_test::require_model_file("silero-vad/silero_vad.jit").string());
}

struct Speech {
  std::vector<float> audio;
  std::vector<std::pair<size_t, size_t>> utterances;  // [start, end) samples
};

// 2 s of low noise, utterance 0880, 3 s of noise, utterance 0890, 2 s of noise.
const Speech& speech() {
  static const Speech s = [] {
    Speech out;
    std::mt19937 rng(1);
    std::normal_distribution<float> noise(0.0f, 0.002f);
    auto pad = [&](double seconds) {
      for (int i = 0; i < static_cast<int>(seconds * kRate); ++i) out.audio.push_back(noise(rng));
    };
    pad(2.0);
    for (const char* id : {"0880", "0890"}) {
      const auto wav = read_wav(std::string("/usr/share/pocketsphinx/test/data/librivox/"
                                            "sense_and_sensibility_01_austen_64kb-") +
                                id + ".wav");
      out.utterances.emplace_back(out.audio.size(), out.audio.size() + wav.samples.size());
      out.audio.insert(out.audio.end(), wav.samples.begin(), wav.samples.end());
      pad(id[2] == '8' ? 3.0 : 2.0);
    }
    return out;
  }();
  return s;
}

std::vector<float> gate_all(VadGate& gate, const std::vector<float>& audio, size_t chunk) {
  std::vector<float> out;
  for (size_t i = 0; i < audio.size(); i += chunk) {
    auto part = gate.process(audio.data() + i, std::min(chunk, audio.size() - i));
    out.insert(out.end(), part.begin(), part.end());
  }
  auto rest = gate.finish();
  out.insert(out.end(), rest.begin(), rest.end());
  return out;
}

bool all_zero(const std::vector<float>& v, size_t from, size_t to) {
  for (size_t i = from; i < to; ++i)
    if (v[i] != 0.0f) return false;
  return true;
}

}  // namespace

BOOST_AUTO_TEST_CASE(speech_passes_silence_is_zeroed) {
  VadGate gate(load_vad());
  const Speech& s = speech();
  const std::vector<float> out = gate_all(gate, s.audio, 1600);
  BOOST_REQUIRE_EQUAL(out.size(), s.audio.size());
  BOOST_CHECK_EQUAL(gate.pending(), 0u);
  // Every sample is either the input's or zero.
  size_t kept = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    BOOST_REQUIRE(out[i] == s.audio[i] || out[i] == 0.0f);
    if (out[i] != 0.0f) ++kept;
  }
  // The middle of each utterance is kept whole.
  for (auto [a, b] : s.utterances) {
    const size_t quarter = (b - a) / 4;
    for (size_t i = a + quarter; i < b - quarter; ++i) BOOST_REQUIRE_EQUAL(out[i], s.audio[i]);
  }
  // The leading noise and the middle of the 3 s pause are zeros.
  BOOST_CHECK(all_zero(out, 0, kRate));
  const size_t pause_mid = (s.utterances[0].second + s.utterances[1].first) / 2;
  BOOST_CHECK(all_zero(out, pause_mid - kRate / 2, pause_mid + kRate / 2));
  BOOST_TEST_MESSAGE("kept " << kept << " of " << out.size() << " samples");
  BOOST_CHECK_LT(kept, out.size() * 3 / 4);
}

BOOST_AUTO_TEST_CASE(chunking_does_not_change_the_output) {
  VadGate a(load_vad()), b(load_vad());
  const Speech& s = speech();
  const auto out_a = gate_all(a, s.audio, 512);
  const auto out_b = gate_all(b, s.audio, 7777);
  BOOST_CHECK(out_a == out_b);
  // finish() starts a fresh stream: the same input again gives the same output.
  BOOST_CHECK(gate_all(a, s.audio, 3000) == out_a);
}

BOOST_AUTO_TEST_CASE(lag_is_bounded_by_the_padding) {
  VadGateOptions o;
  o.pad_ms = 256;
  VadGate gate(load_vad(), o);
  const Speech& s = speech();
  size_t fed = 0, released = 0;
  for (size_t i = 0; i < s.audio.size(); i += 1000) {
    const size_t n = std::min<size_t>(1000, s.audio.size() - i);
    fed += n;
    released += gate.process(s.audio.data() + i, n).size();
    BOOST_REQUIRE_LE(fed - released, static_cast<size_t>(o.pad_ms * kRate / 1000 + 2 * kVadChunkSamples));
    BOOST_REQUIRE_EQUAL(gate.pending(), fed - released);
  }
}

BOOST_AUTO_TEST_CASE(bad_options_and_samples) {
  VadGateOptions o;
  o.threshold = 1.5;
  PEFT_CHECK_THROW_MSG(VadGate(load_vad(), o), peft::ValueError, {"threshold"});
  o = {};
  o.pad_ms = -1;
  PEFT_CHECK_THROW_MSG(VadGate(load_vad(), o), peft::ValueError, {"pad_ms"});
  VadGate gate(load_vad());
  std::vector<float> x(1000, 0.1f);
  x[10] = std::numeric_limits<float>::quiet_NaN();
  BOOST_CHECK_THROW(gate.process(x), peft::ValueError);
  BOOST_CHECK_EQUAL(gate.pending(), 0u);  // nothing of the failed call was consumed
}
