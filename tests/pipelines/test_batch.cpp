// peft-batch as users run it (the build's pipelines/ directory, next to the real
// peft-transcribe-media and the plugin) on a folder made from LibriVox recordings: a WAV,
// a FLAC and, in a sub-folder, an MP3, plus a file that does not decode and a text file
// that is not media.
// - A batch killed with SIGKILL while its second file is being written leaves no
//   transcriber running; a rerun removes the partial outputs and finishes the rest
//   (outputs of each file, WER against the known text, manifest done/failed with the
//   error text, exit status 1 for the failed file); another rerun transcribes nothing
//   again (and drops a torn manifest line); a changed input or a deleted output is
//   transcribed again.
// - --all, hidden files, the default output folder, two files with one stem.
// - SIGTERM with stderr on a terminal: progress bar, exit status 143, nothing partial.
// - The README's batch example (with summaries), as written.
#define BOOST_TEST_MODULE batch
#include <fcntl.h>
#include <pty.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <nlohmann/json.hpp>

#include "peft/metrics/english_normalizer.h"
#include "peft/metrics/wer.h"
#include "pocketsphinx_testdata.h"
#include "test_support.h"

extern char** environ;

namespace {

using peft_test::fs::path;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

path program() {
  const path p = peft_test::env_dir("PEFT_PIPELINES_DIR", "build/pipelines") / "peft-batch";
  BOOST_REQUIRE_MESSAGE(fs::exists(p), p << " is not built");
  return p;
}

// A started peft-batch; stdout and stderr go to files.
struct Batch {
  pid_t pid = -1;
  path out, err;
};

Batch start(const std::vector<std::string>& args, const path& logs) {
  Batch b;
  b.out = logs.string() + ".out";
  b.err = logs.string() + ".err";
  std::vector<std::string> all = {program().string()};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, b.out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, 2, b.err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  BOOST_REQUIRE_EQUAL(posix_spawn(&b.pid, argv[0], &fa, nullptr, argv.data(), environ), 0);
  posix_spawn_file_actions_destroy(&fa);
  return b;
}

// Exit status, or 128 + the signal that ended it.
int finish(const Batch& b) {
  int w = 0;
  BOOST_REQUIRE_EQUAL(waitpid(b.pid, &w, 0), b.pid);
  return WIFEXITED(w) ? WEXITSTATUS(w) : 128 + WTERMSIG(w);
}

struct Result {
  int status;
  std::string err;
  double seconds;
};

Result run(const std::vector<std::string>& args, const path& logs) {
  const auto t0 = Clock::now();
  const Batch b = start(args, logs);
  const int status = finish(b);
  const double s = std::chrono::duration<double>(Clock::now() - t0).count();
  return {status, peft_test::read_file(b.err), s};
}

std::vector<nlohmann::json> manifest_lines(const path& output_dir) {
  std::vector<nlohmann::json> rows;
  std::istringstream in(peft_test::read_file(output_dir / "manifest.jsonl"));
  for (std::string line; std::getline(in, line);) rows.push_back(nlohmann::json::parse(line));
  return rows;
}

std::map<std::string, nlohmann::json> manifest(const path& output_dir) {
  std::map<std::string, nlohmann::json> m;
  for (auto& r : manifest_lines(output_dir)) m[r.at("input").get<std::string>()] = r;
  return m;
}

// Files under `dir` whose names end with `suffix`.
std::vector<path> files_ending(const path& dir, const std::string& suffix) {
  std::vector<path> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    const std::string n = e.path().filename().string();
    if (n.size() >= suffix.size() && n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0)
      out.push_back(e.path());
  }
  return out;
}

// Transcribers writing into `output_dir` (their command lines name it after --output-dir).
std::vector<std::string> transcribers_into(const path& output_dir) {
  const std::string text = "--output-dir " + output_dir.string();
  std::vector<std::string> found;
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string pid = e.path().filename().string();
    if (pid.find_first_not_of("0123456789") != std::string::npos || pid == std::to_string(getpid())) continue;
    std::ifstream f(e.path() / "cmdline", std::ios::binary);
    std::string cmd(std::istreambuf_iterator<char>(f), {});
    for (auto& c : cmd)
      if (c == '\0') c = ' ';
    if (cmd.find(text) != std::string::npos) found.push_back(pid + ": " + cmd);
  }
  return found;
}

void encode(const std::string& wav, const path& out, const std::string& encoder) {
  const std::string cmd = "gst-launch-1.0 -q filesrc location='" + wav + "' ! wavparse ! audioconvert ! " +
                          encoder + " ! filesink location='" + out.string() + "' >/dev/null";
  BOOST_REQUIRE_MESSAGE(std::system(cmd.c_str()) == 0, "cannot encode with: " << cmd);
}

