// Transcript output formats: SRT as subparse reads it, WebVTT, JSON, text.
#define BOOST_TEST_MODULE transcript_format
#include <nlohmann/json.hpp>

#include "peft/error.h"
#include "peft/transcription/transcript_format.h"
#include "test_support.h"

using namespace peft::transcription;

namespace {
std::vector<Segment> two_segments() {
  Segment a;
  a.start = 0.0;
  a.end = 2.5;
  a.text = " Hello there.";
  a.tokens = {50363, 1, 2, 50488};
  Segment b;
  b.start = 3661.0016;
  b.end = 3662.9996;
  b.text = " Second line.";
  return {a, b};
}
}  // namespace

BOOST_AUTO_TEST_CASE(timestamps) {
  BOOST_CHECK_EQUAL(format_timestamp(0, ','), "00:00:00,000");
  BOOST_CHECK_EQUAL(format_timestamp(3661.0016, ','), "01:01:01,002");
  BOOST_CHECK_EQUAL(format_timestamp(59.9996, '.'), "00:01:00.000");
  BOOST_CHECK_EQUAL(format_timestamp(-1, '.'), "00:00:00.000");
}

BOOST_AUTO_TEST_CASE(srt_and_vtt) {
  const auto segs = two_segments();
  BOOST_CHECK_EQUAL(format_transcript(segs, TranscriptFormat::kSrt),
                    "1\n00:00:00,000 --> 00:00:02,500\nHello there.\n\n"
                    "2\n01:01:01,002 --> 01:01:03,000\nSecond line.\n\n");
  BOOST_CHECK_EQUAL(format_transcript(segs, TranscriptFormat::kVtt),
                    "WEBVTT\n\n00:00:00.000 --> 00:00:02.500\nHello there.\n\n"
                    "01:01:01.002 --> 01:01:03.000\nSecond line.\n\n");
  BOOST_CHECK_EQUAL(format_transcript({}, TranscriptFormat::kSrt), "");
}

BOOST_AUTO_TEST_CASE(text_and_json) {
  const auto segs = two_segments();
  BOOST_CHECK_EQUAL(format_transcript(segs, TranscriptFormat::kText), "Hello there. Second line.\n");
  const auto j = nlohmann::json::parse(format_transcript(segs, TranscriptFormat::kJson, "a.wav"));
  BOOST_CHECK_EQUAL(j["source"], "a.wav");
  BOOST_CHECK_EQUAL(j["text"], "Hello there. Second line.");
  BOOST_REQUIRE_EQUAL(j["segments"].size(), 2u);
  BOOST_CHECK_EQUAL(j["segments"][0]["end"].get<double>(), 2.5);
  BOOST_CHECK_EQUAL(j["segments"][0]["tokens"].size(), 4u);
}

BOOST_AUTO_TEST_CASE(format_names) {
  BOOST_CHECK(parse_transcript_format("vtt") == TranscriptFormat::kVtt);
  PEFT_CHECK_THROW_MSG(parse_transcript_format("docx"), peft::ValueError, {"docx", "srt"});
}
