// The integer few-rows path of ops::few_rows_linear_packed (int_dot_linear.h) against a
// scalar re-implementation of its scheme written here from the description (x quantized
// per 32-value block: d = max|x| / 32767, q = round-half-even(x / d); integer block sums;
// per block scale * d * sum(code * q) + offset * d * sum(q)), summed in double: for the
// ggml blocks Q4_0 / Q4_1 / Q8_0, int8 rows and int4 groups of 32 / 64 / 128, across the
// kernel's blocking edges. Each case also checks that the reference is a different
// computation from float activations (so agreeing with it is not agreeing with the
// float path), and that Activations::kFloat gives the float path. int8 rows and int4
// groups take the integer path when asked (kInteger), the ggml blocks by default.
#define BOOST_TEST_MODULE int_dot_linear
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <vector>

#include "peft/io/dtype.h"
#include "peft/io/half.h"
#include "peft/ops/packed_linear.h"
#include "peft/quant/gguf_block_weight.h"
#include "test_support.h"

namespace {

using peft::ops::PackedFormat;
using peft::ops::PackedWeight;

float h16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return peft::io::half_to_float(v);
}

// One weight block as the reference sees it: integer codes in column order, and the
// factors of d * sum(code * q) and of d * sum(q).
struct RefBlock {
  int code[32];
  double scale, offset;
};
using BlockOf = std::function<RefBlock(int64_t row, int64_t block)>;

// The scheme, in double over exact integer sums. Returns y [m, n] and, in `magnitude`,
// the sum of |terms| per output (the scale of float rounding in the kernel).
at::Tensor reference(const at::Tensor& x, int64_t n, const BlockOf& block_of, double row_scale_of_1,
                     const float* row_scale, at::Tensor& magnitude) {
  const int64_t m = x.size(0), k = x.size(1), nb = k / 32;
  at::Tensor y = at::zeros({m, n}, at::kDouble), mag = at::zeros({m, n}, at::kDouble);
  double* yp = y.data_ptr<double>();
  double* mp = mag.data_ptr<double>();
  const float* xp = x.data_ptr<float>();
  for (int64_t i = 0; i < m; ++i)
    for (int64_t b = 0; b < nb; ++b) {
      float amax = 0;
      for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(xp[i * k + b * 32 + j]));
      const float d = amax / 32767.0f, id = d != 0 ? 1.0f / d : 0.0f;
      int q[32], qsum = 0;
      for (int j = 0; j < 32; ++j) {
        q[j] = static_cast<int>(std::nearbyint(xp[i * k + b * 32 + j] * id));
        qsum += q[j];
      }
      for (int64_t r = 0; r < n; ++r) {
        const RefBlock w = block_of(r, b);
        int64_t sumi = 0;
        for (int j = 0; j < 32; ++j) sumi += static_cast<int64_t>(w.code[j]) * q[j];
        const double rs = row_scale ? row_scale[r] : row_scale_of_1;
        const double t1 = w.scale * d * static_cast<double>(sumi) * rs;
        const double t2 = w.offset * d * static_cast<double>(qsum) * rs;
        yp[i * n + r] += t1 + t2;
        mp[i * n + r] += std::fabs(t1) + std::fabs(t2);
      }
    }
  magnitude = mag;
  return y;
}

// Checks the kernel (integer path) against the reference, that the reference differs
// from float activations by far more than the tolerance somewhere, and that
// Activations::kFloat gives the float result.
void check(const at::Tensor& x, PackedWeight w, const BlockOf& block_of, const float* row_scale,
           const std::string& what) {
  at::Tensor mag;
  const at::Tensor ref = reference(x, w.n, block_of, 1.0, row_scale, mag);
  const at::Tensor y = peft::ops::few_rows_linear_packed(x, w, at::Tensor()).to(at::kDouble);
  // float32 accumulation of block terms each within ~2^-23 relative (s * d and the int32
  // sum rounded to float once each).
  const at::Tensor tol = mag * 2e-6 + 1e-6;
  BOOST_TEST_CONTEXT(what) {
    BOOST_TEST(((y - ref).abs() <= tol).all().item<bool>(), "max excess " << ((y - ref).abs() - tol).max());
    w.activations = PackedWeight::Activations::kFloat;
    const at::Tensor yf = peft::ops::few_rows_linear_packed(x, w, at::Tensor()).to(at::kDouble);
    at::Tensor wf = at::empty({w.n, w.k});
    peft::ops::dequantize_packed(w, 0, w.n, wf.data_ptr<float>());
    const at::Tensor exact = at::linear(x.to(at::kDouble), wf.to(at::kDouble));
    BOOST_TEST((yf - exact).abs().max().item<double>() < 1e-4 * (1 + exact.abs().max().item<double>()));
    // The kernel is far closer to the scheme than the scheme is to float activations.
    if (x.size(1) >= 64)
      BOOST_TEST((y - ref).abs().mean().item<double>() * 10 < (exact - ref).abs().mean().item<double>());
  }
}

