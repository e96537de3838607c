// peft-batch: transcribes (and summarizes) every media file under a folder, N files at a
// time, by running peft-transcribe-media once per file. Resumable: a manifest records
// each finished file, and a rerun skips the files it lists as done. Torch-free and
// GStreamer-free itself: the per-file work, and its failures, stay in child processes.
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "batch_manifest.h"
#include "cli_common.h"

namespace fs = std::filesystem;
using peft::batch::Manifest;
using peft::batch::Record;
using peft::cli::usage_error;
using Clock = std::chrono::steady_clock;

namespace {

const char* kUsage = R"(usage: peft-batch [options] INPUT_DIR [OUTPUT_DIR]

Transcribes every media file under INPUT_DIR (recursively) with peft-transcribe-media,
writing its transcript (NAME.txt, NAME.srt, NAME.vtt) and summary (NAME.summary.txt,
NAME.summary.json) into OUTPUT_DIR, in the same sub-folder as the file has under
INPUT_DIR. NAME is the file name without its extension (the whole file name when two
files of a folder share that stem). Several files run at once, each in its own process,
so one file that cannot be decoded fails alone: its error is printed and recorded, and
the batch goes on.

OUTPUT_DIR/manifest.jsonl holds one JSON object per line and input file: "input" (path
under INPUT_DIR), "size" and "mtime_ns" (of the input when it was processed), "status"
("done" or "failed"), "outputs" (paths under OUTPUT_DIR), "error" (the transcriber's
message, failed files only), "seconds" (wall time) and "options" (the transcriber
options that shape the outputs). It is appended to as files finish and rewritten
atomically at the start and end of a run, so it is consistent even after a kill.

Rerunning the same command resumes: files recorded done whose size, modification time
and options are unchanged and whose outputs all exist are skipped; failed files, files
that changed, and files a killed run left unfinished (their *.partial outputs are
removed) are transcribed again.

INPUT_DIR         folder of media files; files and folders whose names start with '.'
                  are ignored
OUTPUT_DIR        where outputs and the manifest go (default: INPUT_DIR/transcripts,
                  which the search of INPUT_DIR then skips); may be INPUT_DIR itself
                  (outputs next to their media, never taken for inputs)

options:
  -j, --jobs N      files transcribed at once (default: half the CPU cores, at least 1)
  --n-threads N     threads of each transcriber (default: the CPU cores divided by N
                    jobs, at least 1)
  --all             try every file, not only those with a media extension (.wav .flac
                    .mp3 .ogg .oga .opus .m4a .mp4 .mkv .webm .mov .aac); files that do
                    not decode are then recorded as failed
  --force           transcribe every file again, even those recorded done
  --transcriber PATH
                    the peft-transcribe-media program (default: the one next to
                    peft-batch, else the one on PATH)
  --formats LIST    comma list of txt,srt,vtt,summary (default: all four)
  --no-summary      transcripts only (no summary model is loaded)
  --asr-model PATH, --asr-quantization Q, --adapter DIR, --language CODE,
  --latency MS, --beam-size N, --summary-model PATH, --summary-quantization Q,
  --summary-adapter DIR, --summary-mode MODE, --window S, --hop S,
  --max-new-tokens N
                    passed to peft-transcribe-media unchanged (see its --help)
  -q, --quiet       no progress output; only failures and the final count
  -h, --help        this text

Progress goes to stderr: a progress bar ("[12/40] 30% eta 4m  name.mp3") when stderr is
a terminal, one line per finished file otherwise. Ctrl-C (SIGINT) or SIGTERM stops the
batch: no new file starts, running transcribers are killed, their partial outputs are
removed and the manifest keeps every file finished so far; rerun to continue.

Exit status: 0 when every file is done, 1 when any file failed (or another error, such
as an OUTPUT_DIR in use by another peft-batch), 2 on bad usage, 130 after SIGINT and
143 after SIGTERM.
)";

const std::set<std::string> kMediaExtensions = {".wav", ".flac", ".mp3", ".ogg",  ".oga", ".opus",
                                                ".m4a", ".mp4",  ".mkv", ".webm", ".mov", ".aac"};
