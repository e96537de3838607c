// Whisper loaded with quantized projections (WhisperModel::load(path, QuantOptions)):
// weight bytes, closeness to the float model, CTranslate2 int8 files kept as stored,
// and the accuracy target of issue 4: tiny.en int8 within +0.5 WER (absolute) of fp32
// on the five LibriVox utterances of pocketsphinx-testdata.
#define BOOST_TEST_MODULE quant_whisper
#include <ATen/ATen.h>

#include "peft/audio/log_mel.h"
#include "peft/audio/wav.h"
#include "peft/error.h"
#include "peft/metrics/english_normalizer.h"
#include "peft/metrics/wer.h"
#include "peft/models/whisper.h"
#include "peft/runtime.h"
#include "peft/text/whisper_tokenizer.h"
#include "peft/transcription/whisper_decoding.h"
#include "pocketsphinx_testdata.h"
#include "test_support.h"

using namespace peft;
using quant::QuantType;

namespace {

quant::QuantOptions options(QuantType t, bool embeddings = false) {
  quant::QuantOptions o;
  o.type = t;
  o.quantize_embeddings = embeddings;
  return o;
}

double rel_error(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).norm().item<double>() /
         b.to(at::kDouble).norm().item<double>();
}

// Logits of the first decoder steps on a window of real speech.
at::Tensor first_logits(const models::WhisperModel& m, const at::Tensor& mel) {
  at::Tensor features = m.encode(mel);
  models::WhisperKVCache cache = m.start(features);
  const at::Tensor tokens =
      at::tensor({50257, 50362, 383, 2068}, at::TensorOptions().dtype(at::kLong)).view({1, 4});
  return m.decode(tokens, cache);
}

at::Tensor librivox_mel(int n_mels) {
  const std::string data = "/usr/share/pocketsphinx/test/data/librivox/";
  const auto wav = audio::read_wav(data + "sense_and_sensibility_01_austen_64kb-0870.wav");
  std::vector<float> s = wav.samples;
  s.resize(16000 * 30, 0.0f);
  return audio::log_mel_spectrogram(at::from_blob(s.data(), {1, static_cast<int64_t>(s.size())}).clone(),
                                    n_mels);
}

double librivox_wer(const models::WhisperModel& model, const text::WhisperTokenizer& tokenizer) {
  const auto utterances = peft_test::pocketsphinx_utterances("librivox");
  BOOST_REQUIRE_MESSAGE(!utterances.empty(), "pocketsphinx-testdata is not installed (./setup installs it)");
  std::vector<std::string> refs, hyps;
  for (const auto& u : utterances) {
    std::string text;
    for (const auto& s : transcription::transcribe(model, tokenizer, audio::read_wav(u.wav).samples))
      text += s.text;
    refs.push_back(metrics::normalize_english(u.reference));
    hyps.push_back(metrics::normalize_english(text));
  }
  BOOST_REQUIRE_EQUAL(refs.size(), 5u);
  return metrics::corpus_wer(refs, hyps).wer;
}

}  // namespace

BOOST_AUTO_TEST_CASE(ct2_int8_whisper_loads_as_stored_and_matches_its_float_twin) {
  // tests/fixtures/quant: the same tiny Whisper saved by ctranslate2 as int8 and float32
  // (tests/reference/make_quant_ct2_whisper_fixture.py).
  const auto dir = peft_test::fixtures_dir() / "quant";
  const auto f32 = models::WhisperModel::load(dir / "ct2-whisper-float32");
  const auto i8 = models::WhisperModel::load(dir / "ct2-whisper-int8");
  const auto requant = models::WhisperModel::load(dir / "ct2-whisper-int8", options(QuantType::int8));
  BOOST_TEST(i8->dims().n_audio_state == 32);
  BOOST_TEST(i8->dims().n_vocab == 64);
  // int8 codes + float scales: about a quarter of the float32 bytes for the matrices.
  BOOST_TEST_MESSAGE("bytes float32 " << f32->weight_bytes() << ", int8 file " << i8->weight_bytes());
  // (Its positions and norms stay float32: 54% of the float32 file's bytes here.)
  BOOST_TEST(i8->weight_bytes() < f32->weight_bytes() * 0.6);
  // Kept as stored: asking for int8 again changes nothing.
  BOOST_TEST(requant->weight_bytes() == i8->weight_bytes());
  at::manual_seed(2);
  const at::Tensor mel = at::randn({1, 80, 20});
  const at::Tensor e32 = f32->encode(mel), e8 = i8->encode(mel);
  BOOST_TEST_MESSAGE("encoder rel error " << rel_error(e8, e32));
  BOOST_TEST(rel_error(e8, e32) < 0.03);
  auto logits = [&](const models::WhisperModel& m) {
    models::WhisperKVCache cache = m.start(m.encode(mel));
    return m.decode(at::tensor({1, 5, 9, 33}, at::TensorOptions().dtype(at::kLong)).view({1, 4}), cache);
  };
  BOOST_TEST_MESSAGE("logits rel error " << rel_error(logits(*i8), logits(*f32)));
  BOOST_TEST(rel_error(logits(*i8), logits(*f32)) < 0.03);
  BOOST_TEST(at::equal(logits(*requant), logits(*i8)));
  // A 4-bit request dequantizes the file's int8 first, then re-quantizes.
  quant::QuantOptions nf4 = options(QuantType::nf4);
  nf4.group_size = 32;
  const auto q4 = models::WhisperModel::load(dir / "ct2-whisper-int8", nf4);
  BOOST_TEST(q4->weight_bytes() < i8->weight_bytes());
  BOOST_TEST(rel_error(logits(*q4), logits(*f32)) < 0.2);
}

