// CTranslate2 model.bin reader. The layout was re-derived from CTranslate2's writer
// (python/ctranslate2/specs/model_spec.py, ModelSpec._serialize) and loader
// (src/models/model.cc, Model::load). What each binary version changed:
//   v1  u32 version, u32 variable count, variables; dtype given only by item size
//       (4 f32, 2 i16, 1 i8) and the size field counts ELEMENTS, not bytes.
//   v2  + spec name string and u32 spec revision after the version.
//   v3  + the alias table after the variables.
//   v4  u8 dtype id (the DataType enum: f32, i8, i16, i32, f16, bf16) and a byte count
//       replace item size and element count.
//   v5  same bytes as v4; int8 weights were quantized with rounding (not truncation).
//   v6  same bytes as v5; special tokens (unk/bos/eos, add_source_bos...) moved from
//       model.bin scalar attributes into config.json.
// So the byte layout is identical for 4, 5 and 6; older layouts are read too.
#include "peft/io/ct2.h"

#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <optional>
#include <set>
#include <sstream>

#include "peft/error.h"
#include "peft/io/byte_reader.h"
#include "peft/io/half.h"

namespace peft::io {

namespace {

constexpr uint32_t kOldestBinaryVersion = 1;
constexpr uint32_t kNewestBinaryVersion = 6;
// CTranslate2 stores at most 4-D tensors (conv weights are 3-D); a larger rank is far
// more likely a corrupt byte than a real tensor, and refusing it bounds the dims read.
constexpr unsigned kMaxRank = 8;
// Smallest encodings, used to refuse counts that the rest of the file cannot hold
// before anything is sized from them: a non-empty string is u16 + 1 byte + NUL.
constexpr uint64_t kMinStringBytes = 2 + 2;
constexpr uint64_t kMinVariableBytes = kMinStringBytes + 1 /*rank*/ + 1 /*dtype*/ + 4 /*size*/;
constexpr uint64_t kMinAliasBytes = 2 * kMinStringBytes;

std::filesystem::path model_bin_path(const std::filesystem::path& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) return path / "model.bin";
  return path;
}

[[noreturn]] void fail_at(const ByteReader& r, uint64_t offset, const std::string& what,
                          const std::string& problem) {
  throw FormatError(r.file(), what + " at offset " + std::to_string(offset), problem);
}

// A CT2 string: u16 length counting the trailing NUL, the bytes, the NUL.
std::string read_ct2_string(ByteReader& r, const std::string& what) {
  const uint64_t start = r.offset();
  const auto length = r.read<uint16_t>(what.c_str());
  if (length == 0) fail_at(r, start, what, "string length 0 (the length counts the trailing NUL)");
  const uint8_t* bytes = r.take(length, what.c_str());
  if (bytes[length - 1] != 0)
    fail_at(r, start, what, "string of " + std::to_string(length) + " bytes does not end with a NUL");
  // CTranslate2 builds the string from a C string, so a NUL inside would silently cut
  // the name; refuse it rather than read a different name than the file holds.
  if (std::memchr(bytes, 0, length - 1) != nullptr)
    fail_at(r, start, what, "string has a NUL before its end");
  if (length == 1) fail_at(r, start, what, "empty string");
  return std::string(reinterpret_cast<const char*>(bytes), length - 1u);
}

std::optional<DType> dtype_from_id(uint8_t id) {
  switch (id) {  // CTranslate2's DataType enum order (include/ctranslate2/types.h)
    case 0:
      return DType::F32;
    case 1:
      return DType::I8;
    case 2:
      return DType::I16;
    case 3:
      return DType::I32;
    case 4:
      return DType::F16;
    case 5:
      return DType::BF16;
    default:
      return std::nullopt;
  }
}

// Binary versions < 4 only stored the item size; CTranslate2 guessed the type from it.
std::optional<DType> dtype_from_item_size(uint8_t size) {
  switch (size) {
    case 4:
      return DType::F32;
    case 2:
      return DType::I16;
    case 1:
      return DType::I8;
    default:
      return std::nullopt;
  }
}

std::string in_quotes(const std::string& s) { return "'" + s + "'"; }

std::string read_text_file(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) throw IoError(p.string() + ": cannot open");
  std::ostringstream buf;
  buf << f.rdbuf();
  if (f.bad()) throw IoError(p.string() + ": cannot read");
  return buf.str();
}

nlohmann::json parse_json_file(const std::filesystem::path& p) {
  const std::string text = read_text_file(p);
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(p.string(), "", std::string("not valid JSON: ") + e.what());
  }
}

