#include "peft/ops/blas_linear.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <vector>

namespace peft::ops {

namespace {
// Fewest rows worth a thread of their own: below it, packing W costs more than the rows.
constexpr int64_t kRowBlock = 64;
}  // namespace

at::Tensor blas_linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  const int64_t k = x.size(-1), rows = x.numel() / std::max<int64_t>(k, 1), n = weight.size(0);
  std::vector<int64_t> out_shape = x.sizes().vec();
  out_shape.back() = n;
  at::Tensor y = at::empty({rows, n}, x.options().dtype(at::kFloat));
  blas_linear_into(x.reshape({rows, k}), weight, bias, y);
  return y.view(out_shape);
}

void blas_linear_into(const at::Tensor& x2, const at::Tensor& weight, const at::Tensor& bias, at::Tensor y) {
  const int64_t rows = x2.size(0);
  const at::Tensor w_t = (weight.scalar_type() == at::kFloat ? weight : weight.to(at::kFloat)).t();
  const int64_t block =
      std::max<int64_t>(kRowBlock, (rows + at::get_num_threads() - 1) / at::get_num_threads());
  at::parallel_for(0, rows, block, [&](int64_t r0, int64_t r1) {
    at::Tensor xs = x2.narrow(0, r0, r1 - r0), ys = y.narrow(0, r0, r1 - r0);
    if (bias.defined())
      at::addmm_out(ys, bias, xs, w_t);
    else
      at::mm_out(ys, xs, w_t);
  });
}

}  // namespace peft::ops
