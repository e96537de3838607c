// SubRip (.srt) and WebVTT (.vtt) cues written as captions arrive, for programs that get
// timed text one segment at a time (a whisperasr appsink). The writer numbers the cues,
// skips captions whose text is empty (SubRip has no empty cue), and keeps cue times
// monotonic: a caption starting before the previous cue ended is moved to start there,
// since players show overlapping cues together and subparse rejects them out of order.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>

namespace peft_pipelines {

enum class SubtitleFormat { srt, vtt };

// "hh:mm:ss,mmm" (SubRip) or "hh:mm:ss.mmm" (WebVTT; also the terminal's caption lines).
// Hours grow past 99 rather than wrap; negative times print as 0.
std::string format_timestamp(double seconds, SubtitleFormat format);

// Text with its CR/LF runs made single spaces and the ends trimmed: a cue's text is one
// line, and a blank line would end the cue early.
std::string one_line(const std::string& text);

class SubtitleWriter {
 public:
  // Writes the header (WebVTT's "WEBVTT" line) at once; `out` must outlive the writer.
  SubtitleWriter(std::ostream& out, SubtitleFormat format);

  // One cue from `start` to `end` seconds; returns false (and writes nothing) when the
  // text is empty. An end before the (clamped) start is taken as the start.
  bool add(double start, double end, const std::string& text);

  int cues() const { return cues_; }
  double last_end() const { return last_end_; }

 private:
  std::ostream& out_;
  SubtitleFormat format_;
  int cues_ = 0;
  double last_end_ = 0;
};

}  // namespace peft_pipelines
