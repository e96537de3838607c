// Whisper tiny.en per quantization mode: weight bytes, time per 30 s window (encode; a
// fixed decode of 100 steps x 5 rows, the shape of beam 5 over a window's ~100 tokens;
// and transcribe() of 30 s of speech with the default options, which depends on the text
// each mode produces: fallbacks, length), and WER on the ten utterances of
// Debian's pocketsphinx-testdata (5 LibriVox, 5 cards), both sides through Whisper's
// English normalizer. Not a test: run by hand,
//   build/tests/bench_quant_whisper [threads (default 2)] [model dir] [modes, e.g. none,int8]
// (PEFT_INT8_ONEDNN=1 puts int8's many-rows products on ONEDNN, see int8_weight.cpp.)
// The last column is the process's peak RSS so far: run one mode per process for each
// mode's own (docs/BENCHMARKS.md loops over the modes).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "bench_timing.h"
#include "peft/audio/log_mel.h"
#include "peft/audio/wav.h"
#include "peft/metrics/english_normalizer.h"
#include "peft/metrics/wer.h"
#include "peft/models/whisper.h"
#include "peft/runtime.h"
#include "peft/text/whisper_tokenizer.h"
#include "peft/transcription/whisper_decoding.h"
#include "pocketsphinx_testdata.h"

using namespace peft;

namespace {

struct Utterance {
  std::string reference;
  std::vector<float> samples;
};

std::vector<Utterance> read_set(const std::string& set) {
  std::vector<Utterance> out;
  for (const auto& u : peft_test::pocketsphinx_utterances(set))
    out.push_back({u.reference, audio::read_wav(u.wav).samples});
  return out;
}

double wer(const models::WhisperModel& model, const text::WhisperTokenizer& tok,
           const std::vector<Utterance>& set) {
  std::vector<std::string> refs, hyps;
  for (const auto& u : set) {
    std::string text;
    for (const auto& s : transcription::transcribe(model, tok, u.samples)) text += s.text;
    refs.push_back(metrics::normalize_english(u.reference));
    hyps.push_back(metrics::normalize_english(text));
  }
  return metrics::corpus_wer(refs, hyps).wer * 100;
}

}  // namespace

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : 2;
  const std::string dir = argc > 2 ? argv[2] : "models/default/whisper-tiny.en";
  configure_runtime(threads);
  const auto librivox = read_set("librivox");
  const auto cards = read_set("cards");
  // A 30 s window of speech: the LibriVox utterances back to back, cut at 30 s.
  std::vector<float> window;
  for (const auto& u : librivox) window.insert(window.end(), u.samples.begin(), u.samples.end());
  window.resize(16000 * 30, 0.0f);
  std::printf("threads %d, model %s, %zu LibriVox + %zu cards utterances\n", at::get_num_threads(),
              dir.c_str(), librivox.size(), cards.size());
  std::printf(
      "| mode | weight bytes | encode 30 s (ms) | decode 100 steps x 5 rows (ms) | transcribe 30 s, beam 5 "
      "(ms) | WER LibriVox (%%) | WER cards (%%) | peak RSS (MiB) |\n");
  std::printf("|---|---|---|---|---|---|---|---|\n");
  const std::string only = argc > 3 ? std::string(",") + argv[3] + "," : "";
  for (const char* mode : {"none", "int8", "int4", "nf4", "nf4-dq", "int8+emb"}) {
    quant::QuantOptions o;
    const std::string m = mode;
    if (!only.empty() && only.find("," + m + ",") == std::string::npos) continue;
    o.type = quant::parse_quant_type(m == "nf4-dq" ? "nf4" : m == "int8+emb" ? "int8" : m);
    o.double_quant = m == "nf4-dq";
    o.quantize_embeddings = m == "int8+emb";
    const auto model = models::WhisperModel::load(dir, o);
    text::WhisperTokenizer tok(std::string(dir) + "/tokenizer.json", model->dims().n_vocab);
    const at::Tensor mel = audio::log_mel_spectrogram(
        at::from_blob(window.data(), {1, static_cast<int64_t>(window.size())}).clone(),
        static_cast<int>(model->dims().n_mels));
    model->encode(mel);  // warm up
    const double enc = peft_test::median_ms([&] { model->encode(mel); }, 5);
    const at::Tensor features = model->encode(mel);
    const double dec = peft_test::median_ms(
        [&] {
          models::WhisperKVCache cache = model->start(features);
          at::Tensor tokens = at::full({5, 1}, 50257, at::TensorOptions().dtype(at::kLong));
          for (int step = 0; step < 100; ++step) tokens = model->decode(tokens, cache).argmax(-1);
        },
        3);
    std::string text;
    const double full = peft_test::median_ms(
        [&] {
          text.clear();
          for (const auto& s : transcription::transcribe(*model, tok, window)) text += s.text;
        },
        3);
    const double wer_librivox = wer(*model, tok, librivox), wer_cards = wer(*model, tok, cards);
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    std::printf("| %s | %lld | %.0f | %.0f | %.0f | %.1f | %.1f | %ld |\n", mode,
                static_cast<long long>(model->weight_bytes()), enc, dec, full, wer_librivox, wer_cards,
                usage.ru_maxrss / 1024);
    std::fflush(stdout);
  }
  return 0;
}
