// y = x W^T + b. The building block every model uses for its projections; the
// quantized and adapter-carrying variants extend it.
//
// W is kept in the dtype the checkpoint stores (float32, or float16 as in CTranslate2's
// and most Hugging Face Whisper files): converting float16 to float32 is exact, so
// doing it in registers gives the same numbers as doing it at load time, with half the
// memory and half the bytes read per decoder step. Arithmetic is float32 throughout.
#pragma once

#include <ATen/core/Tensor.h>

namespace peft::layers {

class Linear {
 public:
  Linear() = default;
  // weight [out, in] float32 or float16; bias [out] float32 or undefined.
  Linear(at::Tensor weight, at::Tensor bias);

  // x float32 [..., in] -> float32 [..., out]. A few rows (decoder steps) go through
  // ops::few_rows_linear, which streams W once; many rows through BLAS.
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
