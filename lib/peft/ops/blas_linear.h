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

// The same into y float32 [rows, N], which may be a column slice of a wider row-major
// matrix (stride(1) == 1): x2 float32 [rows, K]. Computing y block by block of W's rows
// this way never needs all of W in float32 at once (quantized weights, dequantized per
// block).
void blas_linear_into(const at::Tensor& x2, const at::Tensor& weight, const at::Tensor& bias, at::Tensor y);

}  // namespace peft::ops
