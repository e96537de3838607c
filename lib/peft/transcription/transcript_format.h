// Writing transcripts: plain text, SubRip (.srt, as GStreamer's subparse reads it),
// WebVTT and JSON. Torch-free; the CLI and the pipelines share it.
#pragma once

#include <string>
#include <vector>

#include "peft/transcription/whisper_decoding.h"

namespace peft::transcription {

enum class TranscriptFormat { kText, kSrt, kVtt, kJson };

// "text" | "srt" | "vtt" | "json"; throws peft::ValueError otherwise.
TranscriptFormat parse_transcript_format(const std::string& name);

// The whole transcript in `format`. Text: segment texts joined, trimmed, one line.
// SRT/VTT: one cue per segment, times "HH:MM:SS,mmm" / "HH:MM:SS.mmm". JSON: {"source",
// "segments": [{start, end, text, tokens, avg_logprob, no_speech_prob, temperature,
// compression_ratio}], "text"}, plus "language" and "language_probability" when `info`
// is given. With word timestamps (some segment has words), every segment also has
// "words": [{start, end, word, probability}].
std::string format_transcript(const std::vector<Segment>& segments, TranscriptFormat format,
                              const std::string& source = "", const TranscriptionInfo* info = nullptr);

// "HH:MM:SS<sep>mmm" with milliseconds rounded; negative times clamp to 0.
std::string format_timestamp(double seconds, char millis_separator);

}  // namespace peft::transcription
