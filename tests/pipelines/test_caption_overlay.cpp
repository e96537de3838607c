// pipelines/caption-overlay and pipelines/make-sample-video, run as users run them: a
// sample video with LibriVox speech after 3 s of silence is captioned (short summary
// windows, so a rolling summary falls within the clip), the output MP4 is decoded here
// and compared frame by frame with the same input encoded without captions
// (--no-captions): every frame is there, the bottom band differs exactly where the
// script reported a caption (which covers the speech) and not before, the top band
// where it reported a summary. Bad inputs and a missing model give exit status 1 and a
// one-line message.
#define BOOST_TEST_MODULE caption_overlay
#include <gst/app/gstappsink.h>
#include <gst/gst.h>
#include <sys/wait.h>

#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "peft/metrics/english_normalizer.h"
#include "peft/metrics/wer.h"
#include "pocketsphinx_testdata.h"
#include "test_support.h"

namespace fs = std::filesystem;

namespace {

// The sample's defaults (pipelines/make-sample-video): 320x180 at 20 fps.
constexpr double kFrameSeconds = 1.0 / 20;
// Mean absolute difference of GRAY8 pixels in a band: below kSame the band shows no text
// (x264 at a constant quantizer encodes unchanged regions alike), above kDrawn it does.
constexpr double kSame = 0.5, kDrawn = 4.0;

fs::path script(const std::string& name) {
  return peft_test::env_dir("PEFT_PIPELINES_SOURCE_DIR", "pipelines") / name;
}

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

struct Result {
  int status = -1;
  std::string out, err;
  double seconds = 0;
};

// Runs a shell command line, its stdout and stderr captured in files of `dir`.
Result run(const std::string& command, const fs::path& dir) {
  const fs::path out = dir / "stdout.txt", err = dir / "stderr.txt";
  const auto t0 = std::chrono::steady_clock::now();
  const int raw = std::system((command + " >" + quote(out) + " 2>" + quote(err)).c_str());
  Result r;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  r.out = peft_test::read_file(out);
  r.err = peft_test::read_file(err);
  return r;
}

// A caption or summary line of caption-overlay's stdout: "KIND START END TEXT".
struct Span {
  std::string kind;
  double start = 0, end = 0;
  std::string text;
};

std::vector<Span> parse_spans(const std::string& out) {
  std::vector<Span> spans;
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream in(line);
    Span s;
    if (!(in >> s.kind >> s.start >> s.end)) continue;
    std::getline(in >> std::ws, s.text);
    spans.push_back(s);
  }
  return spans;
}

struct Frame {
  double start = 0, end = 0;  // seconds
  std::vector<uint8_t> gray;  // width x height, rows packed
};

struct Decoded {
  int width = 0, height = 0;
  std::vector<Frame> frames;
  double audio_seconds = 0;  // summed durations of the decoded audio buffers
};

// Every video frame of `file` as GRAY8, and the audio's length, decoded in-process.
Decoded decode(const fs::path& file) {
  GError* error = nullptr;
  const std::string uri = "file://" + fs::absolute(file).string();
  GstElement* pipeline = gst_parse_launch(
      ("uridecodebin uri=\"" + uri +
       "\" name=d d. ! video/x-raw ! videoconvert ! video/x-raw,format=GRAY8 ! appsink name=video sync=false "
       "d. ! audio/x-raw ! appsink name=audio sync=false")
          .c_str(),
      &error);
  BOOST_REQUIRE_MESSAGE(pipeline && !error,
                        "cannot build the decoding pipeline: " << (error ? error->message : ""));
  GstElement* video = gst_bin_get_by_name(GST_BIN(pipeline), "video");
  GstElement* audio = gst_bin_get_by_name(GST_BIN(pipeline), "audio");
  gst_element_set_state(pipeline, GST_STATE_PLAYING);
  Decoded d;
  // appsink queues without bound by default: video is read to the end, then audio.
  while (GstSample* sample = gst_app_sink_try_pull_sample(GST_APP_SINK(video), 60 * GST_SECOND)) {
    GstBuffer* buf = gst_sample_get_buffer(sample);
    const GstStructure* s = gst_caps_get_structure(gst_sample_get_caps(sample), 0);
    gst_structure_get_int(s, "width", &d.width);
    gst_structure_get_int(s, "height", &d.height);
    const size_t stride = (static_cast<size_t>(d.width) + 3) / 4 * 4;  // GRAY8 rows are 4-byte aligned
    Frame f;
    f.start = static_cast<double>(GST_BUFFER_PTS(buf)) / GST_SECOND;
    f.end = f.start + static_cast<double>(GST_BUFFER_DURATION(buf)) / GST_SECOND;
    GstMapInfo map;
    BOOST_REQUIRE(gst_buffer_map(buf, &map, GST_MAP_READ));
    BOOST_REQUIRE_GE(map.size, stride * static_cast<size_t>(d.height - 1) + static_cast<size_t>(d.width));
    for (int y = 0; y < d.height; ++y)
      f.gray.insert(f.gray.end(), map.data + stride * y, map.data + stride * y + d.width);
    gst_buffer_unmap(buf, &map);
    gst_sample_unref(sample);
    d.frames.push_back(std::move(f));
  }
  while (GstSample* sample = gst_app_sink_try_pull_sample(GST_APP_SINK(audio), 10 * GST_SECOND)) {
    d.audio_seconds += static_cast<double>(GST_BUFFER_DURATION(gst_sample_get_buffer(sample))) / GST_SECOND;
    gst_sample_unref(sample);
  }
  GstBus* bus = gst_element_get_bus(pipeline);
  GstMessage* msg = gst_bus_pop_filtered(bus, GST_MESSAGE_ERROR);
  std::string failure;
  if (msg) {
    GError* e = nullptr;
    gst_message_parse_error(msg, &e, nullptr);
    failure = e->message;
    g_error_free(e);
    gst_message_unref(msg);
  }
  gst_object_unref(bus);
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(video);
  gst_object_unref(audio);
  gst_object_unref(pipeline);
  BOOST_REQUIRE_MESSAGE(failure.empty(), "decoding " << file << ": " << failure);
  BOOST_REQUIRE_MESSAGE(!d.frames.empty(), file << ": no video frames");
  return d;
}

