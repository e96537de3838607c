#include "peft/ops/packed_linear.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "peft/error.h"
#include "peft/io/half.h"
#include "peft/ops/few_rows_linear.h"
#include "peft/ops/int_dot_linear.h"

#include "peft/ops/row_kernel.h"

namespace peft::ops {

namespace {

inline float f16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return io::half_to_float(h);
}

// Each source gives W's values: at(r, c) one value, load8(r, c) eight (c a multiple of
// 8), both before the per-row factor row_scale(r) that the kernels apply to whole dot
// products (int8's per-channel scale; 1 for the others).

struct Int8Rows {
  const int8_t* q;
  int64_t k;
  const float* scale;
  float at(int64_t r, int64_t c) const { return q[r * k + c]; }
  float row_scale(int64_t r) const { return scale[r]; }
#ifdef PEFT_X86
  PEFT_AVX2 __m256 load8(int64_t r, int64_t c) const {
    const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(q + r * k + c));
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b));
  }
#endif
};

struct NibbleGroups {
  const uint8_t* p;
  int64_t k;
  const float* scale;  // [n, k / group]
  int shift;           // log2(group)
  const float* lut;
  float at(int64_t r, int64_t c) const {
    const uint8_t b = p[r * (k / 2) + c / 2];
    return lut[(c & 1) ? b >> 4 : b & 15] * scale[r * (k >> shift) + (c >> shift)];
  }
  float row_scale(int64_t) const { return 1.0f; }
#ifdef PEFT_X86
  // Eight codes from four bytes, each looked up in the 16-entry table held in two
  // registers: permutevar picks by the low three bits, bit 3 chooses the register.
  PEFT_AVX2 __m256 load8(int64_t r, int64_t c) const {
    uint32_t bytes;
    std::memcpy(&bytes, p + r * (k / 2) + c / 2, 4);
    const __m256i shifts = _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28);
    const __m256i idx = _mm256_and_si256(
        _mm256_srlv_epi32(_mm256_set1_epi32(static_cast<int>(bytes)), shifts), _mm256_set1_epi32(15));
    const __m256 lo = _mm256_permutevar8x32_ps(_mm256_loadu_ps(lut), idx);
    const __m256 hi = _mm256_permutevar8x32_ps(_mm256_loadu_ps(lut + 8), idx);
    const __m256 v = _mm256_blendv_ps(lo, hi, _mm256_castsi256_ps(_mm256_slli_epi32(idx, 28)));
    return _mm256_mul_ps(v, _mm256_set1_ps(scale[r * (k >> shift) + (c >> shift)]));
  }
#endif
};

// ggml blocks of 32 values; byte j of a Q4 block holds value j (low nibble) and j + 16.
template <PackedFormat F>
struct GgufBlocks {
  static constexpr int64_t kBlockBytes = F == PackedFormat::kGgufQ4_0   ? 18
                                         : F == PackedFormat::kGgufQ4_1 ? 20
                                                                        : 34;
  const uint8_t* p;
  int64_t row_bytes;
  const uint8_t* block(int64_t r, int64_t c) const { return p + r * row_bytes + (c >> 5) * kBlockBytes; }
  float at(int64_t r, int64_t c) const {
    const uint8_t* b = block(r, c);
    const int j = static_cast<int>(c & 31);
    if constexpr (F == PackedFormat::kGgufQ8_0) {
      return static_cast<float>(reinterpret_cast<const int8_t*>(b + 2)[j]) * f16(b);
    } else {
      const uint8_t* qs = b + (F == PackedFormat::kGgufQ4_0 ? 2 : 4);
      const int q = j < 16 ? (qs[j] & 15) : (qs[j - 16] >> 4);
      if constexpr (F == PackedFormat::kGgufQ4_0) return static_cast<float>(q - 8) * f16(b);
      return static_cast<float>(q) * f16(b) + f16(b + 2);
    }
  }
  float row_scale(int64_t) const { return 1.0f; }
#ifdef PEFT_X86
  PEFT_AVX2 static float h(const uint8_t* b) {
    uint16_t v;
    std::memcpy(&v, b, 2);
    return _cvtsh_ss(v);
  }
  PEFT_AVX2 __m256 load8(int64_t r, int64_t c) const {
    const uint8_t* b = block(r, c);
    const int j = static_cast<int>(c & 31);
    if constexpr (F == PackedFormat::kGgufQ8_0) {
      const __m128i q = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(b + 2 + j));
      return _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)), _mm256_set1_ps(h(b)));
    } else {
      const uint8_t* qs = b + (F == PackedFormat::kGgufQ4_0 ? 2 : 4);
      const __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(qs + (j & 15)));
      __m256i q = _mm256_cvtepu8_epi32(bytes);
      q = _mm256_and_si256(j < 16 ? q : _mm256_srli_epi32(q, 4), _mm256_set1_epi32(15));
      if constexpr (F == PackedFormat::kGgufQ4_0)
        return _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(q, _mm256_set1_epi32(8))),
                             _mm256_set1_ps(h(b)));
      // q * d + m with one rounding, as the scalar path (q * d is exact).
      return _mm256_fmadd_ps(_mm256_cvtepi32_ps(q), _mm256_set1_ps(h(b)), _mm256_set1_ps(h(b + 2)));
    }
  }
