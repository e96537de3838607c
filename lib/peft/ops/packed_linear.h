// y = x W^T + b where W is stored compressed, for the quantized weights of quant/:
// int8 rows with a scale per row, 4-bit codes with a scale per group of columns (int4,
// NF4: a 16-entry table maps each code to a float), and ggml's Q4_0 / Q4_1 / Q8_0
// blocks as GGUF stores them.
//
// few_rows_linear_packed streams the compressed W once, computing every x row against it
// while it is in cache: integer dot products against x quantized to int16 per 32-value
// block (int_dot_linear.h; by default for the ggml blocks, see PackedWeight::activations),
// else each 8-value slice widened to float32 in registers (AVX2). Decoder steps have a
// handful of rows and are bound by the bytes of W they read, so reading 1 or 0.5 byte per
// weight instead of 2 or 4 is the point. For many rows the arithmetic dominates:
// dequantize_packed + BLAS (quant/*.cpp) is faster there.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace peft::ops {

enum class PackedFormat {
  kInt8Rows,      // data int8 [n, k]; value = q * row_scale[row]
  kNibbleGroups,  // data uint8 [n, k / 2], column 2i in the low nibble of byte i, 2i+1 in the
                  // high one; value = lut[code] * group_scale[row, col / group]
  kGgufQ4_0,      // data: k / 32 ggml blocks per row (see io/gguf_quants.cpp)
  kGgufQ4_1,
  kGgufQ8_0,
};

// A view of a compressed [n, k] weight; the pointers stay owned by the caller.
struct PackedWeight {
  PackedFormat format = PackedFormat::kInt8Rows;
  int64_t n = 0, k = 0;
  const void* data = nullptr;
  const float* row_scale = nullptr;    // kInt8Rows: [n]
  const float* group_scale = nullptr;  // kNibbleGroups: [n, k / group]
  int64_t group = 0;                   // kNibbleGroups: 32, 64 or 128
  const float* lut = nullptr;          // kNibbleGroups: 16 floats
  // How x enters few-rows products. kFloat: W widened to float, float products (exact).
  // kInteger: x quantized to int16 per 32-value block, integer block sums
  // (int_dot_linear.h; several times faster; needs k a multiple of 32 and, for nibble
  // groups, the int4 table). kAuto: kInteger for the ggml blocks (llama.cpp computes
  // them from quantized activations too), kFloat for int8 rows and nibble groups, which
  // Whisper and T5 share (T5's activations have outliers: its int8 test moved 4.3e-3
  // from its reference with integer activations).
  enum class Activations { kAuto, kFloat, kInteger };
  Activations activations = Activations::kAuto;
};

// While one is alive on a thread, kAuto means kInteger for int8 rows and int4 groups
// too in the few-rows products that thread calls: the Llama decoder holds one in
// decode() (its int8 / int4 options pair with llama.cpp's Q8_0 / Q4_0, which it computes
// from quantized activations); Whisper and T5 do not. Nests.
class IntegerActivationsScope {
 public:
  IntegerActivationsScope();
  ~IntegerActivationsScope();
  IntegerActivationsScope(const IntegerActivationsScope&) = delete;
  IntegerActivationsScope& operator=(const IntegerActivationsScope&) = delete;
};

// x float32 [..., k] -> float32 [..., n]; bias float32 [n] or undefined. k must be a
// multiple of 8 except for kInt8Rows (a multiple of the group / 32-value block is
// checked by the weight's owner). Throws peft::ShapeError on mismatched shapes.
at::Tensor few_rows_linear_packed(const at::Tensor& x, const PackedWeight& w, const at::Tensor& bias);

// y_i = x ws[i]^T for weights of the same in_features, in one parallel region (a decoder
// step's q / k / v or gate / up projections) when all take the integer path
// (Activations::kAuto or kInteger; int8 rows / int4 groups: kInteger or under an
// IntegerActivationsScope); else one few_rows_linear_packed call each. No bias.
std::vector<at::Tensor> few_rows_linear_packed_many(const at::Tensor& x, const std::vector<PackedWeight>& ws);

// Rows [row0, row0 + rows) of W as float32 into out (rows * k floats), the same values
// few_rows_linear_packed computes with. Runs over libtorch's threads.
void dequantize_packed(const PackedWeight& w, int64_t row0, int64_t rows, float* out);

}  // namespace peft::ops
