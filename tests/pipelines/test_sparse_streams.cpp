// Sparse text streams in real gst-launch-1.0 pipelines (issue 24's bug): whisperasr and
// peftsummarize output text seconds or a minute after their input, and must still let
// every sink downstream preroll and every tee, queue and muxer move on. Each pipeline
// runs under `timeout`: a pipeline that never reaches PLAYING (the bug: a tee'd
// peftsummarize ! fakesink held the filesink's branch in preroll) exits 124 instead of
// hanging the suite. Speech: the five LibriVox utterances joined (24.7 s).
#define BOOST_TEST_MODULE sparse_streams
#include <boost/test/unit_test.hpp>

#include <filesystem>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "pipelines/run_program.h"
#include "pipelines/test_media.h"
#include "test_support.h"

namespace fs = std::filesystem;
using namespace peft_test;

namespace {

struct Fixture {
  fs::path dir = fs::temp_directory_path() / ("peft-sparse-" + std::to_string(::getpid()));
  Speech speech;
  Fixture() {
    fs::create_directories(dir);
    speech = joined_librivox(dir / "speech.wav", {"0870", "0880", "0890", "0920", "0930"});
  }
  ~Fixture() { fs::remove_all(dir); }
};

// gst-launch-1.0 -m (bus messages on stdout) of `description`, killed after `seconds`.
ProgramResult launch(const std::string& description, int seconds = 240) {
  std::vector<std::string> args = {"timeout", std::to_string(seconds), "gst-launch-1.0", "-m"};
  std::istringstream words(description);
  for (std::string w; words >> w;) args.push_back(w);
  ProgramResult r = run_program(args);
  BOOST_TEST_MESSAGE("gst-launch-1.0 " << description << "\n  -> exit " << r.status << " after " << r.seconds
                                       << " s");
  return r;
}

// The texts of the element messages `name` {field=(string)"..."} that gst-launch -m printed
// (GstStructure's serialization, backslash escapes undone).
std::vector<std::string> message_texts(const std::string& out, const std::string& name,
                                       const std::string& field) {
  const std::regex re(name + ", .*?" + field + R"re(=\(string\)"((?:[^"\\]|\\.)*)")re");
  std::vector<std::string> texts;
  for (auto it = std::sregex_iterator(out.begin(), out.end(), re); it != std::sregex_iterator(); ++it) {
    const std::string escaped = (*it)[1].str();
    std::string text;
    for (size_t i = 0; i < escaped.size(); ++i)
      text += escaped[i] == '\\' && i + 1 < escaped.size() ? escaped[++i] : escaped[i];
    texts.push_back(text);
  }
  return texts;
}

bool file_contains(const fs::path& p, const std::string& text) {
  return read_file(p).find(text) != std::string::npos;
}

const char* const kUnbounded = "queue max-size-buffers=0 max-size-bytes=0 max-size-time=0";

}  // namespace

BOOST_FIXTURE_TEST_SUITE(sparse_streams, Fixture)

// The issue's pipeline as a new user wrote it: both sinks async (the default), default
// queues. Before GAP events it never reached PLAYING.
BOOST_AUTO_TEST_CASE(a_teed_summarizer_with_async_sinks_prerolls_and_finishes) {
  const fs::path text = dir / "t.txt";
  const ProgramResult r = launch("filesrc location=" + speech.wav.string() +
                                 " ! wavparse ! audioconvert ! audioresample ! whisperasr ! tee name=t"
                                 " ! queue ! filesink location=" +
                                 text.string() + " t. ! queue ! peftsummarize ! fakesink");
  BOOST_REQUIRE_MESSAGE(r.status == 0, "exit " << r.status << " (124: stuck, never finished)\n" << r.err);
  const std::string transcript = read_file(text);
  BOOST_TEST_MESSAGE("transcript: " << transcript);
  BOOST_TEST(transcript.find("Dashwood") != std::string::npos);
  const auto summaries = message_texts(r.out, "peftsummarize", "summary");
  BOOST_REQUIRE(!summaries.empty());
  BOOST_TEST_MESSAGE("final summary: " << summaries.back());
  BOOST_TEST(!summaries.back().empty());
}

// Captions as a text track beside the audio in Matroska. A muxer takes its streams in
// time order, so the audio waits in its queue until the caption track reaches its time:
// that queue must hold what whisperasr holds back before text is decided, about twice
// its latency (its own queue of `latency` plus the undecided audio: with latency 4 s,
// 8 s of queue was measured to be enough and 6 s not); the caption queue is unbounded
// (text is small). (matroskamux of 1.22 drops GAP events, so only caption buffers move
// it on.)
BOOST_AUTO_TEST_CASE(matroskamux_takes_a_caption_track) {
  const fs::path mkv = dir / "out.mkv";
  const ProgramResult r =
      launch("filesrc location=" + speech.wav.string() + " ! wavparse ! tee name=a a. ! " +
             "queue max-size-buffers=0 max-size-bytes=0 max-size-time=10000000000 ! audioconvert ! "
             "matroskamux name=m" +
             " ! filesink location=" + mkv.string() +
             " a. ! queue ! audioconvert ! audioresample ! whisperasr latency=4000 ! " + kUnbounded +
             " ! m.subtitle_0");
  BOOST_REQUIRE_MESSAGE(r.status == 0, "exit " << r.status << " (124: stuck)\n" << r.err);
  // Each caption is in the file as written (S_TEXT/UTF8 stores the UTF-8 text as it is).
  const auto captions = message_texts(r.out, "whisperasr", "text");
  BOOST_REQUIRE(captions.size() >= 3u);
  for (const std::string& caption : captions)
    BOOST_TEST(file_contains(mkv, caption), "the file lacks the caption '" << caption << "'");
}

BOOST_AUTO_TEST_SUITE_END()
