#include "peft/io/zip_archive.h"

#include <algorithm>
#include <cstring>
#include <fstream>

#include "peft/error.h"
#include "peft/io/byte_reader.h"

namespace peft::io {

namespace {

constexpr uint32_t kLocalHeader = 0x04034b50;
constexpr uint32_t kCentralHeader = 0x02014b50;
constexpr uint32_t kEndOfCentralDir = 0x06054b50;
constexpr uint32_t kZip64EndLocator = 0x07064b50;
constexpr uint32_t kZip64End = 0x06064b50;
constexpr uint16_t kZip64ExtraId = 0x0001;

// Where the central directory is and how many entries it has.
struct Directory {
  uint64_t offset = 0, size = 0, entries = 0;
};

Directory find_directory(ByteReader& r) {
  // The end record is 22 bytes plus a comment of at most 65535 bytes; search backwards.
  const uint64_t n = r.size();
  if (n < 22) r.fail("end of central directory", "file too short to be a zip archive");
  const uint64_t lowest = n > 22 + 65535 ? n - 22 - 65535 : 0;
  uint64_t at = n - 22;
  for (;; --at) {
    r.seek(at, "end of central directory");
    if (r.read<uint32_t>("end of central directory") == kEndOfCentralDir) break;
    if (at == lowest) r.fail("end of central directory", "not found: not a zip archive, or truncated");
  }
  r.skip(6, "end of central directory");
  Directory d;
  d.entries = r.read<uint16_t>("entry count");
  d.size = r.read<uint32_t>("central directory size");
  d.offset = r.read<uint32_t>("central directory offset");
  if (d.entries != 0xFFFF && d.size != 0xFFFFFFFF && d.offset != 0xFFFFFFFF) return d;
  // ZIP64: a locator just before the end record points at the 64-bit end record.
  if (at < 20) r.fail("zip64 locator", "missing");
  r.seek(at - 20, "zip64 locator");
  if (r.read<uint32_t>("zip64 locator") != kZip64EndLocator) r.fail("zip64 locator", "bad signature");
  r.skip(4, "zip64 locator");
  r.seek(r.read<uint64_t>("zip64 end offset"), "zip64 end of central directory");
  if (r.read<uint32_t>("zip64 end of central directory") != kZip64End)
    r.fail("zip64 end of central directory", "bad signature");
  r.skip(8 + 2 + 2 + 4 + 4 + 8, "zip64 end of central directory");
  d.entries = r.read<uint64_t>("zip64 entry count");
  d.size = r.read<uint64_t>("zip64 central directory size");
  d.offset = r.read<uint64_t>("zip64 central directory offset");
  return d;
}

}  // namespace

bool ZipArchive::looks_like_zip(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  char magic[4] = {};
  return f.read(magic, 4) && std::memcmp(magic, "PK\3\4", 4) == 0;
}

ZipArchive::ZipArchive(std::shared_ptr<const MappedFile> file) : file_(std::move(file)) {
  ByteReader r(file_->data(), file_->size(), file_->path());
  const Directory dir = find_directory(r);
  if (!file_->contains(dir.offset, dir.size))
    r.fail("central directory", "lies outside the file (truncated?)");
  r.seek(dir.offset, "central directory");
  for (uint64_t i = 0; i < dir.entries; ++i) {
    if (r.read<uint32_t>("central directory entry") != kCentralHeader)
      r.fail("central directory entry " + std::to_string(i), "bad signature");
    r.skip(4, "central directory entry");
    const uint16_t flags = r.read<uint16_t>("flags");
    const uint16_t method = r.read<uint16_t>("compression method");
    r.skip(8, "central directory entry");
    uint64_t compressed = r.read<uint32_t>("compressed size");
    uint64_t size = r.read<uint32_t>("size");
    const uint16_t name_len = r.read<uint16_t>("name length");
    const uint16_t extra_len = r.read<uint16_t>("extra length");
    const uint16_t comment_len = r.read<uint16_t>("comment length");
    r.skip(8, "central directory entry");
    uint64_t local = r.read<uint32_t>("local header offset");
    ZipMember m;
    m.name = r.read_string(name_len, "member name");
    // ZIP64 sizes and offset, present only for the fields saturated above, in this order.
    const uint64_t extra_end = r.offset() + extra_len;
    while (r.offset() + 4 <= extra_end) {
      const uint16_t id = r.read<uint16_t>("extra field");
      const uint16_t len = r.read<uint16_t>("extra field");
      const uint64_t next = r.offset() + len;
      if (id == kZip64ExtraId) {
        if (size == 0xFFFFFFFF) size = r.read<uint64_t>("zip64 size");
        if (compressed == 0xFFFFFFFF) compressed = r.read<uint64_t>("zip64 compressed size");
        if (local == 0xFFFFFFFF) local = r.read<uint64_t>("zip64 local header offset");
      }
      r.seek(next, "extra field");
    }
    r.seek(extra_end, "extra field");
    r.skip(comment_len, "member comment");
    if (method != 0 || (flags & 1) != 0)
      throw FormatError(
          file_->path(), "member '" + m.name + "'",
          "compressed or encrypted (method " + std::to_string(method) + "); only stored members are read");
    if (compressed != size)
      throw FormatError(file_->path(), "member '" + m.name + "'", "stored sizes disagree");
    // The local header repeats the name and has its own extra field: skip both.
    ByteReader lr(file_->data(), file_->size(), file_->path());
    lr.seek(local, ("local header of '" + m.name + "'").c_str());
    if (lr.read<uint32_t>("local header") != kLocalHeader)
      lr.fail("local header of '" + m.name + "'", "bad signature");
    lr.skip(22, "local header");
    const uint16_t local_name = lr.read<uint16_t>("local name length");
    const uint16_t local_extra = lr.read<uint16_t>("local extra length");
    m.offset = local + 30 + local_name + local_extra;
    m.size = size;
    if (!file_->contains(m.offset, m.size))
      throw FormatError(file_->path(), "member '" + m.name + "'",
                        std::to_string(m.size) + " bytes at offset " + std::to_string(m.offset) +
                            " run past the end of the file (" + std::to_string(file_->size()) +
                            " bytes): truncated");
    members_.push_back(std::move(m));
  }
}

const ZipMember* ZipArchive::find(const std::string& name) const {
  auto it =
      std::find_if(members_.begin(), members_.end(), [&](const ZipMember& m) { return m.name == name; });
  return it == members_.end() ? nullptr : &*it;
}

}  // namespace peft::io
