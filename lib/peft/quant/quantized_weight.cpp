#include "peft/quant/quantized_weight.h"

#include <ATen/ATen.h>

#include "peft/error.h"

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

void check_float_matrix(const at::Tensor& weight, const std::string& name) {
  if (!weight.defined() || weight.dim() != 2)
    throw ShapeError(name + ": a quantized weight must be a [out, in] matrix");
  if (weight.scalar_type() != at::kFloat && weight.scalar_type() != at::kHalf &&
      weight.scalar_type() != at::kBFloat16 && weight.scalar_type() != at::kDouble)
    throw ValueError(name + ": cannot quantize a weight of dtype " +
                     std::string(c10::toString(weight.scalar_type())));
  if (!at::isfinite(weight).all().item<bool>()) throw ValueError(name + ": contains NaN or infinite values");
}

}  // namespace peft::quant
