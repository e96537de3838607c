// An output file written as NAME.partial and renamed to NAME only by commit(), so a run
// that is killed or fails leaves no finished-looking output (the destructor removes an
// uncommitted .partial file).
#pragma once

#include <filesystem>
#include <fstream>

namespace peft_pipelines {

class AtomicFile {
 public:
  // Opens `path`.partial for writing (truncating); std::runtime_error naming it if that fails.
  explicit AtomicFile(std::filesystem::path path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  std::ofstream& stream() { return out_; }
  const std::filesystem::path& path() const { return path_; }

  // Closes and renames the .partial file over `path`; std::runtime_error naming the file
  // when writing or renaming failed.
  void commit();
  // Closes and removes the .partial file (also what the destructor does before commit).
  void discard() noexcept;

 private:
  std::filesystem::path path_, partial_;
  std::ofstream out_;
  bool done_ = false;
};

}  // namespace peft_pipelines
