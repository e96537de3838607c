// int8 weights, symmetric per output channel: W[r, c] = q[r, c] * scale[r], with
// scale[r] = max |W[r, :]| / 127 and q = round-half-even(W / scale) in [-127, 127].
// 1 byte per weight plus 4 per row; the same format CTranslate2 stores (it keeps
// 127 / max instead of max / 127: from_ct2 takes its files as they are).
//
// Compute paths (Path), chosen by rows of x as measured on the dev machine (2 threads,
// see int8_weight.cpp for the numbers): few rows go through ops::few_rows_linear_packed,
// which widens int8 to float in registers and applies the row scale to each dot
// product; many rows dequantize + float BLAS (weight-only: the same values), or, with
// the environment variable PEFT_INT8_ONEDNN set, ONEDNN's quantized::linear_dynamic
// (engine set explicitly; x quantized per call, int8 x int8 products): up to 2x faster
// for many rows, less accurate. ONEDNN's packed weight is made on first use, once.
#pragma once

#include <ATen/core/Tensor.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>

#include "peft/quant/quantized_weight.h"

namespace peft::quant {

class Int8Weight final : public QuantizedWeight {
 public:
  enum class Path { kAuto, kKernel, kOnednn, kDequantBlas };

  // From a float weight [out, in]. Throws ValueError naming `name` on NaN or infinities.
  static std::shared_ptr<const Int8Weight> quantize(const at::Tensor& weight, const std::string& name);
  // CTranslate2's int8: codes int8 [out, in] and its "<name>_scale" [out] = 127 / row
  // max, so W = codes / ct2_scale. Throws ShapeError / ValueError naming `name`.
  static std::shared_ptr<const Int8Weight> from_ct2(const at::Tensor& codes, const at::Tensor& ct2_scale,
                                                    const std::string& name);
  // codes int8 [out, in], scale float32 [out] (W = codes * scale).
  Int8Weight(at::Tensor codes, at::Tensor scale);

  const at::Tensor& codes() const { return codes_; }
  const at::Tensor& scale() const { return scale_; }

  std::string format() const override { return "int8"; }
  at::Tensor linear(const at::Tensor& x, const at::Tensor& bias) const override {
    return linear(x, bias, Path::kAuto);
  }
  at::Tensor linear(const at::Tensor& x, const at::Tensor& bias, Path path) const;
  void dequantize_into(int64_t row0, int64_t rows, float* out) const override;
  // codes + scales, plus ONEDNN's packed copy once a call has made one.
  int64_t bytes() const override;
  std::shared_ptr<const QuantizedWeight> requantize(const at::Tensor& weight,
                                                    const std::string& name) const override;

  // True when libtorch here has the ONEDNN quantized engine (Path::kOnednn needs it).
  static bool onednn_available();

 private:
  at::Tensor onednn_linear(const at::Tensor& x2) const;

  at::Tensor codes_;  // int8 [out, in]
  at::Tensor scale_;  // float32 [out]
  // ONEDNN's prepacked weight, made on first use (an intrusive_ptr<LinearPackedParamsBase>
  // held as a type-erased handle so torch's quantized headers stay out of this one).
  mutable std::once_flag packed_once_;
  mutable std::shared_ptr<void> packed_;
  mutable std::atomic<int64_t> packed_bytes_{0};
};

}  // namespace peft::quant
