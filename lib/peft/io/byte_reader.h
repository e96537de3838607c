// A bounds-checked little-endian cursor over bytes of a file. Every read names what
// it reads, so a truncated or corrupt file gives "<file>: <what> at offset N: ...".
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>

namespace peft::io {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "checkpoint readers assume a little-endian host, as the formats are");

class ByteReader {
 public:
  ByteReader(const uint8_t* data, size_t size, std::string file)
      : data_(data), size_(size), file_(std::move(file)) {}

  size_t offset() const { return pos_; }
  size_t size() const { return size_; }
  size_t remaining() const { return size_ - pos_; }
  const std::string& file() const { return file_; }

  // Reads one little-endian value of trivially copyable type T.
  template <class T>
  T read(const char* what) {
    static_assert(std::is_trivially_copyable_v<T>);
    T value;
    std::memcpy(&value, take(sizeof(T), what), sizeof(T));
    return value;
  }

  // Returns a pointer to the next n bytes and advances; throws FormatError when fewer remain.
  const uint8_t* take(uint64_t n, const char* what);
  std::string read_string(uint64_t n, const char* what);
  void seek(uint64_t offset, const char* what);
  void skip(uint64_t n, const char* what) { take(n, what); }

  // Throws FormatError "<file>: <what> at offset <pos>: <problem>".
  [[noreturn]] void fail(const std::string& what, const std::string& problem) const;

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  std::string file_;
};

}  // namespace peft::io
