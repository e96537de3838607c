// A linear layer's weight W [out, in] kept in a compressed form, computing y = x W^T + b
// from it. layers::Linear holds either a float weight or one of these (through a
// shared_ptr<const QuantizedWeight>: immutable after construction, so one instance
// serves any number of threads and any number of Linear copies).
//
// Implementations: Int8Weight (int8_weight.h), Group4Weight for int4 / NF4
// (group4_weight.h), GgufBlockWeight for ggml Q4_0 / Q4_1 / Q8_0 blocks as stored
// (gguf_block_weight.h). Each picks its compute path by the number of rows of x: a
// few-rows kernel that reads the compressed bytes once (decoder steps are bound by
// memory), or dequantize-and-BLAS for many rows (the encoder is bound by arithmetic).
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <string>

namespace peft::quant {

class QuantizedWeight {
 public:
  virtual ~QuantizedWeight() = default;

  int64_t out_features() const { return out_; }
  int64_t in_features() const { return in_; }

  // "int8", "int4 g64", "nf4 g64 dq", "gguf Q4_1": for messages and reports.
  virtual std::string format() const = 0;

  // x float32 [..., in] -> float32 [..., out]; bias float32 [out] or undefined.
  virtual at::Tensor linear(const at::Tensor& x, const at::Tensor& bias) const = 0;

  // W as float32 [out, in] (the values linear() computes with).
  at::Tensor dequantize() const;
  // Rows `index` (int64, any shape S) of W as float32 [S..., in]: embedding lookups,
  // which dequantize only the rows asked for. Throws peft::ValueError on an index out of
  // range.
  at::Tensor dequantize_rows(const at::Tensor& index) const;
  // Rows [row0, row0 + rows) as float32 into out (rows * in floats).
  virtual void dequantize_into(int64_t row0, int64_t rows, float* out) const = 0;

  // y = x W^T + b through BLAS on W dequantized: the many-rows path of every format. W
  // is dequantized whole when small, else block by block of rows (a 51864-row output
  // projection never needs its 80 MB float32 copy).
  at::Tensor dequantized_linear(const at::Tensor& x, const at::Tensor& bias) const;

  // Bytes of the compressed weight and everything kept beside it (scales).
  virtual int64_t bytes() const = 0;

  // A float weight of the same shape quantized the same way (format, group size,
  // double quantization): re-quantizing after merging an adapter into the base.
  // `name` names the tensor in errors (NaN or infinite values).
  virtual std::shared_ptr<const QuantizedWeight> requantize(const at::Tensor& weight,
                                                            const std::string& name) const = 0;

 protected:
  QuantizedWeight(int64_t out, int64_t in) : out_(out), in_(in) {}
  // Rows of x [..., in] (the product of its leading sizes); throws peft::ShapeError
  // naming format() when x's last size is not in_features().
  int64_t rows_of(const at::Tensor& x) const;

 private:
  int64_t out_, in_;
};

// Throws peft::ValueError "<name>: contains NaN or infinite values" unless every value of
// `weight` is finite, and peft::ShapeError unless it is a 2-D float matrix.
void check_float_matrix(const at::Tensor& weight, const std::string& name);

}  // namespace peft::quant
