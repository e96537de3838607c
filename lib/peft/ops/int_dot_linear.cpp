#include "peft/ops/int_dot_linear.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "peft/io/half.h"
#include "peft/ops/few_rows_linear.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define PEFT_X86 1
#define PEFT_AVX2 __attribute__((target("avx2,fma,f16c")))
#endif

namespace peft::ops {

namespace {

constexpr int64_t kBlock = 32;
// Largest activation code: d = max |x| / kQMax.
constexpr float kQMax = 32767.0f;
// Fewest W rows handed to one thread (as row_kernel.h's kGrain).
constexpr int64_t kGrain = 128;

using Activations = IntActivations;

void quantize_scalar(const float* x, int64_t n, int16_t* q, float& d, float& ds) {
  float amax = 0;
  for (int64_t j = 0; j < n; ++j) amax = std::max(amax, std::fabs(x[j]));
  d = amax / kQMax;
  const float id = d != 0 ? 1.0f / d : 0.0f;
  int sum = 0;
  for (int64_t j = 0; j < n; ++j) {
    q[j] = static_cast<int16_t>(std::nearbyint(x[j] * id));
    sum += q[j];
  }
  ds = d * static_cast<float>(sum);
}

#ifdef PEFT_X86
PEFT_AVX2 void quantize_block_avx2(const float* x, int16_t* q, float& d, float& ds) {
  __m256 v[4];
  __m256 amax = _mm256_setzero_ps();
  const __m256 sign = _mm256_set1_ps(-0.0f);
  for (int i = 0; i < 4; ++i) {
    v[i] = _mm256_loadu_ps(x + 8 * i);
    amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign, v[i]));
  }
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 0x55));
  d = _mm_cvtss_f32(m) / kQMax;
  const __m256 id = _mm256_set1_ps(d != 0 ? 1.0f / d : 0.0f);
  __m256i w[4];
  for (int i = 0; i < 4; ++i)
    w[i] = _mm256_cvtps_epi32(
        _mm256_round_ps(_mm256_mul_ps(v[i], id), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  const __m256i s = _mm256_add_epi32(_mm256_add_epi32(w[0], w[1]), _mm256_add_epi32(w[2], w[3]));
  __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
  s4 = _mm_hadd_epi32(s4, s4);
  s4 = _mm_hadd_epi32(s4, s4);
  ds = d * static_cast<float>(_mm_cvtsi128_si32(s4));
  // int32 -> int16 with packs (lanes interleave: a0-3 b0-3 | a4-7 b4-7), put back in order.
  const __m256i lo = _mm256_permute4x64_epi64(_mm256_packs_epi32(w[0], w[1]), 0xD8);
  const __m256i hi = _mm256_permute4x64_epi64(_mm256_packs_epi32(w[2], w[3]), 0xD8);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(q), lo);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + 16), hi);
}
#endif

}  // namespace

void quantize_for_int_dot(const float* x, int64_t rows, int64_t k, bool interleaved, IntActivations& a) {
  a.rows = rows;
  a.interleaved = interleaved;
  a.k = k;
  a.blocks = k / kBlock;
  a.q.resize(static_cast<size_t>(rows * k));
  a.dds.resize(static_cast<size_t>(rows * a.blocks * 2));
  float tmp[kBlock];
#ifdef PEFT_X86
  const bool fast = few_rows_linear_vectorized();
#endif
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t b = 0; b < a.blocks; ++b) {
      const float* src = x + r * k + b * kBlock;
      if (interleaved) {
        for (int64_t j = 0; j < kBlock / 2; ++j) {
          tmp[j] = src[2 * j];
          tmp[kBlock / 2 + j] = src[2 * j + 1];
        }
        src = tmp;
      }
      int16_t* q = a.q.data() + r * k + b * kBlock;
      float& d = a.dds[2 * (r * a.blocks + b)];
      float& ds = a.dds[2 * (r * a.blocks + b) + 1];
#ifdef PEFT_X86
      if (fast) {
        quantize_block_avx2(src, q, d, ds);
        continue;
      }
#endif
      quantize_scalar(src, kBlock, q, d, ds);
    }
}

