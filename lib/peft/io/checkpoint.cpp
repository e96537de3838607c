#include "peft/io/checkpoint.h"

#include <cstring>
#include <fstream>

#include "peft/error.h"
#include "peft/io/ct2.h"
#include "peft/io/gguf.h"
#include "peft/io/gguf_quants.h"
#include "peft/io/half.h"
#include "peft/io/safetensors.h"
#include "peft/io/torch_pickle_checkpoint.h"

namespace peft::io {

const TensorInfo& Checkpoint::info(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end())
    throw NotFoundError(path_ + ": tensor '" + name + "': not in this " + format() + " checkpoint");
  return tensors_[it->second];
}

void Checkpoint::add_tensor(TensorInfo info) {
  if (index_.count(info.name))
    throw FormatError(path_, "tensor '" + info.name + "'", "listed twice");
  index_.emplace(info.name, tensors_.size());
  tensors_.push_back(std::move(info));
}

std::vector<float> Checkpoint::to_float(const std::string& name) const {
  TensorData t = raw(name);
  std::vector<float> out(static_cast<size_t>(t.info.numel));
  decode_to_float(t.info.dtype, t.data, t.info.numel, out.data());
  return out;
}

namespace {
template <class T>
void convert(const uint8_t* src, uint64_t n, float* dst) {
  for (uint64_t i = 0; i < n; ++i) {
    T v;
    std::memcpy(&v, src + i * sizeof(T), sizeof(T));
    dst[i] = static_cast<float>(v);
  }
}
}  // namespace

void decode_to_float(DType t, const uint8_t* src, uint64_t n, float* dst) {
  switch (t) {
    case DType::F32: std::memcpy(dst, src, n * 4); return;
    case DType::F64: convert<double>(src, n, dst); return;
    case DType::I64: convert<int64_t>(src, n, dst); return;
    case DType::I32: convert<int32_t>(src, n, dst); return;
    case DType::I16: convert<int16_t>(src, n, dst); return;
    case DType::I8: convert<int8_t>(src, n, dst); return;
    case DType::U8: convert<uint8_t>(src, n, dst); return;
    case DType::BOOL:
      for (uint64_t i = 0; i < n; ++i) dst[i] = src[i] != 0 ? 1.0f : 0.0f;
      return;
    case DType::F16:
    case DType::BF16:
      for (uint64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        dst[i] = t == DType::F16 ? half_to_float(h) : bf16_to_float(h);
      }
      return;
    default:
      dequantize_blocks(t, src, n, dst);
      return;
  }
}

namespace {
bool has_magic(const std::filesystem::path& p, const char* magic, size_t n) {
  std::ifstream f(p, std::ios::binary);
  std::string buf(n, '\0');
  return f.read(buf.data(), static_cast<std::streamsize>(n)) && std::memcmp(buf.data(), magic, n) == 0;
}

std::unique_ptr<Checkpoint> open_file(const std::filesystem::path& p) {
  const std::string name = p.filename().string();
  auto ends_with = [&](const std::string& s) {
    return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
  };
  if (has_magic(p, "GGUF", 4)) return std::make_unique<GgufCheckpoint>(p);
  if (ends_with(".index.json")) return std::make_unique<SafetensorsCheckpoint>(p);
  if (ends_with(".safetensors")) return std::make_unique<SafetensorsCheckpoint>(p);
  if (ends_with(".bin") && Ct2Checkpoint::looks_like_ct2(p)) return std::make_unique<Ct2Checkpoint>(p);
  if (TorchPickleCheckpoint::looks_like_torch_zip(p)) return std::make_unique<TorchPickleCheckpoint>(p);
  if (ends_with(".gguf")) return std::make_unique<GgufCheckpoint>(p);  // says what is wrong
  if (ends_with(".pt") || ends_with(".pth")) return std::make_unique<TorchPickleCheckpoint>(p);  // likewise
  throw FormatError(p.string(), "",
                    "not a recognised checkpoint (safetensors, GGUF, CTranslate2 model.bin or torch.save .pt)");
}
}  // namespace

std::unique_ptr<Checkpoint> open_checkpoint(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) throw NotFoundError(path.string() + ": no such file or directory");
  if (!std::filesystem::is_directory(path, ec)) return open_file(path);

  for (const char* name : {"model.safetensors.index.json", "model.safetensors", "model.bin"})
    if (std::filesystem::exists(path / name, ec)) return open_file(path / name);

  std::vector<std::filesystem::path> candidates;
  for (const auto& e : std::filesystem::directory_iterator(path, ec)) {
    const auto ext = e.path().extension();
    if (e.is_regular_file() && (ext == ".gguf" || ext == ".safetensors")) candidates.push_back(e.path());
  }
  if (candidates.size() == 1) return open_file(candidates.front());
  if (candidates.empty())
    throw NotFoundError(path.string() + ": no checkpoint in this directory (looked for "
                        "model.safetensors[.index.json], model.bin, *.gguf, *.safetensors)");
  throw FormatError(path.string(), "", "several checkpoint files here; name the one to use");
}

}  // namespace peft::io
