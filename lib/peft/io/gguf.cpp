#include "peft/io/gguf.h"

#include <algorithm>
#include <iterator>
#include <limits>
#include <vector>

#include "peft/error.h"
#include "peft/io/byte_reader.h"

namespace peft::io {

namespace {

// ggml's GGML_MAX_DIMS: no ggml tensor has more dimensions.
constexpr uint32_t kMaxDims = 4;
// Real files nest arrays at most once; the cap keeps a hostile file from recursing
// the parser off the stack.
constexpr int kMaxArrayDepth = 16;
constexpr uint64_t kDefaultAlignment = 32;

// Fewest bytes a serialized item can take; used to refuse counts that the rest of
// the file could not hold before anything is allocated for them.
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 4 + 8;  // name length, n_dims, type, offset
constexpr uint64_t kMinKeyValueBytes = 8 + 4 + 1;        // key length, value type, 1-byte value

std::string in_quotes(const std::string& s) { return "'" + s + "'"; }

const char* value_type_name(uint32_t t) {
  static constexpr const char* kNames[] = {"u8",   "i8",     "u16",   "i16", "u32", "i32", "f32",
                                           "bool", "string", "array", "u64", "i64", "f64"};
  return t < std::size(kNames) ? kNames[t] : "unknown";
}

bool is_known_value_type(uint32_t t) { return t <= static_cast<uint32_t>(GgufValueType::F64); }

// Smallest encoding of one element of an array of type `t` (t is known).
uint64_t min_value_bytes(GgufValueType t) {
  switch (t) {
    case GgufValueType::U8:
    case GgufValueType::I8:
    case GgufValueType::BOOL:
      return 1;
    case GgufValueType::U16:
    case GgufValueType::I16:
      return 2;
    case GgufValueType::U32:
    case GgufValueType::I32:
    case GgufValueType::F32:
      return 4;
    case GgufValueType::STRING:
      return 8;  // length prefix
    case GgufValueType::ARRAY:
      return 12;  // element type + count
    case GgufValueType::U64:
    case GgufValueType::I64:
    case GgufValueType::F64:
      return 8;
  }
  return 1;
}

// ggml types this reader knows by name but cannot decode (i-quants, ternary, fp4),
// so the error says what the file holds instead of only a number.
const char* unsupported_ggml_type_name(uint32_t t) {
  switch (t) {
    case 4:
      return "Q4_2 (removed from ggml)";
    case 5:
      return "Q4_3 (removed from ggml)";
    case 16:
      return "IQ2_XXS";
    case 17:
      return "IQ2_XS";
    case 18:
      return "IQ3_XXS";
    case 19:
      return "IQ1_S";
    case 20:
      return "IQ4_NL";
    case 21:
      return "IQ3_S";
    case 22:
      return "IQ2_S";
    case 23:
      return "IQ4_XS";
    case 29:
      return "IQ1_M";
    case 31:
      return "Q4_0_4_4 (removed from ggml)";
    case 32:
      return "Q4_0_4_8 (removed from ggml)";
    case 33:
      return "Q4_0_8_8 (removed from ggml)";
    case 34:
      return "TQ1_0";
    case 35:
      return "TQ2_0";
    case 39:
      return "MXFP4";
    default:
      return nullptr;
  }
}

// Parses the header, key/values and tensor infos of one file. Kept apart from
// GgufCheckpoint so the checkpoint only stores results.
class HeaderParser {
 public:
  HeaderParser(const MappedFile& file, std::string path) : r_(file.data(), file.size(), std::move(path)) {}

  ByteReader& reader() { return r_; }

