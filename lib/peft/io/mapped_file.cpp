#include "peft/io/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "peft/error.h"

namespace peft::io {

namespace {
struct FdCloser {
  int fd;
  ~FdCloser() {
    if (fd >= 0) ::close(fd);
  }
};
}  // namespace

std::shared_ptr<const MappedFile> MappedFile::open(const std::filesystem::path& path) {
  auto file = std::make_shared<MappedFile>(PassKey());
  file->path_ = path.string();
  FdCloser fd{::open(file->path_.c_str(), O_RDONLY | O_CLOEXEC)};
  if (fd.fd < 0) throw IoError(file->path_ + ": cannot open: " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd.fd, &st) != 0) throw IoError(file->path_ + ": cannot stat: " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) throw IoError(file->path_ + ": not a regular file");
  file->size_ = static_cast<size_t>(st.st_size);
  if (file->size_ == 0) return file;  // mmap of 0 bytes is invalid; an empty view is not
  void* p = ::mmap(nullptr, file->size_, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd.fd, 0);
  if (p == MAP_FAILED) throw IoError(file->path_ + ": cannot mmap: " + std::strerror(errno));
  file->data_ = static_cast<uint8_t*>(p);
  return file;
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::munmap(data_, size_);
}

}  // namespace peft::io
