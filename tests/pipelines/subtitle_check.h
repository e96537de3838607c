// Reading back the subtitle files the pipelines write: WebVTT with a small parser
// (the header, then cues "hh:mm:ss.mmm --> hh:mm:ss.mmm" followed by text lines up to a
// blank line), SubRip with GStreamer's own subparse element in-process, so a file that
// players would reject fails the test.
#pragma once

#include <gst/app/gstappsink.h>
#include <gst/gst.h>
#include <boost/test/unit_test.hpp>

#include <filesystem>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

namespace peft_test {

struct Cue {
  double start = 0, end = 0;  // seconds
  std::string text;
};

inline std::vector<Cue> parse_vtt(const std::string& vtt) {
  std::istringstream in(vtt);
  std::string line;
  BOOST_REQUIRE_MESSAGE(std::getline(in, line) && line.rfind("WEBVTT", 0) == 0, "no WEBVTT header");
  const std::regex time_re(R"((\d\d+):(\d\d):(\d\d)\.(\d\d\d) --> (\d\d+):(\d\d):(\d\d)\.(\d\d\d))");
  auto secs = [](const std::smatch& m, int i) {
    return std::stoi(m[i]) * 3600.0 + std::stoi(m[i + 1]) * 60.0 + std::stoi(m[i + 2]) +
           std::stoi(m[i + 3]) / 1000.0;
  };
  std::vector<Cue> cues;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    std::smatch m;
    if (!std::regex_match(line, m, time_re)) {  // an optional cue identifier, then the times
      BOOST_REQUIRE_MESSAGE(std::getline(in, line) && std::regex_match(line, m, time_re),
                            "malformed WebVTT cue near: " << line);
    }
    Cue c{secs(m, 1), secs(m, 5), ""};
    while (std::getline(in, line) && !line.empty()) c.text += (c.text.empty() ? "" : " ") + line;
    BOOST_REQUIRE_MESSAGE(!c.text.empty(), "WebVTT cue without text at " << c.start);
    cues.push_back(c);
  }
  return cues;
}

// The cues of a SubRip file as subparse gives them (times from the buffers' PTS and duration).
inline std::vector<Cue> subparse_cues(const std::filesystem::path& srt) {
  gst_init(nullptr, nullptr);
  GError* error = nullptr;
  GstElement* pipeline =
      gst_parse_launch("filesrc name=src ! subparse ! appsink name=sink sync=false", &error);
  BOOST_REQUIRE_MESSAGE(pipeline && !error, "subparse pipeline: " << (error ? error->message : "?"));
  GstElement* src = gst_bin_get_by_name(GST_BIN(pipeline), "src");
  g_object_set(src, "location", srt.c_str(), nullptr);
  gst_object_unref(src);
  GstElement* sink = gst_bin_get_by_name(GST_BIN(pipeline), "sink");
  gst_element_set_state(pipeline, GST_STATE_PLAYING);
  std::vector<Cue> cues;
  while (GstSample* sample = gst_app_sink_try_pull_sample(GST_APP_SINK(sink), 10 * GST_SECOND)) {
    GstBuffer* buf = gst_sample_get_buffer(sample);
    Cue c;
    c.start = static_cast<double>(GST_BUFFER_PTS(buf)) / GST_SECOND;
    c.end = c.start + static_cast<double>(GST_BUFFER_DURATION(buf)) / GST_SECOND;
    GstMapInfo map;
    if (gst_buffer_map(buf, &map, GST_MAP_READ)) {
      c.text.assign(reinterpret_cast<const char*>(map.data), map.size);
      gst_buffer_unmap(buf, &map);
    }
    cues.push_back(c);
    gst_sample_unref(sample);
  }
  GstBus* bus = gst_element_get_bus(pipeline);
  GstMessage* err = gst_bus_pop_filtered(bus, GST_MESSAGE_ERROR);
  BOOST_CHECK_MESSAGE(!err, "subparse posted an error on " << srt);
  if (err) gst_message_unref(err);
  BOOST_CHECK_MESSAGE(gst_app_sink_is_eos(GST_APP_SINK(sink)), "subparse did not reach EOS on " << srt);
  gst_object_unref(bus);
  gst_object_unref(sink);
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(pipeline);
  return cues;
}

// Cues in order, each with start <= end and starting no earlier than the previous end.
inline void check_monotonic(const std::vector<Cue>& cues) {
  double prev_end = 0;
  for (const auto& c : cues) {
    BOOST_CHECK_MESSAGE(c.start >= prev_end - 1e-9, "cue at " << c.start << " starts before " << prev_end);
    BOOST_CHECK_MESSAGE(c.end >= c.start, "cue at " << c.start << " ends before it starts");
    prev_end = c.end;
  }
}

}  // namespace peft_test
