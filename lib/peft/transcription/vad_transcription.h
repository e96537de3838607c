// Transcription of speech only: Silero VAD finds the speech, the speech chunks are
// joined into one shorter signal and transcribed, and segment times are mapped back
// onto the original timeline (faster-whisper's vad_filter). Silence and noise never
// reach the decoder, so they cannot turn into hallucinated text.
#pragma once

#include <vector>

#include "peft/audio/vad.h"
#include "peft/transcription/whisper_decoding.h"

namespace peft::transcription {

// `samples` at 16 kHz. No speech found: no segments (the model is not run). A language
// to detect is detected on the speech, as faster-whisper's vad_filter does.
std::vector<Segment> transcribe_speech(const models::WhisperModel& model,
                                       const text::WhisperTokenizer& tokenizer, audio::SileroVad& vad,
                                       const std::vector<float>& samples, const DecodingOptions& options = {},
                                       const audio::VadOptions& vad_options = {},
                                       TranscriptionInfo* info = nullptr);

}  // namespace peft::transcription
