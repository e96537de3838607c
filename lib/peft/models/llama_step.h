// Internal to lib/peft/models: the Llama decoder's one-token step (decode() with one
// token per row, a few rows, no adapter) as one parallel region over every layer.
//
// Why: a SmolLM2-135M token is 30 layers x 7 small projections plus norms, rotary,
// attention and residual adds on [1, 576] vectors. Run as libtorch ops and one parallel
// region per projection group, perf showed the calling thread spending 46% of a token in
// the projection kernels, 11% waiting at region ends and ~17% in per-op overhead and
// serial steps while the other threads spun. Here the threads enter one region per
// token and share every step: projections are split into units of output rows (the
// integer or float kernels of ops/ on a row range) that each thread takes from its own
// share and then from the others' (llama_step.cpp's StepWork), q/k/v with rotary and
// the cache write and attention go by head, norms are repeated per thread where that is
// cheaper than a barrier, and the threads meet at five barriers per layer.
//
// The arithmetic is the unfused path's, operation for operation (the same kernels,
// norms, rotary and softmax code), so the two give the same logits (tested bit for bit
// against decode() of the same tokens as a prompt).
#pragma once

#include <ATen/core/Tensor.h>

#include <cmath>
#include <cstdint>
#include <optional>
#include <vector>

#include "peft/ops/packed_linear.h"

namespace peft::layers {
class Linear;
}

namespace peft::models {

struct KVCache;

namespace llama {

// Hugging Face's LlamaRMSNorm of one row: x / sqrt(mean(x^2) + eps) * w, float32 (the mean
// of squares summed in double).
void rms_norm_row(const float* x, const float* w, int64_t d, double eps, float* y);

// rotate_half rotary embedding of `heads` heads of d values (dimension i pairs with
// i + d/2), in place; cos/sin [d] of the row's position.
void rotary_row(float* x, int64_t heads, int64_t d, const float* cos, const float* sin);

// SwiGLU's silu(g) * u.
inline float silu_times(float g, float u) { return g / (1.0f + std::exp(-g)) * u; }

// A projection without an adapter as the fused step reads it: ggml blocks, int8 rows or
// int4 groups through the integer kernels, or a float32 / float16 matrix.
struct StepProjection {
  bool integer = false;
  ops::PackedWeight packed;     // integer
  const void* dense = nullptr;  // else: [n, k]
  bool half = false;
  const float* bias = nullptr;  // [n] or null
  int64_t n = 0, k = 0;
};

// A quantized projection's packed view (ggml blocks, int8 rows, int4 groups without
// double quantization), or nullopt; `keep` holds tensors the view points into.
std::optional<ops::PackedWeight> packed_view(const layers::Linear& l, std::vector<at::Tensor>& keep);

// Shapes and weights of a loaded model, as views into its tensors.
struct StepModel {
  struct Layer {
    const float *attn_norm = nullptr, *mlp_norm = nullptr;
    StepProjection q, k, v, o, gate, up, down;
  };
  int64_t hidden = 0, heads = 0, kv_heads = 0, head_dim = 0, intermediate = 0, vocab = 0, max_positions = 0;
  double eps = 0;
  std::vector<Layer> layers;
  const float* norm = nullptr;
  StepProjection lm_head;
  std::vector<at::Tensor> keep;  // tensors the views point into that the model does not hold

  // A projection's view, or nullopt when it has no fused path (NF4, double-quantized int4,
  // a float weight that is not float32/float16, k not a multiple of 32 for integer kernels).
  static std::optional<StepProjection> view(const layers::Linear& l, std::vector<at::Tensor>& keep);
};

// Rows of the fused step: up to ops::kFewRows (beams).
// x: float32 [rows, hidden], the rows' token embeddings at position cache.length, used as
// the residual stream (overwritten). cos/sin: [head_dim] of that position. Writes the
// rows' K/V into the cache (reserving room) and logits [rows, vocab]; does not advance
// the cache. Throws ValueError past max_positions, ShapeError if the cache holds another
// number of rows.
void fused_step(const StepModel& m, float* x, int64_t rows, KVCache& cache, const float* cos,
                const float* sin, float* logits);

}  // namespace llama
}  // namespace peft::models
