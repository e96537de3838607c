// Summaries of live text (a transcript as it arrives): every `hop` seconds of stream
// time, a summary of the last `window` seconds; at the end, a summary of everything
// (map-reduce over the whole text). The peftsummarize element runs this on its own
// thread; the calls themselves are synchronous. Not thread-safe: one owner.
//
//   RollingSummarizer r(model, options);
//   for (segment : transcript) for (auto& s : r.push(segment.text, segment.start, segment.end)) show(s);
//   show(r.finish());
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "peft/summarization/summarizer.h"

namespace peft::summarization {

class TextModel;

struct RollingOptions {
  double window_seconds = 60.0;  // stream time each rolling summary covers
  double hop_seconds = 30.0;     // stream time between rolling summaries (= window: disjoint windows)
  bool rolling = true;           // false: no summaries until finish() (final-only)
  SummaryOptions summary;
  // Throws ValueError unless 0 < hop <= window.
  void validate() const;
};

// Text spoken from `start` to `end` (stream seconds).
struct TimedText {
  std::string text;
  double start = 0, end = 0;
};

struct SpanSummary {
  std::string text;
  // Stream seconds: a rolling summary's window (the text of every segment overlapping
  // it), or the whole stream for the final one.
  double start = 0, end = 0;
  bool final = false;  // the summary of everything, from finish()
  // Summaries that were due and this one stands for: 1, or more when a batch of text
  // passed several boundaries that one-at-a-time pushes would each have summarized
  // (the caller fell behind). A gap in the text is not a merge.
  int merged = 1;
};

class RollingSummarizer {
 public:
  // `adapter` (may be null) must outlive this object.
  RollingSummarizer(std::shared_ptr<const TextModel> model, RollingOptions options,
                    const adapters::BoundAdapter* adapter = nullptr);

  // Adds text spoken from `start` to `end` (stream seconds, end >= start; segments in
  // order). Returns the summaries that became due: the window ending at each hop
  // boundary the stream has passed. When several boundaries passed at once (text
  // arrives in bursts, or the caller fell behind), one summary covers them together.
  // Windows without text give no summary.
  std::vector<SpanSummary> push(const std::string& text, double start, double end);
  // Adds several segments at once (what piled up while the caller was busy): at most
  // one summary, covering every boundary they pass, with `merged` saying how many
  // summaries it replaces. Throws (adding nothing) on segments push() would refuse.
  std::vector<SpanSummary> push(const std::vector<TimedText>& segments);
  // The summary of everything pushed (empty text: no model run). Further pushes start
  // a new stream.
  SpanSummary finish();

  // Stream seconds before which no summary but the final one will start, once all text
  // before `position` has been pushed: the next rolling window's start (or `position`
  // itself before the first text, and in final-only mode). Where a GStreamer element may
  // tell downstream (with a GAP) that it will output nothing earlier.
  double settled_until(double position) const;

  // The adapter later summaries use (null: none); it must outlive this object.
  void set_adapter(const adapters::BoundAdapter* adapter) { adapter_ = adapter; }

 private:
  SpanSummary summarize_span(double from, double to, bool final);

  std::shared_ptr<const TextModel> model_;
  RollingOptions options_;
  const adapters::BoundAdapter* adapter_;
  std::vector<TimedText> segments_;
  double next_due_ = -1;  // stream time of the next hop boundary; < 0 before the first text
};

}  // namespace peft::summarization
