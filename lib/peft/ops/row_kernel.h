// Internal to lib/peft/ops (not installed): the few-rows product kernel shared by
// few_rows_linear.cpp (float32 / float16 W) and packed_linear.cpp (int8, 4-bit groups,
// ggml blocks). A W "source" gives W's values:
//
//   float at(int64_t r, int64_t c) const;        one value
//   __m256 load8(int64_t r, int64_t c) const;    eight, c a multiple of 8 (AVX2 builds)
//   float row_scale(int64_t r) const;            a factor applied to whole dot products
//                                                (int8's per-channel scale; 1 otherwise)
//
// y[i][j] = row_scale(j) * sum_c x[i][c] * W[j][c] + bias[j], W read once per call: four
// W rows at a time against every x row while they are in L1.
#pragma once

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "peft/ops/few_rows_linear.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define PEFT_X86 1
#define PEFT_AVX2 __attribute__((target("avx2,fma,f16c")))
#endif

namespace peft::ops::row_kernel {

// Fewest W rows handed to one thread: a 384-row projection of tiny.en splits over two
// threads (with 512 one thread did all of it while the other waited), and a 51864-row
// output projection splits evenly.
constexpr int64_t kGrain = 128;

// Portable version: the compiler vectorises the inner loop for the base ISA.
template <class W>
void rows_portable(const float* x, int64_t m_rows, int64_t k, const W& w, int64_t n0, int64_t n1,
                   const float* bias, float* y, int64_t n) {
  std::vector<float> row(static_cast<size_t>(k));
  for (int64_t j = n0; j < n1; ++j) {
    for (int64_t c = 0; c < k; ++c) row[c] = w.at(j, c);
    for (int64_t i = 0; i < m_rows; ++i) {
      float acc = 0;
      for (int64_t c = 0; c < k; ++c) acc += x[i * k + c] * row[c];
      y[i * n + j] = acc * w.row_scale(j) + (bias ? bias[j] : 0.0f);
    }
  }
}

#ifdef PEFT_X86
PEFT_AVX2 inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 0x55));
  return _mm_cvtss_f32(s);
}

// XR (1 or 2) x rows against four W rows: 4 * XR independent FMA chains keep the FMA
// units busy (one chain would wait on its own latency every step), each 8-value slice of
// W is loaded and widened once per group of x rows, and the four W rows (a few KB) stay
// in L1 while further groups of x rows pass over them.
template <int XR, class W>
PEFT_AVX2 void block_avx2(const float* x, int64_t k, const W& w, const int64_t* wr, int64_t w_rows,
                          float* out, int64_t out_stride) {
  const int64_t k8 = k - k % 8;
  __m256 a[XR][4];
  // Fully unrolled (the pragmas): with a loop over r, GCC -O2 kept the accumulators on
  // the stack, a load and a store around every FMA (tests/quant/bench_quant_linear, 5 rows
  // x the 51864 x 384 float16 output projection: 8.1-9.6 ms before, 6.0 ms after).
#pragma GCC unroll 4
  for (auto& row : a)
#pragma GCC unroll 4
    for (auto& v : row) v = _mm256_setzero_ps();
  for (int64_t c = 0; c < k8; c += 8) {
    __m256 xv[XR];
#pragma GCC unroll 4
    for (int i = 0; i < XR; ++i) xv[i] = _mm256_loadu_ps(x + i * k + c);
#pragma GCC unroll 4
    for (int r = 0; r < 4; ++r) {
      const __m256 wv = w.load8(wr[r], c);
#pragma GCC unroll 4
      for (int i = 0; i < XR; ++i) a[i][r] = _mm256_fmadd_ps(xv[i], wv, a[i][r]);
    }
  }
  for (int i = 0; i < XR; ++i)
    for (int64_t r = 0; r < w_rows; ++r) {
      float s = hsum(a[i][r]);
      for (int64_t c = k8; c < k; ++c) s += x[i * k + c] * w.at(wr[r], c);
      out[i * out_stride + r] = s * w.row_scale(wr[r]);
    }
}

template <class W>
PEFT_AVX2 void rows_avx2(const float* x, int64_t m_rows, int64_t k, const W& w, int64_t n0, int64_t n1,
                         const float* bias, float* y, int64_t n) {
  for (int64_t j = n0; j < n1; j += 4) {
    const int64_t w_rows = std::min<int64_t>(4, n1 - j);
    int64_t wr[4];
    for (int64_t r = 0; r < 4; ++r) wr[r] = j + std::min(r, w_rows - 1);
    int64_t i = 0;
    for (; i + 2 <= m_rows; i += 2) block_avx2<2>(x + i * k, k, w, wr, w_rows, y + i * n + j, n);
    if (i < m_rows) block_avx2<1>(x + i * k, k, w, wr, w_rows, y + i * n + j, n);
    if (bias)
      for (int64_t r = 0; r < m_rows; ++r)
        for (int64_t c = 0; c < w_rows; ++c) y[r * n + j + c] += bias[j + c];
  }
}
#endif

// Columns [n0, n1) of y [m_rows, n] = x [m_rows, k] W^T through `w`, on the calling thread.
template <class W>
void rows(const float* x, int64_t m_rows, int64_t k, const W& w, int64_t n0, int64_t n1, const float* bias,
          float* y, int64_t n) {
#ifdef PEFT_X86
  if (few_rows_linear_vectorized()) return rows_avx2(x, m_rows, k, w, n0, n1, bias, y, n);
#endif
  rows_portable(x, m_rows, k, w, n0, n1, bias, y, n);
}

// x [m_rows, k], W [n, k] through `w`, y [m_rows, n]; W's rows split over libtorch's threads.
template <class W>
void run(const float* x, int64_t m_rows, int64_t k, const W& w, int64_t n, const float* bias, float* y) {
  at::parallel_for(0, n, kGrain, [&](int64_t n0, int64_t n1) { rows(x, m_rows, k, w, n0, n1, bias, y, n); });
}

}  // namespace peft::ops::row_kernel
