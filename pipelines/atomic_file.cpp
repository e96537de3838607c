#include "atomic_file.h"

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <system_error>
#include <utility>

namespace peft_pipelines {

AtomicFile::AtomicFile(std::filesystem::path path)
    : path_(std::move(path)), partial_(path_.string() + ".partial"), out_(partial_, std::ios::trunc) {
  if (!out_) throw std::runtime_error("cannot write " + partial_.string() + ": " + std::strerror(errno));
}

AtomicFile::~AtomicFile() { discard(); }

void AtomicFile::commit() {
  if (done_) return;
  out_.close();
  if (out_.fail()) {
    discard();
    throw std::runtime_error("cannot write " + partial_.string());
  }
  std::error_code ec;
  std::filesystem::rename(partial_, path_, ec);
  if (ec) {
    discard();
    throw std::runtime_error("cannot rename " + partial_.string() + " to " + path_.string() + ": " +
                             ec.message());
  }
  done_ = true;
}

void AtomicFile::discard() noexcept {
  if (done_) return;
  done_ = true;
  if (out_.is_open()) out_.close();
  std::error_code ec;
  std::filesystem::remove(partial_, ec);
}

}  // namespace peft_pipelines
