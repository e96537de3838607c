#include "peft/decoding/vad_transcription.h"

namespace peft::decoding {

std::vector<Segment> transcribe_speech(const models::WhisperModel& model,
                                       const text::WhisperTokenizer& tokenizer, audio::SileroVad& vad,
                                       const std::vector<float>& samples, const DecodingOptions& options,
                                       const audio::VadOptions& vad_options, TranscriptionInfo* info) {
  const auto speech = vad.speech_timestamps(samples, vad_options);
  if (speech.empty()) return transcribe(model, tokenizer, {}, options, info);  // fills info only
  const audio::SpeechChunks chunks = audio::collect_speech_chunks(samples, speech);
  std::vector<Segment> segments = transcribe(model, tokenizer, chunks.audio, options, info);
  for (Segment& s : segments) {
    s.start = chunks.to_original(s.start);
    s.end = chunks.to_original(s.end, /*is_end=*/true);
  }
  return segments;
}

}  // namespace peft::decoding
