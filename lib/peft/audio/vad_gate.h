// Silence removal for live audio: Silero VAD's speech probability of every 32 ms chunk
// decides which audio reaches the recognizer, and the rest is replaced by zeros, so the
// timeline is kept (sample k out is sample k in) while silence and noise, which Whisper
// tends to "hear" words in, become digital silence, which StreamingTranscriber does not
// decode at all.
//
// A chunk is speech from the first probability >= threshold until the probability has
// stayed below neg_threshold for min_silence_ms (silero's hysteresis); audio within
// pad_ms of speech is kept too, so word onsets and endings are not clipped. Keeping the
// padding before speech needs to see pad_ms ahead: the output lags the input by up to
// pad_ms + 32 ms (whole chunks are released once the chunks pad_ms after them are
// classified). finish() releases the rest at the end of a stream.
//
//   VadGate gate(SileroVad::load(path), options);
//   for (chunk : stream) transcriber.push(gate.process(chunk));
//   transcriber.push(gate.finish());
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <vector>

#include "peft/audio/vad.h"

namespace peft::audio {

struct VadGateOptions {
  double threshold = 0.5;  // a chunk with probability >= threshold starts speech
  // Speech continues while the probability stays at or above this; unset:
  // max(threshold - 0.15, 0.01), as silero does.
  std::optional<double> neg_threshold;
  int min_silence_ms = 500;  // below neg_threshold this long ends speech
  int pad_ms = 256;          // audio kept on both sides of speech (also the output's lag)
  // Throws peft::ValueError naming the first option out of range.
  void validate() const;
};

class VadGate {
 public:
  // Throws peft::ValueError for invalid options.
  VadGate(SileroVad vad, VadGateOptions options = {});

  // Appends 16 kHz mono samples; returns the samples now decided, in order: the input's
  // own where speech is near, zeros elsewhere. A non-finite sample throws
  // peft::ValueError (from SileroVad::feed) and nothing of the call is consumed.
  std::vector<float> process(const float* samples, size_t n);
  std::vector<float> process(const std::vector<float>& s) { return process(s.data(), s.size()); }
  // End of stream: everything still held, then a fresh state for the next stream.
  std::vector<float> finish();
  // Drops what is held and the VAD's state (after a flush).
  void reset();

  // Samples fed but not yet returned.
  size_t pending() const { return samples_.size(); }
  // Samples returned as audio (not zeroed) and in all, since construction.
  int64_t kept_samples() const { return kept_; }
  int64_t released_samples() const { return released_; }

 private:
  void classify(const std::vector<float>& probabilities);
  void release(std::vector<float>& out, bool all);

  SileroVad vad_;
  VadGateOptions options_;
  double neg_threshold_ = 0;
  int64_t pad_chunks_ = 0, min_silence_chunks_ = 0;

  std::deque<float> samples_;  // fed, not yet released (starts at chunk released_chunks_)
  std::deque<bool> speech_;    // speech state of chunks from first_state_ on
  int64_t first_state_ = 0;    // chunk index of speech_[0]
  int64_t classified_ = 0;     // chunks with a speech state
  int64_t released_chunks_ = 0;
  bool triggered_ = false;
  int64_t silent_run_ = 0;  // chunks below neg_threshold while triggered
  int64_t kept_ = 0, released_ = 0;
};

}  // namespace peft::audio
