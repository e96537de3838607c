// ops::all_finite against at::isfinite on every floating dtype, with one NaN or infinity
// placed anywhere (first, last, inside a parallel block, in a non-contiguous view).
#define BOOST_TEST_MODULE all_finite
#include <ATen/ATen.h>

#include <limits>

#include "peft/ops/all_finite.h"
#include "test_support.h"

using peft::ops::all_finite;

BOOST_AUTO_TEST_CASE(finds_one_bad_value_anywhere_in_every_float_dtype) {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  for (auto dtype : {at::kFloat, at::kDouble, at::kHalf, at::kBFloat16})
    for (int64_t n : {1, 7, 65536, 300001})
      for (int64_t at_index : {int64_t{0}, n / 2, n - 1})
        for (float bad : {nan, inf, -inf}) {
          // Large finite values (the float16 maximum) must not count as bad.
          at::Tensor t = at::full({n}, 65504.0f).to(dtype);
          BOOST_TEST_CONTEXT(c10::toString(dtype) << " n " << n << " at " << at_index << " value " << bad) {
            BOOST_TEST(all_finite(t));
            t[at_index] = bad;
            BOOST_TEST(!all_finite(t));
            BOOST_TEST(all_finite(t) == at::isfinite(t).all().item<bool>());
          }
        }
}

BOOST_AUTO_TEST_CASE(views_empty_and_integer_tensors) {
  at::Tensor m = at::randn({64, 64});
  m[3][5] = std::numeric_limits<float>::quiet_NaN();
  BOOST_TEST(!all_finite(m.t()));              // non-contiguous
  BOOST_TEST(all_finite(m.narrow(0, 4, 60)));  // rows without the NaN
  BOOST_TEST(!all_finite(m.narrow(1, 5, 1)));  // the column holding it
  BOOST_TEST(all_finite(at::empty({0}, at::kFloat)));
  BOOST_TEST(all_finite(at::Tensor()));
  BOOST_TEST(all_finite(at::full({10}, 255, at::kByte)));
  BOOST_TEST(all_finite(at::full({10}, -1, at::kInt)));
}