namespace {

inline float f16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return io::half_to_float(h);
}

#ifdef PEFT_X86
// 16 bytes of two 4-bit codes each as int16: the low nibbles (lo), then the high ones (hi).
PEFT_AVX2 inline void nibbles(const uint8_t* p, __m256i& lo, __m256i& hi) {
  const __m256i v = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  lo = _mm256_and_si256(v, _mm256_set1_epi16(15));
  hi = _mm256_srli_epi16(v, 4);
}

// 32 signed bytes as int16.
PEFT_AVX2 inline void bytes(const int8_t* p, __m256i& lo, __m256i& hi) {
  lo = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  hi = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16)));
}
#endif

// W sources. Each gives, for block b of row r: code(r, b, j) the integer weight paired
// with activation j of the block (in the activation's order), scale(r, b) the factor of
// d * sum(code * q), offset(r, b) the factor of d * sum(q) (kOffset: not always 0), and
// row_scale(r) applied to the whole dot product; load32(r, b, lo, hi) the 32 codes as
// int16 (AVX2), scales(r, b) [scale, offset, 0, 0] (AVX2 and F16C).

template <PackedFormat F>
struct GgufSource {
  static constexpr bool kOffset = F != PackedFormat::kGgufQ8_0;
  static constexpr bool kInterleaved = false;
  static constexpr int64_t kBlockBytes = F == PackedFormat::kGgufQ4_0   ? 18
                                         : F == PackedFormat::kGgufQ4_1 ? 20
                                                                        : 34;
  static constexpr int64_t kCodes = F == PackedFormat::kGgufQ4_1 ? 4 : 2;
  const uint8_t* p;
  int64_t row_bytes;
  const uint8_t* block(int64_t r, int64_t b) const { return p + r * row_bytes + b * kBlockBytes; }
  const void* addr(int64_t r, int64_t b) const { return block(r, b); }
  int code(int64_t r, int64_t b, int j) const {
    const uint8_t* qs = block(r, b) + kCodes;
    if constexpr (F == PackedFormat::kGgufQ8_0) return static_cast<int8_t>(qs[j]);
    return j < 16 ? qs[j] & 15 : qs[j - 16] >> 4;
  }
  float scale(int64_t r, int64_t b) const { return f16(block(r, b)); }
  float offset(int64_t r, int64_t b) const {
    if constexpr (F == PackedFormat::kGgufQ4_0) return -8.0f * f16(block(r, b));
    if constexpr (F == PackedFormat::kGgufQ4_1) return f16(block(r, b) + 2);
    return 0.0f;
  }
  float row_scale(int64_t) const { return 1.0f; }
#ifdef PEFT_X86
  // [scale, offset factor, 0, 0]
  PEFT_AVX2 __m128 scales(int64_t r, int64_t b) const {
    if constexpr (F == PackedFormat::kGgufQ4_1) {
      uint32_t dm;
      std::memcpy(&dm, block(r, b), 4);
      return _mm_cvtph_ps(_mm_cvtsi32_si128(static_cast<int>(dm)));
    }
    uint16_t d;
    std::memcpy(&d, block(r, b), 2);
    const __m128 v = _mm_cvtph_ps(_mm_cvtsi32_si128(d));
    if constexpr (F == PackedFormat::kGgufQ4_0)
      return _mm_mul_ps(_mm_shuffle_ps(v, v, 0), _mm_setr_ps(1, -8, 0, 0));
    return v;
  }
  PEFT_AVX2 void load32(int64_t r, int64_t b, __m256i& lo, __m256i& hi) const {
    const uint8_t* qs = block(r, b) + kCodes;
    if constexpr (F == PackedFormat::kGgufQ8_0)
      bytes(reinterpret_cast<const int8_t*>(qs), lo, hi);
    else
      nibbles(qs, lo, hi);
  }
#endif
};

