#include "peft/layers/linear.h"

#include <ATen/ATen.h>

namespace peft::layers {

Linear::Linear(at::Tensor weight, at::Tensor bias) : weight_(std::move(weight)), bias_(std::move(bias)) {}

at::Tensor Linear::operator()(const at::Tensor& x) const { return at::linear(x, weight_, bias_); }

}  // namespace peft::layers
