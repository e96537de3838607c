#include "peft/text/sentencepiece_model.h"

#include <cstring>

#include "peft/error.h"
#include "peft/io/mapped_file.h"

namespace peft::text {

namespace {

// Protobuf wire types.
constexpr uint32_t kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5;

const char* wire_type_name(uint32_t t) {
  switch (t) {
    case kVarint:
      return "varint";
    case kFixed64:
      return "fixed64";
    case kLengthDelimited:
      return "length-delimited";
    case 3:
      return "start-group";
    case 4:
      return "end-group";
    case kFixed32:
      return "fixed32";
    default:
      return "invalid";
  }
}

// A cursor over [pos, end) of the whole file; offsets in errors are file offsets.
// `path` is the dotted field path of the message being read ("trainer_spec").
class WireReader {
 public:
  WireReader(const uint8_t* data, size_t pos, size_t end, const std::string& origin, std::string path)
      : data_(data), pos_(pos), end_(end), origin_(origin), path_(std::move(path)) {}

  bool done() const { return pos_ >= end_; }
  size_t pos() const { return pos_; }

  // Reads a field key; stores the field number and wire type.
  void key(uint32_t& field, uint32_t& wire_type) {
    field_start_ = pos_;
    const uint64_t k = varint("field key");
    wire_type = static_cast<uint32_t>(k & 7);
    const uint64_t number = k >> 3;
    if (number == 0 || number > 0x1FFFFFFF)
      fail(path_, "field key", "field number " + std::to_string(number) + " is out of range");
    field = static_cast<uint32_t>(number);
    field_name_ =
        path_.empty() ? "field " + std::to_string(field) : path_ + ".field " + std::to_string(field);
  }

  // Names the current field for errors ("trainer_spec.unk_id").
  void name(const char* field_name) { field_name_ = path_.empty() ? field_name : path_ + "." + field_name; }
  const std::string& field_name() const { return field_name_; }

  uint64_t varint(const char* what) {
    uint64_t value = 0;
    for (int shift = 0; shift < 70; shift += 7) {
      if (pos_ >= end_) fail(field_name_, what, "truncated varint");
      const uint8_t b = data_[pos_++];
      if (shift == 63 && b > 1) fail(field_name_, what, "varint longer than 64 bits");
      value |= static_cast<uint64_t>(b & 0x7F) << shift;
      if ((b & 0x80) == 0) return value;
    }
    fail(field_name_, what, "varint longer than 10 bytes");
  }

  uint32_t fixed32() {
    if (end_ - pos_ < 4) fail(field_name_, "value", "truncated fixed32");
    uint32_t v;
    std::memcpy(&v, data_ + pos_, 4);
    pos_ += 4;
    return v;
  }

  // The [begin, end) file range of a length-delimited value.
  std::pair<size_t, size_t> bytes() {
    const uint64_t n = varint("length");
    if (n > end_ - pos_)
      fail(field_name_, "length",
           "length " + std::to_string(n) + " runs past the end of its message (" +
               std::to_string(end_ - pos_) + " bytes left)");
    const size_t begin = pos_;
    pos_ += static_cast<size_t>(n);
    return {begin, pos_};
  }

  std::string string() {
    const auto [b, e] = bytes();
    return std::string(reinterpret_cast<const char*>(data_ + b), e - b);
  }

  // Typed reads that check the wire type first.
  void expect(uint32_t wire_type, uint32_t expected) {
    if (wire_type != expected)
      fail(field_name_, "",
           std::string("wire type ") + wire_type_name(wire_type) + ", expected " + wire_type_name(expected));
  }
  bool read_bool(uint32_t wt) {
    expect(wt, kVarint);
    return varint("value") != 0;
  }
  // int32 and enums: the low 32 bits of the varint (negative values are sign-extended
  // to 10 bytes on the wire).
  int32_t read_int32(uint32_t wt) {
    expect(wt, kVarint);
    return static_cast<int32_t>(static_cast<uint32_t>(varint("value")));
  }
  float read_float(uint32_t wt) {
    expect(wt, kFixed32);
    const uint32_t bits = fixed32();
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
  }
  std::string read_string(uint32_t wt) {
    expect(wt, kLengthDelimited);
    return string();
  }
  WireReader read_message(uint32_t wt, const std::string& sub_path) {
    expect(wt, kLengthDelimited);
    const auto [b, e] = bytes();
    return WireReader(data_, b, e, origin_, sub_path);
  }

  void skip(uint32_t wire_type) {
    switch (wire_type) {
      case kVarint:
        varint("value");
        return;
      case kFixed64:
        if (end_ - pos_ < 8) fail(field_name_, "value", "truncated fixed64");
        pos_ += 8;
        return;
      case kLengthDelimited:
        bytes();
        return;
      case kFixed32:
        fixed32();
        return;
      default:
        // Groups are deprecated and sentencepiece never writes them.
        fail(field_name_, "", std::string("unsupported wire type ") + wire_type_name(wire_type));
    }
  }

  [[noreturn]] void fail(const std::string& field, const std::string& what,
                         const std::string& problem) const {
    std::string where = field.empty() ? std::string("ModelProto") : field;
    if (!what.empty()) where += " " + what;
    where += " at offset " + std::to_string(field_start_);
    throw FormatError(origin_, where, problem);
  }

