#include "peft/transcription/vad_transcription.h"

namespace peft::transcription {

std::vector<Segment> transcribe_speech(const models::WhisperModel& model,
                                       const text::WhisperTokenizer& tokenizer, audio::SileroVad& vad,
                                       const std::vector<float>& samples, const DecodingOptions& options,
                                       const audio::VadOptions& vad_options, TranscriptionInfo* info) {
  const auto speech = vad.speech_timestamps(samples, vad_options);
  if (speech.empty()) return transcribe(model, tokenizer, {}, options, info);  // fills info only
  const audio::SpeechChunks chunks = audio::collect_speech_chunks(samples, speech);
  std::vector<Segment> segments = transcribe(model, tokenizer, chunks.audio, options, info);
  for (Segment& s : segments) {
    if (s.words.empty()) {
      s.start = chunks.to_original(s.start);
      s.end = chunks.to_original(s.end, /*is_end=*/true);
      continue;
    }
    // As faster-whisper: both ends of a word move with the chunk its middle is in, and
    // the segment spans its words.
    for (Word& w : s.words) {
      const double middle = (w.start + w.end) / 2;
      const double shift = chunks.to_original(middle) - middle;
      w.start += shift;
      w.end += shift;
    }
    s.start = s.words.front().start;
    s.end = s.words.back().end;
  }
  return segments;
}

}  // namespace peft::transcription
