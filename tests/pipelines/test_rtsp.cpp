// RTSP (issue 7): a local gst-rtsp-server (tests/pipelines/rtsp_test_server.cpp) serves
// LibriVox utterances as Opus over RTP, paced in real time, on 127.0.0.1; the client is
// pipelines/rtsp (the README's command) or peft-transcribe-media itself.
// - rtsp_script: the five utterances (24.7 s); the transcript's WER, live caption lines
//   on stdout, SRT (read back by subparse) and VTT with monotonic times, a summary shorter
//   than the transcript.
// - reconnect_after_server_restart: 0870 + 0880 served, the server stopped 8 s into the
//   stream (inside 0880) and started again on the same port serving 0920 + 0930; the run
//   goes on and its transcript holds 0870 before and 0920 + 0930 after the restart, on one
//   increasing timeline.
// - stopped_server: nothing listens on the port: exit 1 at once, stderr naming the URL;
//   with --reconnect 2, the same after two attempts.
//
// WER bound: tiny.en, live over RTSP/Opus (inference falls behind the stream on two loaded
// cores and catches up with one decode at a time), gave 0.070 in two runs of this suite
// (5 errors in 71 words: "still more respite. In fact, more than he was", and the
// reference's "a more a amiable"). 0.2 still fails on a missing or repeated utterance.
#define BOOST_TEST_MODULE rtsp
#include <glib.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <boost/test/unit_test.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "peft/metrics/english_normalizer.h"
#include "peft/metrics/wer.h"
#include "pipelines/run_program.h"
#include "pipelines/subtitle_check.h"
#include "pipelines/test_media.h"
#include "test_support.h"

namespace fs = std::filesystem;
using namespace peft_test;

namespace {

constexpr double kMaxWer = 0.2;

// rtsp_test_server run from the build tree, its stdout read line by line.
class RtspServer {
 public:
  explicit RtspServer(const fs::path& media, int port = 0) {
    const char* root = std::getenv("PEFT_BUILD_ROOT");
    BOOST_REQUIRE_MESSAGE(root && *root, "PEFT_BUILD_ROOT is not set (run the tests with meson test)");
    const std::string exe = (fs::path(root) / "tests" / "rtsp_test_server").string();
    const std::vector<std::string> args = {exe, "--port", std::to_string(port), media.string()};
    auto argv = c_argv(args);
    GError* error = nullptr;
    const bool ok = g_spawn_async_with_pipes(nullptr, argv.data(), nullptr, G_SPAWN_DO_NOT_REAP_CHILD,
                                             nullptr, nullptr, &pid_, nullptr, &out_fd_, nullptr, &error);
    BOOST_REQUIRE_MESSAGE(ok, "cannot run " << exe << ": " << (error ? error->message : "?"));
    const auto ready = line(10.0);
    BOOST_REQUIRE_MESSAGE(ready && ready->rfind("ready ", 0) == 0, "rtsp_test_server did not start");
    url_ = ready->substr(6);
  }
  ~RtspServer() {
    stop();
    if (out_fd_ >= 0) close(out_fd_);
  }
  RtspServer(const RtspServer&) = delete;
  RtspServer& operator=(const RtspServer&) = delete;

  const std::string& url() const { return url_; }
  int port() const { return std::stoi(url_.substr(url_.rfind(':') + 1)); }

  // The next line on stdout, or nothing after `timeout` seconds or at its end.
  std::optional<std::string> line(double timeout) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout);
    std::string s;
    for (;;) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now());
      if (left.count() <= 0) return std::nullopt;
      pollfd p{out_fd_, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      char c;
      if (read(out_fd_, &c, 1) != 1) return std::nullopt;
      if (c == '\n') return s;
      s += c;
    }
  }
  // SIGTERM (the server closes its connections) and wait; exit status.
  int stop() {
    if (pid_ <= 0) return status_;
    kill(pid_, SIGTERM);
    int st = 0;
    waitpid(pid_, &st, 0);
    g_spawn_close_pid(pid_);
    pid_ = 0;
    status_ = exit_status(st);
    return status_;
  }

 private:
  GPid pid_ = 0;
  int out_fd_ = -1;
  int status_ = -1;
  std::string url_;
};

struct Media {
  TempDir dir;
  Speech all;     // the five utterances
  Speech before;  // 0870 + 0880, served until the restart
  Speech after;   // 0920 + 0930, served after it
  Media() {
    all = joined_librivox(dir / "all.wav", {"0870", "0880", "0890", "0920", "0930"});
    before = joined_librivox(dir / "before.wav", {"0870", "0880"});
    after = joined_librivox(dir / "after.wav", {"0920", "0930"});
  }
};

