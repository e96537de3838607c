// Live Whisper transcription of audio that arrives in pieces, by local agreement
// (LocalAgreement-2 of Macháček et al., "Turning Whisper into Real-Time Transcription
// System", 2023), at the granularity Whisper's timestamp tokens give: segments.
//
//   StreamingTranscriber stream(model, tokenizer, options);
//   for (const auto& chunk : audio_chunks) {        // any sizes, 16 kHz mono float
//     StreamUpdate u = stream.push(chunk.data(), chunk.size());
//     emit(u.committed);                            // final: never revised
//     show(u.partial);                              // replaces the previous partial
//   }
//   emit(stream.finish().committed);                // end of stream: the rest
//
// How it works. The audio not yet committed is kept in a buffer (at most one 30 s
// Whisper window). Every `step_seconds` of new audio, the buffer is transcribed with
// transcribe() (whisper_decoding.h), its prompt being the tail of the committed text,
// so the model continues what was already said. The leading segments of a decode whose
// text tokens lie inside the longest common token prefix of this decode and the
// previous one (two decodes of growing audio agree) are committed, in order. Agreement
// is checked on the token sequence rather than segment by segment so that two decodes
// that cut the same words into segments differently still agree; the cut itself is
// always a segment boundary of this decode, the only places where Whisper tells us a
// time. A whole segment must agree, closing punctuation included, so a word cut by
// the end of the buffer rarely does. (Requiring also that the segment end before the
// previous decode's audio did was tried: Whisper ends the last segment at the end of
// the audio when the speaker pauses, so every sentence waited for the next one.) The
// buffer is then trimmed at the last committed segment's end, where the next decode
// starts.
//
// Bounded latency. Decodes happen when the stream reaches step, 2 step, 3 step, ...
// seconds of audio since the last reset, however the audio is cut into pushes (so the
// result does not depend on the chunking). After each decode at most
// max_latency_seconds of audio stays uncommitted: when more would, the latest decode's
// segments that start in the older audio are committed as they are (in order, even one
// that runs to the end of the buffer), and the rest of that audio, which has no text,
// is dropped. Hence:
//
//   every sample at stream time t is decided (inside a committed segment, or dropped as
//   having no text) by the decode at stream time t + max_latency_seconds + step_seconds
//   at the latest, i.e. in the push() that feeds audio past that time.
//
// Forced commits come from a single decode and may split a word at the buffer's end;
// a larger max_latency_seconds makes them rarer.
//
// Silence. Whisper's no-speech test (DecodingOptions::no_speech_threshold) makes silent
// audio decode to nothing, and digital silence (every sample under 2^-13) is not decoded
// at all. When two decodes in a row find no text, the buffer is trimmed to its last
// 0.5 s, so a pause neither waits for the latency bound nor starts the next decode with
// seconds of silence: Whisper's first timestamp is at most max_initial_timestamp (1 s)
// into the window, so speech starting later would get an early start time.
//
// Repetition loops. A decode whose compression ratio exceeds
// DecodingOptions::compression_ratio_threshold (faster-whisper's test for a loop) is
// redone without the committed-text prompt, which is dropped (Whisper copying its prompt
// is how loops start and then feed themselves); if it still loops, it gives no text.
// Committed text decoded at a temperature above prompt_reset_on_temperature also drops
// the prompt, as transcribe() does between windows.
//
// Times are stream seconds: timeline_offset (see reset()) + samples since the reset /
// 16000. They are Whisper's segment timestamps, clamped to the audio fed: coarse (see
// tests/transcription/test_whisper_long_audio.cpp), a segment often ending where the next
// speech starts. Segment::seek is the decode window's first frame on that stream (10 ms frames
// since the reset); Segment::tokens holds the text tokens only (the timestamp tokens
// are relative to a decode window, meaningless here); avg_logprob, no_speech_prob,
// temperature and compression_ratio are those of the decode the segment came from.
//
// Cost. push() runs its decodes before returning. Each is one transcribe() of the
// buffer: the encoder on a whole 30 s window plus the decoder on the buffer's tokens
// (more with temperature fallback: DecodingOptions::temperatures = {0} bounds it), so
// live use needs step_seconds above the time of one decode.
//
// One instance per stream, not to be shared between threads; the model and tokenizer
// may be shared by any number of streams.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "peft/transcription/decoding_options.h"
#include "peft/transcription/whisper_decoding.h"

namespace peft::transcription {

struct StreamingOptions {
  // Options of every decode. initial_prompt / initial_prompt_tokens condition the
  // decodes only until text has been committed; then the committed text does (unless
  // condition_on_previous_text is false: no conditioning at all).
  DecodingOptions decoding;
  double step_seconds = 1.0;          // decode again after this much new audio
  double max_latency_seconds = 10.0;  // uncommitted audio after a decode, at most
  // Throws peft::ValueError naming the first option out of range: step and latency
  // must be > 0 and together at most 30 s (the buffer must fit one Whisper window).
  void validate() const;

