#include "peft/ops/all_finite.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <atomic>
#include <cstdint>

namespace peft::ops {

namespace {

// A value is NaN or infinite exactly when all its exponent bits are set.
template <typename Bits>
bool bits_finite(const Bits* p, int64_t n, Bits exponent) {
  std::atomic<bool> finite{true};
  at::parallel_for(0, n, 1 << 16, [&](int64_t b, int64_t e) {
    Bits bad = 0;  // branch-free inner loop: vectorizes
    for (int64_t i = b; i < e; ++i) bad |= static_cast<Bits>((p[i] & exponent) == exponent);
    if (bad) finite.store(false, std::memory_order_relaxed);
  });
  return finite.load();
}

}  // namespace

bool all_finite(const at::Tensor& t) {
  if (!t.defined() || t.numel() == 0) return true;
  const at::Tensor c = t.contiguous();
  const int64_t n = c.numel();
  switch (c.scalar_type()) {
    case at::kFloat:
      return bits_finite(static_cast<const uint32_t*>(c.data_ptr()), n, uint32_t{0x7F800000});
    case at::kDouble:
      return bits_finite(static_cast<const uint64_t*>(c.data_ptr()), n, uint64_t{0x7FF0000000000000});
    case at::kHalf:
      return bits_finite(static_cast<const uint16_t*>(c.data_ptr()), n, uint16_t{0x7C00});
    case at::kBFloat16:
      return bits_finite(static_cast<const uint16_t*>(c.data_ptr()), n, uint16_t{0x7F80});
    default:
      return true;
  }
}

}  // namespace peft::ops
