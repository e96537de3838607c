// Word and segment times moved onto the speech a voice activity detector found: our
// addition to Whisper's timing, not in openai's or faster-whisper's code.
//
// Why: with word timestamps, Whisper's segments start and end on their first and last
// word, but the cross-attention alignment stretches a segment's last word into the
// silence after it (on the 10-minute test of tests/transcription/test_whisper_long_audio.cpp,
// greedy tiny.en as faster-whisper 1.2.1: ends a median 0.95 s late, up to 4 s; 26 of
// 80 utterances within 0.5 s), and now and then places a word, with zero length,
// seconds into a silence. The speech a VAD finds is more precise than that: moved onto
// it, all 80 are within 0.5 s (largest error 0.35 s).
//
// The rule, per word in order:
//   - a word that overlaps speech is clipped to the speech it overlaps (from the start of
//     the first span it touches to the end of the last);
//   - a word wholly in a silence moves to the edge of that silence: the first word of a
//     segment forward, to where the speech after it starts (the segment's speech comes
//     after it), any other word back, to where the speech before it ends (it follows a
//     word of that speech);
//   - times never go backwards: a word starts no earlier than the word (or segment)
//     before it ended.
// A segment with words then starts at its first word's start and ends at its last
// word's end; one without words is clipped to the speech it overlaps, as a word is,
// and left where it is when it overlaps none.
//
//   auto speech = vad.speech_timestamps(samples, peft::transcription::snapping_vad_options());
//   peft::transcription::snap_to_speech(segments, speech);
#pragma once

#include <vector>

#include "peft/audio/vad.h"
#include "peft/transcription/whisper_decoding.h"

namespace peft::transcription {

// VAD settings for snapping: silero's own defaults for the boundaries (30 ms padding,
// 100 ms of silence ends speech), not the long ones the VAD filter uses to cut audio
// (400 ms, 2 s): boundaries within tens of milliseconds of the speech, which is what
// the times are moved onto (the 10-minute test's largest error with these: 0.35 s).
audio::VadOptions snapping_vad_options();

// `speech`: sorted, non-overlapping spans in samples of `sample_rate` audio, on the same
// timeline as the segments (as SileroVad::speech_timestamps returns them). No speech:
// the segments are left as they are. Throws peft::ValueError for unsorted or
// overlapping spans.
void snap_to_speech(std::vector<Segment>& segments, const std::vector<audio::SpeechTimestamp>& speech,
                    int sample_rate = audio::kVadSampleRate);

}  // namespace peft::transcription