  // Options under which every sample is decided within `latency_seconds` of stream time
  // (step + max_latency = latency, with a step of min(1 s, latency / 4)): what the
  // whisperasr element's `latency` property and peft-transcribe's --stream-latency mean.
  static StreamingOptions with_latency(double latency_seconds, DecodingOptions decoding = {});
};

struct StreamUpdate {
  std::vector<Segment> committed;  // newly committed: follow every earlier committed one
  std::vector<Segment> partial;    // the latest decode's uncommitted segments
  int decodes = 0;                 // decode steps run by this call (0: partial is unchanged)
};

class StreamingTranscriber {
 public:
  static constexpr int kSampleRate = 16000;

  // Throws peft::ValueError for invalid options (StreamingOptions::validate and
  // DecodingOptions::validate).
  StreamingTranscriber(std::shared_ptr<const models::WhisperModel> model,
                       std::shared_ptr<const text::WhisperTokenizer> tokenizer,
                       StreamingOptions options = {});

  // How push() spends decodes on audio that crosses several step boundaries at once.
  enum class PushMode {
    every_step,  // a decode at every boundary: results independent of the chunking
    // One decode, at the last boundary (or earlier ones only where the buffer would
    // otherwise outgrow one 30 s window): for a caller that fell behind real time and
    // pushes its backlog, which costs one decode instead of one per step. The latency
    // bound then holds from that decode on; commits need two decodes as always.
    catch_up,
  };

  // Appends 16 kHz mono samples and runs the decodes they complete. No samples: an
  // update with nothing committed and the current partial. A NaN or infinite sample
  // throws peft::ValueError naming its index and time on the stream, and nothing of
  // that call is consumed. After finish(), throws peft::Error until reset().
  StreamUpdate push(const float* samples, size_t n, PushMode mode = PushMode::every_step);
  StreamUpdate push(const std::vector<float>& samples, PushMode mode = PushMode::every_step) {
    return push(samples.data(), samples.size(), mode);
  }

  // End of stream: decodes what is still uncommitted (unless the last decode already
  // saw all of it) and commits all of it; partial is empty. Calling it again returns
  // an empty update.
  StreamUpdate finish();

  // Starts a new stream at `timeline_offset` seconds: uncommitted audio, the partial
  // hypothesis and the committed-text prompt are dropped (call finish() first to keep
  // them). E.g. after a flush: reset(new_segment_time); to continue the same timeline
  // after finish(): reset(position()).
  void reset(double timeline_offset = 0.0);

  // The adapter of the following decodes (null: none): a live adapter swap. Segments
  // already committed stay as they were.
  void set_adapter(std::shared_ptr<const adapters::BoundAdapter> adapter);

  double position() const;             // stream time of the next sample to be pushed
  double uncommitted_seconds() const;  // audio held in the buffer
  bool finished() const { return finished_; }
  const std::vector<Segment>& partial() const { return partial_; }
  // The language of the latest decode (given, detected, or "en" for English-only
  // models); "" before the first.
  const std::string& language() const { return language_; }
  const StreamingOptions& options() const { return options_; }

 private:
  // A decoded segment with its span in stream samples (segment has the timeline times).
  struct Piece {
    Segment segment;
    int64_t start = 0, end = 0;
  };
  void decode(StreamUpdate& update);
  std::vector<Piece> transcribe_buffer();
  // A decode whose compression ratio exceeds the threshold: a repetition loop.
  bool loops(const std::vector<Segment>& segments) const;
  void commit(const std::vector<Piece>& pieces, size_t count, StreamUpdate& update);
  void trim_to(int64_t sample);
  void set_partial(std::vector<Piece> pieces);

  std::shared_ptr<const models::WhisperModel> model_;
  std::shared_ptr<const text::WhisperTokenizer> tokenizer_;
  StreamingOptions options_;
  int64_t step_samples_ = 0;
  int64_t latency_samples_ = 0;
  int64_t window_samples_ = 0;

  double offset_ = 0;             // timeline time of stream sample 0
  int64_t fed_ = 0;               // samples pushed since the reset
  int64_t buffer_start_ = 0;      // stream sample of buffer_[0]
  std::vector<float> buffer_;     // uncommitted audio
  int64_t since_decode_ = 0;      // samples pushed since the last decode
  int64_t last_decode_end_ = -1;  // fed_ at the last decode; -1: none since the reset
  std::vector<Piece> previous_;   // the last decode's uncommitted segments
  std::vector<Segment> partial_;  // the same, as reported
  std::vector<int64_t> prompt_;   // tail of the committed text tokens
  bool finished_ = false;
  std::string language_;
};

}  // namespace peft::transcription
