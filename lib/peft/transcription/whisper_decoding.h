// Long-form Whisper transcription, re-deriving faster-whisper 1.2.1's generate_segments
// (transcribe.py) over our WhisperModel and CTranslate2-equivalent searches (search.h),
// so the same model files and options give the same tokens:
//
//   - features: log-mel of the whole audio plus 160 zero samples, floored at the whole
//     file's max - 8 (computed window by window, see windowed_mel.h);
//   - windows of 3000 frames from `seek`; the last is zero-padded;
//   - prompt: <|startofprev|> + up to 223 previous tokens (since the last reset) +
//     the sot sequence (+ <|notimestamps|>);
//   - per window, temperatures tried in order until the gzip compression ratio and the
//     average logprob pass (or the window counts as silent); all failing, the best
//     average logprob among those under the ratio threshold wins;
//   - segments cut at consecutive timestamp pairs; seek moves to the last timestamp, or
//     by the whole window after a single timestamp at the end or without timestamps;
//   - a window whose no-speech probability is over the threshold and whose logprob is
//     low is skipped;
//   - with word_timestamps, each window's segments get words (word_timestamps.h), their
//     start/end move to the first/last word, and unless the window ended on a single
//     timestamp the next window starts at the last word's end (when that is inside
//     this window) rather than at the last timestamp.
//
// A multilingual model given no language first detects it (language_detection.h) on the
// audio's first window(s), as faster-whisper does.
//
//   TranscriptionInfo info;
//   auto segments = peft::transcription::transcribe(*model, tokenizer, samples, options, &info);
//   info.language, info.language_probability
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "peft/transcription/decoding_options.h"
#include "peft/transcription/language_detection.h"
#include "peft/transcription/word_timestamps.h"

namespace peft::models {
class WhisperModel;
}
namespace peft::text {
class WhisperTokenizer;
}

namespace peft::transcription {

struct Segment {
  int64_t seek = 0;             // window start, in 10 ms frames
  double start = 0, end = 0;    // seconds
  std::string text;             // decoded tokens (leading space kept, as faster-whisper)
  std::vector<int64_t> tokens;  // including the timestamp tokens
  double avg_logprob = 0;       // of the whole window's decode
  double no_speech_prob = 0;
  float temperature = 0;  // of the decode that was kept
  double compression_ratio = 0;
  std::vector<Word> words;  // with DecodingOptions.word_timestamps (start/end are then the words')
};

// faster-whisper's TranscriptionInfo, language part.
struct TranscriptionInfo {
  std::string language;            // the language decoded: given, detected, or "en" (English-only model)
  float language_probability = 1;  // of the detected language; 1 when it was not detected
  std::vector<LanguageProbability> all_language_probs;  // when detected, highest first
};

// `samples`: 16 kHz mono in [-1, 1]. No samples: no segments. Throws peft::ValueError
// for a NaN or infinite sample (naming its index) and for options out of range. `info`,
// when given, receives the language (detected or not).
std::vector<Segment> transcribe(const models::WhisperModel& model, const text::WhisperTokenizer& tokenizer,
                                const std::vector<float>& samples, const DecodingOptions& options = {},
                                TranscriptionInfo* info = nullptr);

// gzip (zlib level 6) compression ratio of `text`'s UTF-8 bytes, as faster-whisper computes it.
double compression_ratio(const std::string& text);

// faster-whisper's get_suppressed_tokens: -1 expands to the non-speech tokens, then the
// task and special tokens are added; an empty list suppresses nothing. Sorted, unique.
std::vector<int64_t> suppressed_tokens(const text::WhisperTokenizer& tokenizer,
                                       const std::vector<int64_t>& requested);

}  // namespace peft::transcription
