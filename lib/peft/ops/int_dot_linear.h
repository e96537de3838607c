// Internal to lib/peft/ops (not installed): y = x W^T + b for a few rows of x with
// integer dot products, after ggml's way with its Q4_0 / Q4_1 / Q8_0 blocks: the
// activation rows are quantized once per call per 32-value block, each weight block's
// products are summed exactly in int32, and one float multiply-add per block applies the
// scales, instead of widening every weight to float and multiplying in float (measured:
// SmolLM2 Q4_1 decode, 2 threads, same load: 33 -> 53-64 tok/s with this alone).
//
// Activations are quantized to int16, not to ggml's int8 (q8_0 / q8_1): per block
// d = max |x| / 32767, q = round-half-even(x / d), and d * sum(q) is kept for the weights'
// offset terms. ggml's 8 bits changed SmolLM2's logits by up to 4.5% of the largest and
// one of the tests' greedy continuations; 16 bits cost the same instructions on AVX2
// (madd on int16 where ggml uses maddubs on bytes, weights widened to int16 where it
// keeps bytes) and leave x within 1.5e-5 of its block's maximum. Per weight block
// (scale s, offset term o):
//   Q8_0, int8 rows:   s * d * sum(w_q * q)
//   Q4_0, int4 groups: s * d * sum(c * q) - 8 * s * (d * sum(q))   (c the 0..15 code)
//   Q4_1:              s * d * sum(c * q) + m * (d * sum(q))       (m the block minimum)
// int8 rows apply their row scale to the whole dot product.
#pragma once

#include <cstdint>
#include <vector>

#include "peft/ops/packed_linear.h"

namespace peft::ops {

// Activation rows quantized per 32-value block, as the integer products take them.
// `interleaved`: within each block the even columns come first, then the odd ones (the
// order of nibble groups' low and high nibbles, so their 16 bytes unpack to the same
// order as the activation block).
struct IntActivations {
  int64_t rows = 0, k = 0, blocks = 0;
  bool interleaved = false;
  std::vector<int16_t> q;  // [rows, k]
  std::vector<float> dds;  // [rows, blocks, 2]: d, then d * sum(q)
  float d(int64_t row, int64_t b) const { return dds[2 * (row * blocks + b)]; }
  float ds(int64_t row, int64_t b) const { return dds[2 * (row * blocks + b) + 1]; }
};

// True when w takes its activations interleaved (nibble groups).
inline bool int_dot_interleaved(const PackedWeight& w) { return w.format == PackedFormat::kNibbleGroups; }

// x float32 [rows, k] (k a multiple of 32) quantized into a (buffers reused).
void quantize_for_int_dot(const float* x, int64_t rows, int64_t k, bool interleaved, IntActivations& a);

// True when w has an integer path: the ggml block formats, int8 rows and the int4 table
// (lut[c] = c - 8) of nibble groups, with k a whole number of 32-value blocks.
bool int_dot_supported(const PackedWeight& w);

// x float32 [m_rows, w.k] -> y float32 [m_rows, w.n] (+ bias when not null); W's rows
// split over libtorch's threads. Requires int_dot_supported(w).
void int_dot_linear(const PackedWeight& w, const float* x, int64_t m_rows, const float* bias, float* y);

// Columns [n0, n1) of y = x W^T (+ bias when not null), y float32 [a.rows, w.n], on the
// calling thread: for callers that split the work over their own threads (the Llama
// decoder's fused step). Requires int_dot_supported(w) and a quantized with
// int_dot_interleaved(w) over w.k columns.
void int_dot_rows(const PackedWeight& w, const IntActivations& a, int64_t n0, int64_t n1, const float* bias,
                  float* y);

// ys[i] = x ws[i]^T (float32 [m_rows, ws[i].n], no bias) for weights of the same k, x
// quantized once and all their rows split over libtorch's threads in one parallel region
// (a decoder step's q / k / v or gate / up projections: fewer waits between regions).
// False, computing nothing, unless every weight is int_dot_supported with the same k and
// activation layout.
bool int_dot_linear_many(const PackedWeight* ws, size_t count, const float* x, int64_t m_rows,
                         float* const* ys);

}  // namespace peft::ops
