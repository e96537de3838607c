#include "peft/models/llama_step.h"

#include <ATen/ATen.h>
#include <omp.h>

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
  const float inv =
      1.0f / std::sqrt(static_cast<float>(ss / static_cast<double>(d)) + static_cast<float>(eps));
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

// The work of one step (projection rows, heads) in units, split over the threads: each
// thread's part is a range of units in one atomic word, which its owner takes from the
// front a chunk at a time, and which a thread done with its own part takes from the back.
// The threads then reach the step's end together even when one runs slower (shared
// memory bandwidth, another process on its core): with fixed halves the float32 model
// spent 13% of its decode time at barriers (perf, 2 threads). One counter shared by all
// balanced as well but moved a cache line between the cores for every chunk (perf, int4:
// about 2% of the decode time on the atomic adds); an owner's claims stay in its cache.
struct alignas(64) Part {
  std::atomic<uint64_t> range{0};  // first unit | end unit << 32
};

uint64_t pack(uint64_t begin, uint64_t end) { return begin | end << 32; }

class StepWork {
 public:
  // Parts for `threads` threads, of n_units units.
  StepWork(Part* parts, int threads, int64_t n_units) : parts_(parts), threads_(threads) {
    for (int t = 0; t < threads; ++t)
      parts_[t].range.store(pack(static_cast<uint64_t>(n_units * t / threads),
                                 static_cast<uint64_t>(n_units * (t + 1) / threads)),
                            std::memory_order_relaxed);
  }
  StepWork() = default;

  // Calls f(u0, u1) on chunks of up to `chunk` units until no part has any left: thread
  // `tid`'s own from the front, then the others' from the back. Threads that are not in
  // the team (a smaller team than planned) leave their parts to the others.
  template <class F>
  void run(int tid, int64_t chunk, F&& f) const {
    uint64_t u0, u1;
    if (tid < threads_)
      while (take(parts_[tid], chunk, true, u0, u1)) f(static_cast<int64_t>(u0), static_cast<int64_t>(u1));
    for (int o = 1; o <= threads_; ++o) {
      Part& p = parts_[(tid + o) % threads_];
      while (take(p, chunk, false, u0, u1)) f(static_cast<int64_t>(u0), static_cast<int64_t>(u1));
    }
  }

 private:
  static bool take(Part& p, int64_t chunk, bool front, uint64_t& u0, uint64_t& u1) {
    uint64_t r = p.range.load(std::memory_order_relaxed);
    for (;;) {
      const uint64_t lo = r & 0xffffffffu, hi = r >> 32;
      if (lo >= hi) return false;
      const uint64_t n = std::min<uint64_t>(static_cast<uint64_t>(chunk), hi - lo);
      const uint64_t next = front ? pack(lo + n, hi) : pack(lo, hi - n);
      if (p.range.compare_exchange_weak(r, next, std::memory_order_relaxed)) {
        u0 = front ? lo : hi - n;
        u1 = front ? lo + n : hi;
        return true;
      }
    }
  }

  Part* parts_ = nullptr;
  int threads_ = 0;
};

// Projection rows per unit of work: whole groups of the kernels' four rows, and few
// enough claims for the 49152-row output projection.
constexpr int64_t kRowUnit = 32;

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

