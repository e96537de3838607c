#include "peft/ops/few_query_attention.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "peft/error.h"
#include "peft/io/dtype.h"
#include "peft/ops/few_rows_linear.h"
#include "peft/ops/row_kernel.h"

namespace peft::ops {

namespace {

// Strided views of one (batch, head) pair's rows.
struct Rows {
  const float* p;
  int64_t stride;  // floats between consecutive rows
  const float* row(int64_t i) const { return p + i * stride; }
};

// One query row: scores into `s` (n keys), softmax, weighted sum of v into `out` (d).
void attend_row_portable(const float* q, const Rows& k, const Rows& v, int64_t n, int64_t d, float scale,
                         float* s, float* out) {
  float m = -INFINITY;
  for (int64_t j = 0; j < n; ++j) {
    const float* kr = k.row(j);
    float acc = 0;
    for (int64_t c = 0; c < d; ++c) acc += q[c] * kr[c];
    s[j] = acc * scale;
    m = std::max(m, s[j]);
  }
  float sum = 0;
  for (int64_t j = 0; j < n; ++j) sum += (s[j] = std::exp(s[j] - m));
  std::fill(out, out + d, 0.0f);
  for (int64_t j = 0; j < n; ++j) {
    const float p = s[j] / sum;
    const float* vr = v.row(j);
    for (int64_t c = 0; c < d; ++c) out[c] += p * vr[c];
  }
}

#ifdef PEFT_X86
using row_kernel::hsum;

// e^x for x <= 0 (scores minus their maximum): x = n ln2 + r, |r| <= ln2 / 2, e^r by
// its Taylor polynomial to r^7 (truncation error < 6e-9 relative, under float32's
// rounding), times 2^n built in the exponent bits. Below -87 the result is flushed to
// (almost) zero, as float32 underflows there anyway.
PEFT_AVX2 inline __m256 exp_nonpositive(__m256 x) {
  x = _mm256_max_ps(x, _mm256_set1_ps(-87.0f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);  // ln 2 in two parts: exact n * hi
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.0f / 5040);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(bits));
}

// out[c0, c0 + 8 V) = inv * sum_r p[r] v[r][c0, c0 + 8 V): V accumulators in registers
// (a compile-time V, fully unrolled: with a run-time count GCC kept them on the stack).
template <int V>
PEFT_AVX2 inline void weighted_sum(const float* p, const Rows& v, int64_t n, int64_t c0, float inv,
                                   float* out) {
  __m256 acc[V];
#pragma GCC unroll 8
  for (int t = 0; t < V; ++t) acc[t] = _mm256_setzero_ps();
  for (int64_t r = 0; r < n; ++r) {
    const __m256 pr = _mm256_set1_ps(p[r]);
    const float* vr = v.row(r) + c0;
#pragma GCC unroll 8
    for (int t = 0; t < V; ++t) acc[t] = _mm256_fmadd_ps(pr, _mm256_loadu_ps(vr + 8 * t), acc[t]);
  }
  const __m256 iv = _mm256_set1_ps(inv);
#pragma GCC unroll 8
  for (int t = 0; t < V; ++t) _mm256_storeu_ps(out + c0 + 8 * t, _mm256_mul_ps(acc[t], iv));
}

// The same for d a multiple of 8. Keys four at a time: four independent FMA chains.
PEFT_AVX2 void attend_row_avx2(const float* q, const Rows& k, const Rows& v, int64_t n, int64_t d,
                               float scale, float* s, float* out) {
  int64_t j = 0;
  for (; j + 4 <= n; j += 4) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    const float *k0 = k.row(j), *k1 = k.row(j + 1), *k2 = k.row(j + 2), *k3 = k.row(j + 3);
    for (int64_t c = 0; c < d; c += 8) {
      const __m256 qv = _mm256_loadu_ps(q + c);
      a0 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k0 + c), a0);
      a1 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k1 + c), a1);
      a2 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k2 + c), a2);
      a3 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k3 + c), a3);
    }
    s[j] = hsum(a0) * scale;
    s[j + 1] = hsum(a1) * scale;
    s[j + 2] = hsum(a2) * scale;
    s[j + 3] = hsum(a3) * scale;
  }
  for (; j < n; ++j) {
    __m256 a = _mm256_setzero_ps();
    const float* kr = k.row(j);
    for (int64_t c = 0; c < d; c += 8)
      a = _mm256_fmadd_ps(_mm256_loadu_ps(q + c), _mm256_loadu_ps(kr + c), a);
    s[j] = hsum(a) * scale;
  }

  float m = -INFINITY;
  for (int64_t i = 0; i < n; ++i) m = std::max(m, s[i]);
  const __m256 mv = _mm256_set1_ps(m);
  __m256 sum8 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 e = exp_nonpositive(_mm256_sub_ps(_mm256_loadu_ps(s + i), mv));
    _mm256_storeu_ps(s + i, e);
    sum8 = _mm256_add_ps(sum8, e);
  }
  float sum = hsum(sum8);
  for (; i < n; ++i) sum += (s[i] = std::exp(s[i] - m));
  const float inv = 1.0f / sum;

  int64_t c0 = 0;
  for (; c0 + 64 <= d; c0 += 64) weighted_sum<8>(s, v, n, c0, inv, out);  // Whisper's heads: d = 64
  for (; c0 < d; c0 += 8) weighted_sum<1>(s, v, n, c0, inv, out);
}
#endif

