#include "peft/quant/quantized_weight.h"

#include <ATen/ATen.h>

#include "peft/error.h"
#include "peft/ops/all_finite.h"
#include "peft/ops/blas_linear.h"

namespace peft::quant {

at::Tensor QuantizedWeight::dequantize() const {
  at::Tensor w = at::empty({out_, in_}, at::TensorOptions().dtype(at::kFloat));
  dequantize_into(0, out_, w.data_ptr<float>());
  return w;
}

at::Tensor QuantizedWeight::dequantize_rows(const at::Tensor& index) const {
  const at::Tensor idx = index.to(at::kLong).contiguous();
  const int64_t count = idx.numel();
  at::Tensor out = at::empty({count, in_}, at::TensorOptions().dtype(at::kFloat));
  const int64_t* p = idx.data_ptr<int64_t>();
  float* o = out.data_ptr<float>();
  for (int64_t i = 0; i < count; ++i) {
    if (p[i] < 0 || p[i] >= out_)
      throw ValueError(format() + " weight: row " + std::to_string(p[i]) + " is outside its " +
                       std::to_string(out_) + " rows");
    dequantize_into(p[i], 1, o + i * in_);
  }
  std::vector<int64_t> shape = index.sizes().vec();
  shape.push_back(in_);
  return out.view(shape);
}

int64_t QuantizedWeight::rows_of(const at::Tensor& x) const {
  if (x.dim() < 1 || x.size(-1) != in_)
    throw ShapeError(format() + " weight: x has " + std::to_string(x.dim() ? x.size(-1) : 0) +
                     " features, the weight " + std::to_string(in_));
  return x.numel() / std::max<int64_t>(in_, 1);
}

at::Tensor QuantizedWeight::dequantized_linear(const at::Tensor& x, const at::Tensor& bias) const {
  constexpr int64_t kBlockFloats = int64_t{1} << 22;  // 16 MB of float32 W at a time
  if (out_ * in_ <= kBlockFloats) return ops::blas_linear(x, dequantize(), bias);
  const int64_t rows = x.numel() / std::max<int64_t>(in_, 1);
  const at::Tensor x2 = x.reshape({rows, in_}).to(at::kFloat).contiguous();
  at::Tensor y = at::empty({rows, out_}, at::TensorOptions().dtype(at::kFloat));
  const int64_t block = std::max<int64_t>(1, kBlockFloats / std::max<int64_t>(in_, 1));
  at::Tensor w = at::empty({std::min(block, out_), in_}, at::TensorOptions().dtype(at::kFloat));
  for (int64_t r0 = 0; r0 < out_; r0 += block) {
    const int64_t n = std::min(block, out_ - r0);
    dequantize_into(r0, n, w.data_ptr<float>());
    ops::blas_linear_into(x2, w.narrow(0, 0, n), bias.defined() ? bias.narrow(0, r0, n) : bias,
                          y.narrow(1, r0, n));
  }
  std::vector<int64_t> shape = x.sizes().vec();
  shape.back() = out_;
  return y.view(shape);
}

void check_float_matrix(const at::Tensor& weight, const std::string& name) {
  if (!weight.defined() || weight.dim() != 2)
    throw ShapeError(name + ": a quantized weight must be a [out, in] matrix");
  if (weight.scalar_type() != at::kFloat && weight.scalar_type() != at::kHalf &&
      weight.scalar_type() != at::kBFloat16 && weight.scalar_type() != at::kDouble)
    throw ValueError(name + ": cannot quantize a weight of dtype " +
                     std::string(c10::toString(weight.scalar_type())));
  if (!ops::all_finite(weight)) throw ValueError(name + ": contains NaN or infinite values");
}

}  // namespace peft::quant
