// The member table of a zip archive whose members are stored uncompressed, as
// torch.save writes them (a .pt file is a zip of data.pkl, data/<key> storages and
// version). Members are located, not copied: their bytes are views of the mapped file.
// ZIP64 archives (over 4 GiB or 65535 members) are read too.
//
//   auto file = MappedFile::open("model.pt");
//   ZipArchive zip(file);
//   const ZipMember* pkl = zip.find("archive/data.pkl");
//   std::string_view bytes = zip.bytes(*pkl);
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "peft/io/mapped_file.h"

namespace peft::io {

struct ZipMember {
  std::string name;
  uint64_t offset = 0;  // of the member's bytes in the file
  uint64_t size = 0;
};

class ZipArchive {
 public:
  // Throws FormatError naming the file for a file that is not a zip archive, is
  // truncated, or holds a compressed or encrypted member.
  explicit ZipArchive(std::shared_ptr<const MappedFile> file);

  const std::vector<ZipMember>& members() const { return members_; }
  const ZipMember* find(const std::string& name) const;  // nullptr when absent
  std::string_view bytes(const ZipMember& m) const {
    return {reinterpret_cast<const char*>(file_->data() + m.offset), static_cast<size_t>(m.size)};
  }
  const std::shared_ptr<const MappedFile>& file() const { return file_; }

  // Does the file start with a zip local header ("PK\3\4")?
  static bool looks_like_zip(const std::string& path);

 private:
  std::shared_ptr<const MappedFile> file_;
  std::vector<ZipMember> members_;
};

}  // namespace peft::io