// One token per line, exactly as written (tokens may hold spaces); a final newline
// ends the last token rather than starting an empty one.
std::vector<std::string> read_vocabulary_txt(const std::filesystem::path& p) {
  const std::string text = read_text_file(p);
  std::vector<std::string> tokens;
  size_t begin = 0;
  while (begin < text.size()) {
    size_t end = text.find('\n', begin);
    if (end == std::string::npos) end = text.size();
    tokens.emplace_back(text, begin, end - begin);
    begin = end + 1;
  }
  return tokens;
}

std::vector<std::string> read_vocabulary_json(const std::filesystem::path& p) {
  const nlohmann::json doc = parse_json_file(p);
  if (!doc.is_array())
    throw FormatError(p.string(), "", std::string("expected an array of tokens, found ") + doc.type_name());
  std::vector<std::string> tokens;
  tokens.reserve(doc.size());
  for (size_t i = 0; i < doc.size(); ++i) {
    if (!doc[i].is_string())
      throw FormatError(p.string(), "token " + std::to_string(i),
                        std::string("expected a string, found ") + doc[i].type_name());
    tokens.push_back(doc[i].get<std::string>());
  }
  return tokens;
}

}  // namespace

Ct2Checkpoint::Ct2Checkpoint(const std::filesystem::path& path) : Checkpoint(model_bin_path(path).string()) {
  std::error_code ec;
  if (!std::filesystem::exists(path_, ec))
    throw NotFoundError(path_ + ": no such file (a CTranslate2 model.bin)");
  file_ = MappedFile::open(path_);
  parse_model_bin();

  const std::filesystem::path dir = std::filesystem::path(path_).parent_path();
  const std::filesystem::path config = dir / "config.json";
  if (std::filesystem::exists(config, ec)) {
    nlohmann::json doc = parse_json_file(config);
    if (!doc.is_object())
      throw FormatError(config.string(), "", std::string("expected a JSON object, found ") + doc.type_name());
    metadata_ = std::move(doc);
  }
  // The file's own header wins over same-named config keys: it is what was read.
  metadata_["spec"] = spec_;
  metadata_["revision"] = revision_;
  metadata_["binary_version"] = binary_version_;

  // CTranslate2 itself prefers vocabulary.json (written by current converters).
  if (std::filesystem::exists(dir / "vocabulary.json", ec))
    vocabulary_ = read_vocabulary_json(dir / "vocabulary.json");
  else if (std::filesystem::exists(dir / "vocabulary.txt", ec))
    vocabulary_ = read_vocabulary_txt(dir / "vocabulary.txt");
}

void Ct2Checkpoint::parse_model_bin() {
  ByteReader r(file_->data(), file_->size(), path_);

  binary_version_ = r.read<uint32_t>("binary version");
  if (binary_version_ < kOldestBinaryVersion || binary_version_ > kNewestBinaryVersion)
    throw FormatError(path_, "header",
                      "binary version " + std::to_string(binary_version_) +
                          " is not supported (this reader handles " + std::to_string(kOldestBinaryVersion) +
                          " to " + std::to_string(kNewestBinaryVersion) + ")");
  if (binary_version_ >= 2) {
    spec_ = read_ct2_string(r, "spec name");
    revision_ = r.read<uint32_t>("spec revision");
  } else {
    revision_ = 1;  // what CTranslate2 assumes for v1 files
  }

  const uint64_t count_offset = r.offset();
  const auto count = r.read<uint32_t>("variable count");
  if (count > r.remaining() / kMinVariableBytes)
    fail_at(r, count_offset, "variable count",
            std::to_string(count) + " variables cannot fit in the " + std::to_string(r.remaining()) +
                " bytes left");

  for (uint32_t i = 0; i < count; ++i) read_variable(r, i);

  if (binary_version_ >= 3) read_aliases(r);

  // CTranslate2's writer never puts anything after the last table and its loader never
  // looks there. Bytes there mean a file cut and pasted together or a layout we misread
  // (e.g. a wrong version number), so refusing is safer than silently ignoring them.
  if (r.remaining() != 0)
    fail_at(r, r.offset(), "end of file",
            std::to_string(r.remaining()) + " unexpected trailing bytes after the " +
                (binary_version_ >= 3 ? "alias table" : "variables"));
}

