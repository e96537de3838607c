// A GGUF weight kept in ggml's own blocks (Q4_0, Q4_1, Q8_0: 32 values per block with
// an f16 scale, and for Q4_1 an f16 minimum), computed from as stored: no
// re-quantization, so a Q4_1 checkpoint (the default SmolLM2) keeps its exact values
// and its 0.625 byte per weight. The values are those io::dequantize_blocks gives.
//
// linear(): few rows through ops::few_rows_linear_packed (blocks widened in registers),
// many rows dequantize W per call and use BLAS.
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <string>

#include "peft/io/checkpoint.h"
#include "peft/quant/quantized_weight.h"

namespace peft::quant {

class GgufBlockWeight final : public QuantizedWeight {
 public:
  enum class Path { kAuto, kKernel, kDequantBlas };

  // True for the block types this class keeps as stored.
  static bool supports(io::DType type);
  // A tensor of a GGUF checkpoint, shape [out, in] (in a multiple of 32), dtype Q4_0 /
  // Q4_1 / Q8_0; its bytes are copied (the file mapping is not kept alive). Throws
  // ValueError / ShapeError naming the tensor otherwise.
  static std::shared_ptr<const GgufBlockWeight> from_tensor(const io::TensorData& tensor);
  // A float weight [out, in] quantized into `type`'s blocks as ggml's reference
  // quantizers (quantize_row_q4_0_ref ...) do: for merges into a GGUF base, and tests.
  static std::shared_ptr<const GgufBlockWeight> quantize(const at::Tensor& weight, io::DType type,
                                                         const std::string& name);

  io::DType dtype() const { return type_; }
  // uint8 [out, in / 32 * block bytes]: the blocks of each row.
  const at::Tensor& blocks() const { return blocks_; }

  std::string format() const override;
  at::Tensor linear(const at::Tensor& x, const at::Tensor& bias) const override {
    return linear(x, bias, Path::kAuto);
  }
  at::Tensor linear(const at::Tensor& x, const at::Tensor& bias, Path path) const;
  void dequantize_into(int64_t row0, int64_t rows, float* out) const override;
  int64_t bytes() const override { return blocks_.numel(); }
  std::shared_ptr<const QuantizedWeight> requantize(const at::Tensor& weight,
                                                    const std::string& name) const override;

 private:
  GgufBlockWeight(io::DType type, at::Tensor blocks, int64_t out, int64_t in);

  io::DType type_;
  at::Tensor blocks_;
};

}  // namespace peft::quant
