#include "peft/io/safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <random>
#include <set>
#include <unordered_map>

#include "peft/error.h"
#include "peft/io/json_file.h"

namespace peft::io {

namespace {

namespace fs = std::filesystem;
using ordered_json = nlohmann::ordered_json;

// The reference implementation refuses headers above 100 MB so that a hostile length
// cannot make the reader allocate and parse gigabytes; the largest real headers are a
// few MB.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
constexpr uint64_t kLengthFieldBytes = 8;

struct Entry {
  TensorInfo info;
  uint64_t begin = 0;  // relative to the data buffer
  uint64_t end = 0;
};

struct ParsedFile {
  std::shared_ptr<const MappedFile> file;
  std::vector<Entry> entries;  // header order
  uint64_t data_start = 0;     // absolute offset of the data buffer
  ordered_json metadata = ordered_json::object();
};

// Thrown from the parser callback; carries the duplicated key out of nlohmann.
struct DuplicateKey {
  std::string key;
};

// Parses the header keeping key order (tensors() lists them as the file does) and
// refusing duplicate keys: the format forbids them, and nlohmann would otherwise
// silently keep the last one, so two readers could see different tensors.
ordered_json parse_header(const char* begin, const char* end, const std::string& file) {
  std::vector<std::set<std::string>> keys_per_object;
  auto on_event = [&](int /*depth*/, nlohmann::json::parse_event_t event, ordered_json& parsed) {
    using E = nlohmann::json::parse_event_t;
    if (event == E::object_start) {
      keys_per_object.emplace_back();
    } else if (event == E::object_end) {
      keys_per_object.pop_back();
    } else if (event == E::key && !keys_per_object.empty()) {
      const auto& key = parsed.get_ref<const std::string&>();
      if (!keys_per_object.back().insert(key).second) throw DuplicateKey{key};
    }
    return true;
  };
  try {
    return ordered_json::parse(begin, end, on_event);
  } catch (const DuplicateKey& d) {
    throw FormatError(file, "header key '" + d.key + "'",
                      "appears twice (the format forbids duplicate keys)");
  } catch (const nlohmann::json::parse_error& e) {
    // e.byte counts from the start of the header JSON, which begins at file offset 8.
    throw FormatError(file, "header byte " + std::to_string(e.byte),
                      std::string("invalid JSON: ") + e.what());
  }
}

Entry parse_entry(const std::string& name, const ordered_json& value, uint64_t buffer_size,
                  const std::string& file) {
  const std::string where = "tensor '" + name + "'";
  auto fail = [&](const std::string& problem) { throw FormatError(file, where, problem); };
  if (!value.is_object()) fail(std::string("entry must be an object, got ") + value.type_name());

  auto field = [&](const char* key) -> const ordered_json& {
    auto it = value.find(key);
    if (it == value.end()) fail(std::string("missing '") + key + "'");
    return *it;
  };

  Entry e;
  e.info.name = name;

  const ordered_json& dtype = field("dtype");
  if (!dtype.is_string()) fail(std::string("'dtype' must be a string, got ") + dtype.type_name());
  const auto& dtype_name_str = dtype.get_ref<const std::string&>();
  const auto parsed_dtype = dtype_from_name(dtype_name_str);
  // The ggml block types share the DType enum but never occur in safetensors.
  if (!parsed_dtype || is_block_quantized(*parsed_dtype))
    fail("unknown or unsupported dtype '" + dtype_name_str + "'");
  e.info.dtype = *parsed_dtype;

  const ordered_json& shape = field("shape");
  if (!shape.is_array()) fail(std::string("'shape' must be an array, got ") + shape.type_name());
  for (const auto& d : shape) {
    if (!d.is_number_integer()) fail("'shape' holds a non-integer " + d.dump());
    if (d.is_number_unsigned() && d.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
      fail("dimension " + d.dump() + " is too large");
    const auto dim = d.get<int64_t>();
    if (dim < 0) fail("negative dimension " + std::to_string(dim) + " in shape " + shape.dump());
    e.info.shape.push_back(dim);
  }
  const auto numel = shape_numel(e.info.shape);
  if (!numel) fail("shape " + shape_to_string(e.info.shape) + " has more than 2^63 elements");
  e.info.numel = *numel;
  const auto nbytes = storage_bytes(e.info.dtype, e.info.numel);
  if (!nbytes) fail("shape " + shape_to_string(e.info.shape) + " is too large for dtype " + dtype_name_str);
  e.info.nbytes = *nbytes;

  const ordered_json& offsets = field("data_offsets");
  if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
      !offsets[1].is_number_unsigned())
    fail("'data_offsets' must be [begin, end] with non-negative integers, got " + offsets.dump());
  e.begin = offsets[0].get<uint64_t>();
  e.end = offsets[1].get<uint64_t>();
  const std::string range = "data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) + "]";
  if (e.begin > e.end) fail(range + " are reversed (begin > end)");
  if (e.end > buffer_size)
    fail(range + " run past the end of the " + std::to_string(buffer_size) + "-byte data buffer");
  if (e.end - e.begin != e.info.nbytes)
    fail(range + " span " + std::to_string(e.end - e.begin) + " bytes, but " + dtype_name_str + " " +
         shape_to_string(e.info.shape) + " needs " + std::to_string(e.info.nbytes) + " (size mismatch)");
  return e;
}

// Every byte of the data buffer must belong to exactly one tensor. Overlaps would let
// two tensors alias (a write through one changes the other, and the reader would not
// be bounded by the file size). Holes are refused too, as the reference reader does
// since it made the buffer "entirely indexed": hidden bytes between tensors would let
// a file double as another format (polyglot) and would be accepted here but rejected
// by every other safetensors tool.
void check_coverage(const std::vector<Entry>& entries, uint64_t buffer_size, const std::string& file) {
  std::vector<const Entry*> by_offset;
  by_offset.reserve(entries.size());
  for (const auto& e : entries) by_offset.push_back(&e);
  std::sort(by_offset.begin(), by_offset.end(), [](const Entry* a, const Entry* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  uint64_t covered = 0;
  const Entry* previous = nullptr;
  for (const Entry* e : by_offset) {
    if (e->begin < covered)
      throw FormatError(file, "tensor '" + e->info.name + "'",
                        "data_offsets [" + std::to_string(e->begin) + ", " + std::to_string(e->end) +
                            "] overlap tensor '" + previous->info.name + "' [" +
                            std::to_string(previous->begin) + ", " + std::to_string(previous->end) + "]");
    if (e->begin > covered)
      throw FormatError(file, "tensor '" + e->info.name + "'",
                        "hole: data buffer bytes [" + std::to_string(covered) + ", " +
                            std::to_string(e->begin) + ") before it belong to no tensor");
    covered = e->end;
    previous = e;
  }
  if (covered != buffer_size)
    throw FormatError(file, "data buffer",
                      "bytes [" + std::to_string(covered) + ", " + std::to_string(buffer_size) +
                          ") after the last tensor belong to no tensor (trailing data)");
}

ParsedFile parse_file(const fs::path& path) {
  ParsedFile out;
  out.file = MappedFile::open(path);
  const MappedFile& f = *out.file;
  const std::string& name = f.path();

  if (f.size() < kLengthFieldBytes)
    throw FormatError(
        name, "header length",
        "file is " + std::to_string(f.size()) + " bytes, too short for the 8-byte header length");
  uint64_t header_len = 0;
  std::memcpy(&header_len, f.data(), sizeof header_len);  // little-endian host (byte_reader.h)
  if (header_len > kMaxHeaderBytes)
    throw FormatError(
        name, "header length",
        std::to_string(header_len) + " bytes is over the " + std::to_string(kMaxHeaderBytes) + "-byte limit");
  if (header_len > f.size() - kLengthFieldBytes)
    throw FormatError(name, "header length",
                      std::to_string(header_len) + " bytes runs past the end of the file (" +
                          std::to_string(f.size() - kLengthFieldBytes) + " bytes follow the length field)");

  const char* header = reinterpret_cast<const char*>(f.data() + kLengthFieldBytes);
  const ordered_json j = parse_header(header, header + header_len, name);
  if (!j.is_object())
    throw FormatError(name, "header", std::string("must be a JSON object, got ") + j.type_name());

  out.data_start = kLengthFieldBytes + header_len;
  const uint64_t buffer_size = f.size() - out.data_start;
  for (const auto& [key, value] : j.items()) {
    if (key == "__metadata__") {
      if (!value.is_object())
        throw FormatError(name, "__metadata__", std::string("must be an object, got ") + value.type_name());
      for (const auto& [mkey, mvalue] : value.items())
        if (!mvalue.is_string())
          throw FormatError(name, "__metadata__ key '" + mkey + "'",
                            std::string("value must be a string, got ") + mvalue.type_name());
      out.metadata = value;
      continue;
    }
    out.entries.push_back(parse_entry(key, value, buffer_size, name));
  }
  check_coverage(out.entries, buffer_size, name);
  return out;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string json_to_metadata_string(const nlohmann::json& v) {
  return v.is_string() ? v.get<std::string>() : v.dump();
}

}  // namespace

SafetensorsCheckpoint::SafetensorsCheckpoint(const std::filesystem::path& path) : Checkpoint(path.string()) {
  if (ends_with(path.filename().string(), ".index.json"))
    open_index(path);
  else
    open_single(path);
}

void SafetensorsCheckpoint::open_single(const std::filesystem::path& file) {
  ParsedFile parsed = parse_file(file);
  shards_.push_back(parsed.file);
  for (auto& e : parsed.entries) {
    locations_[e.info.name] = Location{0, parsed.data_start + e.begin};
    add_tensor(std::move(e.info));
  }
  for (const auto& [k, v] : parsed.metadata.items()) {
    string_metadata_[k] = v.get<std::string>();
    metadata_[k] = v.get<std::string>();
  }
}

void SafetensorsCheckpoint::open_index(const std::filesystem::path& index_file) {
  const std::string index_name = index_file.string();
  const nlohmann::json index = read_json_file(index_file);
  if (!index.is_object())
    throw FormatError(index_name, "top level",
                      std::string("must be a JSON object, got ") + index.type_name());
  auto wm = index.find("weight_map");
  if (wm == index.end()) throw FormatError(index_name, "key 'weight_map'", "missing");
  if (!wm->is_object())
    throw FormatError(index_name, "key 'weight_map'",
                      std::string("must be an object, got ") + wm->type_name());
  const nlohmann::json* index_metadata = nullptr;
  if (auto m = index.find("metadata"); m != index.end() && !m->is_null()) {
    if (!m->is_object())
      throw FormatError(index_name, "key 'metadata'",
                        std::string("must be an object, got ") + m->type_name());
    index_metadata = &*m;
  }

  // Open each shard once, in order of first mention, after checking its name stays in
  // the index's directory: a downloaded index must not make us read arbitrary files.
  const fs::path dir = index_file.parent_path();
  std::map<std::string, size_t> shard_of_file;
  std::vector<ParsedFile> parsed;
  for (const auto& [tensor, shard] : wm->items()) {
    const std::string where = "weight_map['" + tensor + "']";
    if (!shard.is_string())
      throw FormatError(index_name, where,
                        std::string("shard must be a file name, got ") + shard.type_name());
    const std::string& shard_name = shard.get_ref<const std::string&>();
    if (shard_of_file.count(shard_name)) continue;
    const fs::path rel(shard_name);
    bool escapes = shard_name.empty() || rel.is_absolute() || rel.has_root_name() || rel.has_root_directory();
    for (const auto& part : rel) escapes = escapes || part == "..";
    if (escapes)
      throw FormatError(
          index_name, where,
          "shard path '" + shard_name + "' is not a relative path inside the index's directory");
    const fs::path shard_path = dir / rel;
    std::error_code ec;
    if (!fs::exists(shard_path, ec))
      throw NotFoundError(index_name + ": " + where + ": shard file '" + shard_path.string() +
                          "' does not exist");
    shard_of_file.emplace(shard_name, parsed.size());
    parsed.push_back(parse_file(shard_path));
  }

  // Where every stored tensor actually is; a name stored in two shards is ambiguous.
  std::unordered_map<std::string, std::pair<size_t, const Entry*>> stored;
  for (size_t s = 0; s < parsed.size(); ++s)
    for (const auto& e : parsed[s].entries) {
      auto [it, inserted] = stored.emplace(e.info.name, std::make_pair(s, &e));
      if (!inserted)
        throw FormatError(parsed[s].file->path(), "tensor '" + e.info.name + "'",
                          "also stored in shard '" + parsed[it->second.first].file->path() + "'");
    }

  for (const auto& [tensor, shard] : wm->items()) {
    const size_t s = shard_of_file.at(shard.get<std::string>());
    auto it = stored.find(tensor);
    if (it == stored.end() || it->second.first != s)
      throw FormatError(index_name, "weight_map['" + tensor + "']",
                        "tensor is not in its shard '" + parsed[s].file->path() + "'");
    const Entry& e = *it->second.second;
    locations_[tensor] = Location{s, parsed[s].data_start + e.begin};
    add_tensor(e.info);
  }
  // Tensors the index does not list would be invisible to transformers but not to
  // us; refuse rather than guess which view is meant.
  if (stored.size() != locations_.size())
    for (const auto& [tensor, where] : stored)
      if (!locations_.count(tensor))
        throw FormatError(parsed[where.first].file->path(), "tensor '" + tensor + "'",
                          "is not listed in the weight_map of '" + index_name + "'");

  for (auto& p : parsed) shards_.push_back(p.file);
  // The first shard's __metadata__ (usually {"format": "pt"}), then the index's
  // "metadata" (total_size...), which wins on a clash as it describes the whole set.
  if (!parsed.empty())
    for (const auto& [k, v] : parsed.front().metadata.items()) {
      string_metadata_[k] = v.get<std::string>();
      metadata_[k] = v.get<std::string>();
    }
  if (index_metadata)
    for (const auto& [k, v] : index_metadata->items()) {
      string_metadata_[k] = json_to_metadata_string(v);
      metadata_[k] = v;
    }
}

TensorData SafetensorsCheckpoint::raw(const std::string& name) const {
  const TensorInfo& ti = info(name);
  const Location& loc = locations_.at(name);
  const auto& shard = shards_[loc.shard];
  // A zero-size tensor at the end of an empty mapping has no address to point into.
  const uint8_t* base = shard->data() != nullptr ? shard->data() + loc.offset : nullptr;
  return TensorData{ti, base, shard};
}

namespace {

// A temporary file next to the destination, removed unless commit() renamed it into
// place: a failed or interrupted write never leaves a partial file under either name.
class AtomicFile {
 public:
  explicit AtomicFile(const fs::path& target) : target_(target) {
    const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
    std::random_device rd;
    for (int attempt = 0; attempt < 16 && fd_ < 0; ++attempt) {
      tmp_ = dir / ("." + target.filename().string() + ".tmp-" + std::to_string(rd()));
      // 0666 and O_EXCL: the final file gets the usual umask-derived mode (mkstemp
      // would force 0600), and an existing file is never reused.
      fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
      if (fd_ < 0 && errno != EEXIST) break;
    }
    if (fd_ < 0)
      throw IoError(target.string() + ": cannot create temporary file '" + tmp_.string() +
                    "': " + std::strerror(errno));
  }
  ~AtomicFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(tmp_.c_str());
  }
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, uint64_t n) {
    const auto* p = static_cast<const uint8_t*>(data);
    while (n > 0) {
      // write() may write less than asked, and Linux caps one call near 2 GiB.
      const size_t chunk = static_cast<size_t>(std::min<uint64_t>(n, 1u << 30));
      const ssize_t w = ::write(fd_, p, chunk);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) fail("cannot write");
      p += w;
      n -= static_cast<uint64_t>(w);
    }
  }

  void commit() {
    if (::fsync(fd_) != 0) fail("cannot flush");
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) fail("cannot close");
    if (::rename(tmp_.c_str(), target_.c_str()) != 0) fail("cannot rename into place");
    committed_ = true;
  }

