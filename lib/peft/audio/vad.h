// Voice activity detection with Silero VAD (the TorchScript model silero_vad.jit shipped in
// the silero-vad python package), and the speech-timestamp logic of that package's
// get_speech_timestamps, re-derived here. The ASR uses it to skip silence: it collects the
// speech chunks into one shorter buffer (SpeechChunks) and maps times in that buffer back
// onto the original timeline.
//
// The model reads 16 kHz mono audio in chunks of 512 samples (32 ms); before each chunk it
// prepends the last 64 samples of the previous one (zeros at the start) and carries an
// LSTM state from chunk to chunk, giving one speech probability per chunk. A last partial
// chunk is zero-padded, exactly as the python package does. Other sample rates are refused
// (resample with peft/audio/resample.h first); the python package's 8 kHz model is not
// exposed because the ASR front end works at 16 kHz.
//
// The libtorch types stay in vad.cpp: this header is torch-free.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace peft::audio {

constexpr int kVadSampleRate = 16000;
constexpr size_t kVadChunkSamples = 512;   // samples per speech probability
constexpr size_t kVadContextSamples = 64;  // samples of the previous chunk the model sees

// Parameters of get_speech_timestamps. The defaults follow faster-whisper's VadOptions where
// silero's and faster-whisper's differ on silence and padding (min silence 2000 ms instead of
// silero's 100 ms, padding 400 ms instead of 30 ms), because the VAD's use here is cutting
// long audio for the ASR, where splitting at every short pause hurts; min_speech_duration_ms
// keeps silero's 250 ms (faster-whisper's is 0).
struct VadOptions {
  double threshold = 0.5;  // a chunk with probability >= threshold is speech
  // Inside speech, a chunk stays speech until its probability drops below this; unset means
  // max(threshold - 0.15, 0.01), as both python implementations do.
  std::optional<double> neg_threshold;
  int min_speech_duration_ms = 250;  // shorter speech segments are dropped
  // Longer segments are split: at the longest pause over min_silence_at_max_speech_ms inside
  // the segment (silero 6.x), or, with split_at_longest_silence false, at the last such pause
  // (silero's use_max_poss_sil_at_max_speech=False, faster-whisper's algorithm); without
  // such a pause right before the limit.
  double max_speech_duration_s = std::numeric_limits<double>::infinity();
  int min_silence_duration_ms = 2000;  // silence needed to end a segment
  int speech_pad_ms = 400;             // added on both sides of each segment
  int min_silence_at_max_speech_ms = 98;
  bool split_at_longest_silence = true;

  // The neg_threshold in effect.
  double effective_neg_threshold() const;
  // Throws peft::ValueError naming the first option that is out of range or not finite.
  void validate() const;
};

// A speech segment, in samples of the 16 kHz audio: [start_sample, end_sample).
struct SpeechTimestamp {
  int64_t start_sample = 0;
  int64_t end_sample = 0;
  bool operator==(const SpeechTimestamp& o) const {
    return start_sample == o.start_sample && end_sample == o.end_sample;
  }
  bool operator!=(const SpeechTimestamp& o) const { return !(*this == o); }
};

// The segmentation step alone: one probability per 512-sample chunk of an audio of
// num_samples samples -> speech segments, the same as silero's
// get_speech_timestamps_from_probs on the same probabilities. Throws peft::ValueError for
// invalid options or when the probability count does not match ceil(num_samples / 512).
std::vector<SpeechTimestamp> speech_timestamps_from_probabilities(const std::vector<float>& probabilities,
                                                                  int64_t num_samples,
                                                                  const VadOptions& options = {});

// The Silero VAD model with its streaming state. Not copyable; one instance per stream,
// not to be shared between threads.
class SileroVad {
 public:
  // Loads silero_vad.jit. Throws peft::IoError when the file cannot be read,
  // peft::FormatError when it is not a TorchScript module with Silero's interface.
  static SileroVad load(const std::string& path);

  SileroVad(SileroVad&&) noexcept;
  SileroVad& operator=(SileroVad&&) noexcept;
  ~SileroVad();

  // Streaming: appends 16 kHz samples and returns the probabilities of the chunks they
  // complete (possibly none); the remainder waits for the next call, so any split of an
  // audio into pieces gives the same probabilities as the whole. A non-finite sample throws
  // peft::ValueError naming its index counted from the start of the stream, and nothing of
  // that call is consumed.
  std::vector<float> feed(const float* samples, size_t count);
  std::vector<float> feed(const std::vector<float>& samples) { return feed(samples.data(), samples.size()); }
  // Ends the stream: a pending partial chunk is zero-padded and its probability returned
  // (empty when nothing is pending), then the state is reset for a new stream.
  std::vector<float> finish();
  // Drops pending samples and the model's state.
  void reset();
  // Samples fed since the last reset (or finish).
  int64_t samples_fed() const;

  // Whole-audio helpers; both reset the stream first and leave it reset. sample_rate must
  // be 16000 (peft::ValueError otherwise).
  std::vector<float> speech_probabilities(const std::vector<float>& samples,
                                          int sample_rate = kVadSampleRate);
  std::vector<SpeechTimestamp> speech_timestamps(const std::vector<float>& samples,
                                                 const VadOptions& options = {},
                                                 int sample_rate = kVadSampleRate);

  const std::string& path() const;

 private:
  struct Impl;
  explicit SileroVad(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Speech segments of an audio concatenated into one buffer, with the map back to the
// original timeline (faster-whisper's collect_chunks + SpeechTimestampsMap idea).
struct SpeechChunks {
  std::vector<float> audio;  // the segments, back to back
  int sample_rate = kVadSampleRate;
  std::vector<SpeechTimestamp> segments;  // where each came from in the original
  std::vector<int64_t> ends_in_audio;     // where each ends in `audio` (cumulative lengths)

  // Maps a time in `audio` (seconds) to the original audio: the time plus the silence
  // removed before the segment it falls in. A time exactly on the boundary between two
  // segments belongs to the later one, unless is_end, when it is the end of the earlier
  // one. Times past the end extrapolate from the last segment. With no segments the time
  // is returned unchanged. Unlike faster-whisper, the result is not rounded.
  // Throws peft::ValueError for a negative or non-finite time.
  double to_original(double t, bool is_end = false) const;
};

// Copies the segments of `samples` into a SpeechChunks. Throws peft::ValueError when the
// segments are not sorted, overlap, are empty or reach outside the audio.
SpeechChunks collect_speech_chunks(const std::vector<float>& samples,
                                   const std::vector<SpeechTimestamp>& segments,
                                   int sample_rate = kVadSampleRate);

}  // namespace peft::audio