at::Tensor activations(int64_t m, int64_t k) {
  at::Tensor x = at::randn({m, k});
  // A zero block (d = 0) and an outlier in each row (its block's other values lose
  // precision: where the scheme differs most from float activations).
  if (k >= 64) {
    x.narrow(1, 32, 32).zero_();
    x.select(1, 0).fill_(3000.0f);
  }
  return x;
}

}  // namespace

BOOST_AUTO_TEST_CASE(ggml_blocks_match_the_scheme) {
  at::manual_seed(11);
  for (auto type : {peft::io::DType::Q4_0, peft::io::DType::Q4_1, peft::io::DType::Q8_0})
    for (int64_t m : {1, 2, 3, 5})
      for (int64_t k : {32, 96, 576})
        for (int64_t n : {1, 3, 4, 9, 131}) {
          const auto qw = peft::quant::GgufBlockWeight::quantize(at::randn({n, k}), type, "w");
          const at::Tensor blocks = qw->blocks();
          const uint8_t* p = blocks.data_ptr<uint8_t>();
          const int64_t bb = type == peft::io::DType::Q4_0 ? 18 : type == peft::io::DType::Q4_1 ? 20 : 34;
          const int64_t row_bytes = k / 32 * bb;
          PackedWeight w;
          w.format = type == peft::io::DType::Q4_0   ? PackedFormat::kGgufQ4_0
                     : type == peft::io::DType::Q4_1 ? PackedFormat::kGgufQ4_1
                                                     : PackedFormat::kGgufQ8_0;
          w.n = n;
          w.k = k;
          w.data = p;
          BlockOf block_of = [&](int64_t r, int64_t b) {
            const uint8_t* blk = p + r * row_bytes + b * bb;
            RefBlock rb{};
            rb.scale = h16(blk);
            if (type == peft::io::DType::Q8_0) {
              for (int j = 0; j < 32; ++j) rb.code[j] = static_cast<int8_t>(blk[2 + j]);
              rb.offset = 0;
            } else {
              const uint8_t* qs = blk + (type == peft::io::DType::Q4_0 ? 2 : 4);
              for (int j = 0; j < 16; ++j) {
                rb.code[j] = qs[j] & 15;
                rb.code[j + 16] = qs[j] >> 4;
              }
              rb.offset = type == peft::io::DType::Q4_0 ? -8.0 * rb.scale : h16(blk + 2);
            }
            return rb;
          };
          check(activations(m, k), w, block_of, nullptr,
                std::string(peft::io::dtype_name(type)) + " m " + std::to_string(m) + " k " +
                    std::to_string(k) + " n " + std::to_string(n));
        }
}

BOOST_AUTO_TEST_CASE(int8_rows_match_the_scheme) {
  at::manual_seed(12);
  for (int64_t m : {1, 2, 5, 16})
    for (int64_t k : {32, 384})
      for (int64_t n : {1, 4, 9, 300}) {
        // Codes over the whole int8 range, -128 included (maddubs' worst case).
        const at::Tensor codes = at::randint(-128, 128, {n, k}, at::kChar);
        const at::Tensor scale = at::rand({n}) * 0.01 + 0.001;
        PackedWeight w;
        w.format = PackedFormat::kInt8Rows;
        w.n = n;
        w.k = k;
        w.data = codes.data_ptr<int8_t>();
        w.row_scale = scale.data_ptr<float>();
        w.activations = PackedWeight::Activations::kInteger;
        const int8_t* c = codes.data_ptr<int8_t>();
        BlockOf block_of = [&](int64_t r, int64_t b) {
          RefBlock rb{};
          for (int j = 0; j < 32; ++j) rb.code[j] = c[r * k + b * 32 + j];
          rb.scale = 1;
          rb.offset = 0;
          return rb;
        };
        check(activations(m, k), w, block_of, scale.data_ptr<float>(),
              "int8 m " + std::to_string(m) + " k " + std::to_string(k) + " n " + std::to_string(n));
      }
}

