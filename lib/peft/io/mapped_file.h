// A read-only view of a whole file through mmap, shared by every tensor that points
// into it: tensors keep a shared_ptr, so the mapping lives as long as any of them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

namespace peft::io {

class MappedFile {
 public:
  // Maps `path` privately (copy-on-write: a stray write never reaches the file).
  // Throws IoError naming the path when it cannot be opened or mapped.
  static std::shared_ptr<const MappedFile> open(const std::filesystem::path& path);

  struct PassKey {  // only open() constructs; make_shared still works
   private:
    PassKey() {}
    friend class MappedFile;
  };
  explicit MappedFile(PassKey) {}
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

  // True when [offset, offset + length) lies inside the file (overflow-safe).
  bool contains(uint64_t offset, uint64_t length) const {
    return offset <= size_ && length <= size_ - offset;
  }

 private:
  std::string path_;
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace peft::io
