#include "peft/ops/few_rows_linear.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/util/Half.h>

#include <string>
#include <type_traits>

#include "peft/error.h"
#include "peft/ops/row_kernel.h"

namespace peft::ops {

namespace {

// W as stored, float32 or float16 (widened to float32 in registers: the same values as
// converting at load time, half the bytes to read).
template <typename T>
struct DenseRows {
  const T* w;
  int64_t k;
  float at(int64_t r, int64_t c) const { return static_cast<float>(w[r * k + c]); }
  float row_scale(int64_t) const { return 1.0f; }
#ifdef PEFT_X86
  PEFT_AVX2 __m256 load8(int64_t r, int64_t c) const {
    if constexpr (std::is_same_v<T, c10::Half>)
      return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + r * k + c)));
    else
      return _mm256_loadu_ps(w + r * k + c);
  }
#endif
};

}  // namespace

bool few_rows_linear_vectorized() {
#ifdef PEFT_X86
  static const bool ok =
      __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
  return ok;
#else
  return false;
#endif
}

void few_rows_linear_rows(const float* x, int64_t m_rows, const void* w, bool half, int64_t n, int64_t k,
                          int64_t n0, int64_t n1, const float* bias, float* y) {
  if (half)
    row_kernel::rows(x, m_rows, k, DenseRows<c10::Half>{static_cast<const c10::Half*>(w), k}, n0, n1, bias, y,
                     n);
  else
    row_kernel::rows(x, m_rows, k, DenseRows<float>{static_cast<const float*>(w), k}, n0, n1, bias, y, n);
}

at::Tensor few_rows_linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  if (weight.dim() != 2 || x.dim() < 1 || x.size(-1) != weight.size(1))
    throw ShapeError("few_rows_linear: x " + std::to_string(x.dim() ? x.size(-1) : 0) +
                     " features vs weight of rank " + std::to_string(weight.dim()) + " with " +
                     std::to_string(weight.dim() == 2 ? weight.size(1) : 0) + " inputs");
  const int64_t n = weight.size(0), k = weight.size(1);
  if (bias.defined() && (bias.dim() != 1 || bias.size(0) != n))
    throw ShapeError("few_rows_linear: bias must be [" + std::to_string(n) + "]");
  if (x.scalar_type() != at::kFloat || (bias.defined() && bias.scalar_type() != at::kFloat))
    throw ValueError("few_rows_linear: x and bias must be float32");
  if (!weight.is_contiguous()) throw ValueError("few_rows_linear: weight must be contiguous");

  const at::Tensor x2 = x.reshape({-1, k}).contiguous();
  const at::Tensor b = bias.defined() ? bias.contiguous() : bias;
  const int64_t m_rows = x2.size(0);
  std::vector<int64_t> out_shape = x.sizes().vec();
  out_shape.back() = n;
  at::Tensor y = at::empty({m_rows, n}, x.options());
  if (m_rows == 0) return y.view(out_shape);
  const float* bp = b.defined() ? b.data_ptr<float>() : nullptr;
  switch (weight.scalar_type()) {
    case at::kFloat:
      row_kernel::run(x2.data_ptr<float>(), m_rows, k, DenseRows<float>{weight.data_ptr<float>(), k}, n, bp,
                      y.data_ptr<float>());
      break;
    case at::kHalf:
      row_kernel::run(x2.data_ptr<float>(), m_rows, k, DenseRows<c10::Half>{weight.data_ptr<c10::Half>(), k},
                      n, bp, y.data_ptr<float>());
      break;
    default:
      throw ValueError(std::string("few_rows_linear: weight dtype ") + c10::toString(weight.scalar_type()) +
                       " is not float32 or float16");
  }
  return y.view(out_shape);
}

}  // namespace peft::ops
