#include "peft/transcription/speech_snapping.h"

#include <algorithm>
#include <string>

#include "peft/error.h"

namespace peft::transcription {

namespace {

struct Span {
  double start, end;  // seconds
};

// Clips [start, end] to the speech it overlaps; true when it overlaps any.
bool clip(const std::vector<Span>& speech, double& start, double& end) {
  // First span ending after `start`; spans are sorted and disjoint, so their ends are too.
  auto first = std::upper_bound(speech.begin(), speech.end(), start,
                                [](double t, const Span& s) { return t < s.end; });
  // A zero-length word touching a span's start counts as inside it.
  if (first == speech.end() || first->start > end || (first->start == end && start < end)) return false;
  auto last = first;
  while (last + 1 != speech.end() && (last + 1)->start < end) ++last;
  start = std::max(start, first->start);
  end = std::min(end, last->end);
  return true;
}

}  // namespace

audio::VadOptions snapping_vad_options() {
  audio::VadOptions o;
  o.min_silence_duration_ms = 100;
  o.speech_pad_ms = 30;
  return o;
}

void snap_to_speech(std::vector<Segment>& segments, const std::vector<audio::SpeechTimestamp>& speech,
                    int sample_rate) {
  if (sample_rate <= 0) throw ValueError("snap_to_speech: sample rate must be positive");
  std::vector<Span> spans;
  spans.reserve(speech.size());
  for (size_t i = 0; i < speech.size(); ++i) {
    const auto& s = speech[i];
    if (s.start_sample < 0 || s.end_sample <= s.start_sample ||
        (i > 0 && s.start_sample < speech[i - 1].end_sample))
      throw ValueError("snap_to_speech: speech span " + std::to_string(i) + " [" +
                       std::to_string(s.start_sample) + ", " + std::to_string(s.end_sample) +
                       ") is empty, negative, unsorted or overlaps the one before");
    spans.push_back(
        {static_cast<double>(s.start_sample) / sample_rate, static_cast<double>(s.end_sample) / sample_rate});
  }
  if (spans.empty()) return;

  double floor = 0;  // times never go backwards
  for (Segment& seg : segments) {
    if (seg.words.empty()) {
      double start = seg.start, end = seg.end;
      if (clip(spans, start, end)) {
        seg.start = std::max(start, floor);
        seg.end = std::max(end, seg.start);
      }
      floor = std::max(floor, seg.end);
      continue;
    }
    for (size_t k = 0; k < seg.words.size(); ++k) {
      Word& w = seg.words[k];
      double start = w.start, end = w.end;
      if (!clip(spans, start, end)) {
        // In a silence: spans before it end at or before start, spans after it begin at
        // or after end.
        auto after = std::lower_bound(spans.begin(), spans.end(), w.end,
                                      [](const Span& s, double t) { return s.start < t; });
        const bool has_before = after != spans.begin(), has_after = after != spans.end();
        start = end = (k == 0 && has_after) || !has_before ? after->start : (after - 1)->end;
      }
      w.start = std::max(start, floor);
      w.end = std::max(end, w.start);
      floor = w.end;
    }
    seg.start = seg.words.front().start;
    seg.end = seg.words.back().end;
  }
}

}  // namespace peft::transcription
