// Batched offline transcription, re-deriving faster-whisper 1.2.1's
// BatchedInferencePipeline: Silero VAD cuts the speech into pieces of at most 30 s,
// consecutive pieces are joined into chunks of at most 30 s, and the chunks are decoded
// `batch_size` at a time, independently (no previous text, no seeking): one encoder call
// and one decoder call per step for the whole batch, so each step reads the weights
// once for all chunks. Faster than transcribe() on long files; the price is that a
// chunk never sees the text before it.
//
// As faster-whisper's pipeline: one temperature (the first of options.temperatures, no
// fallback), segments split at timestamp pairs with an
// unfinished last segment dropped (there is no seek to redo it), times mapped back from
// the joined speech to the original timeline. Unlike it: audio without speech gives no
// segments (faster-whisper decodes an empty window), and empty-text segments are dropped.
//
//   auto vad = audio::SileroVad::load("models/default/silero-vad/silero_vad.jit");
//   auto segments = transcription::transcribe_batched(*model, tokenizer, vad, samples, options);
#pragma once

#include <optional>
#include <vector>

#include "peft/audio/vad.h"
#include "peft/transcription/whisper_decoding.h"

namespace peft::transcription {

struct BatchedOptions {
  int batch_size = 8;  // chunks decoded together
  // VAD parameters; unset: faster-whisper's for this mode (its VadOptions with
  // min_silence_duration_ms 160: min_speech_duration_ms 0, split at the last pause).
  // max_speech_duration_s is always 30 (the chunk length).
  std::optional<audio::VadOptions> vad;
};

// `samples` at 16 kHz. Throws peft::ValueError for NaN/Inf samples (naming the index) and
// options out of range. A multilingual model without options.language detects it once,
// on the joined speech (faster-whisper: on the chunks' features joined), for all chunks;
// `info`, when given, receives the language.
std::vector<Segment> transcribe_batched(const models::WhisperModel& model,
                                        const text::WhisperTokenizer& tokenizer, audio::SileroVad& vad,
                                        const std::vector<float>& samples,
                                        const DecodingOptions& options = {},
                                        const BatchedOptions& batched = {},
                                        TranscriptionInfo* info = nullptr);

}  // namespace peft::transcription
