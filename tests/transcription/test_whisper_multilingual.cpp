// Multilingual Whisper against faster-whisper 1.2.1: language detection, transcribe and
// translate. No real multilingual weights exist here, so both sides run models whose
// weights are a formula (weight_value, as in
// tests/reference/make_whisper_multilingual_fixture.py) with the real multilingual
// layouts: v2 (80 mel bins, 51865 tokens, 99 languages) and v3 (128 mel bins, 51866
// tokens, 100 languages, and like turbo fewer decoder than encoder layers), tokenized by openai-whisper's
// multilingual.tiktoken. The reference converted the same weights with CTranslate2 and ran faster-whisper
// (float32, beam 1, temperature 0) on Debian's pocketsphinx-testdata speech.
#define BOOST_TEST_MODULE whisper_multilingual
#include <ATen/ATen.h>

#include <cmath>

#include <nlohmann/json.hpp>

#include "peft/audio/wav.h"
#include "peft/error.h"
#include "peft/io/safetensors.h"
#include "peft/models/whisper.h"
#include "peft/runtime.h"
#include "peft/text/whisper_tokenizer.h"
#include "peft/transcription/language_detection.h"
#include "peft/transcription/whisper_decoding.h"
#include "peft/transcription/windowed_mel.h"
#include "test_support.h"

using namespace peft;

namespace {

constexpr int64_t kD = 32, kHeads = 4, kAudioCtx = 1500, kTextCtx = 448;

const nlohmann::json& reference() {
  static const nlohmann::json r = nlohmann::json::parse(
      peft_test::read_file(peft_test::fixtures_dir() / "whisper" / "multilingual_random.json"));
  return r;
}

uint64_t fnv1a64(const std::string& s) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001B3ull;
  return h;
}

uint64_t splitmix64(uint64_t x) {
  uint64_t z = x + 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// The reference script's weight_value: the same double arithmetic, rounded to float.
at::Tensor weight_value(const std::string& name, const std::vector<int64_t>& shape) {
  int64_t n = 1, fan_in = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    n *= shape[i];
    if (i > 0) fan_in *= shape[i];
  }
  at::Tensor t = at::empty(shape, at::kFloat);
  float* out = t.data_ptr<float>();
  const uint64_t seed = fnv1a64(name);
  const bool norm_gain = name.find("layer_norm") != std::string::npos && ends_with(name, ".weight");
  const double scale = std::sqrt(3.0 / static_cast<double>(fan_in));
  for (int64_t i = 0; i < n; ++i) {
    const double u =
        static_cast<double>(splitmix64(seed + static_cast<uint64_t>(i)) >> 11) * 0x1.0p-53 * 2.0 - 1.0;
    double v;
    if (norm_gain)
      v = 1.0 + 0.2 * u;
    else if (ends_with(name, ".bias"))
      v = 0.2 * u;
    else if (ends_with(name, "embed_tokens.weight"))
      v = u;
    else if (ends_with(name, "embed_positions.weight"))
      v = 0.5 * u;
    else
      v = u * scale;
    out[i] = static_cast<float>(v);
  }
  return t;
}

// The formula model in the Hugging Face layout (config.json + model.safetensors).
std::shared_ptr<const models::WhisperModel> formula_model(int64_t n_mels, int64_t vocab, int64_t enc_layers,
                                                          int64_t dec_layers) {
  peft_test::TempDir dir;
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  auto add = [&](const std::string& name, std::vector<int64_t> shape) {
    tensors.emplace_back(name, weight_value(name, shape));
  };
  auto norm = [&](const std::string& p) {
    add(p + ".weight", {kD});
    add(p + ".bias", {kD});
  };
  auto attention = [&](const std::string& p) {
    for (const char* proj : {"q_proj", "k_proj", "v_proj", "out_proj"}) {
      add(p + proj + ".weight", {kD, kD});
      if (std::string(proj) != "k_proj") add(p + proj + ".bias", {kD});
    }
  };
  auto block = [&](const std::string& p) {
    norm(p + "self_attn_layer_norm");
    attention(p + "self_attn.");
    norm(p + "final_layer_norm");
    add(p + "fc1.weight", {4 * kD, kD});
    add(p + "fc1.bias", {4 * kD});
    add(p + "fc2.weight", {kD, 4 * kD});
    add(p + "fc2.bias", {kD});
  };
  add("model.encoder.conv1.weight", {kD, n_mels, 3});
  add("model.encoder.conv1.bias", {kD});
  add("model.encoder.conv2.weight", {kD, kD, 3});
  add("model.encoder.conv2.bias", {kD});
  add("model.encoder.embed_positions.weight", {kAudioCtx, kD});
  for (int i = 0; i < enc_layers; ++i) block("model.encoder.layers." + std::to_string(i) + ".");
  norm("model.encoder.layer_norm");
  add("model.decoder.embed_tokens.weight", {vocab, kD});
  add("model.decoder.embed_positions.weight", {kTextCtx, kD});
  for (int i = 0; i < dec_layers; ++i) {
    const std::string p = "model.decoder.layers." + std::to_string(i) + ".";
    block(p);
    norm(p + "encoder_attn_layer_norm");
    attention(p + "encoder_attn.");
  }
  norm("model.decoder.layer_norm");

  std::vector<io::TensorToWrite> out;
  for (const auto& [name, t] : tensors)
    out.push_back({name, io::DType::F32, t.sizes().vec(), t.data_ptr(), static_cast<uint64_t>(t.nbytes())});
  io::write_safetensors(dir / "model.safetensors", out);
  nlohmann::json config = {{"model_type", "whisper"},
                           {"num_mel_bins", n_mels},
                           {"max_source_positions", kAudioCtx},
                           {"d_model", kD},
                           {"encoder_attention_heads", kHeads},
                           {"encoder_layers", enc_layers},
                           {"vocab_size", vocab},
                           {"max_target_positions", kTextCtx},
                           {"decoder_attention_heads", kHeads},
                           {"decoder_layers", dec_layers}};
  peft_test::write_file(dir / "config.json", config.dump());
  return models::WhisperModel::load(dir.path());
}