void fused_step(const StepModel& m, float* x, int64_t rows, KVCache& cache, const float* cos,
                const float* sin, float* logits) {
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
  // The steps' work: five per layer (q/k/v by head, attention by row and head, and the
  // o, gate/up and down projections by kRowUnit rows), then the output projection.
  constexpr size_t kSteps = 5;
  const int threads = std::max(1, omp_get_max_threads());
  auto row_units = [](int64_t n) { return (n + kRowUnit - 1) / kRowUnit; };
  std::vector<Part> parts((n_layers * kSteps + 1) * static_cast<size_t>(threads));
  std::vector<StepWork> work;
  work.reserve(n_layers * kSteps + 1);
  for (size_t i = 0; i < n_layers; ++i)
    for (const int64_t units : {hq + 2 * hkv, rows * hq, row_units(d), row_units(f), row_units(d)})
      work.emplace_back(&parts[work.size() * threads], threads, units);
  work.emplace_back(&parts[work.size() * threads], threads, row_units(m.vocab));

#pragma omp parallel num_threads(threads)
  {
    const int tid = omp_get_thread_num();
    thread_local ThreadScratch s;
    s.h.resize(static_cast<size_t>(rows * std::max(d, f)));
    s.scores.resize(static_cast<size_t>(n_keys));
    float* h = s.h.data();
    // Rows [u0 * kRowUnit, u1 * kRowUnit) of a projection's n.
    auto rows_of = [](int64_t u0, int64_t u1, int64_t n) {
      return std::pair{std::min(n, u0 * kRowUnit), std::min(n, u1 * kRowUnit)};
    };
    // Columns [n0, n1) of a projection's output added to the residual stream.
    auto add_residual = [&](int64_t n0, int64_t n1) {
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t j = n0; j < n1; ++j) x[r * d + j] += proj[r * d + j];
    };

    for (size_t li = 0; li < n_layers; ++li) {
      const StepModel::Layer& L = m.layers[li];
      const StepWork* step = &work[li * kSteps];
      // q / k / v of the normalized rows by head (every thread normalizes: cheaper than a
      // barrier); queries and keys rotated, keys and values written into the cache at `pos`.
      for (int64_t r = 0; r < rows; ++r) rms_norm_row(x + r * d, L.attn_norm, d, m.eps, h + r * d);
      s.input.set(h, rows, d);
      step[0].run(tid, 1, [&](int64_t u, int64_t u1) {
        for (; u < u1; ++u) {
          if (u < hq) {
            s.input.apply(L.q, u * dh, (u + 1) * dh, q.data());
            for (int64_t r = 0; r < rows; ++r) rotary_row(q.data() + r * dq + u * dh, 1, dh, cos, sin);
            continue;
          }
          const bool is_key = u < hq + hkv;
          const int64_t g = is_key ? u - hq : u - hq - hkv;
          std::vector<float>& out = is_key ? k : v;
          s.input.apply(is_key ? L.k : L.v, g * dh, (g + 1) * dh, out.data());
          for (int64_t r = 0; r < rows; ++r) {
            float* src = out.data() + r * dkv + g * dh;
            if (is_key) rotary_row(src, 1, dh, cos, sin);
            std::copy(src, src + dh, (is_key ? kc : vc)[li] + ((r * hkv + g) * cap[li] + pos) * dh);
          }
        }
      });
#pragma omp barrier
      // Attention by (row, query head).
      step[1].run(tid, 1, [&](int64_t i, int64_t i1) {
        for (; i < i1; ++i) {
          const int64_t r = i / hq, hh = i % hq, head = (r * hkv + hh / group) * cap[li] * dh;
          ops::attend_query_row(q.data() + r * dq + hh * dh, kc[li] + head, dh, vc[li] + head, dh, n_keys, dh,
                                s.scores.data(), att.data() + r * dq + hh * dh);
        }
      });
#pragma omp barrier
      // Output projection, each thread adding its columns to the residual stream.
      s.input.set(att.data(), rows, dq);
      step[2].run(tid, 1, [&](int64_t u0, int64_t u1) {
        const auto [c0, c1] = rows_of(u0, u1, d);
        s.input.apply(L.o, c0, c1, proj.data());
        add_residual(c0, c1);
      });
#pragma omp barrier
      // gate and up by the same columns, so each thread gates its own.
      for (int64_t r = 0; r < rows; ++r) rms_norm_row(x + r * d, L.mlp_norm, d, m.eps, h + r * d);
      s.input.set(h, rows, d);
      step[3].run(tid, 1, [&](int64_t u0, int64_t u1) {
        const auto [c0, c1] = rows_of(u0, u1, f);
        s.input.apply(L.gate, c0, c1, gated.data());
        s.input.apply(L.up, c0, c1, up.data());
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t j = c0; j < c1; ++j) gated[r * f + j] = silu_times(gated[r * f + j], up[r * f + j]);
      });
#pragma omp barrier
      s.input.set(gated.data(), rows, f);
      step[4].run(tid, 1, [&](int64_t u0, int64_t u1) {
        const auto [c0, c1] = rows_of(u0, u1, d);
        s.input.apply(L.down, c0, c1, proj.data());
        add_residual(c0, c1);
      });
#pragma omp barrier
    }
    for (int64_t r = 0; r < rows; ++r) rms_norm_row(x + r * d, m.norm, d, m.eps, h + r * d);
    s.input.set(h, rows, d);
    work.back().run(tid, 1, [&](int64_t u0, int64_t u1) {
      const auto [c0, c1] = rows_of(u0, u1, m.vocab);
      s.input.apply(m.lm_head, c0, c1, logits);
    });
  }
}

}  // namespace peft::models::llama
