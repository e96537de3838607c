// Element types of tensors in checkpoints: plain scalars and ggml's block-quantized
// formats (a block of `block_elements` values stored in `block_bytes` bytes).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace peft::io {

enum class DType : uint8_t {
  F64, F32, F16, BF16,
  I64, I32, I16, I8, U8, BOOL,
  // ggml block formats (GGUF)
  Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1,
  Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K,
};

// Shapes are row-major, outermost dimension first (numpy / torch order). Readers of
// formats that store dims innermost-first (GGUF) reverse them.
using Shape = std::vector<int64_t>;

std::string_view dtype_name(DType t);           // "F32", "Q4_1", ...
std::optional<DType> dtype_from_name(std::string_view name);  // inverse of dtype_name
bool is_block_quantized(DType t);
size_t block_elements(DType t);  // 1 for plain types
size_t block_bytes(DType t);     // element size for plain types

// Number of elements, or nullopt when a dimension is negative or the product
// overflows 2^63.
std::optional<uint64_t> shape_numel(const Shape& shape);

// Bytes taken by `numel` elements of `t`, or nullopt when numel is not a whole
// number of blocks or the size overflows.
std::optional<uint64_t> storage_bytes(DType t, uint64_t numel);

std::string shape_to_string(const Shape& shape);  // "[384, 80, 3]"

}  // namespace peft::io
