#include "peft/summarization/rolling_summarizer.h"

#include <algorithm>
#include <cmath>

#include "peft/error.h"
#include "peft/summarization/text_model.h"

namespace peft::summarization {

void RollingOptions::validate() const {
  if (!(hop_seconds > 0) || !(window_seconds >= hop_seconds) || !std::isfinite(window_seconds))
    throw ValueError("rolling summary: hop (" + std::to_string(hop_seconds) +
                     " s) must be > 0 and at most the window (" + std::to_string(window_seconds) + " s)");
  summary.generation.validate();
}

RollingSummarizer::RollingSummarizer(std::shared_ptr<const TextModel> model, RollingOptions options,
                                     const adapters::BoundAdapter* adapter)
    : model_(std::move(model)), options_(std::move(options)), adapter_(adapter) {
  options_.validate();
}

std::vector<SpanSummary> RollingSummarizer::push(const std::string& text, double start, double end) {
  if (!std::isfinite(start) || !std::isfinite(end) || end < start)
    throw ValueError("rolling summary: segment times " + std::to_string(start) + " .. " +
                     std::to_string(end) + " are not an interval");
  if (!segments_.empty() && start < segments_.back().start)
    throw ValueError("rolling summary: a segment starting at " + std::to_string(start) +
                     " s arrived after one starting at " + std::to_string(segments_.back().start) + " s");
  segments_.push_back({text, start, end});
  if (next_due_ < 0) next_due_ = start + options_.window_seconds;
  std::vector<SpanSummary> out;
  if (!options_.rolling || end < next_due_) return out;
  // The last boundary passed; boundaries in between are covered by the same summary.
  const double passed = std::floor((end - next_due_) / options_.hop_seconds);
  const double due = next_due_ + passed * options_.hop_seconds;
  const double from = next_due_ - options_.window_seconds;
  next_due_ = due + options_.hop_seconds;
  SpanSummary s = summarize_span(from, due, false);
  if (!s.text.empty()) out.push_back(std::move(s));
  return out;
}

SpanSummary RollingSummarizer::finish() {
  SpanSummary s;
  if (!segments_.empty()) s = summarize_span(segments_.front().start, segments_.back().end, true);
  s.final = true;
  segments_.clear();
  next_due_ = -1;
  return s;
}

SpanSummary RollingSummarizer::summarize_span(double from, double to, bool final) {
  SpanSummary s;
  s.final = final;
  s.start = from;
  s.end = to;
  std::string text;
  for (const Segment& seg : segments_)
    if (seg.end > from && seg.start < to) text += (text.empty() ? "" : " ") + seg.text;  // overlaps the span
  if (!text.empty()) s.text = summarize(*model_, text, options_.summary, adapter_).text;
  return s;
}

}  // namespace peft::summarization
