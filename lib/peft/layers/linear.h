// y = x W^T + b. The building block every model uses for its projections; adapters
// (lib/peft/adapters/) wrap it.
//
// W is either float or quantized:
// - float: kept in the dtype the checkpoint stores (float32, or float16 as in
//   CTranslate2's and most Hugging Face Whisper files): converting float16 to float32 is
//   exact, so doing it in registers gives the same numbers as doing it at load time,
//   with half the memory and half the bytes read per decoder step.
// - quantized: a quant::QuantizedWeight (int8, int4, NF4, GGUF blocks), shared and
//   immutable, which picks its own compute path.
// Arithmetic is float32 throughout; x, b and y are float32.
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <string>

#include "peft/quant/quant_type.h"

namespace peft::quant {
class QuantizedWeight;
}

namespace peft::layers {

class Linear {
 public:
  Linear() = default;
  // weight [out, in] float32 or float16; bias [out] float32 or undefined.
  Linear(at::Tensor weight, at::Tensor bias);
  // A quantized weight; bias [out] float32 or undefined.
  Linear(std::shared_ptr<const quant::QuantizedWeight> weight, at::Tensor bias);

  // x float32 [..., in] -> float32 [..., out]. Float W: a few rows (decoder steps) go
  // through ops::few_rows_linear, which streams W once; many rows through BLAS.
  at::Tensor operator()(const at::Tensor& x) const;

  bool defined() const { return weight_.defined() || qweight_ != nullptr; }
  bool is_quantized() const { return qweight_ != nullptr; }
  int64_t in_features() const;
  int64_t out_features() const;
  // The float weight as stored; undefined when quantized (see dense_weight()).
  const at::Tensor& weight() const { return weight_; }
  const at::Tensor& bias() const { return bias_; }
  // The quantized weight, or nullptr.
  const std::shared_ptr<const quant::QuantizedWeight>& quantized_weight() const { return qweight_; }

  // W as float32 [out, in], dequantized if quantized: what adapters merge into.
  at::Tensor dense_weight() const;
  // Rows `index` (int64, shape S) of W as float32 [S..., in]: the lookup of a token
  // embedding tied to an output projection, reading only those rows.
  at::Tensor weight_rows(const at::Tensor& index) const;
  // Bytes of W as held (compressed if quantized) plus the bias.
  int64_t weight_bytes() const;
  // "float32", "float16", or the quantized format ("int8", "nf4 g64", ...).
  std::string weight_format() const;

  // This layer with W quantized as `options` say (type none or f32: W as float32 if it was
  // quantized, else unchanged); the bias is kept. A quantized W is dequantized first.
  // `name` names the weight in errors (NaN or infinite values, a group size that does
  // not divide in_features).
  Linear quantized(const quant::QuantOptions& options, const std::string& name = "linear weight") const;
  // A layer with the same bias and `weight` (float [out, in], same shape) stored the way
  // this one's is: float as given if this one is float, else re-quantized to the same
  // format (merging an adapter into a quantized base).
  Linear with_weight(const at::Tensor& weight, const std::string& name = "linear weight") const;

 private:
  at::Tensor weight_;
  std::shared_ptr<const quant::QuantizedWeight> qweight_;
  at::Tensor bias_;
};

}  // namespace peft::layers
