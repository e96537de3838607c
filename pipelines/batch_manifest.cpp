#include "batch_manifest.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <utility>

#include <nlohmann/json.hpp>

namespace peft::batch {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

namespace {

[[noreturn]] void fail(const fs::path& path, const std::string& what) {
  throw std::runtime_error("manifest " + path.string() + ": " + what + ": " + std::strerror(errno));
}

// Writes all of `bytes` to `fd` (regular files may still return short counts).
bool write_all(int fd, const std::string& bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

Record from_json(const json& j) {
  Record r;
  r.input = j.at("input").get<std::string>();
  r.size = j.at("size").get<std::uintmax_t>();
  r.mtime_ns = j.at("mtime_ns").get<std::int64_t>();
  r.status = j.at("status").get<std::string>();
  if (r.input.empty() || (r.status != "done" && r.status != "failed"))
    throw std::invalid_argument("bad input or status");
  if (j.contains("outputs")) r.outputs = j.at("outputs").get<std::vector<std::string>>();
  if (j.contains("error")) r.error = j.at("error").get<std::string>();
  if (j.contains("seconds")) r.seconds = j.at("seconds").get<double>();
  if (j.contains("options")) r.options = j.at("options").get<std::vector<std::string>>();
  return r;
}

}  // namespace

std::string to_json_line(const Record& r) {
  json j;
  j["input"] = r.input;
  j["size"] = r.size;
  j["mtime_ns"] = r.mtime_ns;
  j["status"] = r.status;
  j["outputs"] = r.outputs;
  if (r.status != "done") j["error"] = r.error;
  // Milliseconds are enough, and a short number keeps the lines readable.
  j["seconds"] = static_cast<double>(static_cast<long long>(r.seconds * 1000.0 + 0.5)) / 1000.0;
  j["options"] = r.options;
  // Replace invalid UTF-8 (a file name or a message from the transcriber) instead of throwing.
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

Manifest load_manifest(const fs::path& path, size_t* skipped) {
  Manifest m;
  size_t bad = 0;
  std::ifstream in(path, std::ios::binary);
  for (std::string line; std::getline(in, line);) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    try {
      Record r = from_json(json::parse(line));
      m[r.input] = std::move(r);
    } catch (const std::exception&) {
      ++bad;
    }
  }
  if (skipped) *skipped = bad;
  return m;
}

void append_record(const fs::path& path, const Record& record) {
  Fd fd(::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644));
  if (fd.get() < 0) fail(path, "cannot open for appending");
  if (!write_all(fd.get(), to_json_line(record) + "\n")) fail(path, "cannot append");
  if (::fdatasync(fd.get()) != 0) fail(path, "cannot sync");
  if (::close(fd.release()) != 0) fail(path, "cannot close");
}

void rewrite_manifest(const fs::path& path, const Manifest& manifest) {
  std::string text;
  for (const auto& [input, record] : manifest) text += to_json_line(record) + "\n";
  const fs::path tmp = path.string() + ".tmp";
  {
    Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (fd.get() < 0) fail(tmp, "cannot create");
    if (!write_all(fd.get(), text)) fail(tmp, "cannot write");
    if (::fsync(fd.get()) != 0) fail(tmp, "cannot sync");
    if (::close(fd.release()) != 0) fail(tmp, "cannot close");
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) fail(path, "cannot rename " + tmp.string() + " over it");
  // Make the rename itself durable.
  Fd dir(::open(path.parent_path().empty() ? "." : path.parent_path().c_str(), O_RDONLY | O_DIRECTORY));
  if (dir.get() >= 0) ::fsync(dir.get());
}

}  // namespace peft::batch
