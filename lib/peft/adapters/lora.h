// One adapted linear module: y = base(x) + delta(x), delta in float32.
//
// LoRA (Hu et al., 2021; peft tuners/lora/layer.py):
//   delta(x) = scaling * (x A^T) B^T,  A [r, in], B [out, r],
//   scaling = alpha / r, or alpha / sqrt(r) with rsLoRA.
// AdaLoRA (Zhang et al., 2023; peft tuners/adalora/layer.py SVDLinear), the SVD form:
//   delta(x) = (x (A * E)^T B^T) * s / (ranknum + 1e-5),  A [k, in], E [k, 1], B [out, k],
//   s = alpha (or init_r when alpha is 0), ranknum = init_r: peft keeps the initial rank
//   as the divisor when it drops masked ranks on loading, so k (the kept ranks) does not
//   enter the scaling. k may be 0 (every rank masked): the delta is then zero.
// Dropout acts in training only and is not applied.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>

namespace peft::adapters {

class LoraModule {
 public:
  enum class Kind { Lora, AdaLora };

  LoraModule() = default;
  // a [r, in], b [out, r], any float dtype (kept as float32). Throws ShapeError /
  // ValueError naming `name` for inconsistent shapes or non-finite values.
  static LoraModule lora(std::string name, at::Tensor a, at::Tensor b, double scaling);
  // a [k, in], e [k, 1], b [out, k]; scaling = s / (ranknum + 1e-5) as above.
  static LoraModule adalora(std::string name, at::Tensor a, at::Tensor e, at::Tensor b, double scaling);

  // x float32 [..., in] -> float32 [..., out].
  at::Tensor delta(const at::Tensor& x) const;
  // The same as a dense [out, in] matrix (scaling included), for merging into a base.
  at::Tensor delta_weight() const;

  const std::string& name() const { return name_; }
  Kind kind() const { return kind_; }
  int64_t rank() const { return a_.size(0); }
  int64_t in_features() const { return a_.size(1); }
  int64_t out_features() const { return b_.size(0); }
  double scaling() const { return scaling_; }
  // The tensors as peft stores them (E undefined for LoRA).
  const at::Tensor& a() const { return a_; }
  const at::Tensor& e() const { return e_; }
  const at::Tensor& b() const { return b_; }

 private:
  std::string name_;
  Kind kind_ = Kind::Lora;
  at::Tensor a_, e_, b_;
  double scaling_ = 1;
  at::Tensor down_;  // [k, in]: A, or A * E
  at::Tensor up_;    // [out, k]: B * scaling
};

}  // namespace peft::adapters