const std::vector<std::string> kValueOptions = {
    "--asr-model",       "--asr-quantization", "--adapter",       "--language",
    "--latency",         "--beam-size",        "--summary-model", "--summary-quantization",
    "--summary-adapter", "--summary-mode",     "--window",        "--hop",
    "--max-new-tokens"};

struct Options {
  fs::path input_dir, output_dir;
  unsigned jobs = 0, n_threads = 0;  // 0: from the CPU count
  bool all = false, force = false, quiet = false, summary = true;
  std::vector<std::string> formats = {"txt", "srt", "vtt", "summary"};
  std::optional<fs::path> transcriber;
  std::vector<std::string> passthrough;  // transcriber options, in the order given
};

// A file to transcribe.
struct Job {
  std::string rel;  // under INPUT_DIR, generic ('/') form
  fs::path input;   // absolute
  std::uintmax_t size = 0;
  std::int64_t mtime_ns = 0;
  fs::path out_dir;                  // absolute: OUTPUT_DIR / rel's folder
  std::string name;                  // outputs' basename
  std::vector<std::string> outputs;  // under OUTPUT_DIR, generic form
};

// A transcriber that runs.
struct Child {
  pid_t pid = -1;
  int out_fd = -1;  // its stdout and stderr, merged
  const Job* job = nullptr;
  Clock::time_point start;
  std::string output;  // what it printed (the tail, when it prints a lot)
};

volatile sig_atomic_t g_signal = 0;
int g_wake_fd = -1;  // write end of the self-pipe that wakes poll() on a signal

void on_signal(int signo) {
  if (!g_signal) g_signal = signo;
  const int saved = errno;
  if (g_wake_fd >= 0) (void)!::write(g_wake_fd, "x", 1);
  errno = saved;
}

unsigned cpu_count() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
  return std::max(1u, std::thread::hardware_concurrency());
}

[[noreturn]] void fatal(const std::string& message) {
  std::cerr << peft::cli::program() << ": " << message << "\n";
  std::exit(1);
}

Options parse_args(int argc, char** argv) {
  Options o;
  std::vector<std::string> positional;
  std::vector<std::string> args(argv + 1, argv + argc);
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&]() -> const std::string& {
      if (i + 1 >= args.size()) usage_error(a + " needs a value");
      return args[++i];
    };
    if (a == "-h" || a == "--help") {
      std::cout << kUsage;
      std::exit(0);
    } else if (a == "-j" || a == "--jobs") {
      o.jobs = peft::cli::to_number<unsigned>(a, value());
      if (o.jobs == 0) usage_error(a + " must be at least 1");
    } else if (a.rfind("-j", 0) == 0 && a.size() > 2 && std::isdigit(static_cast<unsigned char>(a[2]))) {
      o.jobs = peft::cli::to_number<unsigned>("-j", a.substr(2));
      if (o.jobs == 0) usage_error("-j must be at least 1");
    } else if (a == "--n-threads") {
      o.n_threads = peft::cli::to_number<unsigned>(a, value());
      if (o.n_threads == 0) usage_error(a + " must be at least 1");
    } else if (a == "--all") {
      o.all = true;
    } else if (a == "--force") {
      o.force = true;
    } else if (a == "-q" || a == "--quiet") {
      o.quiet = true;
    } else if (a == "--no-summary") {
      o.summary = false;
    } else if (a == "--transcriber") {
      o.transcriber = fs::path(value());
    } else if (a == "--formats") {
      o.formats.clear();
      std::stringstream list(value());
      for (std::string f; std::getline(list, f, ',');) {
        if (f != "txt" && f != "srt" && f != "vtt" && f != "summary")
          usage_error("--formats: unknown format '" + f + "' (txt, srt, vtt, summary)");
        if (std::find(o.formats.begin(), o.formats.end(), f) == o.formats.end()) o.formats.push_back(f);
      }
      if (o.formats.empty()) usage_error("--formats needs at least one format");
    } else if (std::find(kValueOptions.begin(), kValueOptions.end(), a) != kValueOptions.end()) {
      const std::string v = value();
      o.passthrough.push_back(a);
      o.passthrough.push_back(v);
    } else if (a.size() > 1 && a[0] == '-') {
      usage_error("unknown option " + a);
    } else {
      positional.push_back(a);
    }
  }
  if (positional.empty() || positional.size() > 2) usage_error("expects INPUT_DIR [OUTPUT_DIR]");
  if (!o.summary) {
    o.formats.erase(std::remove(o.formats.begin(), o.formats.end(), "summary"), o.formats.end());
    if (o.formats.empty()) usage_error("--no-summary leaves no output format (--formats summary)");
  }
  o.input_dir = positional[0];
  std::error_code ec;
  if (!fs::is_directory(o.input_dir, ec)) usage_error(o.input_dir.string() + " is not a folder");
  o.input_dir = fs::canonical(o.input_dir);
  o.output_dir = positional.size() > 1 ? fs::absolute(positional[1]) : o.input_dir / "transcripts";
  o.output_dir = fs::weakly_canonical(o.output_dir);
  const unsigned cores = cpu_count();
  if (o.jobs == 0) o.jobs = std::max(1u, cores / 2);
  if (o.n_threads == 0) o.n_threads = std::max(1u, cores / o.jobs);
  return o;
}

