// 4-bit weights with a scale per group of `group` consecutive weights of a row (32, 64
// or 128), two codes per byte (column 2i in the low nibble of byte i). A code c maps to
// W = table[c] * scale[row, col / group]:
//
//   int4: table[c] = c - 8 (codes 1..15 used: symmetric, -7..7),
//         scale = max |group| / 7, c = 8 + clamp(round-half-even(W / scale), -7, 7).
//   nf4:  table = the 16-level NormalFloat code of QLoRA (bitsandbytes' get_4bit_type
//         "nf4": quantiles of N(0, 1) normalised to [-1, 1], with an exact 0),
//         scale = max |group| (bitsandbytes' absmax), c = the nearest level to W / scale.
//
// Double quantization (QuantOptions::double_quant, bitsandbytes' compress_statistics):
// the float scales are stored as 8-bit codes instead. offset = mean of all scales; the
// centred scales s - offset are cut into blocks of 256, each with its max |.| m kept as
// float, and coded as the nearest value v of bitsandbytes' signed 8-bit dynamic map
// (create_dynamic_map(signed=True, max_exponent_bits=7), dynamic_map() below) to
// (s - offset) / m; then scale = v * m + offset. At group 64: 4.5 bits per weight
// become 4.127.
//
// linear(): few rows go through ops::few_rows_linear_packed (codes looked up in
// registers); many rows dequantize W (per call, nothing cached) and use BLAS.
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <memory>
#include <string>

#include "peft/quant/quant_type.h"
#include "peft/quant/quantized_weight.h"

namespace peft::quant {

class Group4Weight final : public QuantizedWeight {
 public:
  enum class Path { kAuto, kKernel, kDequantBlas };

  // type int4 or nf4. Throws ValueError naming `name` on NaN / infinite values, on a
  // group size other than 32 / 64 / 128 or one that does not divide in_features.
  static std::shared_ptr<const Group4Weight> quantize(const at::Tensor& weight, QuantType type, int64_t group,
                                                      bool double_quant, const std::string& name);

  QuantType type() const { return type_; }
  int64_t group_size() const { return group_; }
  bool double_quant() const { return scale_codes_.defined(); }
  // uint8 [out, in / 2] codes, two per byte.
  const at::Tensor& packed_codes() const { return packed_; }
  // float32 [out, in / group]: the scales as computed with (decoded when double-quantized).
  at::Tensor scales() const;
  // Double quantization's parts (undefined / 0 without it): uint8 codes [out * in / group],
  // float32 block maxima [ceil(codes / 256)], and the offset.
  const at::Tensor& scale_codes() const { return scale_codes_; }
  const at::Tensor& scale_block_max() const { return scale_max_; }
  float scale_offset() const { return scale_offset_; }
  // The 16 values codes map to (before the scale).
  const std::array<float, 16>& table() const { return table_; }

  std::string format() const override;
  at::Tensor linear(const at::Tensor& x, const at::Tensor& bias) const override {
    return linear(x, bias, Path::kAuto);
  }
  at::Tensor linear(const at::Tensor& x, const at::Tensor& bias, Path path) const;
  void dequantize_into(int64_t row0, int64_t rows, float* out) const override;
  int64_t bytes() const override;
  std::shared_ptr<const QuantizedWeight> requantize(const at::Tensor& weight,
                                                    const std::string& name) const override;

  // QLoRA's NF4 levels, ascending (code 7 is 0).
  static const std::array<float, 16>& nf4_table();
  // bitsandbytes' signed 8-bit dynamic map (256 ascending values in [-1, 1]).
  static const std::array<float, 256>& dynamic_map();

 private:
  Group4Weight(int64_t out, int64_t in) : QuantizedWeight(out, in) {}
  // Scales of rows [row0, row0 + rows) as float32 [rows, in / group].
  at::Tensor scales_of(int64_t row0, int64_t rows) const;

  QuantType type_ = QuantType::int4;
  int64_t group_ = 64;
  std::array<float, 16> table_{};
  at::Tensor packed_;       // uint8 [out, in / 2]
  at::Tensor scales_;       // float32 [out, in / group]; undefined when double-quantized
  at::Tensor scale_codes_;  // uint8 [out * in / group] (double quantization)
  at::Tensor scale_max_;    // float32 [blocks of 256]
  float scale_offset_ = 0;
};

}  // namespace peft::quant
