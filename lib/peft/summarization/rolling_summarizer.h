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

struct SpanSummary {
  std::string text;
  // Stream seconds: a rolling summary's window (the text of every segment overlapping
  // it), or the whole stream for the final one.
  double start = 0, end = 0;
  bool final = false;  // the summary of everything, from finish()
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
  // The summary of everything pushed (empty text: no model run). Further pushes start
  // a new stream.
  SpanSummary finish();

 private:
  struct Segment {
    std::string text;
    double start, end;
  };
  SpanSummary summarize_span(double from, double to, bool final);

  std::shared_ptr<const TextModel> model_;
  RollingOptions options_;
  const adapters::BoundAdapter* adapter_;
  std::vector<Segment> segments_;
  double next_due_ = -1;  // stream time of the next hop boundary; < 0 before the first text
};

}  // namespace peft::summarization