fs::path find_transcriber(const Options& o) {
  const std::string name = "peft-transcribe-media";
  auto runnable = [](const fs::path& p) { return ::access(p.c_str(), X_OK) == 0 && !fs::is_directory(p); };
  if (o.transcriber) {
    if (!runnable(*o.transcriber)) fatal("--transcriber " + o.transcriber->string() + " is not a program");
    return fs::absolute(*o.transcriber);
  }
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (!ec && runnable(self.parent_path() / name)) return self.parent_path() / name;
  if (const char* path = std::getenv("PATH")) {
    std::stringstream dirs(path);
    for (std::string d; std::getline(dirs, d, ':');)
      if (!d.empty() && runnable(fs::path(d) / name)) return fs::absolute(fs::path(d) / name);
  }
  fatal("cannot find " + name + " next to this program or on PATH (use --transcriber PATH)");
}

std::vector<std::string> output_files(const std::string& name, const std::vector<std::string>& formats) {
  std::vector<std::string> out;
  for (const auto& f : formats) {
    if (f == "summary") {
      out.push_back(name + ".summary.txt");
      out.push_back(name + ".summary.json");
    } else {
      out.push_back(name + "." + f);
    }
  }
  return out;
}

bool hidden(const fs::path& p) {
  const std::string n = p.filename().string();
  return !n.empty() && n[0] == '.';
}

