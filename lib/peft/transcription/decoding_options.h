// Options of Whisper's long-form transcription, named and defaulted as faster-whisper
// 1.2.1's WhisperModel.transcribe (which drives CTranslate2's generate). Options of
// faster-whisper left out here: prefix, hotwords, clip timestamps, hallucination
// silence threshold, VAD, multilingual re-detection per window, repetition penalties
// (their defaults are no-ops). As in faster-whisper, no language means: detect it (multilingual models).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace peft::adapters {
class BoundAdapter;
}

namespace peft::transcription {

struct DecodingOptions {
  int beam_size = 5;            // beams at temperature 0 (1: greedy)
  float patience = 1.0f;        // beam search stops after round(beam_size * patience) hypotheses
  float length_penalty = 1.0f;  // hypothesis score = cumulative logprob / length^length_penalty
  int best_of = 5;              // samples drawn per window at temperature > 0
  std::vector<float> temperatures = {0.0f, 0.2f, 0.4f, 0.6f, 0.8f, 1.0f};  // fallback order
  std::optional<float> compression_ratio_threshold = 2.4f;                 // gzip ratio above: fall back
  std::optional<float> log_prob_threshold = -1.0f;                         // avg logprob below: fall back
  std::optional<float> no_speech_threshold = 0.6f;                         // with low logprob: silent window
  bool condition_on_previous_text = true;
  float prompt_reset_on_temperature = 0.5f;     // a window decoded hotter than this resets the prompt
  std::string initial_prompt;                   // text before the first window ("": none)
  std::vector<int64_t> initial_prompt_tokens;   // the same as token ids; used instead when not empty
  bool suppress_blank = true;                   // no " " or <|endoftext|> as the first token
  std::vector<int64_t> suppress_tokens = {-1};  // -1 expands to the tokenizer's non-speech tokens
  bool without_timestamps = false;
  float max_initial_timestamp = 1.0f;         // seconds: the first timestamp cannot be later
  std::string language;                       // multilingual models: "" detects it on the first window(s)
  std::string task = "transcribe";            // or "translate" (into English)
  float language_detection_threshold = 0.5f;  // a window's top language above this is taken
  int language_detection_segments = 1;        // windows examined at most (language_detection.h)
  std::optional<int> max_new_tokens;          // per window; default: CTranslate2's max_length / 2
  uint64_t seed = 0;                          // sampling at temperature > 0
  // A LoRA / AdaLoRA adapter bound to the model (WhisperModel::bind), or none: applied to
  // every window's encoding and decoding. Shared, so options can be copied freely.
  std::shared_ptr<const adapters::BoundAdapter> adapter;

  // Word-level timestamps (word_timestamps.h): Segment.words, and segment times taken
  // from the first/last word (much closer to the speech than Whisper's timestamps).
  bool word_timestamps = false;
  // Punctuation merged into the next word ("'“¿([{-) and into the previous one
  // ("'.。,，!！?？:：”)]}、), faster-whisper's defaults.
  std::string prepend_punctuations = "\"'\u201c\u00bf([{-";
  std::string append_punctuations = "\"'.\u3002,\uff0c!\uff01?\uff1f:\uff1a\u201d)]}\u3001";

  // Throws peft::ValueError naming the first option out of range.
  void validate() const;
};

}  // namespace peft::transcription
