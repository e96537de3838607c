// GGUF v2/v3 (llama.cpp docs/gguf.md): "GGUF", u32 version, u64 tensor count,
// u64 metadata count, metadata key/values (all value types, nested arrays), tensor
// infos (name, dims innermost-first, ggml type, offset), data aligned to
// general.alignment (default 32). Version 1 (u32 counts) is refused.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "peft/io/checkpoint.h"
#include "peft/io/mapped_file.h"

namespace peft::io {

// GGUF metadata value types, as numbered in the file.
enum class GgufValueType : uint32_t {
  U8 = 0,
  I8 = 1,
  U16 = 2,
  I16 = 3,
  U32 = 4,
  I32 = 5,
  F32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  U64 = 10,
  I64 = 11,
  F64 = 12,
};

class GgufCheckpoint final : public Checkpoint {
 public:
  // Parses and validates header, metadata and tensor infos (types known, sizes whole
  // blocks, data inside the file, no overlap). Throws FormatError / IoError.
  explicit GgufCheckpoint(const std::filesystem::path& path);

  std::string format() const override { return "gguf"; }
  TensorData raw(const std::string& name) const override;

  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }  // start of the tensor data section
  // Type of a metadata value as stored (arrays: ARRAY; see array_type). Throws NotFoundError.
  GgufValueType value_type(const std::string& key) const;
  GgufValueType array_type(const std::string& key) const;  // element type of an array value

 private:
  std::shared_ptr<const MappedFile> file_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::map<std::string, std::pair<GgufValueType, GgufValueType>> value_types_;
  std::map<std::string, uint64_t> offsets_;  // absolute file offset per tensor
};

// ggml type number -> DType (nullopt for types this reader does not know).
std::optional<DType> dtype_from_ggml_type(uint32_t ggml_type);

}  // namespace peft::io