// The media files under INPUT_DIR, sorted, with their output names.
std::vector<Job> find_jobs(const Options& o) {
  std::vector<Job> jobs;
  const bool output_inside =
      o.output_dir != o.input_dir && o.output_dir.string().rfind(o.input_dir.string() + "/", 0) == 0;
  std::error_code ec;
  fs::recursive_directory_iterator it(o.input_dir, fs::directory_options::skip_permission_denied, ec), end;
  if (ec) fatal("cannot read " + o.input_dir.string() + ": " + ec.message());
  for (; it != end; it.increment(ec)) {
    if (ec) {
      std::cerr << peft::cli::program() << ": warning: " << ec.message() << "\n";
      ec.clear();
      continue;
    }
    const fs::path& p = it->path();
    if (hidden(p) || (output_inside && p == o.output_dir)) {
      if (it->is_directory(ec)) it.disable_recursion_pending();
      continue;
    }
    if (!it->is_regular_file(ec)) continue;  // follows symlinks to files
    std::string ext = p.extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
    if (!o.all && !kMediaExtensions.count(ext)) continue;
    struct stat st {};
    if (::stat(p.c_str(), &st) != 0) continue;
    Job j;
    j.input = p;
    j.rel = p.lexically_relative(o.input_dir).generic_string();
    j.size = static_cast<std::uintmax_t>(st.st_size);
    j.mtime_ns = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
    j.out_dir = o.output_dir / p.lexically_relative(o.input_dir).parent_path();
    jobs.push_back(std::move(j));
  }
  if (o.output_dir == o.input_dir) {
    // Outputs next to their inputs: with --all, do not take them, the manifest or partial
    // outputs for inputs (any format, whichever NAME: --formats may change between runs).
    std::set<std::string> outputs;
    for (const auto& j : jobs) {
      const fs::path dir = fs::path(j.rel).parent_path();
      for (const auto& name : {j.input.stem().string(), j.input.filename().string()})
        for (const auto& f : output_files(name, {"txt", "srt", "vtt", "summary"}))
          outputs.insert((dir / f).generic_string());
    }
    auto is_output = [&](const Job& j) {
      const std::string n = j.input.filename().string();
      return outputs.count(j.rel) || n.rfind("manifest.jsonl", 0) == 0 ||
             (n.size() > 8 && n.compare(n.size() - 8, 8, ".partial") == 0);
    };
    jobs.erase(std::remove_if(jobs.begin(), jobs.end(), is_output), jobs.end());
  }
  std::sort(jobs.begin(), jobs.end(), [](const Job& a, const Job& b) { return a.rel < b.rel; });
  // NAME: the stem, or the whole file name where two files of a folder share a stem.
  std::map<std::pair<fs::path, std::string>, int> stems;
  for (const auto& j : jobs) ++stems[{j.out_dir, j.input.stem().string()}];
  for (auto& j : jobs) {
    j.name = stems[{j.out_dir, j.input.stem().string()}] > 1 ? j.input.filename().string()
                                                             : j.input.stem().string();
    const fs::path rel_dir = fs::path(j.rel).parent_path();
    for (const auto& f : output_files(j.name, o.formats)) j.outputs.push_back((rel_dir / f).generic_string());
  }
  return jobs;
}

// Removes the *.partial files a transcriber of `job` leaves when it is killed.
void remove_partials(const Job& job) {
  std::error_code ec;
  if (!fs::is_directory(job.out_dir, ec)) return;
  const std::string prefix = job.name + ".";
  for (const auto& e : fs::directory_iterator(job.out_dir, ec)) {
    const std::string n = e.path().filename().string();
    if (n.size() > prefix.size() + 8 && n.rfind(prefix, 0) == 0 &&
        n.compare(n.size() - 8, 8, ".partial") == 0)
      fs::remove(e.path(), ec);
  }
}

void remove_outputs(const fs::path& output_dir, const std::vector<std::string>& outputs) {
  std::error_code ec;
  for (const auto& o : outputs) fs::remove(output_dir / o, ec);
}

bool up_to_date(const Record& r, const Job& j, const std::vector<std::string>& options,
                const fs::path& output_dir) {
  if (r.status != "done" || r.size != j.size || r.mtime_ns != j.mtime_ns || r.options != options ||
      r.outputs != j.outputs)
    return false;
  std::error_code ec;
  for (const auto& o : r.outputs)
    if (!fs::is_regular_file(output_dir / o, ec)) return false;
  return true;
}

// The transcriber's error: its lines that start with its program name (its one-line
// error), else its last lines.
std::string error_text(const std::string& output, const std::string& program) {
  std::vector<std::string> lines, own;
  std::istringstream in(output);
  for (std::string line; std::getline(in, line);) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (line.empty()) continue;
    if (line.rfind(program + ":", 0) == 0) own.push_back(line);
    lines.push_back(line);
  }
  const auto& pick = own.empty() ? lines : own;
  std::string text;
  for (size_t i = pick.size() > 3 ? pick.size() - 3 : 0; i < pick.size(); ++i)
    text += (text.empty() ? "" : "\n") + pick[i];
  return text;
}

