#include "peft/transcription/language_detection.h"

#include <ATen/ATen.h>

#include <algorithm>

#include "peft/audio/log_mel.h"
#include "peft/error.h"
#include "peft/models/whisper.h"
#include "peft/text/whisper_tokenizer.h"
#include "peft/transcription/windowed_mel.h"

namespace peft::transcription {

std::vector<LanguageProbability> language_probabilities(const models::WhisperModel& model,
                                                        const text::WhisperTokenizer& tokenizer,
                                                        const at::Tensor& features,
                                                        const adapters::BoundAdapter* adapter) {
  if (!tokenizer.multilingual())
    throw ValueError("language detection needs a multilingual model; this one is English-only");
  const auto& codes = tokenizer.language_codes();
  std::vector<int64_t> ids;
  for (const auto& code : codes) ids.push_back(*tokenizer.language_token(code));
  auto cache = model.start(features, adapter);
  const at::Tensor logits =
      model.decode(at::tensor(std::vector<int64_t>{tokenizer.sot()}, at::kLong).view({1, 1}), cache)
          .view({-1});
  // Softmax over the language tokens alone: the other tokens do not dilute the result.
  const at::Tensor probs = at::softmax(logits.index_select(0, at::tensor(ids, at::kLong)), 0).contiguous();
  const float* p = probs.data_ptr<float>();
  std::vector<LanguageProbability> out;
  for (size_t i = 0; i < codes.size(); ++i) out.push_back({codes[i], p[i]});
  std::stable_sort(out.begin(), out.end(),
                   [](const auto& a, const auto& b) { return a.probability > b.probability; });
  return out;
}

DetectedLanguage detect_language(const models::WhisperModel& model, const text::WhisperTokenizer& tokenizer,
                                 const WindowedLogMel& mel, const LanguageDetectionOptions& options) {
  if (options.segments < 1)
    throw ValueError("language detection: segments = " + std::to_string(options.segments) + ", must be >= 1");
  if (!(options.threshold >= 0 && options.threshold <= 1))
    throw ValueError("language detection: threshold = " + std::to_string(options.threshold) +
                     ", must be in [0, 1]");
  // faster-whisper's features hold one frame more than it decodes (that of the 160
  // padding samples); detection sees it when the audio is shorter than the windows.
  const int64_t frames = std::min(mel.content_frames() + 1, options.segments * audio::kChunkFrames);
  DetectedLanguage result;
  std::vector<std::pair<std::string, std::vector<float>>> firsts;  // in order of appearance
  for (int64_t start = 0; start < frames; start += audio::kChunkFrames) {
    const int64_t count = std::min(audio::kChunkFrames, frames - start);
    at::Tensor window = at::zeros({model.dims().n_mels, audio::kChunkFrames}, at::kFloat);
    window.narrow(1, 0, count).copy_(mel.frames(start, count));
    result.all = language_probabilities(model, tokenizer, model.encode(window.unsqueeze(0), options.adapter),
                                        options.adapter);
    const LanguageProbability& top = result.all.front();
    if (top.probability > options.threshold) {
      result.language = top.language;
      result.probability = top.probability;
      return result;
    }
    auto it =
        std::find_if(firsts.begin(), firsts.end(), [&](const auto& f) { return f.first == top.language; });
    if (it == firsts.end()) it = firsts.insert(firsts.end(), {top.language, {}});
    it->second.push_back(top.probability);
  }
  if (firsts.empty()) throw ValueError("language detection: no audio");
  // Majority vote; on a tie the language seen first (Python's max over a dict).
  auto best = firsts.begin();
  for (auto it = firsts.begin(); it != firsts.end(); ++it)
    if (it->second.size() > best->second.size()) best = it;
  result.language = best->first;
  result.probability = *std::max_element(best->second.begin(), best->second.end());
  return result;
}

}  // namespace peft::transcription