void check(const at::Tensor& t, const char* name) {
  if (!t.defined() || t.dim() != 4 || t.scalar_type() != at::kFloat || t.stride(3) != 1)
    throw ShapeError(std::string("few_query_attention: ") + name +
                     " must be float32 [B, H, T, D] with a contiguous last dimension, got " +
                     (t.defined() ? io::shape_to_string(t.sizes().vec()) : std::string("none")));
}

// Rows of t[b][h] as a pointer and a row stride.
Rows rows_of(const at::Tensor& t, int64_t b, int64_t h) {
  return {t.data_ptr<float>() + b * t.stride(0) + h * t.stride(1), t.stride(2)};
}

}  // namespace

void attend_query_row(const float* q, const float* k, int64_t k_stride, const float* v, int64_t v_stride,
                      int64_t n, int64_t d, float* scores, float* out) {
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(d)));
  const Rows kr{k, k_stride}, vr{v, v_stride};
#ifdef PEFT_X86
  if (few_rows_linear_vectorized() && d % 8 == 0) return attend_row_avx2(q, kr, vr, n, d, scale, scores, out);
#endif
  attend_row_portable(q, kr, vr, n, d, scale, scores, out);
}

at::Tensor few_query_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                               int64_t causal_offset) {
  check(q, "q");
  check(k, "k");
  check(v, "v");
  const int64_t b = q.size(0), h = q.size(1), tq = q.size(2), d = q.size(3), tk = k.size(2);
  if (k.size(0) != b || v.size(0) != b || k.size(1) != h || v.size(1) != h || k.size(3) != d ||
      v.size(3) != d || v.size(2) != tk)
    throw ShapeError("few_query_attention: q " + io::shape_to_string(q.sizes().vec()) + ", k " +
                     io::shape_to_string(k.sizes().vec()) + ", v " + io::shape_to_string(v.sizes().vec()) +
                     " do not fit together");
  if (tk < 1 || causal_offset < -1 || (causal_offset >= 0 && causal_offset >= tk))
    throw ShapeError("few_query_attention: " + std::to_string(tk) + " keys for causal offset " +
                     std::to_string(causal_offset));
  at::Tensor out = at::empty({b, h, tq, d}, q.options());
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(d)));
#ifdef PEFT_X86
  const bool fast = few_rows_linear_vectorized() && d % 8 == 0;
#endif
  at::parallel_for(0, b * h, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> scores(static_cast<size_t>(tk));
    for (int64_t item = begin; item < end; ++item) {
      const int64_t bi = item / h, hi = item % h;
      const Rows qr = rows_of(q, bi, hi), kr = rows_of(k, bi, hi), vr = rows_of(v, bi, hi);
      float* o = out.data_ptr<float>() + item * tq * d;
      for (int64_t i = 0; i < tq; ++i) {
        const int64_t n = causal_offset >= 0 ? std::min(tk, causal_offset + i + 1) : tk;
#ifdef PEFT_X86
        if (fast) {
          attend_row_avx2(qr.row(i), kr, vr, n, d, scale, scores.data(), o + i * d);
          continue;
        }
#endif
        attend_row_portable(qr.row(i), kr, vr, n, d, scale, scores.data(), o + i * d);
      }
    }
  });
  return out;
}

}  // namespace peft::ops
