#include "peft/models/llama_step.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <atomic>
#include <utility>

#include "peft/layers/linear.h"
#include "peft/models/attention.h"
#include "peft/ops/few_query_attention.h"
#include "peft/ops/few_rows_linear.h"
#include "peft/ops/int_dot_linear.h"
#include "peft/quant/gguf_block_weight.h"
#include "peft/quant/group4_weight.h"
#include "peft/quant/int8_weight.h"

namespace peft::models::llama {

void rms_norm_row(const float* x, const float* w, int64_t d, double eps, float* y) {
  double ss = 0;
  for (int64_t i = 0; i < d; ++i) ss += static_cast<double>(x[i]) * x[i];
  const float inv = 1.0f / std::sqrt(static_cast<float>(ss / static_cast<double>(d)) + static_cast<float>(eps));
  for (int64_t i = 0; i < d; ++i) y[i] = x[i] * inv * w[i];
}

void rotary_row(float* x, int64_t heads, int64_t d, const float* c, const float* sn) {
  const int64_t half = d / 2;
  for (int64_t h = 0; h < heads; ++h, x += d)
    for (int64_t i = 0; i < half; ++i) {
      const float lo = x[i], hi = x[i + half];
      x[i] = lo * c[i] - hi * sn[i];
      x[i + half] = hi * c[i + half] + lo * sn[i + half];
    }
}

std::optional<ops::PackedWeight> packed_view(const layers::Linear& l, std::vector<at::Tensor>& keep) {
  if (!l.is_quantized()) return std::nullopt;
  const quant::QuantizedWeight* q = l.quantized_weight().get();
  ops::PackedWeight p;
  p.n = q->out_features();
  p.k = q->in_features();
  if (const auto* g = dynamic_cast<const quant::GgufBlockWeight*>(q)) {
    p.format = g->dtype() == io::DType::Q4_0   ? ops::PackedFormat::kGgufQ4_0
               : g->dtype() == io::DType::Q4_1 ? ops::PackedFormat::kGgufQ4_1
                                               : ops::PackedFormat::kGgufQ8_0;
    p.data = g->blocks().data_ptr<uint8_t>();
    return p;
  }
  if (const auto* i8 = dynamic_cast<const quant::Int8Weight*>(q)) {
    p.format = ops::PackedFormat::kInt8Rows;
    p.data = i8->codes().data_ptr<int8_t>();
    p.row_scale = i8->scale().data_ptr<float>();
    return p;
  }
  const auto* g4 = dynamic_cast<const quant::Group4Weight*>(q);
  if (g4 == nullptr || g4->type() != quant::QuantType::int4 || g4->double_quant()) return std::nullopt;
  keep.push_back(g4->scales().contiguous());
  p.format = ops::PackedFormat::kNibbleGroups;
  p.data = g4->packed_codes().data_ptr<uint8_t>();
  p.group_scale = keep.back().data_ptr<float>();
  p.group = g4->group_size();
  p.lut = g4->table().data();
  return p;
}

std::optional<StepProjection> StepModel::view(const layers::Linear& l, std::vector<at::Tensor>& keep) {
  StepProjection p;
  p.n = l.out_features();
  p.k = l.in_features();
  const at::Tensor& b = l.bias();
  if (b.defined()) {
    if (b.scalar_type() != at::kFloat || b.dim() != 1 || b.size(0) != p.n) return std::nullopt;
    keep.push_back(b.contiguous());
    p.bias = keep.back().data_ptr<float>();
  }
  if (l.is_quantized()) {
    std::optional<ops::PackedWeight> v = packed_view(l, keep);
    if (!v || !ops::int_dot_supported(*v)) return std::nullopt;
    p.integer = true;
    p.packed = *v;
    return p;
  }
  const at::Tensor& w = l.weight();
  if (!w.defined() || w.dim() != 2 || !w.is_contiguous() ||
      (w.scalar_type() != at::kFloat && w.scalar_type() != at::kHalf))
    return std::nullopt;
  p.dense = w.data_ptr();
  p.half = w.scalar_type() == at::kHalf;
  return p;
}

namespace {

// Items [0, n) of one step handed out in chunks to whichever thread asks next, so the
// threads reach the step's end together even when one runs slower (shared memory
// bandwidth, another process on its core). With a fixed half each, the float32 model
// spent 13% of its decode time at barriers (perf, 2 threads).
struct alignas(64) Chunks {
  std::atomic<int64_t> next{0};
  template <class F>
  void run(int64_t n, int64_t chunk, F&& f) {
    for (int64_t c; (c = next.fetch_add(chunk, std::memory_order_relaxed)) < n;) f(c, std::min(n, c + chunk));
  }
};

// Projection rows per chunk: a multiple of the kernels' four-row groups, and few enough
// chunk claims (one atomic add each) for the 49152-row output projection.
constexpr int64_t kRowChunk = 32;

// One activation input (float rows) of a thread, quantized for the integer kernels on
// first use in each layout: the q / k / v (or gate / up) projections share it.
class Input {
 public:
  void set(const float* x, int64_t rows, int64_t k) {
    x_ = x;
    rows_ = rows;
    k_ = k;
    have_[0] = have_[1] = false;
  }
  // Columns [n0, n1) of y [rows, p.n] = x p^T (+ bias).
  void apply(const StepProjection& p, int64_t n0, int64_t n1, float* y) {
    if (n0 >= n1) return;
    if (!p.integer) return ops::few_rows_linear_rows(x_, rows_, p.dense, p.half, p.n, p.k, n0, n1, p.bias, y);
    const int layout = ops::int_dot_interleaved(p.packed) ? 1 : 0;
    if (!have_[layout]) {
      ops::quantize_for_int_dot(x_, rows_, k_, layout == 1, acts_[layout]);
      have_[layout] = true;
    }
    ops::int_dot_rows(p.packed, acts_[layout], n0, n1, p.bias, y);
  }