 private:
  const uint8_t* data_;
  size_t pos_, end_;
  const std::string& origin_;
  std::string path_;
  size_t field_start_ = 0;
  std::string field_name_;
};

void parse_piece(WireReader r, SentencePieceEntry& p) {
  uint32_t field, wt;
  while (!r.done()) {
    r.key(field, wt);
    switch (field) {
      case 1:
        r.name("piece");
        p.piece = r.read_string(wt);
        break;
      case 2:
        r.name("score");
        p.score = r.read_float(wt);
        break;
      case 3: {
        r.name("type");
        const int32_t t = r.read_int32(wt);
        if (t < 1 || t > 6) r.fail(r.field_name(), "", "unknown piece type " + std::to_string(t));
        p.type = static_cast<SentencePieceType>(t);
        break;
      }
      default:
        r.skip(wt);
    }
  }
}

void parse_trainer_spec(WireReader r, SentencePieceTrainerSpec& s) {
  uint32_t field, wt;
  while (!r.done()) {
    r.key(field, wt);
    switch (field) {
      case 3: {
        r.name("model_type");
        const int32_t t = r.read_int32(wt);
        if (t < 1 || t > 4) r.fail(r.field_name(), "", "unknown model type " + std::to_string(t));
        s.model_type = static_cast<SentencePieceTrainerSpec::ModelType>(t);
        break;
      }
      case 4:
        r.name("vocab_size");
        s.vocab_size = r.read_int32(wt);
        break;
      case 24:
        r.name("treat_whitespace_as_suffix");
        s.treat_whitespace_as_suffix = r.read_bool(wt);
        break;
      case 35:
        r.name("byte_fallback");
        s.byte_fallback = r.read_bool(wt);
        break;
      case 40:
        r.name("unk_id");
        s.unk_id = r.read_int32(wt);
        break;
      case 41:
        r.name("bos_id");
        s.bos_id = r.read_int32(wt);
        break;
      case 42:
        r.name("eos_id");
        s.eos_id = r.read_int32(wt);
        break;
      case 43:
        r.name("pad_id");
        s.pad_id = r.read_int32(wt);
        break;
      case 44:
        r.name("unk_surface");
        s.unk_surface = r.read_string(wt);
        break;
      case 45:
        r.name("unk_piece");
        s.unk_piece = r.read_string(wt);
        break;
      case 46:
        r.name("bos_piece");
        s.bos_piece = r.read_string(wt);
        break;
      case 47:
        r.name("eos_piece");
        s.eos_piece = r.read_string(wt);
        break;
      case 48:
        r.name("pad_piece");
        s.pad_piece = r.read_string(wt);
        break;
      default:
        r.skip(wt);
    }
  }
}

void parse_normalizer_spec(WireReader r, SentencePieceNormalizerSpec& s) {
  uint32_t field, wt;
  while (!r.done()) {
    r.key(field, wt);
    switch (field) {
      case 1:
        r.name("name");
        s.name = r.read_string(wt);
        break;
      case 2:
        r.name("precompiled_charsmap");
        s.precompiled_charsmap = r.read_string(wt);
        break;
      case 3:
        r.name("add_dummy_prefix");
        s.add_dummy_prefix = r.read_bool(wt);
        break;
      case 4:
        r.name("remove_extra_whitespaces");
        s.remove_extra_whitespaces = r.read_bool(wt);
        break;
      case 5:
        r.name("escape_whitespaces");
        s.escape_whitespaces = r.read_bool(wt);
        break;
      default:
        r.skip(wt);
    }
  }
}

}  // namespace

SentencePieceModelProto parse_sentencepiece_model(const uint8_t* data, size_t size,
                                                  const std::string& origin) {
  SentencePieceModelProto model;
  WireReader r(data, 0, size, origin, "");
  uint32_t field, wt;
  while (!r.done()) {
    r.key(field, wt);
    switch (field) {
      case 1: {
        r.name("pieces");
        const std::string path = "pieces[" + std::to_string(model.pieces.size()) + "]";
        model.pieces.emplace_back();
        parse_piece(r.read_message(wt, path), model.pieces.back());
        break;
      }
      // A message field that occurs twice is merged, as protobuf does.
      case 2:
        r.name("trainer_spec");
        parse_trainer_spec(r.read_message(wt, "trainer_spec"), model.trainer_spec);
        break;
      case 3:
        r.name("normalizer_spec");
        parse_normalizer_spec(r.read_message(wt, "normalizer_spec"), model.normalizer_spec);
        break;
      case 5:
        r.name("denormalizer_spec");
        if (!model.denormalizer_spec) model.denormalizer_spec.emplace();
        parse_normalizer_spec(r.read_message(wt, "denormalizer_spec"), *model.denormalizer_spec);
        break;
      default:
        r.skip(wt);  // self_test_data (4), extensions
    }
  }
  auto& t = model.trainer_spec;
  if (t.unk_piece.empty()) t.unk_piece = "<unk>";
  if (t.bos_piece.empty()) t.bos_piece = "<s>";
  if (t.eos_piece.empty()) t.eos_piece = "</s>";
  if (t.pad_piece.empty()) t.pad_piece = "<pad>";
  return model;
}

SentencePieceModelProto read_sentencepiece_model(const std::filesystem::path& file) {
  const auto mapped = io::MappedFile::open(file);
  return parse_sentencepiece_model(mapped->data(), mapped->size(), mapped->path());
}

}  // namespace peft::text
