// safetensors (huggingface/safetensors): u64 little-endian header length N, N bytes of
// JSON {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}},
// then the data buffer (offsets are relative to its start). Sharded checkpoints:
// model.safetensors.index.json {"metadata": ..., "weight_map": {tensor: shard file}}.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "peft/io/checkpoint.h"
#include "peft/io/mapped_file.h"

namespace peft::io {

class SafetensorsCheckpoint final : public Checkpoint {
 public:
  // `path`: a .safetensors file or a *.safetensors.index.json (shards are opened from
  // the index's directory). Validates the whole header: dtypes, shapes, offsets inside
  // the data buffer, no overlapping tensors. Throws FormatError / IoError.
  explicit SafetensorsCheckpoint(const std::filesystem::path& path);

  std::string format() const override { return "safetensors"; }
  TensorData raw(const std::string& name) const override;

  // "__metadata__" string map (for a sharded checkpoint: the index's "metadata",
  // stringified, merged with the first shard's __metadata__).
  const std::map<std::string, std::string>& string_metadata() const { return string_metadata_; }

 private:
  void open_single(const std::filesystem::path& file);
  void open_index(const std::filesystem::path& index_file);
  std::vector<std::shared_ptr<const MappedFile>> shards_;
  struct Location {
    size_t shard;
    uint64_t offset;  // absolute in the shard file
  };
  std::map<std::string, Location> locations_;
  std::map<std::string, std::string> string_metadata_;
};

// A tensor to write: bytes in the dtype's storage layout (little-endian, row-major).
struct TensorToWrite {
  std::string name;
  DType dtype = DType::F32;
  Shape shape;
  const void* data = nullptr;
  uint64_t nbytes = 0;
};

// Writes a safetensors file (tensors stored in the order given, header padded with
// spaces to a multiple of 8 bytes as the reference writer does). Written to a
// temporary file then renamed, so an interrupted write never leaves a partial file.
// Plain dtypes only (F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL). Throws ValueError on
// a bad tensor (size vs shape, duplicate or empty name), IoError on write failure.
void write_safetensors(const std::filesystem::path& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace peft::io