void Ct2Checkpoint::read_variable(ByteReader& r, uint32_t index) {
  const std::string name = read_ct2_string(r, "name of variable #" + std::to_string(index));
  const std::string where = "variable " + in_quotes(name);

  const uint64_t rank_offset = r.offset();
  const auto rank = r.read<uint8_t>((where + " rank").c_str());
  if (rank > kMaxRank)
    fail_at(r, rank_offset, where,
            "rank " + std::to_string(rank) + " is larger than " + std::to_string(kMaxRank));
  Shape shape;
  for (unsigned d = 0; d < rank; ++d) shape.push_back(r.read<uint32_t>((where + " dims").c_str()));
  const auto numel = shape_numel(shape);
  if (!numel)
    fail_at(r, rank_offset, where, "element count of shape " + shape_to_string(shape) + " overflows");

  const uint64_t dtype_offset = r.offset();
  DType dtype;
  uint64_t nbytes = 0;
  if (binary_version_ >= 4) {
    const auto id = r.read<uint8_t>((where + " dtype").c_str());
    const auto known = dtype_from_id(id);
    if (!known) fail_at(r, dtype_offset, where, "unknown dtype id " + std::to_string(id));
    dtype = *known;
    nbytes = r.read<uint32_t>((where + " byte count").c_str());
  } else {
    const auto item_size = r.read<uint8_t>((where + " item size").c_str());
    const auto known = dtype_from_item_size(item_size);
    if (!known) fail_at(r, dtype_offset, where, "unknown item size " + std::to_string(item_size));
    dtype = *known;
    const auto elements = r.read<uint32_t>((where + " element count").c_str());
    if (elements != *numel)
      fail_at(
          r, dtype_offset, where,
          "element count " + std::to_string(elements) + " does not match shape " + shape_to_string(shape));
    nbytes = uint64_t{elements} * item_size;
  }
  const auto expected = storage_bytes(dtype, *numel);
  if (!expected)
    fail_at(r, dtype_offset, where, "byte size of shape " + shape_to_string(shape) + " overflows");
  if (nbytes != *expected)
    fail_at(r, dtype_offset, where,
            "byte count " + std::to_string(nbytes) + " does not match shape " + shape_to_string(shape) +
                " x " + std::string(dtype_name(dtype)) + " (" + std::to_string(*expected) + " bytes)");

  const uint64_t data_offset = r.offset();
  r.take(nbytes, (where + " data").c_str());
  add_tensor(TensorInfo{name, dtype, shape, *numel, nbytes});
  offsets_.emplace(name, data_offset);
}

void Ct2Checkpoint::read_aliases(ByteReader& r) {
  const uint64_t count_offset = r.offset();
  const auto count = r.read<uint32_t>("alias count");
  if (count > r.remaining() / kMinAliasBytes)
    fail_at(r, count_offset, "alias count",
            std::to_string(count) + " aliases cannot fit in the " + std::to_string(r.remaining()) +
                " bytes left");

  std::vector<std::string> order;  // file order, for tensors()
  for (uint32_t i = 0; i < count; ++i) {
    const uint64_t offset = r.offset();
    std::string alias = read_ct2_string(r, "name of alias #" + std::to_string(i));
    std::string target = read_ct2_string(r, "target of alias " + in_quotes(alias));
    if (offsets_.count(alias)) fail_at(r, offset, "alias " + in_quotes(alias), "has the name of a variable");
    if (!aliases_.emplace(alias, target).second)
      fail_at(r, offset, "alias " + in_quotes(alias), "listed twice");
    order.push_back(std::move(alias));
  }

  // Resolve every alias to a variable now, so raw() is a plain lookup and a broken
  // table fails at open rather than on first use.
  for (const auto& alias : order) {
    const std::string where = "alias " + in_quotes(alias);
    std::set<std::string> seen{alias};
    std::string target = aliases_.at(alias);
    if (target == alias) throw FormatError(path_, where, "points to itself");
    while (aliases_.count(target)) {
      if (!seen.insert(target).second)
        throw FormatError(path_, where, "alias chain loops back to " + in_quotes(target));
      target = aliases_.at(target);
    }
    if (!offsets_.count(target))
      throw FormatError(path_, where,
                        "points to " + in_quotes(aliases_.at(alias)) + ", which is not a variable");
    alias_targets_.emplace(alias, target);
    TensorInfo info = this->info(target);
    info.name = alias;
    add_tensor(std::move(info));
  }

  // CTranslate2's loader also aliases "<alias>_scale" to "<target>_scale" so a
  // quantized aliased weight keeps its scale; do the same so ct2_dequantize_int8 works
  // on aliases. Only when the file does not already have such a tensor.
  for (const auto& alias : order) {
    const std::string scale_alias = alias + "_scale";
    const std::string scale_target = alias_targets_.at(alias) + "_scale";
    if (!offsets_.count(scale_target) || contains(scale_alias)) continue;
    alias_targets_.emplace(scale_alias, scale_target);
    TensorInfo info = this->info(scale_target);
    info.name = scale_alias;
    add_tensor(std::move(info));
  }
}

