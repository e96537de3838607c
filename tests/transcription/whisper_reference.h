// The faster-whisper reference (tests/reference/make_whisper_reference.py) and the audio
// it was computed on, shared by the decoding suites.
#pragma once

#include <nlohmann/json.hpp>

#include <fstream>
#include <string>
#include <vector>

#include "peft/audio/wav.h"
#include "test_support.h"

namespace whisper_ref {

inline const nlohmann::json& fixture() {
  static const nlohmann::json doc = [] {
    auto path = peft_test::fixtures_dir() / "whisper" / "faster_whisper_tiny_en.json";
    std::ifstream f(path);
    BOOST_REQUIRE_MESSAGE(f.good(), "cannot read " << path);
    return nlohmann::json::parse(f);
  }();
  return doc;
}

inline std::vector<float> read_samples(const std::string& path) {
  auto wav = peft::audio::read_wav(path);
  BOOST_REQUIRE_EQUAL(wav.sample_rate, 16000);
  return wav.samples;
}

// The synthetic long file: lead silence, then the utterances separated by the gaps.
inline std::vector<float> long_audio() {
  const auto& spec = fixture().at("long");
  std::vector<float> out(static_cast<size_t>(spec.at("lead_s").get<double>() * 16000), 0.0f);
  const auto& files = spec.at("files");
  const auto& gaps = spec.at("gaps_s");
  for (size_t i = 0; i < files.size(); ++i) {
    auto s = read_samples(files[i].get<std::string>());
    out.insert(out.end(), s.begin(), s.end());
    if (i < gaps.size()) out.resize(out.size() + static_cast<size_t>(gaps[i].get<double>() * 16000), 0.0f);
  }
  return out;
}

inline std::vector<float> samples_for(const std::string& name) {
  return name == "long" ? long_audio() : read_samples(name);
}

// The reference runs, optionally only those of one beam size.
inline std::vector<nlohmann::json> runs(int beam_size, bool include_long) {
  std::vector<nlohmann::json> out;
  for (const auto& r : fixture().at("results"))
    if (r.at("beam_size").get<int>() == beam_size && (include_long || r.at("file") != "long"))
      out.push_back(r);
  return out;
}

}  // namespace whisper_ref
