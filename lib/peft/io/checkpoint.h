// One interface over every checkpoint format: list tensors (name, dtype, shape), get a
// tensor's bytes without copying (they point into the mmap'ed file), decode any
// tensor to float, read the format's metadata.
//
//   auto ckpt = peft::io::open_checkpoint("models/default/whisper-tiny.en");
//   for (const auto& t : ckpt->tensors()) ...;
//   TensorData w = ckpt->raw("encoder/conv1/weight");   // zero-copy
//   std::vector<float> f = ckpt->to_float("encoder/conv1/weight");
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "peft/io/dtype.h"

namespace peft::io {

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  Shape shape;         // outermost first
  uint64_t numel = 0;  // product of shape
  uint64_t nbytes = 0;
};

// A tensor's stored bytes. `data` stays valid while `owner` (the file mapping, or a
// buffer the reader decoded into) is alive; copies of TensorData share it.
struct TensorData {
  TensorInfo info;
  const uint8_t* data = nullptr;
  std::shared_ptr<const void> owner;
};

class Checkpoint {
 public:
  virtual ~Checkpoint() = default;

  virtual std::string format() const = 0;  // "safetensors", "gguf", "ct2"
  const std::string& path() const { return path_; }

  // Every tensor, in the order the file lists them.
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  bool contains(const std::string& name) const { return index_.count(name) != 0; }
  // Throws NotFoundError naming the file and the tensor.
  const TensorInfo& info(const std::string& name) const;

  // Stored bytes, zero-copy. Throws NotFoundError.
  virtual TensorData raw(const std::string& name) const = 0;

  // Values as float32, whatever the stored dtype (block formats are dequantized).
  std::vector<float> to_float(const std::string& name) const;

  // Format-specific metadata: safetensors "__metadata__", GGUF key/values, CT2
  // config.json plus {"spec", "revision", "binary_version"}.
  const nlohmann::json& metadata() const { return metadata_; }

 protected:
  explicit Checkpoint(std::string path) : path_(std::move(path)) {}
  // Registers a tensor; throws FormatError on a duplicate name.
  void add_tensor(TensorInfo info);

  std::string path_;
  nlohmann::json metadata_ = nlohmann::json::object();

 private:
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> index_;
};

// Opens a checkpoint, choosing the format from what is at `path`:
// - a directory: model.safetensors.index.json (sharded), model.safetensors, model.bin
//   (CTranslate2), or a single *.gguf / *.safetensors file in it;
// - a file: by its magic bytes (GGUF), name (.safetensors, .index.json, .pt / .pth: a
//   torch.save zip, see torch_pickle_checkpoint.h), or CT2 header.
// Throws NotFoundError / FormatError / IoError naming the path.
std::unique_ptr<Checkpoint> open_checkpoint(const std::filesystem::path& path);

// Decodes `count` elements of dtype `t` at `src` to float. Integer and bool types
// convert by value; block formats dequantize (count must be whole blocks).
void decode_to_float(DType t, const uint8_t* src, uint64_t count, float* dst);

}  // namespace peft::io
