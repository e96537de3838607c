#include "subtitle_writer.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace peft_pipelines {

std::string format_timestamp(double seconds, SubtitleFormat format) {
  const long long ms = seconds > 0 ? std::llround(seconds * 1000.0) : 0;
  char buf[48];
  std::snprintf(buf, sizeof buf, "%02lld:%02lld:%02lld%c%03lld", ms / 3600000, ms / 60000 % 60,
                ms / 1000 % 60, format == SubtitleFormat::srt ? ',' : '.', ms % 1000);
  return buf;
}

std::string one_line(const std::string& text) {
  std::string out;
  bool pending_space = false;
  for (const char c : text) {
    if (c == '\n' || c == '\r' || c == ' ' || c == '\t') {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) out += ' ';
    pending_space = false;
    out += c;
  }
  return out;
}

SubtitleWriter::SubtitleWriter(std::ostream& out, SubtitleFormat format) : out_(out), format_(format) {
  if (format_ == SubtitleFormat::vtt) out_ << "WEBVTT\n\n";
  out_.flush();
}

bool SubtitleWriter::add(double start, double end, const std::string& text) {
  const std::string line = one_line(text);
  if (line.empty()) return false;
  start = std::max(start, last_end_);
  end = std::max(end, start);
  ++cues_;
  if (format_ == SubtitleFormat::srt) out_ << cues_ << '\n';
  out_ << format_timestamp(start, format_) << " --> " << format_timestamp(end, format_) << '\n'
       << line << "\n\n";
  out_.flush();
  last_end_ = end;
  return true;
}

}  // namespace peft_pipelines