struct Int8Source {
  static constexpr bool kOffset = false;
  static constexpr bool kInterleaved = false;
  const int8_t* q;
  int64_t k;
  const float* rs;
  int code(int64_t r, int64_t b, int j) const { return q[r * k + b * kBlock + j]; }
  const void* addr(int64_t r, int64_t b) const { return q + r * k + b * kBlock; }
  float scale(int64_t, int64_t) const { return 1.0f; }
  float offset(int64_t, int64_t) const { return 0.0f; }
  float row_scale(int64_t r) const { return rs[r]; }
#ifdef PEFT_X86
  PEFT_AVX2 __m128 scales(int64_t, int64_t) const { return _mm_setr_ps(1, 0, 0, 0); }
  PEFT_AVX2 void load32(int64_t r, int64_t b, __m256i& lo, __m256i& hi) const {
    bytes(q + r * k + b * kBlock, lo, hi);
  }
#endif
};

// int4 nibble groups: code c means c - 8 times the group's scale; column 2i is the low
// nibble of byte i, so a block's 16 bytes give the even columns (low nibbles), then the
// odd ones (high nibbles): the activations are interleaved to match.
struct Int4Source {
  static constexpr bool kOffset = true;
  static constexpr bool kInterleaved = true;
  const uint8_t* p;
  int64_t k;
  const float* gs;  // [n, k / group]
  int shift;        // log2(group / 32)
  const void* addr(int64_t r, int64_t b) const { return p + r * (k / 2) + b * 16; }
  int code(int64_t r, int64_t b, int j) const {
    const uint8_t byte = p[r * (k / 2) + b * 16 + (j & 15)];
    return j < 16 ? byte & 15 : byte >> 4;
  }
  float scale(int64_t r, int64_t b) const { return gs[r * ((k / kBlock) >> shift) + (b >> shift)]; }
  float offset(int64_t r, int64_t b) const { return -8.0f * scale(r, b); }
  float row_scale(int64_t) const { return 1.0f; }
#ifdef PEFT_X86
  PEFT_AVX2 __m128 scales(int64_t r, int64_t b) const {
    return _mm_mul_ps(_mm_set1_ps(scale(r, b)), _mm_setr_ps(1, -8, 0, 0));
  }
  PEFT_AVX2 void load32(int64_t r, int64_t b, __m256i& lo, __m256i& hi) const {
    nibbles(p + r * (k / 2) + b * 16, lo, hi);
  }
#endif
};

template <class S>
void rows_portable(const Activations& a, const S& w, int64_t n0, int64_t n1, const float* bias, float* y,
                   int64_t n) {
  for (int64_t j = n0; j < n1; ++j)
    for (int64_t i = 0; i < a.rows; ++i) {
      float acc = 0;
      for (int64_t b = 0; b < a.blocks; ++b) {
        const int16_t* q = a.q.data() + i * a.k + b * kBlock;
        int32_t sum = 0;
        for (int c = 0; c < kBlock; ++c) sum += w.code(j, b, c) * q[c];
        acc += w.scale(j, b) * a.d(i, b) * static_cast<float>(sum);
        if constexpr (S::kOffset) acc += w.offset(j, b) * a.ds(i, b);
      }
      y[i * n + j] = acc * w.row_scale(j) + (bias ? bias[j] : 0.0f);
    }
}

#ifdef PEFT_X86
PEFT_AVX2 inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 0x55));
  return _mm_cvtss_f32(s);
}