// The archive: a.wav, b.flac, sub/c.mp3, broken.ogg (not decodable), notes.txt (not media).
struct Archive {
  peft_test::TempDir tmp;
  path in = tmp / "archive";
  std::map<std::string, std::string> reference;  // input -> known text

  Archive() {
    const auto utterances = peft_test::pocketsphinx_utterances("librivox");
    BOOST_REQUIRE_MESSAGE(utterances.size() == 5, "pocketsphinx-testdata is not installed (./setup)");
    // The three shortest recordings (3.0, 3.3 and 5.3 s): whisperasr's cost grows with the audio.
    const auto& [u1, u2, u3] = std::tie(utterances[1], utterances[4], utterances[2]);
    fs::create_directories(in / "sub");
    fs::copy_file(u1.wav, in / "a.wav");
    encode(u2.wav, in / "b.flac", "flacenc");
    encode(u3.wav, in / "sub" / "c.mp3", "lamemp3enc");
    reference = {{"a.wav", u1.reference}, {"b.flac", u2.reference}, {"sub/c.mp3", u3.reference}};
    // An Ogg page signature followed by noise: GStreamer finds no stream type in it.
    std::string junk = "OggS";
    std::mt19937 rng(7);
    for (int i = 0; i < 8000; ++i) junk += static_cast<char>(rng() & 0xff);
    peft_test::write_file(in / "broken.ogg", junk);
    peft_test::write_file(in / "notes.txt", "not media\n");
  }
};

const std::vector<std::string> kFast = {"-j", "2", "--no-summary"};

std::vector<std::string> args(std::vector<std::string> a, const std::vector<std::string>& more) {
  a.insert(a.end(), more.begin(), more.end());
  return a;
}

// Checks the outputs and manifest of a batch over the Archive that has finished.
void check_finished(const Archive& a, const path& out, const std::string& err) {
  auto m = manifest(out);
  BOOST_CHECK_EQUAL(m.size(), 4u);  // notes.txt ignored
  for (const auto& [input, ref] : a.reference) {
    BOOST_REQUIRE_MESSAGE(m.count(input), input << " is not in the manifest");
    const auto& r = m[input];
    BOOST_CHECK_EQUAL(r.at("status"), "done");
    BOOST_CHECK_EQUAL(r.at("size").get<std::uintmax_t>(), fs::file_size(a.in / input));
    const std::string stem = (path(input).parent_path() / path(input).stem()).generic_string();
    const std::vector<std::string> expected = {stem + ".txt", stem + ".srt", stem + ".vtt"};
    BOOST_CHECK(r.at("outputs").get<std::vector<std::string>>() == expected);
    for (const auto& o : expected) BOOST_CHECK_MESSAGE(fs::is_regular_file(out / o), o << " is missing");
  }
  BOOST_REQUIRE(m.count("broken.ogg"));
  BOOST_CHECK_EQUAL(m["broken.ogg"].at("status"), "failed");
  const std::string error = m["broken.ogg"].at("error");
  BOOST_TEST_MESSAGE("broken.ogg: " << error);
  BOOST_CHECK_MESSAGE(error.find("broken.ogg") != std::string::npos, "the error does not name the file");
  BOOST_CHECK_MESSAGE(err.find("FAILED  broken.ogg: ") != std::string::npos, "stderr lacks the failure");
  BOOST_CHECK(m["broken.ogg"].at("outputs").empty());
  BOOST_CHECK(!fs::exists(out / "broken.txt"));
  BOOST_CHECK(!fs::exists(out / "notes.txt"));
  BOOST_CHECK(files_ending(out, ".partial").empty());
}

}  // namespace

BOOST_AUTO_TEST_CASE(help_and_usage) {
  peft_test::TempDir tmp;
  const Result h = run({"--help"}, tmp / "help");
  BOOST_CHECK_EQUAL(h.status, 0);
  const std::string text = peft_test::read_file(tmp / "help.out");
  for (const char* o : {"--jobs", "--n-threads", "--all", "--force", "--transcriber", "--formats",
                        "--no-summary", "--max-new-tokens", "manifest.jsonl", "Exit status"})
    BOOST_CHECK_MESSAGE(text.find(o) != std::string::npos, o << " is not documented by --help");
  const Result bad = run({(tmp / "no-such-folder").string()}, tmp / "bad");
  BOOST_CHECK_EQUAL(bad.status, 2);
  BOOST_CHECK_MESSAGE(bad.err.find("no-such-folder is not a folder") != std::string::npos, bad.err);
}