// Mean absolute difference of rows [y0, y1) of two frames of the same size.
double band_difference(const Frame& a, const Frame& b, int width, int y0, int y1) {
  double sum = 0;
  for (int y = y0; y < y1; ++y)
    for (int x = 0; x < width; ++x) {
      const size_t i = static_cast<size_t>(y) * width + x;
      sum += std::abs(static_cast<int>(a.gray[i]) - static_cast<int>(b.gray[i]));
    }
  return sum / (static_cast<double>(y1 - y0) * width);
}

// Whether frame [start, end) overlaps any of the spans / lies inside one of them.
bool overlaps(const Frame& f, const std::vector<Span>& spans) {
  for (const Span& s : spans)
    if (f.start < s.end && s.start < f.end) return true;
  return false;
}
bool inside(const Frame& f, const std::vector<Span>& spans) {
  for (const Span& s : spans)
    if (s.start <= f.start && f.end <= s.end) return true;
  return false;
}

struct GstInit {
  GstInit() { gst_init(nullptr, nullptr); }
};
BOOST_TEST_GLOBAL_FIXTURE(GstInit);

}  // namespace

BOOST_AUTO_TEST_CASE(captions_and_summary_are_drawn_where_they_belong) {
  peft_test::TempDir dir;
  const fs::path sample = dir / "sample.mp4", captioned = dir / "captioned.mp4", plain = dir / "plain.mp4";

  Result made = run(quote(script("make-sample-video")) + " " + quote(sample), dir.path());
  BOOST_REQUIRE_MESSAGE(made.status == 0, "make-sample-video failed: " << made.err);
  double speech_start = 0, speech_end = 0;
  {
    const auto at = made.out.find("speech from ");
    BOOST_REQUIRE_MESSAGE(at != std::string::npos, "make-sample-video printed: " << made.out);
    BOOST_REQUIRE(
        std::sscanf(made.out.c_str() + at, "speech from %lf s to %lf s", &speech_start, &speech_end) == 2);
  }
  BOOST_TEST_MESSAGE("sample: " << made.out << "(" << made.seconds << " s)");

  // As the README: summary windows of 6 s every 3 s, so that the clip's
  // 8.8 s of speech pass a boundary.
  // (timeout: a pipeline that stalls fails here instead of at the suite's timeout.)
  Result overlay = run("SUMMARY_WINDOW=6 SUMMARY_HOP=3 timeout 240 " + quote(script("caption-overlay")) +
                           " " + quote(sample) + " " + quote(captioned),
                       dir.path());
  BOOST_TEST_MESSAGE("caption-overlay (" << overlay.seconds << " s):\n" << overlay.out << overlay.err);
  BOOST_REQUIRE_MESSAGE(overlay.status == 0, "caption-overlay failed: " << overlay.err);
  BOOST_CHECK(!fs::exists(captioned.string() + ".partial"));
  Result reference = run(
      quote(script("caption-overlay")) + " --no-captions " + quote(sample) + " " + quote(plain), dir.path());
  BOOST_REQUIRE_MESSAGE(reference.status == 0, "caption-overlay --no-captions failed: " << reference.err);
  BOOST_TEST_MESSAGE("caption-overlay --no-captions: " << reference.seconds << " s");

  std::vector<Span> captions, summaries, finals;
  for (const Span& s : parse_spans(overlay.out))
    (s.kind == "caption" ? captions : s.kind == "summary" ? summaries : finals).push_back(s);
  BOOST_REQUIRE_MESSAGE(!captions.empty(), "no caption lines");
  BOOST_REQUIRE_MESSAGE(!summaries.empty(), "no rolling summary within the clip");
  BOOST_CHECK_EQUAL(finals.size(), 1u);

  // The captions are the speech: WER against the two utterances' transcripts.
  std::string reference_text, caption_text;
  for (const auto& u : peft_test::pocketsphinx_utterances("librivox"))
    if (u.id.size() >= 4 &&
        (u.id.substr(u.id.size() - 4) == "0880" || u.id.substr(u.id.size() - 4) == "0890"))
      reference_text += u.reference + " ";
  for (const Span& c : captions) caption_text += c.text + " ";
  const double wer = peft::metrics::wer(peft::metrics::normalize_english(reference_text),
                                        peft::metrics::normalize_english(caption_text));
  BOOST_TEST_MESSAGE("caption WER " << wer);
  BOOST_CHECK_LT(wer, 0.35);
  double last = 0;
  for (const Span& c : captions) {
    BOOST_CHECK_LE(last, c.start);
    BOOST_CHECK_LT(c.start, c.end);
    last = c.end;
  }
  for (const Span& s : summaries) BOOST_CHECK(!s.text.empty());

  const Decoded in = decode(sample), out = decode(captioned), ref = decode(plain);
  // Every frame, at the input's times: none dropped, none added.
  BOOST_CHECK_EQUAL(out.frames.size(), in.frames.size());
  BOOST_CHECK_EQUAL(ref.frames.size(), in.frames.size());
  BOOST_CHECK_EQUAL(out.width, in.width);
  BOOST_CHECK_EQUAL(out.height, in.height);
  BOOST_CHECK_LE(std::abs(out.frames.back().end - in.frames.back().end), 2 * kFrameSeconds);
  for (size_t i = 0; i < std::min(out.frames.size(), in.frames.size()); ++i)
    BOOST_CHECK_LE(std::abs(out.frames[i].start - in.frames[i].start), 0.002);
  BOOST_CHECK_LE(std::abs(out.audio_seconds - in.audio_seconds), 0.1);
  BOOST_TEST_MESSAGE("frames: input " << in.frames.size() << " (" << in.frames.back().end << " s), output "
                                      << out.frames.size() << " (" << out.frames.back().end
                                      << " s); audio input " << in.audio_seconds << " s, output "
                                      << out.audio_seconds << " s");
  BOOST_REQUIRE_EQUAL(out.frames.size(), ref.frames.size());

  // Bands: the bottom and top fifth of the frame.
  const int band = out.height / 5;
  size_t drawn_bottom = 0, blank_bottom = 0, drawn_top = 0, blank_top = 0, speech_frames = 0;
  double max_blank_bottom = 0, min_drawn_bottom = 1e9, max_blank_top = 0, min_drawn_top = 1e9;
  for (size_t i = 0; i < out.frames.size(); ++i) {
    const Frame &f = out.frames[i], &r = ref.frames[i];
    const double bottom = band_difference(f, r, out.width, out.height - band, out.height);
    const double top = band_difference(f, r, out.width, 0, band);
    if (inside(f, captions)) {
      ++drawn_bottom;
      min_drawn_bottom = std::min(min_drawn_bottom, bottom);
      BOOST_CHECK_MESSAGE(bottom > kDrawn, "frame " << i << " at " << f.start
                                                    << " s: no caption drawn (bottom " << bottom << ")");
    } else if (!overlaps(f, captions)) {
      ++blank_bottom;
      max_blank_bottom = std::max(max_blank_bottom, bottom);
      BOOST_CHECK_MESSAGE(bottom < kSame, "frame " << i << " at " << f.start << " s: text at the bottom ("
                                                   << bottom << ") outside every caption");
    }
    if (inside(f, summaries)) {
      ++drawn_top;
      min_drawn_top = std::min(min_drawn_top, top);
      BOOST_CHECK_MESSAGE(top > kDrawn,
                          "frame " << i << " at " << f.start << " s: no summary drawn (top " << top << ")");
    } else if (!overlaps(f, summaries)) {
      ++blank_top;
      max_blank_top = std::max(max_blank_top, top);
      BOOST_CHECK_MESSAGE(top < kSame, "frame " << i << " at " << f.start << " s: text at the top (" << top
                                                << ") outside every summary");
    }
    // Where speech is, a caption is drawn (Whisper's segment times are coarse: 0.25 s).
    if (f.start >= speech_start + 0.25 && f.end <= speech_end - 0.25) {
      ++speech_frames;
      BOOST_CHECK_MESSAGE(inside(f, captions) && bottom > kDrawn,
                          "frame " << i << " at " << f.start << " s is in the speech but shows no caption");
    }
  }
  BOOST_TEST_MESSAGE(
      "bottom band: " << drawn_bottom << " captioned frames (difference >= " << min_drawn_bottom << "), "
                      << blank_bottom << " without (<= " << max_blank_bottom << "); top band: " << drawn_top
                      << " with a summary (>= " << min_drawn_top << "), " << blank_top << " without (<= "
                      << max_blank_top << "); " << speech_frames << " frames in the speech");
  // Silence before the speech: no caption yet there, so the start of the clip is blank.
  BOOST_CHECK_GT(captions.front().start, 1.0);
  BOOST_CHECK_GE(drawn_bottom, static_cast<size_t>((speech_end - speech_start - 0.5) / kFrameSeconds));
  BOOST_CHECK_GE(blank_bottom, static_cast<size_t>(1.0 / kFrameSeconds));
  BOOST_CHECK_GT(drawn_top, 0u);
  BOOST_CHECK_GT(blank_top, 0u);
}