 private:
  [[noreturn]] void fail(const char* what) const {
    throw IoError(target_.string() + ": " + what + " (temporary file '" + tmp_.string() +
                  "'): " + std::strerror(errno));
  }
  fs::path target_;
  fs::path tmp_;
  int fd_ = -1;
  bool committed_ = false;
};

}  // namespace

void write_safetensors(const std::filesystem::path& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  const std::string file = path.string();
  ordered_json header = ordered_json::object();
  if (!metadata.empty()) {
    ordered_json m = ordered_json::object();
    for (const auto& [k, v] : metadata) m[k] = v;
    header["__metadata__"] = std::move(m);
  }

  uint64_t offset = 0;
  for (const auto& t : tensors) {
    auto bad = [&](const std::string& problem) {
      throw ValueError(file + ": tensor '" + t.name + "': " + problem);
    };
    if (t.name.empty()) bad("empty tensor name");
    if (t.name == "__metadata__") bad("name is reserved for the metadata map");
    if (header.contains(t.name)) bad("listed twice");
    if (is_block_quantized(t.dtype))
      bad("dtype " + std::string(dtype_name(t.dtype)) + " cannot be stored in safetensors");
    const auto numel = shape_numel(t.shape);
    if (!numel) bad("invalid shape " + shape_to_string(t.shape));
    const auto nbytes = storage_bytes(t.dtype, *numel);
    if (!nbytes || *nbytes != t.nbytes)
      bad(std::to_string(t.nbytes) + " bytes given, but " + std::string(dtype_name(t.dtype)) + " " +
          shape_to_string(t.shape) + " needs " + (nbytes ? std::to_string(*nbytes) : std::string("more")));
    if (t.nbytes > 0 && t.data == nullptr) bad("no data pointer for " + std::to_string(t.nbytes) + " bytes");
    if (t.nbytes > UINT64_MAX - offset) bad("total data size overflows 64 bits");
    header[t.name] = {
        {"dtype", dtype_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {offset, offset + t.nbytes}}};
    offset += t.nbytes;
  }

  std::string header_text = header.dump();
  // The reference writer pads with spaces so that the data buffer (at 8 + N) starts
  // 8-byte aligned, letting readers view F64/I64 tensors in place.
  header_text.append((8 - header_text.size() % 8) % 8, ' ');
  const uint64_t header_len = header_text.size();

  AtomicFile out(path);
  out.write(&header_len, sizeof header_len);
  out.write(header_text.data(), header_text.size());
  // Straight from the caller's buffers: large tensors are never copied.
  for (const auto& t : tensors)
    if (t.nbytes > 0) out.write(t.data, t.nbytes);
  out.commit();
}

}  // namespace peft::io
