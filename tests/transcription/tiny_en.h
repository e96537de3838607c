// The default Whisper tiny.en and its tokenizer, loaded once per test process and shared
// by the decoding suites (the tests fail with a hint when models/default is missing).
#pragma once

#include <memory>

#include "peft/models/whisper.h"
#include "peft/runtime.h"
#include "peft/text/whisper_tokenizer.h"
#include "test_support.h"

namespace peft_test {

struct TinyEn {
  std::shared_ptr<const peft::models::WhisperModel> model;
  std::shared_ptr<const peft::text::WhisperTokenizer> tokenizer;
};

inline const TinyEn& tiny_en() {
  static const TinyEn t = [] {
    peft::configure_runtime(0);
    TinyEn x;
    x.model = peft::models::WhisperModel::load(require_model_file("whisper-tiny.en"));
    x.tokenizer = std::make_shared<const peft::text::WhisperTokenizer>(
        require_model_file("whisper-tiny.en/tokenizer.json"), x.model->dims().n_vocab);
    return x;
  }();
  return t;
}

}  // namespace peft_test