BOOST_AUTO_TEST_CASE(int4_groups_match_the_scheme) {
  at::manual_seed(13);
  float lut[16];
  for (int c = 0; c < 16; ++c) lut[c] = static_cast<float>(c - 8);
  for (int64_t group : {32, 64, 128})
    for (int64_t m : {1, 3})
      for (int64_t k : {128, 384})
        for (int64_t n : {1, 5, 130}) {
          const at::Tensor packed = at::randint(0, 256, {n, k / 2}, at::kByte);
          const at::Tensor gs = at::rand({n, k / group}) * 0.1 + 0.01;
          PackedWeight w;
          w.format = PackedFormat::kNibbleGroups;
          w.n = n;
          w.k = k;
          w.data = packed.data_ptr<uint8_t>();
          w.group_scale = gs.data_ptr<float>();
          w.group = group;
          w.lut = lut;
          w.activations = PackedWeight::Activations::kInteger;
          const uint8_t* p = packed.data_ptr<uint8_t>();
          const float* s = gs.data_ptr<float>();
          BlockOf block_of = [&](int64_t r, int64_t b) {
            RefBlock rb{};
            for (int j = 0; j < 32; ++j) {  // column b * 32 + j: low nibble for even columns
              const int64_t col = b * 32 + j;
              const uint8_t byte = p[r * (k / 2) + col / 2];
              rb.code[j] = (col & 1) ? byte >> 4 : byte & 15;
            }
            rb.scale = s[r * (k / group) + b * 32 / group];
            rb.offset = -8.0 * rb.scale;
            return rb;
          };
          check(activations(m, k), w, block_of, nullptr,
                "int4 g" + std::to_string(group) + " m " + std::to_string(m) + " k " + std::to_string(k) +
                    " n " + std::to_string(n));
        }
}

BOOST_AUTO_TEST_CASE(nf4_tables_and_partial_blocks_keep_the_float_path) {
  // Not integers (NF4's table) or k not whole 32-value blocks: float activations,
  // whatever `activations` asks for; int8 rows and nibble groups by default.
  at::manual_seed(14);
  float lut[16];
  for (int c = 0; c < 16; ++c) lut[c] = static_cast<float>(c - 8) * 0.1f;
  const int64_t n = 7, k = 64;
  const at::Tensor packed = at::randint(0, 256, {n, k / 2}, at::kByte);
  const at::Tensor gs = at::rand({n, k / 32});
  PackedWeight w;
  w.format = PackedFormat::kNibbleGroups;
  w.n = n;
  w.k = k;
  w.data = packed.data_ptr<uint8_t>();
  w.group_scale = gs.data_ptr<float>();
  w.group = 32;
  w.lut = lut;
  w.activations = PackedWeight::Activations::kInteger;
  at::Tensor wf = at::empty({n, k});
  peft::ops::dequantize_packed(w, 0, n, wf.data_ptr<float>());
  const at::Tensor x = at::randn({2, k});
  BOOST_TEST(
      (peft::ops::few_rows_linear_packed(x, w, at::Tensor()) - at::linear(x, wf)).abs().max().item<double>() <
      1e-4);

  const at::Tensor codes = at::randint(-127, 128, {n, 40}, at::kChar);
  const at::Tensor scale = at::rand({n});
  PackedWeight w8;
  w8.format = PackedFormat::kInt8Rows;
  w8.n = n;
  w8.k = 40;
  w8.data = codes.data_ptr<int8_t>();
  w8.row_scale = scale.data_ptr<float>();
  w8.activations = PackedWeight::Activations::kInteger;
  const at::Tensor x8 = at::randn({2, 40});
  const at::Tensor exact = at::linear(x8, codes.to(at::kFloat) * scale.unsqueeze(1));
  BOOST_TEST((peft::ops::few_rows_linear_packed(x8, w8, at::Tensor()) - exact).abs().max().item<double>() <
             1e-5 * (1 + exact.abs().max().item<double>()));
}

BOOST_AUTO_TEST_CASE(bias_leading_dimensions_and_threads) {
  at::manual_seed(15);
  const int64_t n = 1000, k = 576;
  const auto qw = peft::quant::GgufBlockWeight::quantize(at::randn({n, k}), peft::io::DType::Q4_1, "w");
  PackedWeight w;
  w.format = PackedFormat::kGgufQ4_1;
  w.n = n;
  w.k = k;
  w.data = qw->blocks().data_ptr<uint8_t>();
  const at::Tensor x = at::randn({2, 1, k}), b = at::randn({n});
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  const at::Tensor one = peft::ops::few_rows_linear_packed(x, w, b);
  at::set_num_threads(2);
  const at::Tensor two = peft::ops::few_rows_linear_packed(x, w, b);
  at::set_num_threads(threads);
  BOOST_REQUIRE((two.sizes() == at::IntArrayRef{2, 1, n}));
  BOOST_TEST(at::equal(one, two));  // rows split over threads, each computed the same way
  const at::Tensor nobias = peft::ops::few_rows_linear_packed(x, w, at::Tensor());
  BOOST_TEST((two - nobias - b).abs().max().item<double>() < 1e-5);
}

