// softmax(q k^T / sqrt(d)) v for a few query rows per head: the shape of every decoder
// step (one query per beam against the self-attention cache and the window's 1500
// audio frames), where BLAS spends more time packing K and V into panels than
// multiplying (measured here, tiny.en greedy: 11% of a decoder step in OpenBLAS's
// packing routines). This streams K and V once per query row from cache, no packing,
// one parallel region over the (batch, head) pairs.
//
//   at::Tensor o = peft::ops::few_query_attention(q, k, v, causal_offset);
#pragma once

#include <ATen/core/Tensor.h>

namespace peft::ops {

// Query rows per head up to which few_query_attention is the better choice.
constexpr int64_t kFewQueries = 16;

// q float32 [B, H, Tq, D], k and v float32 [B, H, Tk, D], each with its last dimension
// contiguous (other strides free: cache views, permuted heads). With causal_offset >= 0
// query i (at absolute position causal_offset + i) sees keys 0 .. causal_offset + i only;
// with -1 every key. Returns float32 [B, H, Tq, D], contiguous. Throws peft::ShapeError
// on mismatched shapes or a query that would see no key.
at::Tensor few_query_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                               int64_t causal_offset);

// One query row q [d] against n keys and values (rows k_stride / v_stride floats apart):
// out [d] = softmax(q k^T / sqrt(d)) v, on the calling thread, with the same arithmetic as
// few_query_attention; `scores` is scratch for n floats. For callers that split the work
// over their own threads (the Llama decoder's fused step). No checks.
void attend_query_row(const float* q, const float* k, int64_t k_stride, const float* v, int64_t v_stride,
                      int64_t n, int64_t d, float* scores, float* out);

}  // namespace peft::ops
