// ops::few_query_attention against softmax(q k^T / sqrt(d) + causal mask) v computed by
// libtorch in float64: head widths on and off the vectorized path, key counts around its
// blocking (4 keys, 8 exponentials), causal offsets, strided views like the decoder's
// cache, and the refusals.
#define BOOST_TEST_MODULE few_query_attention
#include <ATen/ATen.h>

#include <cmath>
#include <limits>

#include "peft/error.h"
#include "peft/ops/few_query_attention.h"
#include "test_support.h"

using peft::ops::few_query_attention;

namespace {

at::Tensor reference(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t causal_offset) {
  const at::Tensor qd = q.to(at::kDouble), kd = k.to(at::kDouble), vd = v.to(at::kDouble);
  at::Tensor s = at::matmul(qd, kd.transpose(-1, -2)) / std::sqrt(static_cast<double>(q.size(-1)));
  if (causal_offset >= 0) {
    const at::Tensor mask = at::ones({q.size(2), k.size(2)}, at::kBool).triu_(causal_offset + 1);
    s = s.masked_fill(mask, -std::numeric_limits<double>::infinity());
  }
  return at::matmul(at::softmax(s, -1), vd);
}

double max_error(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b).abs().max().item<double>();
}

}  // namespace

BOOST_AUTO_TEST_CASE(matches_softmax_attention) {
  at::manual_seed(5);
  for (int64_t d : {64, 32, 24, 80, 128})
    for (int64_t tk : {1, 3, 4, 9, 100, 1500})
      for (int64_t tq : {1, 2, 5})
        for (int64_t offset : {int64_t{-1}, tk - tq}) {
          if (offset < -1) continue;
          // Scores of a few units, as trained attention has, with one large outlier.
          const at::Tensor q = at::randn({2, 3, tq, d}) * 2, k = at::randn({2, 3, tk, d}),
                           v = at::randn({2, 3, tk, d});
          k.select(2, tk / 2).mul_(4);
          BOOST_TEST_CONTEXT("d " << d << " keys " << tk << " queries " << tq << " offset " << offset) {
            const at::Tensor out = few_query_attention(q, k, v, offset);
            BOOST_TEST(out.sizes() == q.sizes());
            BOOST_TEST(max_error(out, reference(q, k, v, offset)) < 2e-5);
          }
        }
}

BOOST_AUTO_TEST_CASE(strided_views_like_the_decoder_cache) {
  at::manual_seed(6);
  // A cache with room for 32 positions of which 11 are used, heads split from [B, T, H*D].
  const at::Tensor cache_k = at::randn({5, 6, 32, 64}), cache_v = at::randn({5, 6, 32, 64});
  const at::Tensor k = cache_k.narrow(2, 0, 11), v = cache_v.narrow(2, 0, 11);
  const at::Tensor q = at::randn({5, 2, 6 * 64}).view({5, 2, 6, 64}).transpose(1, 2);
  BOOST_TEST(!q.is_contiguous());
  BOOST_TEST(max_error(few_query_attention(q, k, v, 9), reference(q, k, v, 9)) < 2e-5);
  // Extreme scores: the exponentials underflow to zero instead of overflowing.
  const at::Tensor big = q * 1000;
  const at::Tensor out = few_query_attention(big, k, v, -1);
  BOOST_TEST(at::isfinite(out).all().item<bool>());
  BOOST_TEST(max_error(out, reference(big, k, v, -1)) < 1e-4);
}

BOOST_AUTO_TEST_CASE(refuses_mismatched_shapes) {
  const at::Tensor q = at::randn({1, 2, 1, 8}), k = at::randn({1, 2, 4, 8});
  BOOST_CHECK_THROW(few_query_attention(q, k, at::randn({1, 2, 5, 8}), -1), peft::ShapeError);
  BOOST_CHECK_THROW(few_query_attention(q, at::randn({1, 3, 4, 8}), at::randn({1, 3, 4, 8}), -1),
                    peft::ShapeError);
  BOOST_CHECK_THROW(few_query_attention(q, k, k, 4), peft::ShapeError);  // no key 4
  BOOST_CHECK_THROW(few_query_attention(q.to(at::kDouble), k, k, -1), peft::ShapeError);
  BOOST_CHECK_THROW(few_query_attention(q, k.transpose(2, 3), k, -1), peft::ShapeError);
}
