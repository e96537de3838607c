#include "peft/transcription/decoding_options.h"

#include <cmath>
#include <string>

#include "peft/error.h"
#include "peft/text/unicode.h"

namespace peft::transcription {

namespace {

[[noreturn]] void bad(const std::string& name, const std::string& value, const std::string& rule) {
  throw ValueError("DecodingOptions." + name + " = " + value + ": " + rule);
}

std::string str(double v) { return std::to_string(v); }

bool valid_utf8(const std::string& s) {
  for (size_t i = 0, len = 1; i < s.size(); i += len)
    if (text::utf8_next(s, i, len) < 0) return false;
  return true;
}

}  // namespace

void DecodingOptions::validate() const {
  if (beam_size < 1) bad("beam_size", std::to_string(beam_size), "must be >= 1");
  if (!(patience > 0) || !std::isfinite(patience)) bad("patience", str(patience), "must be > 0");
  if (!std::isfinite(length_penalty)) bad("length_penalty", str(length_penalty), "must be finite");
  if (best_of < 1) bad("best_of", std::to_string(best_of), "must be >= 1");
  if (temperatures.empty()) bad("temperatures", "[]", "needs at least one temperature");
  for (float t : temperatures)
    if (!(t >= 0) || !std::isfinite(t)) bad("temperatures", str(t), "must be finite and >= 0");
  if (compression_ratio_threshold && !std::isfinite(*compression_ratio_threshold))
    bad("compression_ratio_threshold", str(*compression_ratio_threshold), "must be finite");
  if (log_prob_threshold && !std::isfinite(*log_prob_threshold))
    bad("log_prob_threshold", str(*log_prob_threshold), "must be finite");
  if (no_speech_threshold && !(*no_speech_threshold >= 0 && *no_speech_threshold <= 1))
    bad("no_speech_threshold", str(*no_speech_threshold), "must be in [0, 1]");
  if (!std::isfinite(prompt_reset_on_temperature))
    bad("prompt_reset_on_temperature", str(prompt_reset_on_temperature), "must be finite");
  for (int64_t id : suppress_tokens)
    if (id < -1) bad("suppress_tokens", std::to_string(id), "ids must be >= 0, or -1 for the default set");
  if (!(max_initial_timestamp >= 0) || !std::isfinite(max_initial_timestamp))
    bad("max_initial_timestamp", str(max_initial_timestamp), "must be finite and >= 0");
  if (task != "transcribe" && task != "translate")
    bad("task", "\"" + task + "\"", "must be transcribe or translate");
  for (int64_t id : initial_prompt_tokens)
    if (id < 0) bad("initial_prompt_tokens", std::to_string(id), "ids must be >= 0");
  if (!(language_detection_threshold >= 0 && language_detection_threshold <= 1))
    bad("language_detection_threshold", str(language_detection_threshold), "must be in [0, 1]");
  if (language_detection_segments < 1)
    bad("language_detection_segments", std::to_string(language_detection_segments), "must be >= 1");
  if (max_new_tokens && *max_new_tokens < 1)
    bad("max_new_tokens", std::to_string(*max_new_tokens), "must be >= 1");
  // Punctuation is matched against decoded (valid UTF-8) words.
  if (!valid_utf8(prepend_punctuations)) bad("prepend_punctuations", "\"...\"", "must be valid UTF-8");
  if (!valid_utf8(append_punctuations)) bad("append_punctuations", "\"...\"", "must be valid UTF-8");
}

}  // namespace peft::transcription
