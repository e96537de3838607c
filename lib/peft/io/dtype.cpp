#include "peft/io/dtype.h"

#include <array>
#include <limits>

namespace peft::io {

namespace {
struct DTypeTraits {
  DType type;
  std::string_view name;
  size_t block_elements;
  size_t block_bytes;
};

// ggml block layouts (ggml-common.h): QK = 32 for the legacy formats, QK_K = 256 for
// the k-quants. Byte counts are sizeof the block structs there.
constexpr std::array<DTypeTraits, 22> kTraits{{
    {DType::F64, "F64", 1, 8},    {DType::F32, "F32", 1, 4},
    {DType::F16, "F16", 1, 2},    {DType::BF16, "BF16", 1, 2},
    {DType::I64, "I64", 1, 8},    {DType::I32, "I32", 1, 4},
    {DType::I16, "I16", 1, 2},    {DType::I8, "I8", 1, 1},
    {DType::U8, "U8", 1, 1},      {DType::BOOL, "BOOL", 1, 1},
    {DType::Q4_0, "Q4_0", 32, 18}, {DType::Q4_1, "Q4_1", 32, 20},
    {DType::Q5_0, "Q5_0", 32, 22}, {DType::Q5_1, "Q5_1", 32, 24},
    {DType::Q8_0, "Q8_0", 32, 34}, {DType::Q8_1, "Q8_1", 32, 36},
    {DType::Q2_K, "Q2_K", 256, 84}, {DType::Q3_K, "Q3_K", 256, 110},
    {DType::Q4_K, "Q4_K", 256, 144}, {DType::Q5_K, "Q5_K", 256, 176},
    {DType::Q6_K, "Q6_K", 256, 210}, {DType::Q8_K, "Q8_K", 256, 292},
}};

const DTypeTraits& traits(DType t) { return kTraits[static_cast<size_t>(t)]; }
}  // namespace

std::string_view dtype_name(DType t) { return traits(t).name; }

std::optional<DType> dtype_from_name(std::string_view name) {
  for (const auto& tr : kTraits)
    if (tr.name == name) return tr.type;
  return std::nullopt;
}

bool is_block_quantized(DType t) { return traits(t).block_elements > 1; }
size_t block_elements(DType t) { return traits(t).block_elements; }
size_t block_bytes(DType t) { return traits(t).block_bytes; }

std::optional<uint64_t> shape_numel(const Shape& shape) {
  uint64_t n = 1;
  constexpr uint64_t kMax = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  for (int64_t d : shape) {
    if (d < 0) return std::nullopt;
    const auto ud = static_cast<uint64_t>(d);
    if (ud != 0 && n > kMax / ud) return std::nullopt;
    n *= ud;
  }
  return n;
}

std::optional<uint64_t> storage_bytes(DType t, uint64_t numel) {
  const auto& tr = traits(t);
  if (numel % tr.block_elements != 0) return std::nullopt;
  const uint64_t blocks = numel / tr.block_elements;
  if (blocks > std::numeric_limits<uint64_t>::max() / tr.block_bytes) return std::nullopt;
  return blocks * tr.block_bytes;
}

std::string shape_to_string(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

}  // namespace peft::io
