// y = x W^T + b for many rows of x through BLAS, with the rows split into blocks over
// libtorch's threads: BLAS itself runs on one thread here (runtime.cpp), so one call
// would use one core. The many-rows path of layers::Linear and of the quantized weights
// (after dequantizing W).
#pragma once

#include <ATen/core/Tensor.h>

namespace peft::ops {

// x float32 [..., K]; weight float32 [N, K] (float16 is converted per call); bias
// float32 [N] or undefined. Returns float32 [..., N].
at::Tensor blas_linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias);

}  // namespace peft::ops
