// Running the pipelines' programs from the tests: run_program waits and captures stdout
// and stderr; LiveProgram reads stdout line by line as the program prints it (with the
// time each line arrived) and can send it signals. Programs inherit the test's
// environment (GST_PLUGIN_PATH, PEFT_MODELS_DIR from tests/meson.build).
#pragma once

#include <fcntl.h>
#include <glib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <boost/test/unit_test.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace peft_test {

struct ProgramResult {
  int status = -1;  // exit status; 128 + N when killed by signal N
  std::string out, err;
  double seconds = 0;
};

inline int exit_status(int wait_status) {
  if (WIFEXITED(wait_status)) return WEXITSTATUS(wait_status);
  if (WIFSIGNALED(wait_status)) return 128 + WTERMSIG(wait_status);
  return -1;
}

// argv[0] is searched in PATH when it has no '/'.
inline std::vector<gchar*> c_argv(const std::vector<std::string>& args) {
  std::vector<gchar*> argv;
  for (const auto& a : args) argv.push_back(const_cast<gchar*>(a.c_str()));
  argv.push_back(nullptr);
  return argv;
}

inline ProgramResult run_program(const std::vector<std::string>& args) {
  auto argv = c_argv(args);
  gchar *out = nullptr, *err = nullptr;
  gint wait_status = 0;
  GError* error = nullptr;
  const auto t0 = std::chrono::steady_clock::now();
  const bool ok = g_spawn_sync(nullptr, argv.data(), nullptr, G_SPAWN_SEARCH_PATH, nullptr, nullptr, &out,
                               &err, &wait_status, &error);
  ProgramResult r;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  BOOST_REQUIRE_MESSAGE(ok, "cannot run " << args[0] << ": " << (error ? error->message : "?"));
  r.status = exit_status(wait_status);
  r.out = out ? out : "";
  r.err = err ? err : "";
  g_free(out);
  g_free(err);
  return r;
}

// The pipelines' built programs (PEFT_PIPELINES_DIR) and scripts (PEFT_PIPELINES_SOURCE_DIR).
inline std::string pipelines_program(const std::string& name) {
  const char* dir = std::getenv("PEFT_PIPELINES_DIR");
  BOOST_REQUIRE_MESSAGE(dir && *dir, "PEFT_PIPELINES_DIR is not set (run the tests with meson test)");
  return (std::filesystem::path(dir) / name).string();
}

// A program whose stdout is read as it comes; stderr goes to a file read at the end.
class LiveProgram {
 public:
  LiveProgram(const std::vector<std::string>& args, const std::filesystem::path& stderr_file)
      : stderr_file_(stderr_file), start_(std::chrono::steady_clock::now()) {
    auto argv = c_argv(args);
    gint out_fd = -1;
    GError* error = nullptr;
    const std::string err_path = stderr_file.string();
    // stderr to the file through a child setup (runs in the child before exec).
    const bool ok = g_spawn_async_with_pipes(
        nullptr, argv.data(), nullptr,
        static_cast<GSpawnFlags>(G_SPAWN_SEARCH_PATH | G_SPAWN_DO_NOT_REAP_CHILD),
        [](gpointer path) {  // async-signal-safe calls only
          const int fd = open(static_cast<const char*>(path), O_WRONLY | O_CREAT | O_TRUNC, 0644);
          if (fd >= 0) dup2(fd, 2);
        },
        const_cast<char*>(err_path.c_str()), &pid_, nullptr, &out_fd, nullptr, &error);
    BOOST_REQUIRE_MESSAGE(ok, "cannot run " << args[0] << ": " << (error ? error->message : "?"));
    out_ = fdopen(out_fd, "r");
  }
  ~LiveProgram() {
    if (pid_ > 0 && !waited_) {
      kill(pid_, SIGKILL);
      wait();
    }
    if (out_) std::fclose(out_);
  }
  LiveProgram(const LiveProgram&) = delete;
  LiveProgram& operator=(const LiveProgram&) = delete;

  // The next stdout line (without '\n') and the seconds since the start it arrived at;
  // nothing at the end of the output.
  std::optional<std::pair<std::string, double>> next_line() {
    std::string line;
    for (int c; (c = std::fgetc(out_)) != EOF;) {
      if (c == '\n') return std::make_pair(line, elapsed());
      line += static_cast<char>(c);
    }
    if (!line.empty()) return std::make_pair(line, elapsed());
    return std::nullopt;
  }
  void signal(int sig) { kill(pid_, sig); }
  // Exit status (as ProgramResult::status); reads what is left of stdout first.
  int wait() {
    if (!waited_) {
      while (next_line()) {
      }
      int st = 0;
      waitpid(pid_, &st, 0);
      g_spawn_close_pid(pid_);
      status_ = exit_status(st);
      waited_ = true;
      end_ = elapsed();
    }
    return status_;
  }
  double end_seconds() const { return end_; }
  double elapsed() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }
  std::string err() const {
    FILE* f = std::fopen(stderr_file_.c_str(), "r");
    std::string s;
    if (!f) return s;
    for (int c; (c = std::fgetc(f)) != EOF;) s += static_cast<char>(c);
    std::fclose(f);
    return s;
  }

 private:
  std::filesystem::path stderr_file_;
  std::chrono::steady_clock::time_point start_;
  GPid pid_ = 0;
  FILE* out_ = nullptr;
  bool waited_ = false;
  int status_ = -1;
  double end_ = 0;
};

}  // namespace peft_test
