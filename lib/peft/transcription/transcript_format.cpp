#include "peft/transcription/transcript_format.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "peft/error.h"

namespace peft::transcription {

namespace {
std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\n");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\n") - b + 1);
}
}  // namespace

TranscriptFormat parse_transcript_format(const std::string& name) {
  if (name == "text") return TranscriptFormat::kText;
  if (name == "srt") return TranscriptFormat::kSrt;
  if (name == "vtt") return TranscriptFormat::kVtt;
  if (name == "json") return TranscriptFormat::kJson;
  throw ValueError("unknown transcript format '" + name + "' (text, srt, vtt or json)");
}

std::string format_timestamp(double seconds, char millis_separator) {
  const long long ms = std::llround(std::max(0.0, seconds) * 1000.0);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%02lld:%02lld:%02lld%c%03lld", ms / 3600000, ms / 60000 % 60,
                ms / 1000 % 60, millis_separator, ms % 1000);
  return buf;
}

std::string format_transcript(const std::vector<Segment>& segments, TranscriptFormat format,
                              const std::string& source, const TranscriptionInfo* info) {
  std::string out;
  switch (format) {
    case TranscriptFormat::kText: {
      std::string all;
      for (const auto& s : segments) all += s.text;
      return trim(all) + "\n";
    }
    case TranscriptFormat::kSrt:
      for (size_t i = 0; i < segments.size(); ++i) {
        out += std::to_string(i + 1) + "\n" + format_timestamp(segments[i].start, ',') + " --> " +
               format_timestamp(segments[i].end, ',') + "\n" + trim(segments[i].text) + "\n\n";
      }
      return out;
    case TranscriptFormat::kVtt:
      out = "WEBVTT\n\n";
      for (const auto& s : segments)
        out += format_timestamp(s.start, '.') + " --> " + format_timestamp(s.end, '.') + "\n" + trim(s.text) +
               "\n\n";
      return out;
    case TranscriptFormat::kJson: {
      nlohmann::json j;
      j["source"] = source;
      j["segments"] = nlohmann::json::array();
      std::string all;
      // Word timestamps on: every segment lists its words (possibly none).
      const bool with_words =
          std::any_of(segments.begin(), segments.end(), [](const Segment& s) { return !s.words.empty(); });
      for (const auto& s : segments) {
        nlohmann::json js = {{"start", s.start},
                             {"end", s.end},
                             {"text", s.text},
                             {"tokens", s.tokens},
                             {"avg_logprob", s.avg_logprob},
                             {"no_speech_prob", s.no_speech_prob},
                             {"temperature", s.temperature},
                             {"compression_ratio", s.compression_ratio}};
        if (with_words) {
          js["words"] = nlohmann::json::array();
          for (const auto& w : s.words)
            js["words"].push_back(
                {{"start", w.start}, {"end", w.end}, {"word", w.word}, {"probability", w.probability}});
        }
        j["segments"].push_back(std::move(js));
        all += s.text;
      }
      j["text"] = trim(all);
      if (info) {
        j["language"] = info->language;
        j["language_probability"] = info->language_probability;
      }
      // Decoded text is valid UTF-8 (the tokenizer replaces broken sequences), but never
      // let a stray byte turn into an exception here.
      return j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    }
  }
  return out;
}

}  // namespace peft::transcription