std::string duration_text(double seconds) {
  const long s = static_cast<long>(seconds + 0.5);
  char buf[32];
  if (s < 60)
    std::snprintf(buf, sizeof buf, "%lds", s);
  else if (s < 3600)
    std::snprintf(buf, sizeof buf, "%ldm%02lds", s / 60, s % 60);
  else
    std::snprintf(buf, sizeof buf, "%ldh%02ldm", s / 3600, (s / 60) % 60);
  return buf;
}

// Progress on stderr: a redrawn bar on a terminal, one line per finished file otherwise.
class Progress {
 public:
  Progress(size_t total, std::uintmax_t total_bytes, bool quiet)
      : total_(total), total_bytes_(total_bytes), quiet_(quiet), tty_(!quiet && ::isatty(2)) {}

  void finished(const Job& job, bool ok, double seconds, const std::string& error) {
    ++finished_;
    done_bytes_ += job.size;
    std::ostringstream line;
    line << "[" << finished_ << "/" << total_ << "] ";
    if (ok)
      line << "done    " << job.rel << " (" << duration_text(seconds) << ")";
    else
      line << "FAILED  " << job.rel << ": " << error;
    if (!ok || (!quiet_ && !tty_)) print_line(line.str());
  }

  // Prints a line above the bar.
  void print_line(const std::string& text) {
    if (tty_) std::cerr << "\r\033[K";
    std::cerr << text << "\n";
    if (tty_) draw(current_);
  }

  // Redraws the bar; `current` names a running file.
  void draw(const std::string& current) {
    current_ = current;
    if (!tty_) return;
    const double elapsed = std::chrono::duration<double>(Clock::now() - start_).count();
    std::ostringstream bar;
    bar << "[" << finished_ << "/" << total_ << "] " << (total_ ? 100 * finished_ / total_ : 100) << "% eta ";
    if (done_bytes_ > 0 && elapsed > 0)
      bar << duration_text(elapsed * static_cast<double>(total_bytes_ - done_bytes_) /
                           static_cast<double>(done_bytes_));
    else
      bar << "?";
    bar << "  " << current;
    std::string text = bar.str();
    winsize ws{};
    if (::ioctl(2, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1 && text.size() >= ws.ws_col)
      text.resize(ws.ws_col - 1);
    std::cerr << "\r\033[K" << text << std::flush;
  }

  void clear() {
    if (tty_) std::cerr << "\r\033[K" << std::flush;
  }

 private:
  size_t total_, finished_ = 0;
  std::uintmax_t total_bytes_, done_bytes_ = 0;
  bool quiet_, tty_;
  std::string current_;
  Clock::time_point start_ = Clock::now();
};

// Starts the transcriber on `job` in its own process group (so a Ctrl-C on the terminal
// reaches peft-batch alone, which then kills it: a transcriber's own SIGINT handling
// would end the file early with finished-looking outputs). It dies with peft-batch.
Child launch(const fs::path& transcriber, const std::vector<std::string>& args, const Job& job) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) fatal(std::string("cannot create a pipe: ") + std::strerror(errno));
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) fatal(std::string("cannot start a process: ") + std::strerror(errno));
  if (pid == 0) {
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);  // peft-batch died before prctl
    for (int s : {SIGINT, SIGTERM, SIGHUP, SIGPIPE}) ::signal(s, SIG_DFL);
    const int null = ::open("/dev/null", O_RDONLY);
    if (null >= 0) ::dup2(null, 0);
    ::dup2(fds[1], 1);
    ::dup2(fds[1], 2);
    ::execv(transcriber.c_str(), argv.data());
    const std::string msg =
        "peft-batch: cannot run " + transcriber.string() + ": " + std::strerror(errno) + "\n";
    (void)!::write(2, msg.data(), msg.size());
    ::_exit(127);
  }
  ::setpgid(pid, pid);  // also from here, so a kill(-pid) right away finds the group
  ::close(fds[1]);
  ::fcntl(fds[0], F_SETFL, ::fcntl(fds[0], F_GETFL) | O_NONBLOCK);
  Child c;
  c.pid = pid;
  c.out_fd = fds[0];
  c.job = &job;
  c.start = Clock::now();
  return c;
}