  nlohmann::json read_value(GgufValueType type, const std::string& key, int depth) {
    const std::string what = "metadata " + in_quotes(key) + " value";
    switch (type) {
      case GgufValueType::U8:
        return r_.read<uint8_t>(what.c_str());
      case GgufValueType::I8:
        return r_.read<int8_t>(what.c_str());
      case GgufValueType::U16:
        return r_.read<uint16_t>(what.c_str());
      case GgufValueType::I16:
        return r_.read<int16_t>(what.c_str());
      case GgufValueType::U32:
        return r_.read<uint32_t>(what.c_str());
      case GgufValueType::I32:
        return r_.read<int32_t>(what.c_str());
      case GgufValueType::F32:
        return r_.read<float>(what.c_str());
      case GgufValueType::BOOL:
        return r_.read<uint8_t>(what.c_str()) != 0;
      case GgufValueType::STRING:
        return read_string(what);
      case GgufValueType::U64:
        return r_.read<uint64_t>(what.c_str());
      case GgufValueType::I64:
        return r_.read<int64_t>(what.c_str());
      case GgufValueType::F64:
        return r_.read<double>(what.c_str());
      case GgufValueType::ARRAY:
        return read_array(key, depth + 1);
    }
    r_.fail(what, "unknown value type");
  }

  // Reads an array's element type and count, then its elements; `depth` counts the
  // arrays enclosing this one, itself included.
  nlohmann::json read_array(const std::string& key, int depth) {
    const std::string what = "metadata " + in_quotes(key) + " array";
    if (depth > kMaxArrayDepth)
      r_.fail(what, "arrays nested more than " + std::to_string(kMaxArrayDepth) + " deep");
    const auto type = read_value_type(what + " element type");
    const auto count = r_.read<uint64_t>((what + " count").c_str());
    const uint64_t per_element = min_value_bytes(type);
    if (count > r_.remaining() / per_element)
      r_.fail(what, std::to_string(count) + " elements of type " +
                        value_type_name(static_cast<uint32_t>(type)) + " cannot fit in the " +
                        std::to_string(r_.remaining()) + " bytes left in the file");
    nlohmann::json out = nlohmann::json::array();
    out.get_ref<nlohmann::json::array_t&>().reserve(static_cast<size_t>(count));
    for (uint64_t i = 0; i < count; ++i) out.push_back(read_value(type, key, depth));
    if (depth == 1) last_array_type_ = type;
    return out;
  }

  GgufValueType read_value_type(const std::string& what) {
    const auto raw = r_.read<uint32_t>(what.c_str());
    if (!is_known_value_type(raw)) r_.fail(what, "unknown value type " + std::to_string(raw));
    return static_cast<GgufValueType>(raw);
  }

  std::string read_string(const std::string& what) {
    const auto length = r_.read<uint64_t>((what + " length").c_str());
    return r_.read_string(length, what.c_str());  // bounds-checked before allocating
  }

  // Element type of the outermost array read by the last read_value(ARRAY).
  GgufValueType last_array_type() const { return last_array_type_; }

