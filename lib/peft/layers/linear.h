// y = x W^T + b. The building block every model uses for its projections; the
// quantized and adapter-carrying variants extend it.
#pragma once

#include <ATen/core/Tensor.h>

namespace peft::layers {

class Linear {
 public:
  Linear() = default;
  // weight [out, in] float32; bias [out] or undefined.
  Linear(at::Tensor weight, at::Tensor bias);

  at::Tensor operator()(const at::Tensor& x) const;

  int64_t in_features() const { return weight_.size(1); }
  int64_t out_features() const { return weight_.size(0); }
  const at::Tensor& weight() const { return weight_; }
  const at::Tensor& bias() const { return bias_; }

 private:
  at::Tensor weight_;
  at::Tensor bias_;
};

}  // namespace peft::layers
