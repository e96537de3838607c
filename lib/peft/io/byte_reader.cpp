#include "peft/io/byte_reader.h"

#include "peft/error.h"

namespace peft::io {

const uint8_t* ByteReader::take(uint64_t n, const char* what) {
  if (n > remaining())
    fail(what, "truncated: needs " + std::to_string(n) + " bytes, " +
                   std::to_string(remaining()) + " left in the file");
  const uint8_t* p = data_ + pos_;
  pos_ += static_cast<size_t>(n);
  return p;
}

std::string ByteReader::read_string(uint64_t n, const char* what) {
  const uint8_t* p = take(n, what);
  return std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(n));
}

void ByteReader::seek(uint64_t offset, const char* what) {
  if (offset > size_)
    fail(what, "offset " + std::to_string(offset) + " is past the end (" +
                   std::to_string(size_) + " bytes)");
  pos_ = static_cast<size_t>(offset);
}

void ByteReader::fail(const std::string& what, const std::string& problem) const {
  throw FormatError(file_, what + " at offset " + std::to_string(pos_), problem);
}

}  // namespace peft::io
