// The SentencePiece model file (spiece.model, sentencepiece.bpe.model): a serialized
// `ModelProto` of sentencepiece_model.proto, read with a small protobuf wire-format
// decoder (no libprotobuf). Only the fields that change tokenization are kept; unknown
// fields are skipped as protobuf does (self_test_data too: sentencepiece runs those
// samples at load, we do not). Absent fields take the .proto defaults.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace peft::text {

// ModelProto.SentencePiece.Type (the numbers are the wire values).
enum class SentencePieceType : int32_t {
  kNormal = 1,
  kUnknown = 2,      // <unk>: exactly one per model
  kControl = 3,      // <s>, </s>, <pad>...: never produced by encode, dropped by decode
  kUserDefined = 4,  // always kept whole, never normalized
  kUnused = 5,       // in the vocabulary but never emitted
  kByte = 6,         // <0x00>..<0xFF> when byte_fallback is on
};

struct SentencePieceEntry {
  std::string piece;
  float score = 0.0f;
  SentencePieceType type = SentencePieceType::kNormal;
};

// TrainerSpec: the fields encode/decode read.
struct SentencePieceTrainerSpec {
  enum class ModelType : int32_t { kUnigram = 1, kBpe = 2, kWord = 3, kChar = 4 };
  ModelType model_type = ModelType::kUnigram;
  int32_t vocab_size = 8000;
  bool byte_fallback = false;
  bool treat_whitespace_as_suffix = false;
  int32_t unk_id = 0, bos_id = 1, eos_id = 2, pad_id = -1;
  // An empty piece name in the file means the default, as in sentencepiece.
  std::string unk_piece = "<unk>", bos_piece = "<s>", eos_piece = "</s>", pad_piece = "<pad>";
  std::string unk_surface = " \xE2\x81\x87 ";  // what decode prints for <unk>: " ⁇ "
};

// NormalizerSpec (also used for the optional denormalizer).
struct SentencePieceNormalizerSpec {
  std::string name;                  // "nmt_nfkc", "identity", "user_defined"...
  std::string precompiled_charsmap;  // empty: no character rewriting
  bool add_dummy_prefix = true;
  bool remove_extra_whitespaces = true;
  bool escape_whitespaces = true;
};

struct SentencePieceModelProto {
  std::vector<SentencePieceEntry> pieces;  // id = index
  SentencePieceTrainerSpec trainer_spec;
  SentencePieceNormalizerSpec normalizer_spec;
  std::optional<SentencePieceNormalizerSpec> denormalizer_spec;
};

// Decodes a serialized ModelProto. `origin` names the file in errors: FormatError
// "<origin>: <field path> at offset N: <problem>" for truncated or malformed input
// (bad varint, length past the end, wrong wire type, unknown piece type or model
// type). Semantic checks (duplicate pieces, missing <unk>...) are the tokenizer's.
SentencePieceModelProto parse_sentencepiece_model(const uint8_t* data, size_t size,
                                                  const std::string& origin);

// Reads and decodes a .model file (IoError when it cannot be read).
SentencePieceModelProto read_sentencepiece_model(const std::filesystem::path& file);

}  // namespace peft::text
