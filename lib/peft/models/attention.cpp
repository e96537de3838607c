#include "peft/models/attention.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "peft/error.h"
#include "peft/io/dtype.h"
#include "peft/io/torch_tensor.h"
#include "peft/ops/few_query_attention.h"

namespace peft::models {

namespace {
// Query rows whose scores are computed together by attend() (64 x 1500 keys: 375 KiB).
constexpr int64_t kQueryBlock = 64;
}  // namespace

at::Tensor split_heads(const at::Tensor& x, int64_t n_head) {
  return x.view({x.size(0), x.size(1), n_head, x.size(2) / n_head}).transpose(1, 2);
}

at::Tensor merge_heads(const at::Tensor& x) {
  return x.transpose(1, 2).reshape({x.size(0), x.size(2), x.size(1) * x.size(3)});
}

at::Tensor attend(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t causal_offset,
                  double scale, const at::Tensor& bias) {
  const double default_scale = 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
  if (scale < 0) scale = default_scale;
  if (!bias.defined() && q.size(2) <= ops::kFewQueries && k.stride(3) == 1 && v.stride(3) == 1) {
    // few_query_attention scales by 1/sqrt(Dh); another scale is folded into q.
    at::Tensor qs = scale == default_scale ? q : q * (scale / default_scale);
    if (qs.stride(3) != 1) qs = qs.contiguous();
    return ops::few_query_attention(qs, k, v, causal_offset);  // decoder steps
  }
  const int64_t b = q.size(0), h = q.size(1), tq = q.size(2), tk = k.size(2);
  at::Tensor mask;
  if (causal_offset >= 0 && tq > 1)
    mask = at::ones({tq, tk}, at::TensorOptions().dtype(at::kBool)).triu_(causal_offset + 1);
  at::Tensor full_bias;
  if (bias.defined()) full_bias = bias.expand({b, h, tq, tk});
  at::Tensor out = at::empty({b, h, tq, v.size(3)}, q.options());
  at::parallel_for(0, b * h, 1, [&](int64_t begin, int64_t end) {
    // Query rows in blocks: a block's scores and probabilities stay in cache, and the two
    // buffers serve every block and head of this thread's share. Allocating [Tq, Tk] per
    // head instead (9 MB each in Whisper's encoder) made glibc's per-thread arenas hand
    // the memory back and fault it in again at every head: 6.8 M page faults and 19 s of
    // system time in 4 min of audio through whisperasr, against 0.4 M / 1.9 s with the
    // single arena peft-transcribe uses.
    const int64_t rows = std::min(tq, kQueryBlock);
    at::Tensor scores_buf = at::empty({rows, tk}, q.options()),
               probs_buf = at::empty({rows, tk}, q.options());
    for (int64_t i = begin; i < end; ++i) {
      const int64_t bi = i / h, hi = i % h;
      const at::Tensor qh = q[bi][hi], kt = k[bi][hi].t(), vh = v[bi][hi];
      at::Tensor oh = out[bi][hi];
      for (int64_t r0 = 0; r0 < tq; r0 += rows) {
        const int64_t n = std::min(rows, tq - r0);
        at::Tensor scores = scores_buf.narrow(0, 0, n), probs = probs_buf.narrow(0, 0, n);
        at::mm_out(scores, qh.narrow(0, r0, n), kt).mul_(scale);
        if (full_bias.defined()) scores.add_(full_bias[bi][hi].narrow(0, r0, n));
        if (mask.defined())
          scores.masked_fill_(mask.narrow(0, r0, n), -std::numeric_limits<float>::infinity());
        at::_softmax_out(probs, scores, -1, false);
        at::Tensor o = oh.narrow(0, r0, n);
        at::mm_out(o, probs, vh);
      }
    }
  });
  return out;
}

at::Tensor attend_shared(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double scale,
                         const at::Tensor& bias) {
  const int64_t rows = q.size(0), h = q.size(1), t = q.size(2), dh = q.size(3);
  if (rows == 1) return attend(q, k, v, -1, scale, bias);
  at::Tensor qs = q.permute({1, 0, 2, 3}).reshape({1, h, rows * t, dh});
  at::Tensor b = bias;
  if (b.defined())  // [.., H, T, S] -> [1, H, rows*T, S]
    b = bias.expand({rows, h, t, k.size(2)}).permute({1, 0, 2, 3}).reshape({1, h, rows * t, k.size(2)});
  return attend(qs, k, v, -1, scale, b).view({h, rows, t, dh}).permute({1, 0, 2, 3}).contiguous();
}

void KVCache::reserve(size_t layer, int64_t batch, int64_t kv_heads, int64_t head_dim, int64_t needed,
                      int64_t max_positions, const at::TensorOptions& options) {
  if (self_k.size() <= layer) {
    self_k.resize(layer + 1);
    self_v.resize(layer + 1);
  }
  if (needed > max_positions)
    throw ValueError("KVCache: " + std::to_string(needed) + " positions exceed the model's " +
                     std::to_string(max_positions));
  at::Tensor& ck = self_k[layer];
  at::Tensor& cv = self_v[layer];
  if (ck.defined() && (ck.size(0) != batch || ck.size(1) != kv_heads || ck.size(3) != head_dim))
    throw ShapeError("KVCache: layer " + std::to_string(layer) + " holds " +
                     io::shape_to_string(ck.sizes().vec()) + ", not " + std::to_string(batch) + " rows of " +
                     std::to_string(kv_heads) + " heads of " + std::to_string(head_dim));
  if (!ck.defined() || ck.size(2) < needed) {
    const int64_t capacity =
        std::min(max_positions, std::max({needed, int64_t{32}, ck.defined() ? 2 * ck.size(2) : 0}));
    for (at::Tensor* c : {&ck, &cv}) {
      at::Tensor grown = at::empty({batch, kv_heads, capacity, head_dim}, options);
      if (length > 0) grown.narrow(2, 0, length).copy_(c->narrow(2, 0, length));
      *c = grown;
    }
  }
}

std::pair<at::Tensor, at::Tensor> KVCache::append(size_t layer, const at::Tensor& k, const at::Tensor& v,
                                                  int64_t max_positions) {
  const int64_t t = k.size(2), needed = length + t;
  reserve(layer, k.size(0), k.size(1), k.size(3), needed, max_positions, k.options());
  at::Tensor& ck = self_k[layer];
  at::Tensor& cv = self_v[layer];
  ck.narrow(2, length, t).copy_(k);
  cv.narrow(2, length, t).copy_(v);
  return {ck.narrow(2, 0, needed), cv.narrow(2, 0, needed)};
}

void KVCache::select(const at::Tensor& index) {
  for (auto* list : {&self_k, &self_v})
    for (auto& t : *list) {
      if (!t.defined()) continue;
      at::Tensor kept = at::empty({index.size(0), t.size(1), t.size(2), t.size(3)}, t.options());
      if (length > 0) kept.narrow(2, 0, length).copy_(t.narrow(2, 0, length).index_select(0, index));
      t = kept;
    }
}

}  // namespace peft::models