bool Ct2Checkpoint::looks_like_ct2(const std::filesystem::path& file) {
  std::ifstream f(file, std::ios::binary);
  if (!f) return false;
  // The version plus a short string (spec name, or for v1 the first variable name
  // after the u32 count): enough to tell model.bin apart from a PyTorch pickle zip.
  uint8_t head[4 + 4 + 2 + 256] = {};
  f.read(reinterpret_cast<char*>(head), sizeof head);
  const auto got = static_cast<size_t>(f.gcount());
  if (got < 4 + 2) return false;
  uint32_t version;
  std::memcpy(&version, head, 4);
  if (version < kOldestBinaryVersion || version > kNewestBinaryVersion) return false;
  size_t pos = version >= 2 ? 4 : 8;
  if (got < pos + 2) return false;
  uint16_t length;
  std::memcpy(&length, head + pos, 2);
  pos += 2;
  if (length < 2 || length > 256 || got < pos + length) return false;
  if (head[pos + length - 1] != 0) return false;
  for (size_t i = 0; i + 1 < length; ++i)
    if (head[pos + i] < 0x20 || head[pos + i] == 0x7f) return false;
  return true;
}

TensorData Ct2Checkpoint::raw(const std::string& name) const {
  const TensorInfo& tensor = info(name);  // NotFoundError when unknown
  auto alias = alias_targets_.find(name);
  const std::string& variable = alias == alias_targets_.end() ? name : alias->second;
  return TensorData{tensor, file_->data() + offsets_.at(variable), file_};
}

int64_t Ct2Checkpoint::scalar_int(const std::string& name) const {
  const TensorData t = raw(name);
  const std::string where = "variable " + in_quotes(name);
  if (!t.info.shape.empty())
    throw FormatError(path_, where, "not a scalar (shape " + shape_to_string(t.info.shape) + ")");
  switch (t.info.dtype) {
    case DType::I8: {
      int8_t v;
      std::memcpy(&v, t.data, 1);
      return v;
    }
    case DType::I16: {
      int16_t v;
      std::memcpy(&v, t.data, 2);
      return v;
    }
    case DType::I32: {
      int32_t v;
      std::memcpy(&v, t.data, 4);
      return v;
    }
    case DType::F32:
    case DType::F16:
    case DType::BF16: {
      float v = 0;
      decode_to_float(t.info.dtype, t.data, 1, &v);
      // 2^63 is exactly representable; anything at or above it does not fit int64.
      if (!std::isfinite(v) || v != std::trunc(v) || std::fabs(v) >= 9.2233720368547758e18f)
        throw FormatError(path_, where, "value " + std::to_string(v) + " is not an integer");
      return static_cast<int64_t>(v);
    }
    default:
      throw FormatError(path_, where,
                        "dtype " + std::string(dtype_name(t.info.dtype)) + " is not an integer scalar type");
  }
}

std::vector<float> ct2_dequantize_int8(const TensorData& weight, const TensorData& scale) {
  const std::string names = "'" + weight.info.name + "' with scale '" + scale.info.name + "'";
  if (weight.info.dtype != DType::I8)
    throw ShapeError("ct2_dequantize_int8: " + names + ": weight dtype is " +
                     std::string(dtype_name(weight.info.dtype)) + ", expected I8");
  if (weight.info.shape.empty())
    throw ShapeError("ct2_dequantize_int8: " + names + ": weight is a scalar, expected [rows, ...]");
  const auto rows = static_cast<uint64_t>(weight.info.shape.front());
  // Conv weights [out, in, k] carry one scale per output channel: CTranslate2 flattens
  // everything after the first dimension into the row.
  const uint64_t cols = rows == 0 ? 0 : weight.info.numel / rows;
  if (scale.info.numel != rows || scale.info.shape.size() > 1)
    throw ShapeError("ct2_dequantize_int8: " + names + ": scale shape " + shape_to_string(scale.info.shape) +
                     " does not match the weight's " + std::to_string(rows) + " rows");
  if (scale.info.dtype != DType::F32 && scale.info.dtype != DType::F16 && scale.info.dtype != DType::BF16)
    throw ShapeError("ct2_dequantize_int8: " + names + ": scale dtype is " +
                     std::string(dtype_name(scale.info.dtype)) + ", expected a float type");

  std::vector<float> row_scale(static_cast<size_t>(rows));
  decode_to_float(scale.info.dtype, scale.data, rows, row_scale.data());
  std::vector<float> out(static_cast<size_t>(weight.info.numel));
  for (uint64_t row = 0; row < rows; ++row)
    for (uint64_t col = 0; col < cols; ++col) {
      const uint64_t i = row * cols + col;
      out[i] = static_cast<float>(static_cast<int8_t>(weight.data[i])) / row_scale[row];
    }
  return out;
}

}  // namespace peft::io
