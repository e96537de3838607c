// pipelines/subtitle_writer: timestamps (SubRip "," / WebVTT "."; hours past 99), cue
// numbering, empty text skipped, multi-line text made one line, and times kept monotonic
// (a start before the previous end is moved to it; an end before the start becomes it).
#define BOOST_TEST_MODULE subtitle_writer
#include <boost/test/unit_test.hpp>

#include <sstream>

#include "subtitle_writer.h"

using peft_pipelines::format_timestamp;
using peft_pipelines::one_line;
using peft_pipelines::SubtitleFormat;
using peft_pipelines::SubtitleWriter;

BOOST_AUTO_TEST_CASE(timestamps) {
  BOOST_CHECK_EQUAL(format_timestamp(0, SubtitleFormat::srt), "00:00:00,000");
  BOOST_CHECK_EQUAL(format_timestamp(3723.4567, SubtitleFormat::srt), "01:02:03,457");
  BOOST_CHECK_EQUAL(format_timestamp(3723.4567, SubtitleFormat::vtt), "01:02:03.457");
  BOOST_CHECK_EQUAL(format_timestamp(59.9996, SubtitleFormat::vtt), "00:01:00.000");
  BOOST_CHECK_EQUAL(format_timestamp(-1, SubtitleFormat::vtt), "00:00:00.000");
  BOOST_CHECK_EQUAL(format_timestamp(100 * 3600 + 0.5, SubtitleFormat::srt), "100:00:00,500");
}

BOOST_AUTO_TEST_CASE(one_line_text) {
  BOOST_CHECK_EQUAL(one_line("  a\r\nb\n\nc  "), "a b c");
  BOOST_CHECK_EQUAL(one_line(" \n\t "), "");
}

BOOST_AUTO_TEST_CASE(srt_cues) {
  std::ostringstream out;
  SubtitleWriter w(out, SubtitleFormat::srt);
  BOOST_CHECK(w.add(0.5, 2.0, " Hello\nworld "));
  BOOST_CHECK(!w.add(2.0, 3.0, "  "));        // empty: no cue, no number used
  BOOST_CHECK(w.add(1.5, 4.25, "again"));     // starts before the previous end: moved to 2.0
  BOOST_CHECK(w.add(5.0, 4.0, "backwards"));  // ends before it starts: zero length
  BOOST_CHECK_EQUAL(w.cues(), 3);
  BOOST_CHECK_EQUAL(out.str(),
                    "1\n00:00:00,500 --> 00:00:02,000\nHello world\n\n"
                    "2\n00:00:02,000 --> 00:00:04,250\nagain\n\n"
                    "3\n00:00:05,000 --> 00:00:05,000\nbackwards\n\n");
}

BOOST_AUTO_TEST_CASE(vtt_cues) {
  std::ostringstream out;
  SubtitleWriter w(out, SubtitleFormat::vtt);
  w.add(0, 1.5, "one");
  w.add(1.0, 2.0, "two");
  BOOST_CHECK_EQUAL(out.str(),
                    "WEBVTT\n\n"
                    "00:00:00.000 --> 00:00:01.500\none\n\n"
                    "00:00:01.500 --> 00:00:02.000\ntwo\n\n");
  BOOST_CHECK_EQUAL(w.last_end(), 2.0);
}
