// Checkpoint tensors as libtorch tensors. Plain dtypes are wrapped without copying
// (the at::Tensor keeps the file mapping alive); block-quantized GGUF types are
// dequantized to float32. Wrapped tensors alias a private (copy-on-write) mapping:
// writing to one never changes the file, but clone() before in-place work anyway.
#pragma once

#include <ATen/core/Tensor.h>

#include "peft/io/checkpoint.h"

namespace peft::io {

// Zero-copy where the dtype maps to a torch dtype and the data is suitably aligned;
// otherwise a copy / dequantized float tensor.
at::Tensor to_torch(const TensorData& t);

// Convenience: ckpt.raw(name) -> to_torch.
at::Tensor load_tensor(const Checkpoint& ckpt, const std::string& name);

// True when `t`'s storage points into the checkpoint's bytes (no copy was made).
bool shares_storage(const at::Tensor& t, const TensorData& data);

}  // namespace peft::io
