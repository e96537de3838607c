// ops::few_rows_linear against at::linear (BLAS) on the same float32 values, for the
// shapes decoder steps have and the edges of the kernel's blocking (rows of x in pairs,
// rows of W in fours, K in eights), with both weight dtypes; and its refusals.
#define BOOST_TEST_MODULE few_rows_linear
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "peft/error.h"
#include "peft/layers/linear.h"
#include "peft/ops/few_rows_linear.h"
#include "test_support.h"

namespace {

// Reference: the same weights as float32 through BLAS, in double to bound our float sums.
at::Tensor reference(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  return at::linear(x.to(at::kDouble), w.to(at::kDouble), b.defined() ? b.to(at::kDouble) : b);
}

}  // namespace

BOOST_AUTO_TEST_CASE(matches_blas_for_every_blocking_edge) {
  at::manual_seed(7);
  for (auto dtype : {at::kFloat, at::kHalf})
    for (int64_t m : {1, 2, 3, 5, 16})
      for (int64_t k : {1, 7, 8, 64, 385})
        for (int64_t n : {1, 3, 4, 9, 1030})
          for (bool with_bias : {false, true}) {
            at::Tensor x = at::randn({m, k});
            at::Tensor w = at::randn({n, k}).to(dtype);
            at::Tensor b = with_bias ? at::randn({n}) : at::Tensor();
            at::Tensor y = peft::ops::few_rows_linear(x, w, b);
            BOOST_REQUIRE(y.scalar_type() == at::kFloat);
            BOOST_REQUIRE_EQUAL(y.size(0), m);
            BOOST_REQUIRE_EQUAL(y.size(1), n);
            const double err = (y.to(at::kDouble) - reference(x, w, b)).abs().max().item<double>();
            // float32 sums of k products of N(0,1) values: relative error ~ k * 2^-24.
            BOOST_TEST_CONTEXT("dtype " << dtype << " m " << m << " k " << k << " n " << n << " bias "
                                        << with_bias) {
              BOOST_TEST(err < 1e-5 * static_cast<double>(k) + 1e-5);
            }
          }
}

BOOST_AUTO_TEST_CASE(keeps_leading_dimensions_and_runs_on_several_threads) {
  at::manual_seed(3);
  at::Tensor x = at::randn({2, 1, 384});
  at::Tensor w = at::randn({5000, 384}).to(at::kHalf);
  const int threads = at::get_num_threads();
  at::set_num_threads(2);
  at::Tensor y = peft::ops::few_rows_linear(x, w, at::Tensor());
  at::set_num_threads(threads);
  BOOST_REQUIRE((y.sizes() == at::IntArrayRef{2, 1, 5000}));
  BOOST_TEST((y.to(at::kDouble) - reference(x, w, at::Tensor())).abs().max().item<double>() < 1e-3);
}

BOOST_AUTO_TEST_CASE(linear_layer_gives_the_same_values_for_few_and_many_rows) {
  // Few rows take the streaming kernel, many take BLAS after converting float16 W.
  at::manual_seed(5);
  peft::layers::Linear lin(at::randn({96, 40}).to(at::kHalf), at::randn({96}));
  at::Tensor x = at::randn({40, 40});
  at::Tensor many = lin(x);
  at::Tensor few = lin(x.narrow(0, 0, 3));
  BOOST_TEST((few - many.narrow(0, 0, 3)).abs().max().item<double>() < 1e-4);
}

BOOST_AUTO_TEST_CASE(refuses_bad_shapes_and_dtypes) {
  at::Tensor w = at::randn({4, 8});
  PEFT_CHECK_THROW_MSG(peft::ops::few_rows_linear(at::randn({2, 7}), w, at::Tensor()), peft::ShapeError,
                       {"7 features"});
  PEFT_CHECK_THROW_MSG(peft::ops::few_rows_linear(at::randn({2, 8}), w, at::randn({3})), peft::ShapeError,
                       {"bias must be [4]"});
  PEFT_CHECK_THROW_MSG(peft::ops::few_rows_linear(at::randn({2, 8}), w.to(at::kDouble), at::Tensor()),
                       peft::ValueError, {"not float32 or float16"});
  PEFT_CHECK_THROW_MSG(peft::ops::few_rows_linear(at::randn({2, 8}).to(at::kHalf), w, at::Tensor()),
                       peft::ValueError, {"must be float32"});
  PEFT_CHECK_THROW_MSG(peft::ops::few_rows_linear(at::randn({2, 8}), at::randn({8, 4}).t(), at::Tensor()),
                       peft::ValueError, {"contiguous"});
  BOOST_CHECK_THROW(peft::layers::Linear(at::randn({4, 8}).to(at::kDouble), at::Tensor()), peft::ValueError);
}
