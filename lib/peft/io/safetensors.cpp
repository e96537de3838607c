#include "peft/io/safetensors.h"

#include "peft/error.h"

namespace peft::io {
// Skeleton: the reader and writer are being written in their own change.
SafetensorsCheckpoint::SafetensorsCheckpoint(const std::filesystem::path& path) : Checkpoint(path.string()) {
  throw Error(path_ + ": safetensors reader pending");
}
TensorData SafetensorsCheckpoint::raw(const std::string& name) const { return TensorData{info(name), nullptr, nullptr}; }
void write_safetensors(const std::filesystem::path& path, const std::vector<TensorToWrite>&,
                       const std::map<std::string, std::string>&) {
  throw Error(path.string() + ": safetensors writer pending");
}
}  // namespace peft::io
