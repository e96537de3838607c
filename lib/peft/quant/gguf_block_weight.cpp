#include "peft/quant/gguf_block_weight.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "peft/error.h"
#include "peft/io/half.h"
#include "peft/ops/blas_linear.h"
#include "peft/ops/few_rows_linear.h"
#include "peft/ops/packed_linear.h"

namespace peft::quant {

namespace {

constexpr int64_t kBlock = 32;

ops::PackedFormat packed_format(io::DType t) {
  switch (t) {
    case io::DType::Q4_0:
      return ops::PackedFormat::kGgufQ4_0;
    case io::DType::Q4_1:
      return ops::PackedFormat::kGgufQ4_1;
    default:
      return ops::PackedFormat::kGgufQ8_0;
  }
}

void put_half(uint8_t* p, float v) {
  const uint16_t h = io::float_to_half(v);
  std::memcpy(p, &h, 2);
}

// ggml's reference quantizers for one block of 32 values (ggml-quants.c), re-derived.
void quantize_block(io::DType t, const float* x, uint8_t* out) {
  if (t == io::DType::Q8_0) {
    float amax = 0;
    for (int j = 0; j < kBlock; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
    put_half(out, d);
    for (int j = 0; j < kBlock; ++j)
      out[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(std::round(x[j] * id)));
    return;
  }
  if (t == io::DType::Q4_0) {
    // d from the value of largest magnitude, with its sign: that value maps to code 0.
    float amax = 0, max = 0;
    for (int j = 0; j < kBlock; ++j)
      if (std::fabs(x[j]) > amax) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    const float d = max / -8.0f, id = d != 0 ? 1.0f / d : 0.0f;
    put_half(out, d);
    for (int j = 0; j < 16; ++j) {
      const int q0 = std::min(15, static_cast<int>(static_cast<int8_t>(x[j] * id + 8.5f)));
      const int q1 = std::min(15, static_cast<int>(static_cast<int8_t>(x[j + 16] * id + 8.5f)));
      out[2 + j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
    return;
  }
  float lo = x[0], hi = x[0];
  for (int j = 1; j < kBlock; ++j) {
    lo = std::min(lo, x[j]);
    hi = std::max(hi, x[j]);
  }
  const float d = (hi - lo) / 15.0f, id = d != 0 ? 1.0f / d : 0.0f;
  put_half(out, d);
  put_half(out + 2, lo);
  for (int j = 0; j < 16; ++j) {
    const int q0 = std::min(15, static_cast<int>(static_cast<int8_t>((x[j] - lo) * id + 0.5f)));
    const int q1 = std::min(15, static_cast<int>(static_cast<int8_t>((x[j + 16] - lo) * id + 0.5f)));
    out[4 + j] = static_cast<uint8_t>(q0 | (q1 << 4));
  }
}

}  // namespace

bool GgufBlockWeight::supports(io::DType type) {
  return type == io::DType::Q4_0 || type == io::DType::Q4_1 || type == io::DType::Q8_0;
}

GgufBlockWeight::GgufBlockWeight(io::DType type, at::Tensor blocks, int64_t out, int64_t in)
    : QuantizedWeight(out, in), type_(type), blocks_(std::move(blocks)) {}

std::shared_ptr<const GgufBlockWeight> GgufBlockWeight::from_tensor(const io::TensorData& tensor) {
  const std::string& name = tensor.info.name;
  if (!supports(tensor.info.dtype))
    throw ValueError(name + ": GGUF blocks of type " + std::string(io::dtype_name(tensor.info.dtype)) +
                     " are not kept as stored (Q4_0, Q4_1, Q8_0 are)");
  if (tensor.info.shape.size() != 2 || tensor.info.shape[1] % kBlock != 0)
    throw ShapeError(name + ": shape " + io::shape_to_string(tensor.info.shape) +
                     " is not [out, in] with in a multiple of 32");
  const int64_t out = tensor.info.shape[0], in = tensor.info.shape[1];
  const int64_t row_bytes = in / kBlock * static_cast<int64_t>(io::block_bytes(tensor.info.dtype));
  if (static_cast<uint64_t>(out * row_bytes) != tensor.info.nbytes)
    throw ShapeError(name + ": " + std::to_string(tensor.info.nbytes) + " bytes for " +
                     io::shape_to_string(tensor.info.shape) + " " +
                     std::string(io::dtype_name(tensor.info.dtype)));
  at::Tensor blocks = at::empty({out, row_bytes}, at::TensorOptions().dtype(at::kByte));
  std::memcpy(blocks.data_ptr<uint8_t>(), tensor.data, static_cast<size_t>(tensor.info.nbytes));
  return std::shared_ptr<const GgufBlockWeight>(
      new GgufBlockWeight(tensor.info.dtype, std::move(blocks), out, in));
}

std::shared_ptr<const GgufBlockWeight> GgufBlockWeight::quantize(const at::Tensor& weight, io::DType type,
                                                                 const std::string& name) {
  if (!supports(type))
    throw ValueError(name + ": cannot quantize into GGUF " + std::string(io::dtype_name(type)));
  check_float_matrix(weight, name);
  const int64_t out = weight.size(0), in = weight.size(1);
  if (in % kBlock != 0)
    throw ValueError(name + ": in_features " + std::to_string(in) + " is not a multiple of 32 (GGUF blocks)");
  const at::Tensor w = weight.to(at::kFloat).contiguous();
  const int64_t bb = static_cast<int64_t>(io::block_bytes(type)), row_bytes = in / kBlock * bb;
  at::Tensor blocks = at::empty({out, row_bytes}, at::TensorOptions().dtype(at::kByte));
  const float* src = w.data_ptr<float>();
  uint8_t* dst = blocks.data_ptr<uint8_t>();
  for (int64_t b = 0; b < out * in / kBlock; ++b) quantize_block(type, src + b * kBlock, dst + b * bb);
  return std::shared_ptr<const GgufBlockWeight>(new GgufBlockWeight(type, std::move(blocks), out, in));
}

std::string GgufBlockWeight::format() const { return "gguf " + std::string(io::dtype_name(type_)); }

void GgufBlockWeight::dequantize_into(int64_t row0, int64_t rows, float* out) const {
  ops::PackedWeight p;
  p.format = packed_format(type_);
  p.n = out_features();
  p.k = in_features();
  p.data = blocks_.data_ptr<uint8_t>();
  ops::dequantize_packed(p, row0, rows, out);
}

std::shared_ptr<const QuantizedWeight> GgufBlockWeight::requantize(const at::Tensor& weight,
                                                                   const std::string& name) const {
  if (weight.dim() != 2 || weight.size(0) != out_features() || weight.size(1) != in_features())
    throw ShapeError(name + ": re-quantizing a " + format() + " weight with another shape");
  return quantize(weight, type_, name);
}

at::Tensor GgufBlockWeight::linear(const at::Tensor& x, const at::Tensor& bias, Path path) const {
  const int64_t rows = rows_of(x);
  if (path == Path::kAuto) path = rows <= ops::kFewRows ? Path::kKernel : Path::kDequantBlas;
  if (path == Path::kDequantBlas) return dequantized_linear(x, bias);
  ops::PackedWeight p;
  p.format = packed_format(type_);
  p.n = out_features();
  p.k = in_features();
  p.data = blocks_.data_ptr<uint8_t>();
  return ops::few_rows_linear_packed(x, p, bias);
}

}  // namespace peft::quant