// Reads what is available; false at end of file.
bool drain(Child& c) {
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(c.out_fd, buf, sizeof buf);
    if (n > 0) {
      c.output.append(buf, static_cast<size_t>(n));
      if (c.output.size() > 65536) c.output.erase(0, c.output.size() - 32768);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    return n < 0;  // EAGAIN: more may come; 0: end of file
  }
}

}  // namespace

int main(int argc, char** argv) {
  peft::cli::program() = "peft-batch";
  const Options opt = parse_args(argc, argv);
  const fs::path transcriber = find_transcriber(opt);

  std::error_code ec;
  fs::create_directories(opt.output_dir, ec);
  if (ec) fatal("cannot create " + opt.output_dir.string() + ": " + ec.message());
  const fs::path manifest_path = opt.output_dir / "manifest.jsonl";

  // One batch per OUTPUT_DIR at a time; the lock goes with the process.
  const fs::path lock_path = opt.output_dir / ".peft-batch.lock";
  const int lock_fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd < 0 || ::flock(lock_fd, LOCK_EX | LOCK_NB) != 0)
    fatal(lock_fd < 0 ? "cannot create " + lock_path.string() + ": " + std::strerror(errno)
                      : "another peft-batch is using " + opt.output_dir.string());

  // The transcriber options that shape the outputs; a change means transcribing again.
  std::vector<std::string> shaping = opt.passthrough;
  std::string formats;
  for (const auto& f : opt.formats) formats += (formats.empty() ? "" : ",") + f;
  shaping.insert(shaping.end(), {"--formats", formats});
  if (!opt.summary) shaping.push_back("--no-summary");

  size_t bad_lines = 0;
  Manifest manifest = peft::batch::load_manifest(manifest_path, &bad_lines);
  if (bad_lines)
    std::cerr << "peft-batch: " << manifest_path.string() << ": dropped " << bad_lines
              << " unreadable line(s) (a run killed while writing it)\n";
  const std::vector<Job> jobs = find_jobs(opt);

  std::vector<const Job*> todo;
  std::uintmax_t todo_bytes = 0;
  size_t skipped = 0;
  for (const auto& j : jobs) {
    remove_partials(j);  // left by a killed run
    auto r = manifest.find(j.rel);
    if (!opt.force && r != manifest.end() && up_to_date(r->second, j, shaping, opt.output_dir)) {
      ++skipped;
      continue;
    }
    todo.push_back(&j);
    todo_bytes += j.size;
  }
  try {
    peft::batch::rewrite_manifest(manifest_path, manifest);  // drops torn lines before appending
  } catch (const std::exception& e) {
    fatal(e.what());
  }

  if (!opt.quiet)
    std::cerr << "peft-batch: " << jobs.size() << " file(s) under " << opt.input_dir.string() << ", "
              << skipped << " already done, " << todo.size() << " to transcribe (" << opt.jobs
              << " at a time, " << opt.n_threads << " thread(s) each) into " << opt.output_dir.string()
              << "\n";

  int wake[2];
  if (::pipe2(wake, O_CLOEXEC | O_NONBLOCK) != 0) fatal("cannot create a pipe");
  g_wake_fd = wake[1];
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  for (int s : {SIGINT, SIGTERM, SIGHUP}) ::sigaction(s, &sa, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  Progress progress(todo.size(), todo_bytes, opt.quiet);
  std::vector<Child> running;
  size_t next = 0, done = 0, failed = 0;
  const std::string program = transcriber.filename().string();

  auto finish = [&](Child& c, int wstatus) {
    drain(c);  // all it wrote is in the pipe now (a process it started may keep the pipe open)
    ::close(c.out_fd);
    const Job& j = *c.job;
    Record r;
    r.input = j.rel;
    r.size = j.size;
    r.mtime_ns = j.mtime_ns;
    r.seconds = std::chrono::duration<double>(Clock::now() - c.start).count();
    r.options = shaping;
    remove_partials(j);
    if (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0) {
      std::string missing;
      for (const auto& o : j.outputs)
        if (!fs::is_regular_file(opt.output_dir / o, ec)) missing += (missing.empty() ? "" : ", ") + o;
      if (missing.empty()) {
        r.status = "done";
        r.outputs = j.outputs;
      } else {
        r.error = program + " exited 0 without writing " + missing;
      }
    } else {
      r.error = error_text(c.output, program);
      const std::string how = WIFEXITED(wstatus) ? "exit status " + std::to_string(WEXITSTATUS(wstatus))
                                                 : "killed by signal " + std::to_string(WTERMSIG(wstatus));
      r.error = r.error.empty() ? program + ": " + how : r.error + " (" + how + ")";
    }
    if (r.status.empty()) {
      r.status = "failed";
      remove_outputs(opt.output_dir, j.outputs);  // a failed file has no outputs
      ++failed;
    } else {
      ++done;
    }
    try {
      peft::batch::append_record(manifest_path, r);
    } catch (const std::exception& e) {
      std::cerr << "peft-batch: " << e.what() << "\n";
    }
    progress.finished(j, r.status == "done", r.seconds, r.error);
    manifest[r.input] = std::move(r);
  };

  while ((next < todo.size() && !g_signal) || !running.empty()) {
    while (!g_signal && next < todo.size() && running.size() < opt.jobs) {
      const Job& j = *todo[next++];
      fs::create_directories(j.out_dir, ec);
      remove_outputs(opt.output_dir, j.outputs);  // stale ones from an older version of the file
      // Options first, the input (an absolute path, so never taken for an option) last.
      std::vector<std::string> args = {transcriber.string(), "--output-dir", j.out_dir.string(), "--name",
                                       j.name};
      args.insert(args.end(), shaping.begin(), shaping.end());
      args.insert(args.end(), {"--n-threads", std::to_string(opt.n_threads), j.input.string()});
      running.push_back(launch(transcriber, args, j));
    }
    if (g_signal) break;
    progress.draw(running.empty() ? "" : running.front().job->input.filename().string());

    std::vector<pollfd> fds = {{wake[0], POLLIN, 0}};
    for (const auto& c : running) fds.push_back({c.out_fd, POLLIN, 0});
    ::poll(fds.data(), fds.size(), 500);
    char sink[64];
    while (::read(wake[0], sink, sizeof sink) > 0) {
    }
    for (auto& c : running) drain(c);

    for (auto it = running.begin(); it != running.end();) {
      int wstatus = 0;
      if (::waitpid(it->pid, &wstatus, WNOHANG) == it->pid) {
        finish(*it, wstatus);
        it = running.erase(it);
      } else {
        ++it;
      }
    }
  }

  const int signo = g_signal;
  if (signo) {
    // Stop: kill the running transcribers, wait for them, remove their partial outputs.
    // Their files keep whatever record they had, so a rerun transcribes them again.
    for (auto& c : running) {
      int wstatus = 0;
      if (::waitpid(c.pid, &wstatus, WNOHANG) == c.pid) {  // it ended meanwhile: keep its result
        finish(c, wstatus);
        c.pid = -1;
      } else {
        ::kill(-c.pid, SIGKILL);
      }
    }
    for (auto& c : running) {
      if (c.pid < 0) continue;
      ::waitpid(c.pid, nullptr, 0);
      ::close(c.out_fd);
      remove_partials(*c.job);
      remove_outputs(opt.output_dir, c.job->outputs);
    }
  }
  progress.clear();
  try {
    peft::batch::rewrite_manifest(manifest_path, manifest);
  } catch (const std::exception& e) {
    std::cerr << "peft-batch: " << e.what() << "\n";
  }
  std::cerr << "peft-batch: " << done << " done, " << failed << " failed, " << skipped
            << " skipped (already done)";
  if (signo)
    std::cerr << ", " << (todo.size() - done - failed) << " not finished: stopped by signal " << signo
              << " (rerun to continue)";
  std::cerr << "; manifest " << manifest_path.string() << "\n";
  if (signo) return 128 + signo;
  return failed ? 1 : 0;
}