// XR activation rows against four W rows: each W block is loaded and widened to int16
// once for the XR rows; madd sums int16 products in pairs to int32 (exact: |code| <= 128
// times |q| <= 32767, 32 of them, stay below 2^31), then one float FMA per block.
template <int XR, class S>
PEFT_AVX2 void block_avx2(const Activations& a, int64_t i0, const S& w, const int64_t* wr, int64_t w_rows,
                          float* out, int64_t out_stride) {
  __m256 acc[XR][4];
  __m128 off[XR][4];  // lane 1: the offset terms
#pragma GCC unroll 4
  for (int i = 0; i < XR; ++i)
#pragma GCC unroll 4
    for (int r = 0; r < 4; ++r) {
      acc[i][r] = _mm256_setzero_ps();
      off[i][r] = _mm_setzero_ps();
    }
  const int64_t nb = a.blocks;
  for (int64_t b = 0; b < nb; ++b) {
    __m256i xlo[XR], xhi[XR];
    __m128 xs[XR];  // d, d * sum(q)
#pragma GCC unroll 4
    for (int i = 0; i < XR; ++i) {
      const int16_t* xq = a.q.data() + (i0 + i) * a.k + b * kBlock;
      xlo[i] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq));
      xhi[i] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + 16));
      xs[i] =
          _mm_castpd_ps(_mm_load_sd(reinterpret_cast<const double*>(a.dds.data() + 2 * ((i0 + i) * nb + b))));
    }
#pragma GCC unroll 4
    for (int r = 0; r < 4; ++r) {
      __m256i wlo, whi;
      w.load32(wr[r], b, wlo, whi);
      // The same block eight rows on (measured: + 8 rows 105-139 tok/s, + 4 rows 105-119, none
      // 66-78 on SmolLM2 Q4_1, 2 threads): a group of four rows is only a few cache lines
      // long, and the hardware prefetcher lagged behind.
      _mm_prefetch(static_cast<const char*>(w.addr(wr[r] + 8, b)), _MM_HINT_T0);
      const __m128 so = w.scales(wr[r], b);  // scale, offset factor
#pragma GCC unroll 4
      for (int i = 0; i < XR; ++i) {
        const __m256i p32 = _mm256_add_epi32(_mm256_madd_epi16(wlo, xlo[i]), _mm256_madd_epi16(whi, xhi[i]));
        const __m128 c = _mm_mul_ps(so, xs[i]);  // s * d, o * d * sum(q)
        acc[i][r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p32), _mm256_broadcastss_ps(c), acc[i][r]);
        if constexpr (S::kOffset) off[i][r] = _mm_add_ps(off[i][r], c);
      }
    }
  }
  for (int i = 0; i < XR; ++i)
    for (int64_t r = 0; r < w_rows; ++r)
      out[i * out_stride + r] =
          (hsum(acc[i][r]) + _mm_cvtss_f32(_mm_shuffle_ps(off[i][r], off[i][r], 1))) * w.row_scale(wr[r]);
}

template <class S>
PEFT_AVX2 void rows_avx2(const Activations& a, const S& w, int64_t n0, int64_t n1, const float* bias,
                         float* y, int64_t n) {
  for (int64_t j = n0; j < n1; j += 4) {
    const int64_t w_rows = std::min<int64_t>(4, n1 - j);
    int64_t wr[4];
    for (int64_t r = 0; r < 4; ++r) wr[r] = j + std::min(r, w_rows - 1);
    int64_t i = 0;
    for (; i + 2 <= a.rows; i += 2) block_avx2<2>(a, i, w, wr, w_rows, y + i * n + j, n);
    if (i < a.rows) block_avx2<1>(a, i, w, wr, w_rows, y + i * n + j, n);
    if (bias)
      for (int64_t r = 0; r < a.rows; ++r)
        for (int64_t c = 0; c < w_rows; ++c) y[r * n + j + c] += bias[j + c];
  }
}
#endif

template <class S>
void rows(const Activations& a, const S& w, int64_t n0, int64_t n1, const float* bias, float* y, int64_t n) {
#ifdef PEFT_X86
  if (few_rows_linear_vectorized()) return rows_avx2(a, w, n0, n1, bias, y, n);
#endif
  rows_portable(a, w, n0, n1, bias, y, n);
}

