// Typed exceptions thrown by libpeft. Elements turn them into GST_ELEMENT_ERROR;
// tools print what() and exit non-zero. Every message names the file and the
// tensor or key it is about, then the problem.
#pragma once

#include <stdexcept>
#include <string>

namespace peft {

// Base of everything libpeft throws on purpose.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The operating system refused: a file cannot be opened, read, mapped or written.
class IoError : public Error {
 public:
  using Error::Error;
};

// A file's content is malformed: truncated, out-of-range offsets, bad JSON, unknown
// dtype... what() is "<file>: <where>: <problem>".
class FormatError : public Error {
 public:
  FormatError(std::string file, std::string where, const std::string& problem);
  const std::string& file() const { return file_; }
  const std::string& where() const { return where_; }

 private:
  std::string file_;
  std::string where_;
};

// A tensor, key or file that was asked for does not exist.
class NotFoundError : public Error {
 public:
  using Error::Error;
};

// Shapes or dtypes that do not fit together (checkpoint vs model, adapter vs base).
class ShapeError : public Error {
 public:
  using Error::Error;
};

// An argument or option value that is out of range or meaningless.
class ValueError : public Error {
 public:
  using Error::Error;
};

}  // namespace peft