 private:
  ByteReader r_;
  GgufValueType last_array_type_ = GgufValueType::U8;
};

uint64_t align_up(uint64_t offset, uint64_t alignment) {
  return (offset + alignment - 1) / alignment * alignment;  // offset <= file size: no overflow
}

}  // namespace

std::optional<DType> dtype_from_ggml_type(uint32_t ggml_type) {
  switch (ggml_type) {
    case 0:
      return DType::F32;
    case 1:
      return DType::F16;
    case 2:
      return DType::Q4_0;
    case 3:
      return DType::Q4_1;
    case 6:
      return DType::Q5_0;
    case 7:
      return DType::Q5_1;
    case 8:
      return DType::Q8_0;
    case 9:
      return DType::Q8_1;
    case 10:
      return DType::Q2_K;
    case 11:
      return DType::Q3_K;
    case 12:
      return DType::Q4_K;
    case 13:
      return DType::Q5_K;
    case 14:
      return DType::Q6_K;
    case 15:
      return DType::Q8_K;
    case 24:
      return DType::I8;
    case 25:
      return DType::I16;
    case 26:
      return DType::I32;
    case 27:
      return DType::I64;
    case 28:
      return DType::F64;
    case 30:
      return DType::BF16;
    default:
      return std::nullopt;
  }
}

GgufCheckpoint::GgufCheckpoint(const std::filesystem::path& path) : Checkpoint(path.string()) {
  file_ = MappedFile::open(path);
  HeaderParser parser(*file_, path_);
  ByteReader& r = parser.reader();

  const std::string magic = r.read_string(4, "magic");
  if (magic != "GGUF")
    throw FormatError(path_, "magic", "not a GGUF file (the first 4 bytes are not \"GGUF\")");
  version_ = r.read<uint32_t>("version");
  if (version_ == 1)
    throw FormatError(path_, "header",
                      "GGUF version 1 (32-bit counts) is not supported; only versions 2 and 3");
  if (version_ != 2 && version_ != 3) {
    // A big-endian file reads its version byte-swapped here.
    const bool swapped = version_ == 0x02000000u || version_ == 0x03000000u;
    throw FormatError(path_, "header",
                      "unsupported GGUF version " + std::to_string(version_) +
                          (swapped ? " (a big-endian file, which this reader does not support)"
                                   : "; only versions 2 and 3 are supported"));
  }
  const auto tensor_count = r.read<uint64_t>("tensor count");
  const auto kv_count = r.read<uint64_t>("metadata count");
  if (kv_count > r.remaining() / kMinKeyValueBytes)
    throw FormatError(path_, "header",
                      "metadata count " + std::to_string(kv_count) + " cannot fit in the " +
                          std::to_string(r.remaining()) + " bytes left in the file");

  // ---- metadata -----------------------------------------------------------------
  for (uint64_t i = 0; i < kv_count; ++i) {
    const std::string key = parser.read_string("metadata key #" + std::to_string(i));
    if (metadata_.contains(key))
      throw FormatError(path_, "metadata " + in_quotes(key), "key appears more than once");
    const auto type = parser.read_value_type("metadata " + in_quotes(key) + " value type");
    nlohmann::json value = parser.read_value(type, key, 0);
    const auto element_type = type == GgufValueType::ARRAY ? parser.last_array_type() : type;
    value_types_.emplace(key, std::make_pair(type, element_type));
    metadata_[key] = std::move(value);
  }

  if (metadata_.contains("general.alignment")) {
    const auto& a = metadata_["general.alignment"];
    if (value_type("general.alignment") != GgufValueType::U32)
      throw FormatError(path_, "metadata 'general.alignment'",
                        std::string("must be a u32, not ") +
                            value_type_name(static_cast<uint32_t>(value_type("general.alignment"))));
    alignment_ = a.get<uint64_t>();
    if (alignment_ == 0 || (alignment_ & (alignment_ - 1)) != 0)
      throw FormatError(path_, "metadata 'general.alignment'",
                        std::to_string(alignment_) + " is not a nonzero power of two");
  } else {
    alignment_ = kDefaultAlignment;
  }

  // ---- tensor infos ---------------------------------------------------------------
  if (tensor_count > r.remaining() / kMinTensorInfoBytes)
    throw FormatError(path_, "header",
                      "tensor count " + std::to_string(tensor_count) + " cannot fit in the " +
                          std::to_string(r.remaining()) + " bytes left in the file");
  struct Placement {
    std::string name;
    uint64_t offset;  // relative to the data section
    uint64_t nbytes;
  };
  std::vector<Placement> placements;
  placements.reserve(static_cast<size_t>(tensor_count));
  for (uint64_t i = 0; i < tensor_count; ++i) {
    TensorInfo info;
    info.name = parser.read_string("tensor #" + std::to_string(i) + " name");
    const std::string where = "tensor " + in_quotes(info.name);
    const auto n_dims = r.read<uint32_t>((where + " n_dims").c_str());
    if (n_dims > kMaxDims)
      throw FormatError(
          path_, where,
          std::to_string(n_dims) + " dimensions (ggml allows at most " + std::to_string(kMaxDims) + ")");
    std::vector<uint64_t> dims(n_dims);  // innermost first, as stored
    for (auto& d : dims) {
      d = r.read<uint64_t>((where + " dimension").c_str());
      if (d > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        throw FormatError(path_, where, "dimension " + std::to_string(d) + " is out of range");
    }
    info.shape.assign(dims.rbegin(), dims.rend());
    const auto ggml_type = r.read<uint32_t>((where + " type").c_str());
    const auto offset = r.read<uint64_t>((where + " offset").c_str());

    const auto dtype = dtype_from_ggml_type(ggml_type);
    if (!dtype) {
      const char* known = unsupported_ggml_type_name(ggml_type);
      throw FormatError(path_, where,
                        known ? "ggml type " + std::to_string(ggml_type) + " (" + known + ") is not supported"
                              : "unknown ggml type " + std::to_string(ggml_type));
    }
    info.dtype = *dtype;
    const auto numel = shape_numel(info.shape);
    if (!numel)
      throw FormatError(path_, where, "shape " + shape_to_string(info.shape) + " has too many elements");
    info.numel = *numel;
    // ggml stores whole blocks per row, so the innermost dimension must be whole blocks.
    const uint64_t per_block = block_elements(info.dtype);
    const uint64_t innermost = dims.empty() ? 1 : dims.front();  // no dims: a scalar
    if (innermost % per_block != 0)
      throw FormatError(path_, where,
                        "innermost dimension " + std::to_string(innermost) + " is not a whole number of " +
                            std::to_string(per_block) + "-element " + std::string(dtype_name(info.dtype)) +
                            " blocks");
    const auto nbytes = storage_bytes(info.dtype, info.numel);
    if (!nbytes)  // whole blocks were checked above, so only the byte count can fail
      throw FormatError(path_, where,
                        "the size of " + std::to_string(info.numel) + " " +
                            std::string(dtype_name(info.dtype)) + " elements overflows 64 bits");
    info.nbytes = *nbytes;
    if (offset % alignment_ != 0)
      throw FormatError(path_, where,
                        "data offset " + std::to_string(offset) + " is not a multiple of the alignment " +
                            std::to_string(alignment_));
    placements.push_back({info.name, offset, info.nbytes});
    add_tensor(std::move(info));  // refuses duplicate names
  }

  // ---- data section ---------------------------------------------------------------
  data_offset_ = align_up(r.offset(), alignment_);
  for (const auto& p : placements) {
    const bool inside = p.offset <= std::numeric_limits<uint64_t>::max() - data_offset_ &&
                        file_->contains(data_offset_ + p.offset, p.nbytes);
    if (!inside)
      throw FormatError(path_, "tensor " + in_quotes(p.name),
                        "data [" + std::to_string(p.offset) + ", +" + std::to_string(p.nbytes) +
                            ") relative to the data section at " + std::to_string(data_offset_) +
                            " lies outside the file (" + std::to_string(file_->size()) + " bytes)");
    offsets_.emplace(p.name, data_offset_ + p.offset);
  }
  // Sorted by start, a tensor overlaps an earlier one exactly when it starts before the
  // furthest end seen so far. Empty tensors hold no bytes and overlap nothing.
  std::sort(placements.begin(), placements.end(),
            [](const Placement& a, const Placement& b) { return a.offset < b.offset; });
  const Placement* furthest = nullptr;  // the non-empty tensor ending last so far
  for (const auto& cur : placements) {
    if (cur.nbytes == 0) continue;
    if (furthest != nullptr && cur.offset < furthest->offset + furthest->nbytes)  // both inside the file
      throw FormatError(path_, "tensor " + in_quotes(cur.name),
                        "data at offset " + std::to_string(cur.offset) + " overlaps tensor " +
                            in_quotes(furthest->name) + " [" + std::to_string(furthest->offset) + ", " +
                            std::to_string(furthest->offset + furthest->nbytes) + ")");
    if (furthest == nullptr || cur.offset + cur.nbytes > furthest->offset + furthest->nbytes) furthest = &cur;
  }
}

TensorData GgufCheckpoint::raw(const std::string& name) const {
  const TensorInfo& ti = info(name);
  // Zero-copy: the bytes stay in the mapping, which the returned owner keeps alive.
  return TensorData{ti, file_->data() + offsets_.at(name), file_};
}

GgufValueType GgufCheckpoint::value_type(const std::string& key) const {
  auto it = value_types_.find(key);
  if (it == value_types_.end())
    throw NotFoundError(path_ + ": metadata '" + key + "': not in this GGUF file");
  return it->second.first;
}

GgufValueType GgufCheckpoint::array_type(const std::string& key) const {
  if (value_type(key) != GgufValueType::ARRAY)
    throw ValueError(path_ + ": metadata '" + key + "': is a " +
                     value_type_name(static_cast<uint32_t>(value_type(key))) + ", not an array");
  return value_types_.at(key).second;
}

}  // namespace peft::io