// Calls f with the source object for w's format.
template <class F>
void with_source(const PackedWeight& w, F&& f) {
  const auto* p = static_cast<const uint8_t*>(w.data);
  switch (w.format) {
    case PackedFormat::kGgufQ4_0: {
      using S = GgufSource<PackedFormat::kGgufQ4_0>;
      return f(S{p, w.k / kBlock * S::kBlockBytes});
    }
    case PackedFormat::kGgufQ4_1: {
      using S = GgufSource<PackedFormat::kGgufQ4_1>;
      return f(S{p, w.k / kBlock * S::kBlockBytes});
    }
    case PackedFormat::kGgufQ8_0: {
      using S = GgufSource<PackedFormat::kGgufQ8_0>;
      return f(S{p, w.k / kBlock * S::kBlockBytes});
    }
    case PackedFormat::kInt8Rows:
      return f(Int8Source{static_cast<const int8_t*>(w.data), w.k, w.row_scale});
    case PackedFormat::kNibbleGroups: {
      int shift = 0;
      while ((kBlock << shift) < w.group) ++shift;
      return f(Int4Source{p, w.k, w.group_scale, shift});
    }
  }
}

// One buffer per calling thread, reused: decoder steps call this hundreds of times.
// (Workers reach it through a reference: naming the thread_local there would be theirs.)
const Activations& quantized(const float* x, int64_t m_rows, int64_t k, bool interleaved) {
  thread_local Activations buffer;
  quantize_for_int_dot(x, m_rows, k, interleaved, buffer);
  return buffer;
}

bool is_int4_table(const float* lut) {
  if (!lut) return false;
  for (int c = 0; c < 16; ++c)
    if (lut[c] != static_cast<float>(c - 8)) return false;
  return true;
}

}  // namespace

void int_dot_rows(const PackedWeight& w, const IntActivations& a, int64_t n0, int64_t n1, const float* bias,
                  float* y) {
  with_source(w, [&](const auto& src) { rows(a, src, n0, n1, bias, y, w.n); });
}

bool int_dot_supported(const PackedWeight& w) {
  if (w.k <= 0 || w.k % kBlock != 0) return false;
  switch (w.format) {
    case PackedFormat::kGgufQ4_0:
    case PackedFormat::kGgufQ4_1:
    case PackedFormat::kGgufQ8_0:
    case PackedFormat::kInt8Rows:
      return true;
    case PackedFormat::kNibbleGroups:
      return w.group >= kBlock && w.group % kBlock == 0 && (w.group & (w.group - 1)) == 0 &&
             w.k % w.group == 0 && is_int4_table(w.lut);
  }
  return false;
}

void int_dot_linear(const PackedWeight& w, const float* x, int64_t m_rows, const float* bias, float* y) {
  const Activations& act = quantized(x, m_rows, w.k, w.format == PackedFormat::kNibbleGroups);
  with_source(w, [&](const auto& src) {
    at::parallel_for(0, w.n, kGrain, [&](int64_t n0, int64_t n1) { rows(act, src, n0, n1, bias, y, w.n); });
  });
}

bool int_dot_linear_many(const PackedWeight* ws, size_t count, const float* x, int64_t m_rows,
                         float* const* ys) {
  if (count == 0) return true;
  const bool interleaved = ws[0].format == PackedFormat::kNibbleGroups;
  int64_t total = 0;
  for (size_t i = 0; i < count; ++i) {
    if (!int_dot_supported(ws[i]) || ws[i].k != ws[0].k ||
        (ws[i].format == PackedFormat::kNibbleGroups) != interleaved)
      return false;
    total += ws[i].n;
  }
  const Activations& act = quantized(x, m_rows, ws[0].k, interleaved);
  at::parallel_for(0, total, kGrain, [&](int64_t n0, int64_t n1) {
    int64_t first = 0;  // of weight i in the concatenated rows
    for (size_t i = 0; i < count && first < n1; first += ws[i].n, ++i) {
      const int64_t lo = std::max(n0, first), hi = std::min(n1, first + ws[i].n);
      if (lo >= hi) continue;
      with_source(ws[i],
                  [&](const auto& src) { rows(act, src, lo - first, hi - first, nullptr, ys[i], ws[i].n); });
    }
  });
  return true;
}

}  // namespace peft::ops
