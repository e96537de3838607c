#include "peft/quant/int8_weight.h"

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/native/quantized/PackedParams.h>

#include <cstdlib>

#include "peft/error.h"
#include "peft/ops/all_finite.h"
#include "peft/ops/blas_linear.h"
#include "peft/ops/few_rows_linear.h"
#include "peft/ops/packed_linear.h"

namespace peft::quant {

namespace {

// Rows of x up to which the register-widening kernel is used; above it dequantize + BLAS
// (or ONEDNN when PEFT_INT8_ONEDNN is set). Measured with tests/quant/bench_quant_linear
// (2 threads, AMD EPYC with AVX2 and no VNNI, median ms; [out x in]):
//
//   rows  shape          float32  float16  kernel  onednn  dequant+blas
//      1  384 x 384        0.025    0.024   0.038   0.107   0.184
//      1  1536 x 384       0.064    0.076   0.078   0.158   0.334
//      1  51864 x 384      6.31     4.01    2.46    8.79    71.4
//      5  384 x 384        0.095    0.077   0.072   0.123   0.197
//      5  1536 x 384       0.212    0.217   0.235   0.204   0.410
//      5  51864 x 384      22.0     21.7    22.9    43.9    111
//   1500  384 x 384        3.33     3.27    24.4    3.05    3.86
//   1500  1536 x 384       15.6     13.3    46.2    6.94    13.0
//
// So the kernel for few rows (it reads a quarter of float32's bytes: the 51864-row
// output projection at one row takes 2.5 ms, float16 4.0). For many rows ONEDNN is the
// fastest (up to 2x), but it also rounds x to 7 bits per tensor (8-bit activations
// saturate in vpmaddubsw without VNNI): 2.0-2.3% error on random x against < 1% for the
// weight-only paths, and on tiny.en 8.8% instead of 1.6% logits error, one more word
// wrong on the 5 cards utterances, and a second (packed) copy of each encoder weight
// (+8 MB). The 30 s encoder pass went from 418 to 343 ms. Weight-only dequantize + BLAS
// is the default; PEFT_INT8_ONEDNN=1 opts in to ONEDNN for many rows.
constexpr int64_t kKernelRows = ops::kFewRows;

// Rows of W quantized at a time (bounds the float temporaries of quantize()).
constexpr int64_t kQuantizeRows = 2048;

using PackedPtr = c10::intrusive_ptr<LinearPackedParamsBase>;

ops::PackedWeight view_of(const at::Tensor& codes, const at::Tensor& scale) {
  ops::PackedWeight p;
  p.format = ops::PackedFormat::kInt8Rows;
  p.n = codes.size(0);
  p.k = codes.size(1);
  p.data = codes.data_ptr<int8_t>();
  p.row_scale = scale.data_ptr<float>();
  return p;
}

}  // namespace

Int8Weight::Int8Weight(at::Tensor codes, at::Tensor scale)
    : QuantizedWeight(codes.size(0), codes.dim() == 2 ? codes.size(1) : 0),
      codes_(std::move(codes)),
      scale_(std::move(scale)) {
  if (codes_.dim() != 2 || codes_.scalar_type() != at::kChar)
    throw ShapeError("Int8Weight: codes must be int8 [out, in]");
  if (scale_.dim() != 1 || scale_.size(0) != codes_.size(0) || scale_.scalar_type() != at::kFloat)
    throw ShapeError("Int8Weight: scale must be float32 [" + std::to_string(codes_.size(0)) + "]");
  codes_ = codes_.contiguous();
  scale_ = scale_.contiguous();
}

std::shared_ptr<const Int8Weight> Int8Weight::quantize(const at::Tensor& weight, const std::string& name) {
  check_float_matrix(weight, name);
  const int64_t out = weight.size(0), in = weight.size(1);
  at::Tensor codes = at::empty({out, in}, at::TensorOptions().dtype(at::kChar));
  at::Tensor scale = at::empty({out}, at::TensorOptions().dtype(at::kFloat));
  // By blocks of rows: the float32 temporaries stay a few MB even for a 51864-row
  // embedding (whole-matrix ones were 4 x 80 MB at load).
  for (int64_t r0 = 0; r0 < out; r0 += kQuantizeRows) {
    const int64_t n = std::min(kQuantizeRows, out - r0);
    const at::Tensor w = weight.narrow(0, r0, n).to(at::kFloat);
    const at::Tensor amax = std::get<0>(w.abs().max(1));
    // An all-zero row: any scale gives codes 0; 1 keeps the division finite.
    const at::Tensor s = at::where(amax > 0, amax / 127.0, at::ones_like(amax));
    scale.narrow(0, r0, n).copy_(s);
    codes.narrow(0, r0, n).copy_(at::round(w / s.unsqueeze(1)).clamp_(-127, 127));
  }
  return std::make_shared<Int8Weight>(std::move(codes), std::move(scale));
}

std::shared_ptr<const Int8Weight> Int8Weight::from_ct2(const at::Tensor& codes, const at::Tensor& ct2_scale,
                                                       const std::string& name) {
  if (codes.dim() != 2 || codes.scalar_type() != at::kChar)
    throw ShapeError(name + ": CTranslate2 int8 weight must be int8 [out, in]");
  if (ct2_scale.numel() != codes.size(0))
    throw ShapeError(name + ": CTranslate2 scale has " + std::to_string(ct2_scale.numel()) + " values for " +
                     std::to_string(codes.size(0)) + " rows");
  const at::Tensor s = ct2_scale.reshape({-1}).to(at::kFloat);
  if (!ops::all_finite(s) || !(s > 0).all().item<bool>())
    throw ValueError(name + ": CTranslate2 scale has zero, negative, NaN or infinite values");
  // W = q / ct2_scale; keeping 1 / ct2_scale rounds once (at most 1 ulp from the division).
  return std::make_shared<Int8Weight>(codes.contiguous(), at::reciprocal(s).contiguous());
}

bool Int8Weight::onednn_available() {
  for (auto e : at::globalContext().supportedQEngines())
    if (e == at::QEngine::ONEDNN) return true;
  return false;
}

void Int8Weight::dequantize_into(int64_t row0, int64_t rows, float* out) const {
  ops::dequantize_packed(view_of(codes_, scale_), row0, rows, out);
}

int64_t Int8Weight::bytes() const { return codes_.numel() + scale_.numel() * 4 + packed_bytes_.load(); }

std::shared_ptr<const QuantizedWeight> Int8Weight::requantize(const at::Tensor& weight,
                                                              const std::string& name) const {
  if (weight.dim() != 2 || weight.size(0) != out_features() || weight.size(1) != in_features())
    throw ShapeError(name + ": re-quantizing an int8 [" + std::to_string(out_features()) + ", " +
                     std::to_string(in_features()) + "] weight with another shape");
  return quantize(weight, name);
}

at::Tensor Int8Weight::onednn_linear(const at::Tensor& x2) const {
  std::call_once(packed_once_, [&] {
    if (!onednn_available()) throw ValueError("Int8Weight: libtorch has no ONEDNN quantized engine");
    at::globalContext().setQEngine(at::QEngine::ONEDNN);
    // Zero points 0: symmetric codes, as ONEDNN's int8 weights require.
    const at::Tensor qw = at::_make_per_channel_quantized_tensor(
        codes_, scale_.to(at::kDouble), at::zeros({out_features()}, at::TensorOptions().dtype(at::kLong)), 0);
    static auto prepack = c10::Dispatcher::singleton()
                              .findSchemaOrThrow("quantized::linear_prepack", "")
                              .typed<PackedPtr(at::Tensor, c10::optional<at::Tensor>)>();
    auto packed = std::make_shared<PackedPtr>(prepack.call(qw, c10::nullopt));
    packed_ = std::shared_ptr<void>(packed, packed.get());
    packed_bytes_ = codes_.numel();  // ONEDNN keeps its own int8 copy in its blocked layout
  });
  if (!packed_) throw ValueError("Int8Weight: ONEDNN packing failed earlier");
  auto& packed = *static_cast<PackedPtr*>(packed_.get());
  // Without VNNI, x86 int8 products go through vpmaddubsw, whose int16 pair sums
  // saturate for 8-bit activations: ONEDNN then needs 7-bit ones (reduce_range), as
  // FBGEMM always uses. Measured here (AVX2, no VNNI): 2-13% error with 8 bits.
#if defined(__x86_64__)
  static const bool vnni = __builtin_cpu_supports("avx512vnni");
#else
  static const bool vnni = true;  // ARM's int8 dot products do not saturate
#endif
  return packed->apply_dynamic(x2, /*reduce_range=*/!vnni);
}

at::Tensor Int8Weight::linear(const at::Tensor& x, const at::Tensor& bias, Path path) const {
  const int64_t rows = rows_of(x);
  if (path == Path::kAuto) {
    static const bool onednn = onednn_available() && std::getenv("PEFT_INT8_ONEDNN") != nullptr;
    path = rows <= kKernelRows ? Path::kKernel : onednn ? Path::kOnednn : Path::kDequantBlas;
  }
  switch (path) {
    case Path::kKernel:
      return ops::few_rows_linear_packed(x, view_of(codes_, scale_), bias);
    case Path::kOnednn: {
      std::vector<int64_t> shape = x.sizes().vec();
      shape.back() = out_features();
      at::Tensor y = onednn_linear(x.reshape({rows, in_features()}).contiguous().to(at::kFloat));
      if (bias.defined()) y.add_(bias);
      return y.view(shape);
    }
    case Path::kAuto:
    case Path::kDequantBlas:
      break;
  }
  return dequantized_linear(x, bias);
}

}  // namespace peft::quant
