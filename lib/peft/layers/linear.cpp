#include "peft/layers/linear.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <vector>

#include "peft/error.h"
#include "peft/ops/few_rows_linear.h"

namespace peft::layers {

namespace {
// Fewest rows worth a thread of their own: below it, packing W costs more than the rows.
constexpr int64_t kRowBlock = 64;
}  // namespace

Linear::Linear(at::Tensor weight, at::Tensor bias) : weight_(std::move(weight)), bias_(std::move(bias)) {
  if (weight_.dim() != 2) throw ShapeError("Linear: weight must be [out, in]");
  if (weight_.scalar_type() != at::kFloat && weight_.scalar_type() != at::kHalf)
    throw ValueError("Linear: weight must be float32 or float16");
  weight_ = weight_.contiguous();
}

at::Tensor Linear::operator()(const at::Tensor& x) const {
  const int64_t k = x.size(-1), rows = x.numel() / std::max<int64_t>(k, 1);
  if (rows <= ops::kFewRows) return ops::few_rows_linear(x, weight_, bias_);
  // Many rows: compute-bound, BLAS wins even after converting a float16 W per call.
  // BLAS runs on one thread (runtime.cpp), so blocks of rows go to libtorch's threads.
  const at::Tensor w_t = (weight_.scalar_type() == at::kFloat ? weight_ : weight_.to(at::kFloat)).t();
  const at::Tensor x2 = x.reshape({rows, k});
  std::vector<int64_t> out_shape = x.sizes().vec();
  out_shape.back() = out_features();
  at::Tensor y = at::empty({rows, out_features()}, x.options().dtype(at::kFloat));
  const int64_t block = std::max<int64_t>(kRowBlock, (rows + at::get_num_threads() - 1) / at::get_num_threads());
  at::parallel_for(0, rows, block, [&](int64_t r0, int64_t r1) {
    at::Tensor xs = x2.narrow(0, r0, r1 - r0), ys = y.narrow(0, r0, r1 - r0);
    if (bias_.defined())
      at::addmm_out(ys, bias_, xs, w_t);
    else
      at::mm_out(ys, xs, w_t);
  });
  return y.view(out_shape);
}

}  // namespace peft::layers