#endif
};

#ifdef PEFT_X86
template <class W>
PEFT_AVX2 void dequantize_avx2(const W& w, int64_t k, int64_t r0, int64_t r1, int64_t first_row, float* out) {
  const int64_t k8 = k - k % 8;
  for (int64_t r = r0; r < r1; ++r) {
    float* o = out + (r - first_row) * k;
    const __m256 s = _mm256_set1_ps(w.row_scale(r));
    for (int64_t c = 0; c < k8; c += 8) _mm256_storeu_ps(o + c, _mm256_mul_ps(w.load8(r, c), s));
    for (int64_t c = k8; c < k; ++c) o[c] = w.at(r, c) * w.row_scale(r);
  }
}
#endif

template <class W>
void run_dequantize(const W& w, int64_t k, int64_t row0, int64_t rows, float* out) {
  const bool fast = few_rows_linear_vectorized();
  at::parallel_for(row0, row0 + rows, 64, [&](int64_t r0, int64_t r1) {
#ifdef PEFT_X86
    if (fast) return dequantize_avx2(w, k, r0, r1, row0, out);
#endif
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t c = 0; c < k; ++c) out[(r - row0) * k + c] = w.at(r, c) * w.row_scale(r);
  });
}

int log2_exact(int64_t v) {
  int s = 0;
  while ((int64_t{1} << s) < v) ++s;
  if ((int64_t{1} << s) != v)
    throw ValueError("packed weight: group size " + std::to_string(v) + " is not a power of 2");
  return s;
}

// Calls f with the source object for w's format.
template <class F>
void with_source(const PackedWeight& w, F&& f) {
  switch (w.format) {
    case PackedFormat::kInt8Rows:
      return f(Int8Rows{static_cast<const int8_t*>(w.data), w.k, w.row_scale});
    case PackedFormat::kNibbleGroups:
      if (w.k % 8 != 0 || w.group <= 0 || w.k % w.group != 0)
        throw ShapeError("packed weight: " + std::to_string(w.k) + " columns are not whole groups of " +
                         std::to_string(w.group));
      return f(
          NibbleGroups{static_cast<const uint8_t*>(w.data), w.k, w.group_scale, log2_exact(w.group), w.lut});
    case PackedFormat::kGgufQ4_0:
    case PackedFormat::kGgufQ4_1:
    case PackedFormat::kGgufQ8_0:
      break;
  }
  if (w.k % 32 != 0)
    throw ShapeError("packed weight: " + std::to_string(w.k) + " columns are not whole 32-value ggml blocks");
  const auto* p = static_cast<const uint8_t*>(w.data);
  if (w.format == PackedFormat::kGgufQ4_0)
    return f(
        GgufBlocks<PackedFormat::kGgufQ4_0>{p, w.k / 32 * GgufBlocks<PackedFormat::kGgufQ4_0>::kBlockBytes});
  if (w.format == PackedFormat::kGgufQ4_1)
    return f(
        GgufBlocks<PackedFormat::kGgufQ4_1>{p, w.k / 32 * GgufBlocks<PackedFormat::kGgufQ4_1>::kBlockBytes});
  return f(
      GgufBlocks<PackedFormat::kGgufQ8_0>{p, w.k / 32 * GgufBlocks<PackedFormat::kGgufQ8_0>::kBlockBytes});
}

}  // namespace

