// Spoken-language detection with a multilingual Whisper, as faster-whisper 1.2.1 does it
// (WhisperModel.detect_language over CTranslate2's Whisper.detect_language):
//
//   - a window's encoder output is decoded from <|startoftranscript|> alone, and the
//     logits of the language tokens (only those) go through a softmax;
//   - the windows are the first `segments` 30 s windows of the whole-file log-mel
//     (frames 0, 3000, ...; the last one zero-padded), examined in order until a
//     language's probability exceeds `threshold`; if none does, the language that came
//     first most often wins, with the highest probability it had.
//
//   DetectedLanguage d = detect_language(*model, tokenizer, mel);
//   d.language == "fr", d.probability == 0.91, d.all[0] == {"fr", 0.91}, d.all[1] ...
#pragma once

#include <string>
#include <vector>

namespace at {
class Tensor;
}
namespace peft::models {
class WhisperModel;
}
namespace peft::adapters {
class BoundAdapter;
}
namespace peft::text {
class WhisperTokenizer;
}

namespace peft::transcription {

class WindowedLogMel;

struct LanguageProbability {
  std::string language;  // code, as in the tokens: "en", "fr", "haw", "yue"
  float probability = 0;
};

struct DetectedLanguage {
  std::string language;
  float probability = 0;
  std::vector<LanguageProbability> all;  // of the last window examined, highest first
};

struct LanguageDetectionOptions {
  int segments = 1;                                 // faster-whisper's language_detection_segments
  float threshold = 0.5f;                           // faster-whisper's language_detection_threshold
  const adapters::BoundAdapter* adapter = nullptr;  // applied to encoding and decoding (or none)
};

// Every language of the tokenizer with its probability for one window, highest first
// (ties keep token order). `features`: the encoder output [1, n_audio_ctx, d]. Throws
// peft::ValueError for an English-only model. `adapter`: the one `features` were encoded with.
std::vector<LanguageProbability> language_probabilities(const models::WhisperModel& model,
                                                        const text::WhisperTokenizer& tokenizer,
                                                        const at::Tensor& features,
                                                        const adapters::BoundAdapter* adapter = nullptr);

// Over the whole-file log-mel `mel` (see windowed_mel.h). Throws peft::ValueError for an
// English-only model, options out of range, or a mel with no frames.
DetectedLanguage detect_language(const models::WhisperModel& model, const text::WhisperTokenizer& tokenizer,
                                 const WindowedLogMel& mel, const LanguageDetectionOptions& options = {});

}  // namespace peft::transcription
