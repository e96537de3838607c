// Multi-head attention pieces every transformer here shares: splitting and merging
// heads, scaled dot-product attention (causal or not) and a KV cache that grows in place.
// Models keep their own projections and norms; these take the projected tensors.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/TensorOptions.h>

#include <cstdint>
#include <vector>

namespace peft::adapters {
class BoundAdapter;
}

namespace peft::models {

// [B, T, H * Dh] -> [B, H, T, Dh] (a view).
at::Tensor split_heads(const at::Tensor& x, int64_t n_head);
// [B, H, T, Dh] -> [B, T, H * Dh].
at::Tensor merge_heads(const at::Tensor& x);

// softmax(q k^T * scale + bias) v: q [B, H, Tq, Dh], k/v [B, H, Tk, Dh] (any strides),
// -> float32 [B, H, Tq, Dh]. scale < 0 means 1 / sqrt(Dh). With causal_offset >= 0,
// query i (at absolute position causal_offset + i) sees keys 0 .. causal_offset + i
// only; -1: every key. `bias` (optional) is added to the scores before the softmax and
// broadcasts to [B, H, Tq, Tk] (T5's relative positions, padding masks).
//
// A few query rows per head without a bias (decoder steps) go to
// ops::few_query_attention, which streams K and V once. Otherwise (batch, head) pairs
// are spread over libtorch's threads, each head's two products and softmax on one
// thread: batched matmul runs its GEMMs one after the other, and BLAS itself is kept on
// one thread (see runtime.cpp).
at::Tensor attend(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t causal_offset,
                  double scale = -1.0, const at::Tensor& bias = {});

// Per-layer keys and values of the tokens decoded so far, for B rows (beams), plus the
// keys and values of one encoder output that every row shares (encoder-decoder models).
struct KVCache {
  // Per layer [B, H_kv, capacity, Dh]; positions 0 .. length-1 are filled.
  std::vector<at::Tensor> self_k, self_v;
  // Per layer [1, H, S, Dh] (encoder-decoder models only): computed once by start().
  std::vector<at::Tensor> cross_k, cross_v;
  int64_t length = 0;  // positions decoded so far
  // The adapter the cache was started with (or none), applied by decode(); the caller
  // keeps the BoundAdapter alive while the cache is used.
  const adapters::BoundAdapter* adapter = nullptr;

  // Writes k/v [B, H_kv, T, Dh] of layer `layer` at positions length .. length + T - 1
  // and returns views of that layer's positions 0 .. length + T - 1. The capacity grows
  // by doubling (at least 32, at most max_positions), so a step writes in place instead
  // of copying the whole cache. Call advance(T) once every layer has appended.
  std::pair<at::Tensor, at::Tensor> append(size_t layer, const at::Tensor& k, const at::Tensor& v,
                                           int64_t max_positions);
  void advance(int64_t t) { length += t; }
  // Makes layer `layer` hold [batch, kv_heads, >= needed, head_dim] (growing as append
  // does, keeping positions 0 .. length-1), for decoders that write the cache in place.
  // Throws ValueError when needed > max_positions.
  void reserve(size_t layer, int64_t batch, int64_t kv_heads, int64_t head_dim, int64_t needed,
               int64_t max_positions, const at::TensorOptions& options);

  // Keeps rows `index` (int64 [B']) in that order: beam reordering, one row becoming
  // several. The shared encoder K/V is untouched.
  void select(const at::Tensor& index);
};

// Cross-attention of B decoder rows against one encoder output's K/V [1, H, S, Dh]:
// q [B, H, T, Dh] is viewed as [1, H, B*T, Dh] so the rows read the K/V once.
at::Tensor attend_shared(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double scale = -1.0,
                         const at::Tensor& bias = {});

}  // namespace peft::models