namespace {
thread_local int integer_scopes = 0;
}  // namespace

IntegerActivationsScope::IntegerActivationsScope() { ++integer_scopes; }
IntegerActivationsScope::~IntegerActivationsScope() { --integer_scopes; }

namespace {
bool takes_integer_path(const PackedWeight& w) {
  const bool gguf = w.format == PackedFormat::kGgufQ4_0 || w.format == PackedFormat::kGgufQ4_1 ||
                    w.format == PackedFormat::kGgufQ8_0;
  const bool integer = w.activations == PackedWeight::Activations::kInteger ||
                       (w.activations == PackedWeight::Activations::kAuto && (gguf || integer_scopes > 0));
  return integer && int_dot_supported(w);
}
}  // namespace

at::Tensor few_rows_linear_packed(const at::Tensor& x, const PackedWeight& w, const at::Tensor& bias) {
  if (x.dim() < 1 || x.size(-1) != w.k)
    throw ShapeError("few_rows_linear_packed: x has " + std::to_string(x.dim() ? x.size(-1) : 0) +
                     " features, the weight " + std::to_string(w.k) + " inputs");
  if (bias.defined() && (bias.dim() != 1 || bias.size(0) != w.n))
    throw ShapeError("few_rows_linear_packed: bias must be [" + std::to_string(w.n) + "]");
  if (x.scalar_type() != at::kFloat || (bias.defined() && bias.scalar_type() != at::kFloat))
    throw ValueError("few_rows_linear_packed: x and bias must be float32");
  const at::Tensor x2 = x.reshape({-1, w.k}).contiguous();
  const at::Tensor b = bias.defined() ? bias.contiguous() : bias;
  const int64_t m_rows = x2.size(0);
  std::vector<int64_t> out_shape = x.sizes().vec();
  out_shape.back() = w.n;
  at::Tensor y = at::empty({m_rows, w.n}, x.options());
  if (m_rows == 0 || w.n == 0) return y.view(out_shape);
  const float* bp = b.defined() ? b.data_ptr<float>() : nullptr;
  const float* xp = x2.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  if (takes_integer_path(w)) {
    int_dot_linear(w, xp, m_rows, bp, yp);
    return y.view(out_shape);
  }
  with_source(w, [&](const auto& src) { row_kernel::run(xp, m_rows, w.k, src, w.n, bp, yp); });
  return y.view(out_shape);
}

std::vector<at::Tensor> few_rows_linear_packed_many(const at::Tensor& x,
                                                    const std::vector<PackedWeight>& ws) {
  std::vector<at::Tensor> ys;
  bool together = !ws.empty() && x.dim() >= 1 && x.scalar_type() == at::kFloat;
  for (const PackedWeight& w : ws) together = together && x.size(-1) == w.k && takes_integer_path(w);
  if (!together) {
    for (const PackedWeight& w : ws) ys.push_back(few_rows_linear_packed(x, w, at::Tensor()));
    return ys;
  }
  const at::Tensor x2 = x.reshape({-1, ws[0].k}).contiguous();
  const int64_t m_rows = x2.size(0);
  std::vector<float*> out;
  for (const PackedWeight& w : ws) {
    std::vector<int64_t> shape = x.sizes().vec();
    shape.back() = w.n;
    ys.push_back(at::empty(shape, x.options()));
    out.push_back(ys.back().data_ptr<float>());
  }
  if (m_rows > 0 && !int_dot_linear_many(ws.data(), ws.size(), x2.data_ptr<float>(), m_rows, out.data()))
    for (size_t i = 0; i < ws.size(); ++i) ys[i] = few_rows_linear_packed(x, ws[i], at::Tensor());
  return ys;
}

void dequantize_packed(const PackedWeight& w, int64_t row0, int64_t rows, float* out) {
  if (row0 < 0 || rows < 0 || row0 + rows > w.n)
    throw ShapeError("dequantize_packed: rows " + std::to_string(row0) + " + " + std::to_string(rows) +
                     " outside the weight's " + std::to_string(w.n));
  if (rows == 0) return;
  with_source(w, [&](const auto& src) { run_dequantize(src, w.k, row0, rows, out); });
}

}  // namespace peft::ops