BOOST_AUTO_TEST_CASE(inputs_without_video_or_undecodable_fail_clearly) {
  peft_test::TempDir dir;
  const fs::path audio_only = dir / "speech.m4a", garbage = dir / "garbage.mp4",
                 noise_file = dir / "noise.mkv", out = dir / "out.mp4";
  const std::string wav =
      peft_test::kPocketsphinxData + "librivox/sense_and_sensibility_01_austen_64kb-0880.wav";
  Result made =
      run("gst-launch-1.0 -q filesrc location=" + quote(wav) +
              " ! decodebin ! audioconvert ! avenc_aac ! mp4mux ! filesink location=" + quote(audio_only),
          dir.path());
  BOOST_REQUIRE_MESSAGE(made.status == 0, made.err);
  peft_test::write_file(garbage, std::string(20000, '\x5a'));  // typefind: "a text file"
  std::string noise;
  for (uint32_t x = 1; noise.size() < 20000; x = x * 1664525u + 1013904223u)
    noise += static_cast<char>(x >> 24);
  peft_test::write_file(noise_file, noise);

  struct Case {
    fs::path input;
    std::string message;
  };
  for (const Case& c : {Case{audio_only, "no video track"}, Case{garbage, "could not decode"},
                        Case{noise_file, "could not decode"}, Case{dir / "missing.mp4", "no such file"}}) {
    Result r = run(quote(script("caption-overlay")) + " " + quote(c.input) + " " + quote(out), dir.path());
    BOOST_TEST_MESSAGE(c.input.filename() << ": exit " << r.status << ": " << r.err);
    BOOST_CHECK_EQUAL(r.status, 1);
    BOOST_CHECK_MESSAGE(r.err.find(c.input.string() + ": " + c.message) != std::string::npos,
                        "stderr: " << r.err);
    BOOST_CHECK_EQUAL(std::count(r.err.begin(), r.err.end(), '\n'), 1);
    BOOST_CHECK(!fs::exists(out));
  }
  // A missing model: the element's error, named, and no output.
  const fs::path sample = dir / "sample.mp4";
  Result made_sample = run(quote(script("make-sample-video")) + " " + quote(sample), dir.path());
  BOOST_REQUIRE_MESSAGE(made_sample.status == 0, made_sample.err);
  Result no_model = run("ASR_MODEL=" + quote(dir / "no-such-model") + " " + quote(script("caption-overlay")) +
                            " " + quote(sample) + " " + quote(out),
                        dir.path());
  BOOST_TEST_MESSAGE("missing model: exit " << no_model.status << ": " << no_model.err);
  BOOST_CHECK_EQUAL(no_model.status, 1);
  BOOST_CHECK_MESSAGE(no_model.err.find("no-such-model") != std::string::npos &&
                          no_model.err.find("whisperasr") != std::string::npos,
                      "stderr: " << no_model.err);
  BOOST_CHECK(!fs::exists(out));
  BOOST_CHECK(!fs::exists(out.string() + ".partial"));

  Result usage = run(quote(script("caption-overlay")) + " " + quote(garbage), dir.path());
  BOOST_CHECK_EQUAL(usage.status, 2);
}