// One archive through the life of a batch: killed with SIGKILL once its first file is
// done (no transcriber outlives it), rerun to the end (exit 1 for broken.ogg; outputs,
// WER and manifest checked), rerun again (nothing transcribed again).
BOOST_AUTO_TEST_CASE(killed_resumed_then_skipped) {
  Archive a;
  const path out = a.tmp / "out";
  const Batch b = start(args({"-j", "1", "--no-summary"}, {a.in.string(), out.string()}), a.tmp / "killed");
  const auto t0 = Clock::now();
  bool one_done = false;
  while (!one_done && Clock::now() < t0 + std::chrono::minutes(3)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    std::ifstream f(out / "manifest.jsonl");
    for (std::string line; std::getline(f, line);)
      if (line.find("\"status\":\"done\"") != std::string::npos) one_done = true;
  }
  BOOST_REQUIRE_MESSAGE(one_done, "no file finished within 3 minutes");
  BOOST_TEST_MESSAGE("first file done after " << std::chrono::duration<double>(Clock::now() - t0).count()
                                              << " s");
  // Kill while the next transcriber is writing its outputs (NAME.EXT.partial).
  while (files_ending(out, ".partial").empty() && Clock::now() < t0 + std::chrono::minutes(3))
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  BOOST_TEST_MESSAGE("before the kill: " << transcribers_into(out).size() << " transcriber(s) running");
  kill(b.pid, SIGKILL);
  BOOST_CHECK_EQUAL(finish(b), 128 + SIGKILL);
  std::vector<std::string> left;
  for (int i = 0; i < 40 && !(left = transcribers_into(out)).empty(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  BOOST_CHECK_MESSAGE(left.empty(), "a transcriber outlived the killed batch: " << left.front());
  BOOST_CHECK_MESSAGE(!files_ending(out, ".partial").empty(), "the kill left no partial outputs to clean up");
  size_t done_before = 0;
  for (const auto& [input, r] : manifest(out)) done_before += r.at("status") == "done";
  BOOST_CHECK_GE(done_before, 1u);
  BOOST_CHECK_LT(done_before, 3u);

  const Result rerun = run(args(kFast, {a.in.string(), out.string()}), a.tmp / "rerun");
  BOOST_TEST_MESSAGE("rerun after the kill: " << rerun.seconds << " s\n" << rerun.err);
  BOOST_CHECK_EQUAL(rerun.status, 1);  // broken.ogg failed
  BOOST_CHECK_MESSAGE(rerun.err.find(std::to_string(done_before) + " already done") != std::string::npos,
                      rerun.err);
  check_finished(a, out, rerun.err);

  std::vector<std::string> refs, hyps;
  for (const auto& [input, ref] : a.reference) {
    const path txt = out / (path(input).parent_path() / (path(input).stem().string() + ".txt"));
    std::string text = peft_test::read_file(txt);
    for (auto& c : text)
      if (c == '\n') c = ' ';
    const double w =
        peft::metrics::wer(peft::metrics::normalize_english(ref), peft::metrics::normalize_english(text));
    BOOST_TEST_MESSAGE(input << ": WER " << w * 100 << "%: " << text);
    BOOST_CHECK_LE(w, 0.3);
    refs.push_back(peft::metrics::normalize_english(ref));
    hyps.push_back(peft::metrics::normalize_english(text));
  }
  const double corpus = peft::metrics::corpus_wer(refs, hyps).wer;
  BOOST_TEST_MESSAGE("corpus WER " << corpus * 100 << "%");
  BOOST_CHECK_LE(corpus, 0.15);

  // Again: the done files are skipped (records and outputs untouched), broken.ogg is retried.
  std::map<std::string, std::string> done_lines;
  for (const auto& r : manifest_lines(out))
    if (r.at("status") == "done") done_lines[r.at("input")] = r.dump();
  BOOST_CHECK_EQUAL(done_lines.size(), 3u);
  const auto txt_time = fs::last_write_time(out / "a.txt");
  {  // a line cut short, as by a kill during a write: dropped with a warning
    std::ofstream torn(out / "manifest.jsonl", std::ios::app);
    torn << "{\"input\":\"b.flac\",\"size\":";
  }
  const Result again = run(args(kFast, {a.in.string(), out.string()}), a.tmp / "again");
  BOOST_TEST_MESSAGE("rerun when done: " << again.seconds << " s\n" << again.err);
  BOOST_CHECK_EQUAL(again.status, 1);
  BOOST_CHECK_MESSAGE(again.err.find("3 already done, 1 to transcribe") != std::string::npos, again.err);
  BOOST_CHECK_LT(again.seconds, rerun.seconds / 2);  // only broken.ogg is tried again
  BOOST_CHECK_MESSAGE(again.err.find("dropped 1 unreadable line") != std::string::npos, again.err);
  for (const auto& r : manifest_lines(out))
    if (done_lines.count(r.at("input"))) BOOST_CHECK_EQUAL(r.dump(), done_lines[r.at("input")]);
  BOOST_CHECK(fs::last_write_time(out / "a.txt") == txt_time);
  check_finished(a, out, again.err);

  // A file that changed (its modification time) and a file whose output was deleted are
  // transcribed again; the third keeps its record.
  fs::last_write_time(a.in / "b.flac", fs::file_time_type::clock::now());
  fs::remove(out / "a.vtt");
  const Result changed = run(args(kFast, {a.in.string(), out.string()}), a.tmp / "changed");
  BOOST_TEST_MESSAGE("rerun after changes: " << changed.seconds << " s\n" << changed.err);
  BOOST_CHECK_EQUAL(changed.status, 1);
  BOOST_CHECK_MESSAGE(changed.err.find("1 already done, 3 to transcribe") != std::string::npos, changed.err);
  auto m = manifest(out);
  BOOST_CHECK_NE(m["a.wav"].dump(), done_lines["a.wav"]);
  BOOST_CHECK_NE(m["b.flac"].dump(), done_lines["b.flac"]);
  BOOST_CHECK_EQUAL(m["sub/c.mp3"].dump(), done_lines["sub/c.mp3"]);
  check_finished(a, out, changed.err);
}

// --all tries every file but the hidden ones and the output folder (here the default,
// INPUT_DIR/transcripts); two files with one stem get their whole names as NAME.
BOOST_AUTO_TEST_CASE(all_files_default_output_same_stems) {
  peft_test::TempDir tmp;
  const path in = tmp / "in";
  const auto utterances = peft_test::pocketsphinx_utterances("librivox");
  BOOST_REQUIRE(utterances.size() == 5);
  fs::create_directories(in / ".hidden");
  fs::copy_file(utterances[1].wav, in / "talk.wav");
  encode(utterances[1].wav, in / "talk.flac", "flacenc");
  fs::copy_file(utterances[1].wav, in / ".hidden" / "x.wav");
  peft_test::write_file(in / "notes.txt", "not media\n");
  const Result r = run({"--all", "--no-summary", "-j", "2", in.string()}, tmp / "all");
  BOOST_TEST_MESSAGE("--all: " << r.seconds << " s\n" << r.err);
  BOOST_CHECK_EQUAL(r.status, 1);
  const path out = in / "transcripts";
  auto m = manifest(out);
  BOOST_CHECK_EQUAL(m.size(), 3u);
  BOOST_CHECK_EQUAL(m["notes.txt"].at("status"), "failed");
  BOOST_CHECK(m["notes.txt"].at("error").get<std::string>().find("notes.txt") != std::string::npos);
  for (const std::string name : {"talk.wav", "talk.flac"}) {
    BOOST_CHECK_EQUAL(m[name].at("status"), "done");
    for (const std::string ext : {".txt", ".srt", ".vtt"})
      BOOST_CHECK_MESSAGE(fs::is_regular_file(out / (name + ext)), name + ext << " is missing");
  }
  // Again with --all: the outputs and manifest under in/transcripts are not inputs.
  const Result again = run({"--all", "--no-summary", "-j", "2", in.string()}, tmp / "again");
  BOOST_CHECK_EQUAL(again.status, 1);
  BOOST_CHECK_MESSAGE(again.err.find("3 file(s) under") != std::string::npos, again.err);
  BOOST_CHECK_MESSAGE(again.err.find("2 already done, 1 to transcribe") != std::string::npos, again.err);
}

// SIGTERM while the first files run, with stderr on a terminal: the progress bar is
// drawn; exit status 143, nothing partial left, no transcriber left running, and the
// manifest holds only finished files.
BOOST_AUTO_TEST_CASE(sigterm_on_a_terminal) {
  Archive a;
  const path out = a.tmp / "out";
  std::vector<std::string> all = {program().string()};
  for (const auto& s : args(kFast, {a.in.string(), out.string()})) all.push_back(s);
  std::vector<char*> argv;
  for (auto& s : all) argv.push_back(s.data());
  argv.push_back(nullptr);
  int master = -1;
  const pid_t pid = forkpty(&master, nullptr, nullptr, nullptr);
  BOOST_REQUIRE(pid >= 0);
  if (pid == 0) {
    execve(argv[0], argv.data(), environ);
    _exit(127);
  }
  std::string tty;
  std::thread reader([&] {
    char buf[4096];
    for (ssize_t n; (n = read(master, buf, sizeof buf)) > 0;) tty.append(buf, static_cast<size_t>(n));
  });
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  while (transcribers_into(out).empty() && Clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  kill(pid, SIGTERM);
  int w = 0;
  BOOST_REQUIRE_EQUAL(waitpid(pid, &w, 0), pid);
  reader.join();  // read() fails once the terminal's last writer is gone
  close(master);
  BOOST_TEST_MESSAGE(tty);
  BOOST_CHECK(WIFEXITED(w) && WEXITSTATUS(w) == 143);
  BOOST_CHECK_MESSAGE(tty.find("\r\033[K[0/4] 0% eta ?  a.wav") != std::string::npos, "no progress bar");
  BOOST_CHECK_MESSAGE(tty.find("stopped by signal 15 (rerun to continue)") != std::string::npos, tty);
  BOOST_CHECK(transcribers_into(out).empty());
  BOOST_CHECK(files_ending(out, ".partial").empty());
  for (const auto& [input, r] : manifest(out))  // whatever finished is complete
    for (const auto& o : r.at("outputs")) BOOST_CHECK(fs::is_regular_file(out / o.get<std::string>()));
}

// The README's batch example (the first sh block of its "### Batch archives" section), as
// written, in an empty folder where build/ is the build tree.
BOOST_AUTO_TEST_CASE(readme_example) {
  const path readme = peft_test::env_dir("PEFT_PIPELINES_SOURCE_DIR", "pipelines") / ".." / "README.md";
  const std::string text = peft_test::read_file(readme);
  const size_t section = text.find("\n### Batch archives");
  BOOST_REQUIRE_MESSAGE(section != std::string::npos, "README.md has no \"### Batch archives\" section");
  const size_t begin = text.find("```sh\n", section);
  BOOST_REQUIRE(begin != std::string::npos);
  const size_t end = text.find("```", begin + 6);
  BOOST_REQUIRE(end != std::string::npos);
  peft_test::TempDir tmp;
  peft_test::write_file(tmp / "example.sh", text.substr(begin + 6, end - begin - 6));
  fs::create_directory_symlink(fs::absolute(peft_test::env_dir("PEFT_BUILD_ROOT", "build")), tmp / "build");
  const auto t0 = Clock::now();
  const std::string cmd = "cd '" + tmp.path().string() + "' && bash -e example.sh >out 2>err";
  const int status = std::system(cmd.c_str());
  const std::string out = peft_test::read_file(tmp / "out"), err = peft_test::read_file(tmp / "err");
  BOOST_TEST_MESSAGE("README example: " << std::chrono::duration<double>(Clock::now() - t0).count() << " s\n"
                                        << out << err);
  BOOST_REQUIRE_EQUAL(status, 0);
  // The transcript, then its summary (non-empty), then the manifest's two lines.
  BOOST_CHECK_MESSAGE(
      peft::metrics::wer(peft::metrics::normalize_english("he might even have been made amiable himself"),
                         peft::metrics::normalize_english(
                             peft_test::read_file(tmp / "transcripts" / "chapter1" / "0930.txt"))) <= 0.25,
      "0930.mp3's transcript is off");
  const std::string summary = peft_test::read_file(tmp / "transcripts" / "chapter1" / "0930.summary.txt");
  BOOST_CHECK_MESSAGE(summary.find_first_not_of(" \n") != std::string::npos, "empty summary");
  BOOST_CHECK(out.find(summary) != std::string::npos);
  const auto m = manifest(tmp / "transcripts");
  BOOST_CHECK_EQUAL(m.size(), 2u);
  for (const auto& [input, r] : m) {
    BOOST_CHECK_EQUAL(r.at("status"), "done");
    BOOST_CHECK_EQUAL(r.at("outputs").size(), 5u);
    for (const auto& o : r.at("outputs"))
      BOOST_CHECK(fs::is_regular_file(tmp / "transcripts" / o.get<std::string>()));
  }
  const auto json = nlohmann::json::parse(peft_test::read_file(tmp / "transcripts" / "0880.summary.json"));
  BOOST_CHECK(!json.at("summary").get<std::string>().empty());
  BOOST_CHECK_MESSAGE(err.find("2 already done, 0 to transcribe") != std::string::npos, err);
}
