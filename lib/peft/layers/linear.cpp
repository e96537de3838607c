#include "peft/layers/linear.h"

#include <ATen/ATen.h>

#include "peft/error.h"
#include "peft/ops/blas_linear.h"
#include "peft/ops/few_rows_linear.h"
#include "peft/quant/group4_weight.h"
#include "peft/quant/int8_weight.h"
#include "peft/quant/quantized_weight.h"

namespace peft::layers {

namespace {

void check_bias(const at::Tensor& bias, int64_t out) {
  if (bias.defined() && (bias.dim() != 1 || bias.size(0) != out))
    throw ShapeError("Linear: bias must be [" + std::to_string(out) + "]");
}

}  // namespace

Linear::Linear(at::Tensor weight, at::Tensor bias) : weight_(std::move(weight)), bias_(std::move(bias)) {
  if (weight_.dim() != 2) throw ShapeError("Linear: weight must be [out, in]");
  if (weight_.scalar_type() != at::kFloat && weight_.scalar_type() != at::kHalf)
    throw ValueError("Linear: weight must be float32 or float16");
  weight_ = weight_.contiguous();
  check_bias(bias_, weight_.size(0));
}

Linear::Linear(std::shared_ptr<const quant::QuantizedWeight> weight, at::Tensor bias)
    : qweight_(std::move(weight)), bias_(std::move(bias)) {
  if (!qweight_) throw ValueError("Linear: null quantized weight");
  check_bias(bias_, qweight_->out_features());
}

int64_t Linear::in_features() const { return qweight_ ? qweight_->in_features() : weight_.size(1); }
int64_t Linear::out_features() const { return qweight_ ? qweight_->out_features() : weight_.size(0); }

at::Tensor Linear::operator()(const at::Tensor& x) const {
  if (qweight_) return qweight_->linear(x, bias_);
  const int64_t k = x.size(-1), rows = x.numel() / std::max<int64_t>(k, 1);
  if (rows <= ops::kFewRows) return ops::few_rows_linear(x, weight_, bias_);
  // Many rows: compute-bound, BLAS wins even after converting a float16 W per call.
  return ops::blas_linear(x, weight_, bias_);
}

at::Tensor Linear::dense_weight() const {
  if (qweight_) return qweight_->dequantize();
  return weight_.to(at::kFloat);
}

at::Tensor Linear::weight_rows(const at::Tensor& index) const {
  if (qweight_) return qweight_->dequantize_rows(index);
  return at::embedding(weight_, index).to(at::kFloat);
}

int64_t Linear::weight_bytes() const {
  int64_t n = bias_.defined() ? bias_.numel() * static_cast<int64_t>(bias_.element_size()) : 0;
  if (qweight_) return n + qweight_->bytes();
  if (weight_.defined()) n += weight_.numel() * static_cast<int64_t>(weight_.element_size());
  return n;
}

std::string Linear::weight_format() const {
  if (qweight_) return qweight_->format();
  if (!weight_.defined()) return "undefined";
  return weight_.scalar_type() == at::kHalf ? "float16" : "float32";
}

Linear Linear::quantized(const quant::QuantOptions& options, const std::string& name) const {
  if (!defined()) return *this;
  // int8 as stored (a CTranslate2 int8 checkpoint): re-quantizing would only add error.
  if (options.type == quant::QuantType::int8 && qweight_ && qweight_->format() == "int8") return *this;
  switch (options.type) {
    case quant::QuantType::none:
    case quant::QuantType::f32:
      return qweight_ ? Linear(qweight_->dequantize(), bias_) : *this;
    case quant::QuantType::int8:
      return Linear(quant::Int8Weight::quantize(dense_weight(), name), bias_);
    case quant::QuantType::int4:
    case quant::QuantType::nf4:
      return Linear(quant::Group4Weight::quantize(qweight_ ? qweight_->dequantize() : weight_, options.type,
                                                  options.group_size, options.double_quant, name),
                    bias_);
  }
  throw ValueError(name + ": unknown quantization type");
}

Linear Linear::with_weight(const at::Tensor& weight, const std::string& name) const {
  if (weight.dim() != 2 || weight.size(0) != out_features() || weight.size(1) != in_features())
    throw ShapeError(name + ": replacement weight must be [" + std::to_string(out_features()) + ", " +
                     std::to_string(in_features()) + "]");
  if (qweight_) return Linear(qweight_->requantize(weight, name), bias_);
  return Linear(weight.to(weight_.scalar_type() == at::kHalf ? at::kHalf : at::kFloat).contiguous(), bias_);
}

}  // namespace peft::layers
