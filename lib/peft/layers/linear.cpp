#include "peft/layers/linear.h"

#include <ATen/ATen.h>

#include "peft/error.h"
#include "peft/ops/few_rows_linear.h"

namespace peft::layers {

Linear::Linear(at::Tensor weight, at::Tensor bias) : weight_(std::move(weight)), bias_(std::move(bias)) {
  if (weight_.dim() != 2) throw ShapeError("Linear: weight must be [out, in]");
  if (weight_.scalar_type() != at::kFloat && weight_.scalar_type() != at::kHalf)
    throw ValueError("Linear: weight must be float32 or float16");
  weight_ = weight_.contiguous();
}

at::Tensor Linear::operator()(const at::Tensor& x) const {
  if (x.numel() / std::max<int64_t>(x.size(-1), 1) <= ops::kFewRows)
    return ops::few_rows_linear(x, weight_, bias_);
  // Many rows: compute-bound, BLAS wins even after converting a float16 W per call.
  return at::linear(x, weight_.scalar_type() == at::kFloat ? weight_ : weight_.to(at::kFloat), bias_);
}

}  // namespace peft::layers
