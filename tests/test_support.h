// Helpers shared by the Boost.Test suites: temporary directories, writing bytes to
// files, locating the default models and fixtures, checking exception messages.
#pragma once

#include <boost/test/unit_test.hpp>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <random>
#include <string>
#include <vector>

namespace peft_test {

namespace fs = std::filesystem;

// A fresh directory under the system temp dir, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = fs::temp_directory_path() / ("peft-test-" + std::to_string(rd()) + std::to_string(rd()));
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }
  fs::path operator/(const std::string& name) const { return path_ / name; }

 private:
  fs::path path_;
};

inline void write_file(const fs::path& p, const std::string& bytes) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  BOOST_REQUIRE_MESSAGE(f.good(), "cannot write " << p);
}

inline std::string read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  BOOST_REQUIRE_MESSAGE(f.good(), "cannot read " << p);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// Little-endian appenders for building binary files byte by byte.
template <class T>
void put(std::string& out, T value) {
  out.append(reinterpret_cast<const char*>(&value), sizeof(T));
}

inline fs::path env_dir(const char* var, const char* fallback) {
  const char* v = std::getenv(var);
  return fs::path(v && *v ? v : fallback);
}

// models/default (PEFT_MODELS_DIR); a test needing a model fails with a hint when absent.
inline fs::path models_dir() { return env_dir("PEFT_MODELS_DIR", "models/default"); }
inline fs::path fixtures_dir() { return env_dir("PEFT_FIXTURES_DIR", "tests/fixtures"); }

inline fs::path require_model_file(const std::string& relative) {
  fs::path p = models_dir() / relative;
  BOOST_REQUIRE_MESSAGE(fs::exists(p), p.string() << " is missing: run models/fetch-default");
  return p;
}

// True when `text` contains every one of `parts`.
inline bool contains_all(const std::string& text, std::initializer_list<std::string> parts) {
  for (const auto& p : parts)
    if (text.find(p) == std::string::npos) return false;
  return true;
}

}  // namespace peft_test

// Checks that `expr` throws `Exc` whose what() contains every string in the braces.
#define PEFT_CHECK_THROW_MSG(expr, Exc, ...)                                              \
  do {                                                                                    \
    bool peft_thrown_ = false;                                                            \
    try {                                                                                 \
      (void)(expr);                                                                       \
    } catch (const Exc& e) {                                                              \
      peft_thrown_ = true;                                                                \
      BOOST_CHECK_MESSAGE(peft_test::contains_all(e.what(), __VA_ARGS__),                 \
                          "message \"" << e.what() << "\" lacks an expected part");       \
    }                                                                                     \
    BOOST_CHECK_MESSAGE(peft_thrown_, #expr " did not throw " #Exc);                      \
  } while (0)
