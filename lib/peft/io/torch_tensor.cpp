#include "peft/io/torch_tensor.h"

#include <ATen/Functions.h>
#include <c10/core/ScalarType.h>

#include <cstring>
#include <optional>

#include "peft/error.h"

namespace peft::io {

namespace {
std::optional<c10::ScalarType> torch_type(DType t) {
  switch (t) {
    case DType::F64: return c10::kDouble;
    case DType::F32: return c10::kFloat;
    case DType::F16: return c10::kHalf;
    case DType::BF16: return c10::kBFloat16;
    case DType::I64: return c10::kLong;
    case DType::I32: return c10::kInt;
    case DType::I16: return c10::kShort;
    case DType::I8: return c10::kChar;
    case DType::U8: return c10::kByte;
    case DType::BOOL: return c10::kBool;
    default: return std::nullopt;
  }
}
}  // namespace

at::Tensor to_torch(const TensorData& t) {
  const std::vector<int64_t> sizes(t.info.shape.begin(), t.info.shape.end());
  auto st = torch_type(t.info.dtype);
  if (!st) {  // block-quantized: dequantize into a fresh float tensor
    at::Tensor out = at::empty(sizes, at::TensorOptions().dtype(c10::kFloat));
    decode_to_float(t.info.dtype, t.data, t.info.numel, out.data_ptr<float>());
    return out;
  }
  const auto options = at::TensorOptions().dtype(*st);
  const size_t elem = block_bytes(t.info.dtype);
  const bool aligned = reinterpret_cast<uintptr_t>(t.data) % elem == 0;
  if (t.info.numel == 0) return at::empty(sizes, options);
  if (!aligned) {  // e.g. a crafted safetensors header of odd length: copy
    at::Tensor out = at::empty(sizes, options);
    std::memcpy(out.data_ptr(), t.data, t.info.nbytes);
    return out;
  }
  auto owner = t.owner;  // the deleter keeps the mapping alive while torch uses it
  return at::from_blob(const_cast<uint8_t*>(t.data), sizes, [owner](void*) mutable { owner.reset(); },
                       options);
}

at::Tensor load_tensor(const Checkpoint& ckpt, const std::string& name) { return to_torch(ckpt.raw(name)); }

bool shares_storage(const at::Tensor& t, const TensorData& data) {
  return t.numel() > 0 && t.data_ptr() == static_cast<const void*>(data.data);
}

}  // namespace peft::io
