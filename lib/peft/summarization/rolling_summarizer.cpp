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
  return push(std::vector<TimedText>{{text, start, end}});
}

std::vector<SpanSummary> RollingSummarizer::push(const std::vector<TimedText>& segments) {
  double last_start = segments_.empty() ? -HUGE_VAL : segments_.back().start;
  for (const TimedText& seg : segments) {
    if (!std::isfinite(seg.start) || !std::isfinite(seg.end) || seg.end < seg.start)
      throw ValueError("rolling summary: segment times " + std::to_string(seg.start) + " .. " +
                       std::to_string(seg.end) + " are not an interval");
    if (seg.start < last_start)
      throw ValueError("rolling summary: a segment starting at " + std::to_string(seg.start) +
                       " s arrived after one starting at " + std::to_string(last_start) + " s");
    last_start = seg.start;
  }
  std::vector<SpanSummary> out;
  if (segments.empty()) return out;
  if (next_due_ < 0) next_due_ = segments.front().start + options_.window_seconds;
  // One-at-a-time pushes would each summarize up to the last boundary their segment
  // passes and move the next boundary past its end; a batch makes one summary from the
  // first such window's start to the last boundary, standing for `merged` of them.
  double due = next_due_;
  int merged = 0;
  for (const TimedText& seg : segments) {
    segments_.push_back(seg);
    if (!options_.rolling || seg.end < due) continue;
    ++merged;
    due += (std::floor((seg.end - due) / options_.hop_seconds) + 1) * options_.hop_seconds;
  }
  if (merged == 0) return out;
  const double from = next_due_ - options_.window_seconds;
  next_due_ = due;
  SpanSummary s = summarize_span(from, due - options_.hop_seconds, false);
  s.merged = merged;
  if (!s.text.empty()) out.push_back(std::move(s));
  return out;
}

double RollingSummarizer::settled_until(double position) const {
  if (!options_.rolling || next_due_ < 0) return position;
  return std::min(position, next_due_ - options_.window_seconds);
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
  for (const TimedText& seg : segments_)
    if (seg.end > from && seg.start < to) text += (text.empty() ? "" : " ") + seg.text;  // overlaps the span
  if (!text.empty()) s.text = summarize(*model_, text, options_.summary, adapter_).text;
  return s;
}

}  // namespace peft::summarization