std::vector<float> read_samples(const std::string& path) {
  audio::WavAudio wav = audio::read_wav(path);
  BOOST_REQUIRE_EQUAL(wav.sample_rate, 16000);
  return wav.samples;
}

std::vector<float> audio_named(const std::string& name) {
  const auto& a = reference().at("audio");
  if (name == "short") return read_samples(a.at("short").get<std::string>());
  std::vector<float> all;
  const auto gap = static_cast<size_t>(a.at("long").at("gap_s").get<double>() * 16000);
  bool first = true;
  for (const auto& f : a.at("long").at("files")) {
    if (!first) all.insert(all.end(), gap, 0.0f);
    first = false;
    const auto s = read_samples(f.get<std::string>());
    all.insert(all.end(), s.begin(), s.end());
  }
  return all;
}

std::string str(const std::vector<int64_t>& ids) {
  std::string s;
  for (auto id : ids) s += std::to_string(id) + " ";
  return s;
}

// Language probabilities: float32 softmax of float32 logits on both sides; the logits
// differ by summation order only (~1e-6 relative), which moves a probability by about
// as much. 1e-4 is far below the gaps between languages that decide anything.
constexpr double kProbTolerance = 1e-4;

void run_model(const std::string& key) {
  // One thread: these matrices are tiny, and idle OpenMP workers spinning between
  // the many small ops cost more than the ops (measured 4 min with 2 threads).
  configure_runtime(1);
  const auto& m = reference().at("models").at(key);
  const int64_t vocab = m.at("n_vocab");
  auto model = formula_model(m.at("n_mels"), vocab, m.at("encoder_layers"), m.at("decoder_layers"));
  BOOST_CHECK_EQUAL(model->dims().n_text_layer, m.at("decoder_layers").get<int64_t>());
  const text::WhisperTokenizer tok(peft_test::require_model_file("whisper-tokenizers/multilingual.tiktoken"),
                                   vocab);
  BOOST_REQUIRE(tok.multilingual());
  BOOST_REQUIRE_EQUAL(static_cast<int64_t>(tok.language_codes().size()), m.at("languages").get<int64_t>());

  double worst_prob = 0;
  for (const auto& run : m.at("runs")) {
    const std::string audio = run.at("audio");
    transcription::DecodingOptions o;
    o.beam_size = 1;
    o.temperatures = {0.0f};
    o.task = run.at("options").at("task");
    o.language = run.at("options").value("language", "");
    const std::string what = key + " " + audio + " " + run.at("options").dump();
    transcription::TranscriptionInfo info;
    const auto segments = transcription::transcribe(*model, tok, audio_named(audio), o, &info);

    BOOST_CHECK_MESSAGE(info.language == run.at("language").get<std::string>(),
                        what << ": language " << info.language << ", faster-whisper " << run.at("language"));
    const double p_ref = run.at("language_probability");
    BOOST_CHECK_MESSAGE(
        std::abs(info.language_probability - p_ref) <= kProbTolerance,
        what << ": probability " << info.language_probability << ", faster-whisper " << p_ref);
    if (run.at("all_language_probs").is_null()) {
      BOOST_CHECK(info.all_language_probs.empty());
      BOOST_CHECK_EQUAL(info.language_probability, 1.0f);
    } else {
      const auto& all = run.at("all_language_probs");
      BOOST_REQUIRE_EQUAL(info.all_language_probs.size(), all.size());
      for (size_t i = 0; i < all.size(); ++i) {
        const double diff = std::abs(info.all_language_probs[i].probability - all[i][1].get<double>());
        worst_prob = std::max(worst_prob, diff);
        // The top 5 in the same order; below them near-equal probabilities may swap.
        if (i < 5)
          BOOST_CHECK_MESSAGE(info.all_language_probs[i].language == all[i][0].get<std::string>(),
                              what << ": language #" << i << " " << info.all_language_probs[i].language
                                   << ", faster-whisper " << all[i][0]);
        BOOST_CHECK_LE(diff, kProbTolerance);
      }
    }

    const auto& ref_segments = run.at("segments");
    BOOST_CHECK_MESSAGE(segments.size() == ref_segments.size(), what << ": " << segments.size()
                                                                     << " segments, faster-whisper "
                                                                     << ref_segments.size());
    for (size_t i = 0; i < std::min(segments.size(), ref_segments.size()); ++i) {
      const auto& r = ref_segments[i];
      const std::vector<int64_t> ref_tokens = r.at("tokens");
      BOOST_CHECK_MESSAGE(segments[i].tokens == ref_tokens,
                          what << " segment " << i << ": tokens\n  " << str(segments[i].tokens)
                               << "\nfaster-whisper\n  " << str(ref_tokens));
      BOOST_CHECK_EQUAL(segments[i].seek, r.at("seek").get<int64_t>());
      BOOST_CHECK_CLOSE(segments[i].start + 1, r.at("start").get<double>() + 1, 1e-6);
      BOOST_CHECK_CLOSE(segments[i].end + 1, r.at("end").get<double>() + 1, 1e-6);
      BOOST_CHECK_EQUAL(segments[i].text, r.at("text").get<std::string>());
      BOOST_CHECK_MESSAGE(std::abs(segments[i].avg_logprob - r.at("avg_logprob").get<double>()) <= 1e-3,
                          what << " segment " << i << ": avg_logprob " << segments[i].avg_logprob
                               << ", faster-whisper " << r.at("avg_logprob"));
    }
  }
  BOOST_TEST_MESSAGE(key << ": largest language-probability difference " << worst_prob);

  // Two windows, a threshold neither reaches: faster-whisper's majority vote (here a
  // tie, which the language seen first wins) and the last window's probabilities.
  const auto& vote = m.at("detect_language");
  const std::vector<float> samples = audio_named(vote.at("audio"));
  const transcription::WindowedLogMel mel(samples.data(), samples.size(),
                                          static_cast<int>(model->dims().n_mels));
  transcription::LanguageDetectionOptions lo;
  lo.segments = vote.at("segments");
  lo.threshold = vote.at("threshold");
  const auto d = transcription::detect_language(*model, tok, mel, lo);
  BOOST_CHECK_EQUAL(d.language, vote.at("language").get<std::string>());
  BOOST_CHECK_SMALL(d.probability - vote.at("language_probability").get<double>(), kProbTolerance);
  const auto& all = vote.at("all_language_probs");
  BOOST_REQUIRE_EQUAL(d.all.size(), all.size());
  for (size_t i = 0; i < 5; ++i) {
    BOOST_CHECK_EQUAL(d.all[i].language, all[i][0].get<std::string>());
    BOOST_CHECK_SMALL(d.all[i].probability - all[i][1].get<double>(), kProbTolerance);
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(v2_layout_detect_transcribe_translate) { run_model("v2"); }

BOOST_AUTO_TEST_CASE(v3_layout_detect_transcribe_translate) { run_model("v3"); }

// An English-only model is not asked for its language: faster-whisper reports "en", 1.
BOOST_AUTO_TEST_CASE(english_only_model_reports_english) {
  configure_runtime(1);
  auto model = models::WhisperModel::load(peft_test::require_model_file("whisper-tiny.en"));
  const text::WhisperTokenizer tok(peft_test::require_model_file("whisper-tiny.en/tokenizer.json"),
                                   model->dims().n_vocab);
  transcription::DecodingOptions o;
  o.beam_size = 1;
  o.temperatures = {0.0f};
  transcription::TranscriptionInfo info;
  const auto segments = transcription::transcribe(*model, tok, audio_named("short"), o, &info);
  BOOST_CHECK(!segments.empty());
  BOOST_CHECK_EQUAL(info.language, "en");
  BOOST_CHECK_EQUAL(info.language_probability, 1.0f);
  BOOST_CHECK(info.all_language_probs.empty());
  o.task = "translate";
  PEFT_CHECK_THROW_MSG(transcription::transcribe(*model, tok, audio_named("short"), o), peft::ValueError,
                       {"English-only", "translate"});
}