Media& media() {
  static Media m;
  return m;
}

std::string program() { return pipelines_program("peft-transcribe-media"); }

std::string script() {
  const char* dir = std::getenv("PEFT_PIPELINES_SOURCE_DIR");
  BOOST_REQUIRE_MESSAGE(dir && *dir, "PEFT_PIPELINES_SOURCE_DIR is not set (run the tests with meson test)");
  return (fs::path(dir) / "rtsp").string();
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);)
    if (!l.empty()) out.push_back(l);
  return out;
}

std::string joined(const std::vector<std::string>& lines) {
  std::string s;
  for (const auto& l : lines) s += (s.empty() ? "" : " ") + l;
  return s;
}

// The share of `reference`'s words the transcript has, in order (alignment hits), after
// Whisper's normalizer: how much of one part of the served speech was transcribed.
double recall(const std::string& reference, const std::string& transcript) {
  const auto counts = peft::metrics::align(peft::metrics::normalize_english(reference),
                                           peft::metrics::normalize_english(transcript));
  return static_cast<double>(counts.hits) / static_cast<double>(counts.reference_words());
}

void check_monotonic(const std::vector<Cue>& cues, const std::string& what) {
  for (size_t i = 0; i < cues.size(); ++i) {
    BOOST_CHECK_MESSAGE(cues[i].start <= cues[i].end, what << " cue " << i << " ends before it starts");
    if (i > 0)
      BOOST_CHECK_MESSAGE(cues[i].start >= cues[i - 1].end - 1e-3,
                          what << " cue " << i << " starts at " << cues[i].start
                               << ", before the end of the previous one (" << cues[i - 1].end << ")");
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(rtsp_script) {
  const Speech& s = media().all;
  RtspServer server(s.wav);
  const fs::path out = media().dir / "out-script";
  const ProgramResult r = run_program({script(), server.url(), out.string(), "--name", "cam"});
  BOOST_TEST_MESSAGE("pipelines/rtsp on " << s.seconds << " s of speech: " << r.seconds << " s, exit "
                                          << r.status);
  BOOST_REQUIRE_MESSAGE(r.status == 0, "exit " << r.status << ": " << r.err);
  BOOST_CHECK(server.line(1.0) == std::optional<std::string>("playing"));

  // Live captions on stdout as they were decided, then the final summary.
  const auto printed = lines_of(r.out);
  size_t captions = 0;
  for (const auto& l : printed)
    captions += std::regex_search(l, std::regex(R"(^\[\d\d:\d\d:\d\d\.\d\d\d --> )"));
  BOOST_CHECK_GE(captions, 2u);
  BOOST_CHECK(r.out.find("[final summary ") != std::string::npos);

  const auto lines = lines_of(read_file(out / "cam.txt"));
  const std::string transcript = joined(lines);
  const double w = normalized_wer(s.reference, transcript);
  BOOST_TEST_MESSAGE("WER " << w << " (" << lines.size() << " segments): " << transcript);
  BOOST_CHECK_MESSAGE(w <= kMaxWer, "WER " << w << " > " << kMaxWer << ": " << transcript);

  const auto vtt = parse_vtt(read_file(out / "cam.vtt"));
  const auto srt = subparse_cues(out / "cam.srt");
  BOOST_CHECK_EQUAL(vtt.size(), lines.size());
  BOOST_CHECK_EQUAL(srt.size(), lines.size());
  check_monotonic(vtt, "VTT");
  check_monotonic(srt, "SRT");
  if (!vtt.empty()) BOOST_CHECK_LE(vtt.back().end, s.seconds + 2.0);

  const std::string summary = read_file(out / "cam.summary.txt");
  BOOST_TEST_MESSAGE("summary: " << summary);
  BOOST_CHECK(!lines_of(summary).empty());
  BOOST_CHECK_LT(summary.size(), transcript.size());
  const auto j = nlohmann::json::parse(read_file(out / "cam.summary.json"));
  BOOST_CHECK_EQUAL(j.at("input").get<std::string>(), server.url());
  BOOST_CHECK_LT(j.at("start").get<double>(), j.at("end").get<double>());
}

BOOST_AUTO_TEST_CASE(reconnect_after_server_restart) {
  const fs::path out = media().dir / "out-reconnect";
  std::optional<RtspServer> server(std::in_place, media().before.wav);
  const std::string url = server->url();
  const int port = server->port();
  // 20 attempts 0.5 s apart (10 s): in one CI run three attempts (1.5 s) ran out before
  // the restarted server accepted connections, with the client decoding on both cores
  // (locally it listens 0.02 s after the restart; the time is logged below).
  LiveProgram client({program(), "--no-summary", "--live-captions", "--output-dir", out.string(),
                      "--reconnect", "20", "--reconnect-delay", "0.5", url},
                     media().dir / "reconnect.err");
  // Stop the server 8 s into its stream: 0870 (7.1 s) was sent, 0880 was being sent.
  BOOST_REQUIRE_MESSAGE(server->line(60.0) == std::optional<std::string>("playing"),
                        "the client did not connect");
  std::this_thread::sleep_for(std::chrono::seconds(8));
  BOOST_CHECK_EQUAL(server->stop(), 0);
  server.reset();
  const auto restart = std::chrono::steady_clock::now();
  RtspServer restarted(media().after.wav, port);
  BOOST_TEST_MESSAGE("the server listened again after "
                     << std::chrono::duration<double>(std::chrono::steady_clock::now() - restart).count()
                     << " s");
  BOOST_CHECK_EQUAL(restarted.url(), url);
  const int status = client.wait();
  const std::string err = client.err();
  BOOST_TEST_MESSAGE("reconnect run: " << client.end_seconds() << " s, exit " << status << ": " << err);
  BOOST_REQUIRE_MESSAGE(status == 0, "exit " << status << ": " << err);
  BOOST_CHECK(restarted.line(1.0) == std::optional<std::string>("playing"));
  BOOST_CHECK(contains_all(err, {url, "The server closed the connection", "reconnecting"}));

  const auto vtt = parse_vtt(read_file(out / "sample.vtt"));
  check_monotonic(vtt, "VTT");
  check_monotonic(subparse_cues(out / "sample.srt"), "SRT");
  const std::string transcript = joined(lines_of(read_file(out / "sample.txt")));
  BOOST_TEST_MESSAGE("transcript: " << transcript);
  const auto utterances = pocketsphinx_utterances("librivox");
  const std::string first = utterances.at(0).reference;                                      // 0870
  const std::string second = utterances.at(3).reference + " " + utterances.at(4).reference;  // 0920 0930
  const double before = recall(first, transcript), after = recall(second, transcript);
  BOOST_TEST_MESSAGE("words heard: " << before << " of 0870, " << after << " of 0920 + 0930");
  BOOST_CHECK_GE(before, 0.8);
  BOOST_CHECK_GE(after, 0.8);
  // 0920 begins "had he married": its cue comes after the 8 s the first server played.
  bool found = false;
  for (const auto& c : vtt)
    if (c.text.find("married") != std::string::npos) {
      found = true;
      BOOST_CHECK_MESSAGE(c.start >= 7.0, "the restarted stream's text starts at " << c.start << " s");
    }
  BOOST_CHECK_MESSAGE(found, "no caption holds \"married\" (0920)");
}

BOOST_AUTO_TEST_CASE(stopped_server) {
  std::string url;
  {
    RtspServer server(media().before.wav);
    url = server.url();
  }  // stopped: nothing listens on its port now
  const fs::path out = media().dir / "out-stopped";
  const ProgramResult r = run_program({program(), "--no-summary", "--output-dir", out.string(), url});
  BOOST_TEST_MESSAGE("no retries: " << r.seconds << " s, exit " << r.status << ": " << r.err);
  BOOST_CHECK_EQUAL(r.status, 1);
  BOOST_CHECK(contains_all(r.err, {"peft-transcribe-media: " + url + ": ", "Could not open resource"}));
  BOOST_CHECK_LT(r.seconds, 30.0);
  BOOST_CHECK(!fs::exists(out) || fs::is_empty(out));

  const ProgramResult r2 = run_program({program(), "--no-summary", "--output-dir", out.string(),
                                        "--reconnect", "2", "--reconnect-delay", "0.2", url});
  BOOST_TEST_MESSAGE("two retries: " << r2.seconds << " s, exit " << r2.status << ": " << r2.err);
  BOOST_CHECK_EQUAL(r2.status, 1);
  BOOST_CHECK(contains_all(r2.err, {url, "attempt 1 of 2", "attempt 2 of 2", "gave up after 2 reconnects"}));
  BOOST_CHECK_LT(r2.seconds, 30.0);
  BOOST_CHECK(!fs::exists(out) || fs::is_empty(out));

  // The script's usage: an RTSP URL is required.
  const ProgramResult usage = run_program({script(), "http://127.0.0.1/x"});
  BOOST_CHECK_EQUAL(usage.status, 2);
}