BOOST_AUTO_TEST_CASE(tiny_en_weight_bytes_per_mode) {
  configure_runtime(0);
  const auto dir = peft_test::require_model_file("whisper-tiny.en");
  const auto none = models::WhisperModel::load(dir);
  const auto& d = none->dims();
  // Projections: encoder q k v out fc1 fc2, decoder the same plus cross-attention q k v out.
  const int64_t ffn = 4 * d.n_audio_state, dm = d.n_audio_state;
  const int64_t enc_w = 4 * dm * dm + 2 * ffn * dm, dec_w = 8 * dm * dm + 2 * ffn * dm;
  const int64_t enc_rows = 4 * dm + ffn + dm, dec_rows = 8 * dm + ffn + dm;
  const int64_t weights = d.n_audio_layer * enc_w + d.n_text_layer * dec_w;
  const int64_t rows = d.n_audio_layer * enc_rows + d.n_text_layer * dec_rows;
  const int64_t fp16 = none->weight_bytes();
  const int64_t expect_int8 = fp16 - 2 * weights + weights + 4 * rows;
  const int64_t expect_4bit_g64 = fp16 - 2 * weights + weights / 2 + weights / 64 * 4;
  std::map<std::string, int64_t> bytes;
  for (auto t : {QuantType::int8, QuantType::int4, QuantType::nf4}) {
    const auto m = models::WhisperModel::load(dir, options(t));
    bytes[quant::to_string(t)] = m->weight_bytes();
    BOOST_TEST_MESSAGE(quant::to_string(t) << ": " << m->weight_bytes() << " bytes (fp16 " << fp16 << ")");
  }
  BOOST_TEST(bytes["int8"] == expect_int8);
  BOOST_TEST(bytes["int4"] == expect_4bit_g64);
  BOOST_TEST(bytes["nf4"] == expect_4bit_g64);
  // With the token embedding (the largest matrix) quantized too.
  const auto all = models::WhisperModel::load(dir, options(QuantType::int8, true));
  BOOST_TEST(all->weight_bytes() == expect_int8 - d.n_vocab * dm * 2 + d.n_vocab * dm + d.n_vocab * 4);
  // Bad options are refused before anything is loaded.
  quant::QuantOptions bad = options(QuantType::int4);
  bad.group_size = 48;
  BOOST_CHECK_THROW(models::WhisperModel::load(dir, bad), ValueError);
}

BOOST_AUTO_TEST_CASE(tiny_en_quantized_logits_stay_close_to_float) {
  configure_runtime(0);
  const auto dir = peft_test::require_model_file("whisper-tiny.en");
  const auto none = models::WhisperModel::load(dir);
  const at::Tensor mel = librivox_mel(static_cast<int>(none->dims().n_mels));
  const at::Tensor ref = first_logits(*none, mel);
  // Measured: int8 0.016, int8 with the embedding 0.029, int4 0.27, nf4 0.36. NF4 has the
  // smaller weight error (test_quant_linear) but its widest gaps are at the group maxima,
  // the weights that matter most; tiny.en's 4 + 4 layers amplify either.
  for (auto [t, emb, bound] :
       {std::tuple{QuantType::int8, false, 0.03}, std::tuple{QuantType::int8, true, 0.03},
        std::tuple{QuantType::int4, false, 0.35}, std::tuple{QuantType::nf4, false, 0.45}}) {
    const auto m = models::WhisperModel::load(dir, options(t, emb));
    const double err = rel_error(first_logits(*m, mel), ref);
    BOOST_TEST_MESSAGE(quant::to_string(t) << (emb ? " +embeddings" : "") << ": logits rel error " << err);
    BOOST_TEST(err < bound);
  }
}

BOOST_AUTO_TEST_CASE(tiny_en_int8_wer_within_half_a_point_of_fp32) {
  configure_runtime(0);
  const auto dir = peft_test::require_model_file("whisper-tiny.en");
  const auto none = models::WhisperModel::load(dir);
  text::WhisperTokenizer tokenizer(dir / "tokenizer.json", none->dims().n_vocab);
  const double wer_none = librivox_wer(*none, tokenizer);
  const double wer_int8 = librivox_wer(*models::WhisperModel::load(dir, options(QuantType::int8)), tokenizer);
  BOOST_TEST_MESSAGE("LibriVox WER: fp16 weights " << wer_none * 100 << "%, int8 " << wer_int8 * 100 << "%");
  BOOST_TEST(wer_int8 <= wer_none + 0.005);
}