BOOST_AUTO_TEST_CASE(several_weights_in_one_region_give_each_ones_values) {
  // few_rows_linear_packed_many: the q / k / v shapes of SmolLM2 (576, 192, 192 rows) in
  // mixed block types, against one call each; and a set it cannot take together (an
  // int8 weight outside an IntegerActivationsScope) computed one by one.
  at::manual_seed(16);
  const int64_t k = 576;
  const auto a = peft::quant::GgufBlockWeight::quantize(at::randn({576, k}), peft::io::DType::Q4_1, "a");
  const auto b = peft::quant::GgufBlockWeight::quantize(at::randn({192, k}), peft::io::DType::Q4_0, "b");
  const auto c = peft::quant::GgufBlockWeight::quantize(at::randn({193, k}), peft::io::DType::Q8_0, "c");
  std::vector<PackedWeight> ws(3);
  const PackedFormat formats[] = {PackedFormat::kGgufQ4_1, PackedFormat::kGgufQ4_0, PackedFormat::kGgufQ8_0};
  const peft::quant::GgufBlockWeight* qs[] = {a.get(), b.get(), c.get()};
  for (int i = 0; i < 3; ++i) {
    ws[i].format = formats[i];
    ws[i].n = qs[i]->out_features();
    ws[i].k = k;
    ws[i].data = qs[i]->blocks().data_ptr<uint8_t>();
  }
  for (int threads : {1, 2}) {
    const int saved = at::get_num_threads();
    at::set_num_threads(threads);
    const at::Tensor x = at::randn({1, 1, k});
    const std::vector<at::Tensor> ys = peft::ops::few_rows_linear_packed_many(x, ws);
    at::set_num_threads(saved);
    BOOST_REQUIRE_EQUAL(ys.size(), 3u);
    for (int i = 0; i < 3; ++i) {
      BOOST_TEST((ys[i].sizes() == at::IntArrayRef{1, 1, ws[i].n}));
      BOOST_TEST(at::equal(ys[i], peft::ops::few_rows_linear_packed(x, ws[i], at::Tensor())));
    }
  }
  const at::Tensor codes = at::randint(-127, 128, {64, k}, at::kChar);
  const at::Tensor scale = at::rand({64});
  PackedWeight w8;
  w8.format = PackedFormat::kInt8Rows;
  w8.n = 64;
  w8.k = k;
  w8.data = codes.data_ptr<int8_t>();
  w8.row_scale = scale.data_ptr<float>();
  const at::Tensor x = at::randn({2, k});
  const std::vector<at::Tensor> mixed = peft::ops::few_rows_linear_packed_many(x, {ws[0], w8});
  BOOST_TEST(at::equal(mixed[0], peft::ops::few_rows_linear_packed(x, ws[0], at::Tensor())));
  const at::Tensor exact = at::linear(x, codes.to(at::kFloat) * scale.unsqueeze(1));
  BOOST_TEST((mixed[1] - exact).abs().max().item<double>() < 1e-5 * (1 + exact.abs().max().item<double>()));

  // Under an IntegerActivationsScope int8 rows and int4 groups go together, integer.
  float lut[16];
  for (int c = 0; c < 16; ++c) lut[c] = static_cast<float>(c - 8);
  const at::Tensor packed = at::randint(0, 256, {40, k / 2}, at::kByte);
  const at::Tensor gs = at::rand({40, k / 32});
  PackedWeight w4;
  w4.format = PackedFormat::kNibbleGroups;
  w4.n = 40;
  w4.k = k;
  w4.data = packed.data_ptr<uint8_t>();
  w4.group_scale = gs.data_ptr<float>();
  w4.group = 32;
  w4.lut = lut;
  const peft::ops::IntegerActivationsScope scope;
  for (const std::vector<PackedWeight>& set : {std::vector<PackedWeight>{w8, w8}, {w4, w4}}) {
    const std::vector<at::Tensor> ys = peft::ops::few_rows_linear_packed_many(x, set);
    PackedWeight forced = set[0];
    forced.activations = PackedWeight::Activations::kInteger;
    const at::Tensor one = peft::ops::few_rows_linear_packed(x, forced, at::Tensor());
    BOOST_TEST(at::equal(ys[0], one));
    BOOST_TEST(at::equal(ys[1], one));
    forced.activations = PackedWeight::Activations::kFloat;
    BOOST_TEST(!at::equal(one, peft::ops::few_rows_linear_packed(x, forced, at::Tensor())));
  }
}