 private:
  const float* x_ = nullptr;
  int64_t rows_ = 0, k_ = 0;
  ops::IntActivations acts_[2];
  bool have_[2] = {false, false};
};

// A thread's buffers, kept between tokens (the OpenMP workers persist).
struct ThreadScratch {
  Input input;
  std::vector<float> h;       // a normalized or gated input [rows, max(hidden, intermediate)]
  std::vector<float> scores;  // attention scores [positions]
};

}  // namespace

void fused_step(const StepModel& m, float* x, int64_t rows, KVCache& cache, const float* cos, const float* sin,
                float* logits) {
  const int64_t d = m.hidden, hq = m.heads, hkv = m.kv_heads, dh = m.head_dim, f = m.intermediate,
                dq = hq * dh, dkv = hkv * dh, group = hq / hkv, pos = cache.length, n_keys = pos + 1;
  const size_t n_layers = m.layers.size();
  std::vector<float*> kc(n_layers), vc(n_layers);
  std::vector<int64_t> cap(n_layers);
  for (size_t i = 0; i < n_layers; ++i) {
    cache.reserve(i, rows, hkv, dh, n_keys, m.max_positions, at::TensorOptions().dtype(at::kFloat));
    kc[i] = cache.self_k[i].data_ptr<float>();
    vc[i] = cache.self_v[i].data_ptr<float>();
    cap[i] = cache.self_k[i].size(2);
  }
  // Shared between the threads: each writes its own part, read after a barrier.
  std::vector<float> q(rows * dq), k(rows * dkv), v(rows * dkv), att(rows * dq), proj(rows * d),
      gated(rows * f), up(rows * f);
  // One queue per step: six per layer, then the output projection.
  constexpr size_t kSteps = 6;
  std::vector<Chunks> queues(n_layers * kSteps + 1);

#pragma omp parallel
  {
    thread_local ThreadScratch s;
    s.h.resize(static_cast<size_t>(rows * std::max(d, f)));
    s.scores.resize(static_cast<size_t>(n_keys));
    float* h = s.h.data();
    // Columns [n0, n1) of a projection's output added to the residual stream.
    auto add_residual = [&](int64_t n0, int64_t n1) {
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t j = n0; j < n1; ++j) x[r * d + j] += proj[r * d + j];
    };

    for (size_t li = 0; li < n_layers; ++li) {
      const StepModel::Layer& L = m.layers[li];
      Chunks* queue = &queues[li * kSteps];
      // q / k / v of the normalized rows, their output columns (concatenated) split over
      // the threads; every thread normalizes, which is cheaper than a barrier.
      for (int64_t r = 0; r < rows; ++r) rms_norm_row(x + r * d, L.attn_norm, d, m.eps, h + r * d);
      s.input.set(h, rows, d);
      queue[0].run(dq + 2 * dkv, kRowChunk, [&](int64_t c0, int64_t c1) {
        s.input.apply(L.q, std::clamp<int64_t>(c0, 0, dq), std::clamp<int64_t>(c1, 0, dq), q.data());
        s.input.apply(L.k, std::clamp<int64_t>(c0 - dq, 0, dkv), std::clamp<int64_t>(c1 - dq, 0, dkv), k.data());
        s.input.apply(L.v, std::clamp<int64_t>(c0 - dq - dkv, 0, dkv), std::clamp<int64_t>(c1 - dq - dkv, 0, dkv),
                      v.data());
      });
#pragma omp barrier
      // Keys rotated and written with the values into the cache at `pos`, by (row, head).
      queue[1].run(rows * hkv, 1, [&](int64_t i, int64_t) {
        const int64_t r = i / hkv, g = i % hkv;
        float* kr = k.data() + r * dkv + g * dh;
        rotary_row(kr, 1, dh, cos, sin);
        const int64_t at = ((r * hkv + g) * cap[li] + pos) * dh;
        std::copy(kr, kr + dh, kc[li] + at);
        std::copy(v.data() + r * dkv + g * dh, v.data() + r * dkv + (g + 1) * dh, vc[li] + at);
      });
#pragma omp barrier
      // Attention by (row, query head); the head's query rotated by the thread that uses it.
      queue[2].run(rows * hq, 1, [&](int64_t i, int64_t) {
        const int64_t r = i / hq, hh = i % hq, g = hh / group;
        float* qr = q.data() + r * dq + hh * dh;
        rotary_row(qr, 1, dh, cos, sin);
        const int64_t head = (r * hkv + g) * cap[li] * dh;
        ops::attend_query_row(qr, kc[li] + head, dh, vc[li] + head, dh, n_keys, dh, s.scores.data(),
                              att.data() + r * dq + hh * dh);
      });
#pragma omp barrier
      // Output projection, each thread adding its columns to the residual stream.
      s.input.set(att.data(), rows, dq);
      queue[3].run(d, kRowChunk, [&](int64_t c0, int64_t c1) {
        s.input.apply(L.o, c0, c1, proj.data());
        add_residual(c0, c1);
      });
#pragma omp barrier
      // gate and up by the same columns, so each thread gates its own.
      for (int64_t r = 0; r < rows; ++r) rms_norm_row(x + r * d, L.mlp_norm, d, m.eps, h + r * d);
      s.input.set(h, rows, d);
      queue[4].run(f, kRowChunk, [&](int64_t c0, int64_t c1) {
        s.input.apply(L.gate, c0, c1, gated.data());
        s.input.apply(L.up, c0, c1, up.data());
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t j = c0; j < c1; ++j) gated[r * f + j] = silu_times(gated[r * f + j], up[r * f + j]);
      });
#pragma omp barrier
      s.input.set(gated.data(), rows, f);
      queue[5].run(d, kRowChunk, [&](int64_t c0, int64_t c1) {
        s.input.apply(L.down, c0, c1, proj.data());
        add_residual(c0, c1);
      });
#pragma omp barrier
    }
    for (int64_t r = 0; r < rows; ++r) rms_norm_row(x + r * d, m.norm, d, m.eps, h + r * d);
    s.input.set(h, rows, d);
    queues.back().run(m.vocab, kRowChunk, [&](int64_t c0, int64_t c1) { s.input.apply(m.lm_head, c0, c1, logits); });
  }
}

}  // namespace peft::models::llama
