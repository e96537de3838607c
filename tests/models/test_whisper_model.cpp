// Whisper tiny.en (CTranslate2 fp16 files) through our encoder/decoder.
#define BOOST_TEST_MODULE whisper_model
#include <ATen/ATen.h>

#include "peft/audio/log_mel.h"
#include "peft/audio/wav.h"
#include "peft/models/whisper.h"
#include "peft/runtime.h"
#include "test_support.h"

using namespace peft;

// Greedy decoding with our encoder, decoder and KV cache reproduces the reference's text tokens.
BOOST_AUTO_TEST_CASE(greedy_decode_matches_reference_tokens) {
  configure_runtime(0);
  auto model = models::WhisperModel::load(peft_test::require_model_file("whisper-tiny.en"));
  auto wav = audio::read_wav("/usr/share/pocketsphinx/test/data/librivox/sense_and_sensibility_01_austen_64kb-0880.wav");
  at::Tensor samples = at::from_blob(wav.samples.data(), {(int64_t)wav.samples.size()}, at::kFloat).clone();
  at::Tensor mel = audio::log_mel_spectrogram(samples, 80, 480000);
  mel = audio::pad_or_trim(mel, 3000).unsqueeze(0);
  at::Tensor feats = model->encode(mel);
  auto cache = model->start(feats);
  std::vector<int64_t> tokens = {50257};  // sot
  at::Tensor logits = model->decode(at::tensor(tokens, at::kLong).unsqueeze(0), cache);
  std::vector<int64_t> out;
  for (int i = 0; i < 40; ++i) {
    int64_t next = logits[0][-1].argmax().item<int64_t>();
    out.push_back(next);
    if (next == 50256) break;
    logits = model->decode(at::tensor(std::vector<int64_t>{next}, at::kLong).unsqueeze(0), cache);
  }
  // faster-whisper 1.2.1 (compute_type float32, same files) gives these text tokens for
  // this utterance; its decoding starts from <|startoftranscript|> too and emits
  // <|notimestamps|>-free timestamps, so compare the text tokens only.
  const std::vector<int64_t> reference = {679, 373, 407, 281, 1468, 12, 2777, 1335, 1862, 582, 13};
  BOOST_REQUIRE_GE(out.size(), reference.size() + 2);
  BOOST_CHECK_EQUAL(out.front(), 50362);  // <|notimestamps|>: greedy prefers it from sot alone
  BOOST_CHECK_EQUAL_COLLECTIONS(out.begin() + 1, out.begin() + 1 + reference.size(), reference.begin(),
                                reference.end());
  BOOST_CHECK_EQUAL(out.back(), 50256);  // <|endoftext|>
}
