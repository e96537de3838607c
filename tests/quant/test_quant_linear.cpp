// Quantized linear layers (lib/peft/quant/): the formats re-computed independently here
// (scalar loops over hand-made matrices whose codes are known), the compute paths
// against float and against each other, CTranslate2's int8 files as stored, and the
// refusals (NaN weights, group sizes).
#define BOOST_TEST_MODULE quant_linear
#include <ATen/ATen.h>

#include <cmath>
#include <functional>
#include <limits>

#include <nlohmann/json.hpp>

#include "peft/error.h"
#include "peft/io/checkpoint.h"
#include "peft/io/ct2.h"
#include "peft/io/torch_tensor.h"
#include "peft/layers/linear.h"
#include "peft/ops/few_rows_linear.h"
#include "peft/quant/gguf_block_weight.h"
#include "peft/quant/group4_weight.h"
#include "peft/quant/int8_weight.h"
#include "peft/quant/quant_type.h"
#include "test_support.h"

using namespace peft;
using quant::Group4Weight;
using quant::Int8Weight;
using quant::QuantType;

namespace {

// ||a - b|| / ||b|| over all values, in double.
double rel_error(const at::Tensor& a, const at::Tensor& b) {
  const at::Tensor d = a.to(at::kDouble) - b.to(at::kDouble);
  return d.norm().item<double>() / b.to(at::kDouble).norm().item<double>();
}

at::Tensor float_linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  return at::linear(x.to(at::kDouble), w.to(at::kDouble), b.defined() ? b.to(at::kDouble) : b);
}

template <class E>
bool throws_naming(const std::function<void()>& f, std::initializer_list<std::string> parts) {
  try {
    f();
  } catch (const E& e) {
    BOOST_TEST_MESSAGE("threw: " << e.what());
    return peft_test::contains_all(e.what(), parts);
  }
  return false;
}

}  // namespace

BOOST_AUTO_TEST_CASE(quant_type_parses_and_names) {
  BOOST_TEST((quant::parse_quant_type("none") == QuantType::none));
  BOOST_TEST((quant::parse_quant_type("int8") == QuantType::int8));
  BOOST_TEST((quant::parse_quant_type("int4") == QuantType::int4));
  BOOST_TEST((quant::parse_quant_type("nf4") == QuantType::nf4));
  for (auto t : {QuantType::none, QuantType::int8, QuantType::int4, QuantType::nf4})
    BOOST_TEST((quant::parse_quant_type(quant::to_string(t)) == t));
  BOOST_TEST(throws_naming<ValueError>([] { quant::parse_quant_type("int3"); }, {"'int3'"}));
  BOOST_TEST(throws_naming<ValueError>([] { quant::parse_quant_type("INT8"); }, {"'INT8'"}));
  quant::QuantOptions o;
  o.group_size = 48;
  BOOST_TEST(throws_naming<ValueError>([&] { o.validate(); }, {"48"}));
}

BOOST_AUTO_TEST_CASE(int8_codes_and_scales_of_a_hand_made_matrix) {
  // Row max 1 -> scale 1/127; -0.5 * 127 = -63.5 rounds half to even (-64), 0.25 * 127 =
  // 31.75 -> 32. Row 2 all zero: codes 0. Row 3: max 2.54 -> scale 0.02.
  const at::Tensor w =
      at::tensor({1.0f, -0.5f, 0.25f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, -2.54f, 1.27f, 0.01f, 0.02f})
          .view({3, 4});
  const auto q = Int8Weight::quantize(w, "hand");
  const std::vector<int> expected = {127, -64, 32, 0, 0, 0, 0, 0, -127, 64, 0, 1};
  const at::Tensor codes = q->codes().to(at::kInt).reshape({-1});
  for (size_t i = 0; i < expected.size(); ++i) BOOST_TEST(codes[i].item<int>() == expected[i]);
  BOOST_TEST(q->scale()[0].item<float>() == 1.0f / 127.0f);
  BOOST_TEST(q->scale()[2].item<float>() == 2.54f / 127.0f);
  // Dequantization is codes * scale, value by value.
  const at::Tensor d = q->dequantize();
  for (int64_t r = 0; r < 3; ++r)
    for (int64_t c = 0; c < 4; ++c)
      BOOST_TEST(d[r][c].item<float>() ==
                 static_cast<float>(expected[r * 4 + c]) * q->scale()[r].item<float>());
  BOOST_TEST(q->bytes() == 12 + 3 * 4);
}

BOOST_AUTO_TEST_CASE(int8_within_2_percent_of_float_on_random_weights_every_path) {
  at::manual_seed(11);
  for (auto [out, in] :
       std::vector<std::pair<int64_t, int64_t>>{{384, 384}, {1536, 384}, {384, 1536}, {37, 29}}) {
    const at::Tensor w = at::randn({out, in}) * 0.05, b = at::randn({out}) * 0.1;
    const auto q = Int8Weight::quantize(w, "random");
    for (int64_t rows : {1, 2, 5, 16, 17, 300}) {
      const at::Tensor x = at::randn({rows, in});
      const at::Tensor ref = float_linear(x, w, b);
      const at::Tensor kernel = q->linear(x, b, Int8Weight::Path::kKernel);
      const at::Tensor blas = q->linear(x, b, Int8Weight::Path::kDequantBlas);
      BOOST_TEST_CONTEXT("[" << out << ", " << in << "] rows " << rows) {
        BOOST_TEST(rel_error(kernel, ref) < 0.02);
        BOOST_TEST(rel_error(blas, ref) < 0.02);
        BOOST_TEST(rel_error(q->linear(x, b), ref) < 0.02);
        // Same weights, same float arithmetic up to summation order.
        BOOST_TEST(rel_error(kernel, blas) < 1e-5);
        if (Int8Weight::onednn_available()) {
          const at::Tensor onednn = q->linear(x, b, Int8Weight::Path::kOnednn);
          // ONEDNN also rounds x, per tensor, to 7 bits on CPUs without VNNI (8-bit
          // activations saturate there, see int8_weight.cpp): 2-2.3% measured here.
          BOOST_TEST(rel_error(onednn, ref) < 0.03);
          BOOST_TEST(rel_error(onednn, kernel) < 0.03);
        }
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(int8_within_2_percent_of_float_on_tiny_en_weights) {
  const auto dir = peft_test::require_model_file("whisper-tiny.en");
  const auto ckpt = io::open_checkpoint(dir);
  at::manual_seed(5);
  for (const std::string name :
       {"encoder/layer_0/self_attention/linear_0/weight", "encoder/layer_3/ffn/linear_0/weight",
        "encoder/layer_2/ffn/linear_1/weight", "decoder/layer_1/attention/linear_1/weight",
        "decoder/layer_3/self_attention/linear_1/weight"}) {
    const at::Tensor w = io::to_torch(ckpt->raw(name)).to(at::kFloat);
    const auto q = Int8Weight::quantize(w, name);
    for (int64_t rows : {1, 5, 64}) {
      const at::Tensor x = at::randn({rows, w.size(1)});
      BOOST_TEST_CONTEXT(name << " rows " << rows) {
        BOOST_TEST(rel_error(q->linear(x, at::Tensor()), float_linear(x, w, at::Tensor())) < 0.02);
      }
    }
    // Weight-level: each value within half a step (row max / 254) of the original.
    const at::Tensor step = std::get<0>(w.abs().max(1)) / 127.0;
    BOOST_TEST(((q->dequantize() - w).abs() <= step.unsqueeze(1) * 0.5001).all().item<bool>());
    // 4-bit, group 64: NF4 fits these near-Gaussian weights better than uniform int4. A
    // numpy replica of both (rounding to the nearest level of max |group| / 7 or of the
    // NF4 table) gives 0.093-0.108 (NF4) and 0.111-0.149 (int4) relative error on layer 0.
    const double e_int4 =
        rel_error(Group4Weight::quantize(w, QuantType::int4, 64, false, name)->dequantize(), w);
    const double e_nf4 =
        rel_error(Group4Weight::quantize(w, QuantType::nf4, 64, false, name)->dequantize(), w);
    BOOST_TEST_MESSAGE(name << ": weight rel error int4 " << e_int4 << ", nf4 " << e_nf4);
    BOOST_TEST(e_nf4 < 0.115);
    BOOST_TEST(e_int4 < 0.16);
    BOOST_TEST(e_nf4 < e_int4);
  }
  // The token embedding (not quantized unless asked): a few of its columns are outliers,
  // so per-row scales are coarse for the rest: 3-8% on random x (measured).
  const at::Tensor emb = io::to_torch(ckpt->raw("decoder/embeddings/weight")).to(at::kFloat);
  const at::Tensor x = at::randn({5, emb.size(1)});
  const double err =
      rel_error(Int8Weight::quantize(emb, "emb")->linear(x, at::Tensor()), float_linear(x, emb, {}));
  BOOST_TEST_MESSAGE("token embedding int8, random x: " << err);
  BOOST_TEST(err < 0.1);
}

BOOST_AUTO_TEST_CASE(int4_dequantization_exact_on_a_hand_made_matrix) {
  // Groups of 32 with known integer codes q in [-7, 7] (each group holds a +-7) times a
  // power-of-two scale: quantizing must find exactly these codes and scales.
  const int64_t out = 3, in = 64, g = 32;
  std::vector<float> w(out * in);
  std::vector<int> codes(out * in);
  std::vector<float> scale(out * in / g);
  for (int64_t r = 0; r < out; ++r)
    for (int64_t grp = 0; grp < in / g; ++grp)
      scale[r * (in / g) + grp] = std::ldexp(1.0f, -3 - int(r + grp));
  for (int64_t i = 0; i < out * in; ++i) {
    codes[i] = static_cast<int>((i * 5 + 3) % 15) - 7;
    if (i % g == 4) codes[i] = (i / g) % 2 ? 7 : -7;
    w[i] = static_cast<float>(codes[i]) * scale[(i / in) * (in / g) + (i % in) / g];
  }
  const at::Tensor wt = at::from_blob(w.data(), {out, in}).clone();
  const auto q = Group4Weight::quantize(wt, QuantType::int4, g, false, "hand");
  BOOST_TEST(q->format() == "int4 g32");
  const at::Tensor packed = q->packed_codes();
  BOOST_REQUIRE((packed.sizes() == at::IntArrayRef{out, in / 2}));
  const at::Tensor scales = q->scales();
  for (int64_t r = 0; r < out; ++r) {
    for (int64_t c = 0; c < in; c += 2) {
      const int byte = packed[r][c / 2].item<int>();
      BOOST_TEST((byte & 15) == codes[r * in + c] + 8);
      BOOST_TEST((byte >> 4) == codes[r * in + c + 1] + 8);
    }
    for (int64_t grp = 0; grp < in / g; ++grp)
      BOOST_TEST(scales[r][grp].item<float>() == scale[r * (in / g) + grp]);
  }
  BOOST_TEST(at::equal(q->dequantize(), wt));
  BOOST_TEST(q->bytes() == out * in / 2 + out * (in / g) * 4);
}

BOOST_AUTO_TEST_CASE(nf4_dequantization_exact_on_a_hand_made_matrix) {
  const auto& nf4 = Group4Weight::nf4_table();
  // QLoRA's code: 16 ascending levels from -1 to 1 with an exact 0 (code 7).
  BOOST_TEST(nf4.front() == -1.0f);
  BOOST_TEST(nf4[7] == 0.0f);
  BOOST_TEST(nf4.back() == 1.0f);
  for (int i = 0; i + 1 < 16; ++i) BOOST_TEST(nf4[i] < nf4[i + 1]);
  const int64_t out = 4, in = 128, g = 64;
  std::vector<float> w(out * in);
  std::vector<int> codes(out * in);
  for (int64_t i = 0; i < out * in; ++i) {
    codes[i] = static_cast<int>((i * 7 + i / 3) % 16);
    if (i % g == 0) codes[i] = 15;  // every group reaches +-1 x its scale
    const float s = std::ldexp(1.0f, -2 - static_cast<int>(i / g) % 3);
    w[i] = nf4[codes[i]] * s;
  }
  const at::Tensor wt = at::from_blob(w.data(), {out, in}).clone();
  const auto q = Group4Weight::quantize(wt, QuantType::nf4, g, false, "hand");
  const at::Tensor packed = q->packed_codes();
  for (int64_t i = 0; i < out * in; i += 2) {
    const int byte = packed[i / in][(i % in) / 2].item<int>();
    BOOST_TEST((byte & 15) == codes[i]);
    BOOST_TEST((byte >> 4) == codes[i + 1]);
  }
  BOOST_TEST(at::equal(q->dequantize(), wt));
}

BOOST_AUTO_TEST_CASE(group4_dequantization_matches_a_scalar_reconstruction_and_error_bounds) {
  at::manual_seed(3);
  const at::Tensor w = at::randn({70, 256}) * 0.03;
  for (auto type : {QuantType::int4, QuantType::nf4})
    for (int64_t g : {32, 64, 128})
      for (bool dq : {false, true}) {
        const auto q = Group4Weight::quantize(w, type, g, dq, "random");
        BOOST_TEST_CONTEXT(q->format()) {
          // Scales: the stored floats, or decoded from double quantization here.
          at::Tensor scales;
          if (!dq) {
            scales = q->scales();
          } else {
            const auto& map = Group4Weight::dynamic_map();
            const at::Tensor codes = q->scale_codes(), m = q->scale_block_max();
            scales = at::empty({70, 256 / g});
            for (int64_t j = 0; j < codes.numel(); ++j)
              scales.view(-1)[j] = map[codes[j].item<int>()] * m[j / 256].item<float>() + q->scale_offset();
            BOOST_TEST(at::equal(scales, q->scales()));
          }
          const auto& table = q->table();
          const at::Tensor packed = q->packed_codes();
          at::Tensor expect = at::empty({70, 256});
          auto pa = packed.accessor<uint8_t, 2>();
          auto sa = scales.accessor<float, 2>();
          auto ea = expect.accessor<float, 2>();
          for (int64_t r = 0; r < 70; ++r)
            for (int64_t c = 0; c < 256; ++c) {
              const int code = c % 2 ? pa[r][c / 2] >> 4 : pa[r][c / 2] & 15;
              ea[r][c] = table[code] * sa[r][c / g];
            }
          BOOST_TEST(at::equal(q->dequantize(), expect));
          // Error: codes are chosen with the exact scale s (max |group|, / 7 for int4), so
          // |table[c] s - w| is at most half the widest gap between levels times s; double
          // quantization then replaces s by the decoded s', adding |table[c]| |s' - s|.
          double widest = 0;
          for (int i = 0; i + 1 < 16; ++i)
            if (type == QuantType::nf4 || i >= 1) widest = std::max<double>(widest, table[i + 1] - table[i]);
          const at::Tensor amax = std::get<0>(w.view({70, 256 / g, g}).abs().max(-1));
          const at::Tensor s = (type == QuantType::int4 ? amax / 7.0 : amax).repeat_interleave(g, 1);
          const at::Tensor s_used = scales.repeat_interleave(g, 1);
          const double tmax = type == QuantType::int4 ? 7.0 : 1.0;
          const at::Tensor bound = s * (widest / 2) + (s_used - s).abs() * tmax + 1e-7;
          BOOST_TEST(((q->dequantize() - w).abs() <= bound).all().item<bool>());
          // Relative error of y: int4 / nf4 land near 8-10% on Gaussian weights.
          const at::Tensor x = at::randn({5, 256});
          BOOST_TEST(rel_error(q->linear(x, at::Tensor()), float_linear(x, w, at::Tensor())) < 0.15);
        }
      }
  // bytes: 4.5 bits per weight at group 64, ~4.13 with double quantization.
  const auto plain = Group4Weight::quantize(w, QuantType::nf4, 64, false, "w");
  const auto dq = Group4Weight::quantize(w, QuantType::nf4, 64, true, "w");
  BOOST_TEST(plain->bytes() == 70 * 128 + 70 * 4 * 4);
  BOOST_TEST(dq->bytes() == 70 * 128 + 70 * 4 + 2 * 4 + 4);
}

BOOST_AUTO_TEST_CASE(dynamic_map_is_bitsandbytes_signed_8_bit_map) {
  const auto& map = Group4Weight::dynamic_map();
  for (int i = 0; i + 1 < 256; ++i) BOOST_TEST(map[i] <= map[i + 1]);
  BOOST_TEST(map.back() == 1.0f);
  // Largest magnitude below 1: the last midpoint of linspace(0.1, 1, 65), 0.99296875.
  BOOST_TEST(std::abs(map[254] - 0.99296875f) < 1e-6);
  BOOST_TEST(std::abs(map[0] + 0.99296875f) < 1e-6);
  // Smallest non-zero magnitude: 1e-6 * 0.55 (exponent 0: one midpoint of [0.1, 1]).
  int zeros = 0;
  float smallest = 1;
  for (float v : map) {
    if (v == 0)
      ++zeros;
    else
      smallest = std::min(smallest, std::abs(v));
  }
  BOOST_TEST(zeros == 1);
  BOOST_TEST(std::abs(smallest - 0.55e-6f) < 1e-12);
}

BOOST_AUTO_TEST_CASE(group4_kernel_and_dequant_blas_paths_agree) {
  at::manual_seed(9);
  for (auto type : {QuantType::int4, QuantType::nf4})
    for (int64_t g : {32, 64, 128})
      for (auto [out, in] : std::vector<std::pair<int64_t, int64_t>>{{384, 384}, {13, 128}, {1030, 256}}) {
        const at::Tensor w = at::randn({out, in}), b = at::randn({out});
        const auto q = Group4Weight::quantize(w, type, g, g == 64, "random");
        for (int64_t rows : {1, 2, 3, 5, 17}) {
          const at::Tensor x = at::randn({rows, in});
          BOOST_TEST_CONTEXT(q->format() << " [" << out << ", " << in << "] rows " << rows) {
            const at::Tensor k = q->linear(x, b, Group4Weight::Path::kKernel);
            const at::Tensor d = q->linear(x, b, Group4Weight::Path::kDequantBlas);
            BOOST_TEST(rel_error(k, d) < 1e-5);
            BOOST_TEST(rel_error(k, float_linear(x, q->dequantize(), b)) < 1e-5);
          }
        }
      }
}

// Matrices taller than one block of rows (quantize works 2048 rows at a time; the
// many-rows path dequantizes 16 MB of W at a time): the codes equal a whole-matrix
// computation, and the blocked product equals x times the whole dequantized W.
BOOST_AUTO_TEST_CASE(blocked_quantization_and_blocked_dequant_blas_match_whole_matrix) {
  at::manual_seed(13);
  const int64_t out = 12000, in = 384;  // 4.6 M values: two blocks of the product, six of quantize
  const at::Tensor w = at::randn({out, in}).to(at::kHalf), b = at::randn({out});

  const auto q8 = Int8Weight::quantize(w, "tall");
  const at::Tensor wf = w.to(at::kFloat);
  const at::Tensor amax = std::get<0>(wf.abs().max(1));
  const at::Tensor scale = amax / 127.0;
  const at::Tensor expected = at::round(wf / scale.unsqueeze(1)).clamp(-127, 127) * scale.unsqueeze(1);
  BOOST_TEST(at::equal(q8->dequantize(), expected));

  const auto q4 = Group4Weight::quantize(w, QuantType::int4, 64, false, "tall");
  const at::Tensor g = wf.reshape({out, in / 64, 64});
  const at::Tensor gs = (std::get<0>(g.abs().max(-1)) / 7.0).unsqueeze(-1);
  BOOST_TEST(at::equal(q4->dequantize(), (at::round(g / gs).clamp(-7, 7) * gs).reshape({out, in})));

  for (const quant::QuantizedWeight* q : {static_cast<const quant::QuantizedWeight*>(q8.get()),
                                          static_cast<const quant::QuantizedWeight*>(q4.get())})
    for (bool with_bias : {false, true}) {
      const at::Tensor x = at::randn({2, 20, in}), bias = with_bias ? b : at::Tensor();
      BOOST_TEST_CONTEXT(q->format() << (with_bias ? " with bias" : "")) {
        const at::Tensor y = q->dequantized_linear(x, bias);
        BOOST_TEST(y.sizes() == (std::vector<int64_t>{2, 20, out}));
        BOOST_TEST(rel_error(y, float_linear(x, q->dequantize(), bias)) < 1e-6);
      }
    }
}

BOOST_AUTO_TEST_CASE(refuses_nan_weights_and_bad_group_sizes_naming_the_tensor) {
  at::Tensor w = at::randn({8, 64});
  w[3][5] = std::nanf("");
  BOOST_TEST(throws_naming<ValueError>([&] { Int8Weight::quantize(w, "dec.fc1.weight"); },
                                       {"dec.fc1.weight", "NaN"}));
  BOOST_TEST(throws_naming<ValueError>(
      [&] { Group4Weight::quantize(w, QuantType::nf4, 32, false, "dec.fc2.weight"); },
      {"dec.fc2.weight", "NaN"}));
  w[3][5] = std::numeric_limits<float>::infinity();
  BOOST_TEST(
      throws_naming<ValueError>([&] { Int8Weight::quantize(w, "inf.weight"); }, {"inf.weight", "infinite"}));
  const at::Tensor ok = at::randn({8, 96});
  BOOST_TEST(throws_naming<ValueError>(
      [&] { Group4Weight::quantize(ok, QuantType::int4, 64, false, "attn.q"); }, {"attn.q", "96", "64"}));
  BOOST_TEST(throws_naming<ValueError>(
      [&] { Group4Weight::quantize(ok, QuantType::int4, 48, false, "attn.k"); }, {"48"}));
  const layers::Linear lin(ok, at::Tensor());
  quant::QuantOptions o;
  o.type = QuantType::nf4;
  o.group_size = 64;
  BOOST_TEST(throws_naming<ValueError>([&] { lin.quantized(o, "layer 7 fc1"); }, {"layer 7 fc1", "96"}));
}

BOOST_AUTO_TEST_CASE(linear_quantized_dense_weight_and_requantized_merges) {
  at::manual_seed(4);
  const at::Tensor w = at::randn({96, 128}) * 0.1, b = at::randn({96});
  const layers::Linear f16(w.to(at::kHalf), b);
  BOOST_TEST(f16.weight_format() == "float16");
  BOOST_TEST(f16.weight_bytes() == 96 * 128 * 2 + 96 * 4);
  for (auto type : {QuantType::int8, QuantType::int4, QuantType::nf4}) {
    quant::QuantOptions o;
    o.type = type;
    const layers::Linear q = f16.quantized(o, "w");
    BOOST_TEST_CONTEXT(q.weight_format()) {
      BOOST_TEST(q.is_quantized());
      BOOST_TEST(!q.weight().defined());
      BOOST_TEST(q.in_features() == 128);
      BOOST_TEST(q.out_features() == 96);
      BOOST_TEST(q.weight_bytes() < f16.weight_bytes());
      BOOST_TEST(q.dense_weight().scalar_type() == at::kFloat);
      BOOST_TEST(rel_error(q.dense_weight(), w) < (type == QuantType::int8 ? 0.01 : 0.12));
      // Embedding lookups read the same rows dense_weight() has.
      const at::Tensor idx = at::tensor({5, 0, 95}, at::TensorOptions().dtype(at::kLong)).view({1, 3});
      BOOST_TEST(
          at::equal(q.weight_rows(idx), q.dense_weight().index_select(0, idx.view(-1)).view({1, 3, 128})));
      // Merging a delta re-quantizes into the same format, keeping the bias.
      const at::Tensor delta = at::randn({96, 128}) * 0.01;
      const layers::Linear merged = q.with_weight(q.dense_weight() + delta, "merged");
      BOOST_TEST(merged.weight_format() == q.weight_format());
      BOOST_TEST(at::equal(merged.bias(), b));
      BOOST_TEST(rel_error(merged.dense_weight(), q.dense_weight() + delta) <
                 (type == QuantType::int8 ? 0.01 : 0.12));
      // Back to float: none dequantizes.
      const layers::Linear back = q.quantized(quant::QuantOptions{}, "w");
      BOOST_TEST(!back.is_quantized());
      BOOST_TEST(at::equal(back.weight(), q.dense_weight()));
      // The layer computes through the quantized weight.
      const at::Tensor x = at::randn({2, 3, 128});
      BOOST_TEST(rel_error(q(x), float_linear(x, q.dense_weight(), b)) < 1e-5);
      BOOST_TEST((q(x).sizes() == at::IntArrayRef{2, 3, 96}));
    }
  }
  BOOST_CHECK_THROW(f16.with_weight(at::randn({96, 127}), "bad"), ShapeError);
}

BOOST_AUTO_TEST_CASE(ct2_int8_weights_load_as_stored) {
  // tests/fixtures/io/ct2 (written by the real ctranslate2, make_ct2_fixture.py): the
  // int8 file's codes and scales, and the float32 values they were quantized from.
  const auto dir = peft_test::fixtures_dir() / "io" / "ct2";
  const nlohmann::json expected = nlohmann::json::parse(peft_test::read_file(dir / "expected.json"));
  const io::Ct2Checkpoint ckpt(dir / "tiny-int8");
  int checked = 0;
  for (const auto& [name, original] : expected.at("tiny-int8").at("originals").items()) {
    if (!ckpt.contains(name) || ckpt.info(name).dtype != io::DType::I8) continue;
    const io::TensorData raw = ckpt.raw(name), scale = ckpt.raw(name + "_scale");
    const at::Tensor codes = io::to_torch(raw), s = io::to_torch(scale);
    const auto q = Int8Weight::from_ct2(codes, s, name);
    std::vector<float> values = original.at("values").get<std::vector<float>>();
    const at::Tensor orig = at::from_blob(values.data(), codes.sizes()).clone();
    const at::Tensor step = std::get<0>(orig.abs().max(1)) / 127.0;
    BOOST_TEST_CONTEXT(name) {
      BOOST_TEST(at::equal(q->codes(), codes));
      BOOST_TEST(((q->dequantize() - orig).abs() <= step.unsqueeze(1) * 0.5001).all().item<bool>());
      // The reader's own dequantization (q / scale) within a rounding of ours (q * (1 / scale)).
      const std::vector<float> io_values = io::ct2_dequantize_int8(raw, scale);
      const at::Tensor io_t = at::from_blob(const_cast<float*>(io_values.data()), codes.sizes());
      BOOST_TEST(at::allclose(q->dequantize(), io_t, 1e-6, 0));
    }
    ++checked;
  }
  BOOST_TEST(checked >= 4);
  BOOST_TEST(throws_naming<ValueError>(
      [&] {
        Int8Weight::from_ct2(at::zeros({2, 3}, at::TensorOptions().dtype(at::kChar)),
                             at::tensor({1.0f, 0.0f}), "zero.scale");
      },
      {"zero.scale"}));
}

BOOST_AUTO_TEST_CASE(gguf_blocks_kept_as_stored_give_the_readers_values) {
  // The default SmolLM2 (GGUF Q4_1): every Q4_0 / Q4_1 / Q8_0 matrix of the first layer
  // and the embedding, dequantized here and by io's block decoder, must be identical,
  // and the kernel must compute with exactly those values.
  const auto path = peft_test::require_model_file("smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf");
  const auto ckpt = io::open_checkpoint(path);
  at::manual_seed(8);
  int checked = 0;
  for (const auto& info : ckpt->tensors()) {
    if (!quant::GgufBlockWeight::supports(info.dtype) || info.shape.size() != 2) continue;
    if (info.name.find("blk.0.") != 0 && info.name != "token_embd.weight") continue;
    const auto q = quant::GgufBlockWeight::from_tensor(ckpt->raw(info.name));
    std::vector<float> ref = ckpt->to_float(info.name);
    const at::Tensor w = at::from_blob(ref.data(), info.shape).clone();
    BOOST_TEST_CONTEXT(info.name << " " << q->format()) {
      BOOST_TEST(q->bytes() == static_cast<int64_t>(info.nbytes));
      BOOST_TEST(at::equal(q->dequantize(), w));
      const at::Tensor idx =
          at::tensor(std::vector<int64_t>{0, 7, info.shape[0] - 1}, at::TensorOptions().dtype(at::kLong));
      BOOST_TEST(at::equal(q->dequantize_rows(idx), w.index_select(0, idx)));
      // Few rows: the integer kernel, x quantized to int16 per 32-value block
      // (ops/int_dot_linear.h; measured up to 4.1e-5); 20 rows: BLAS on these values.
      for (int64_t rows : {1, 3, 20}) {
        const at::Tensor x = at::randn({rows, info.shape[1]});
        BOOST_TEST(rel_error(q->linear(x, at::Tensor()), float_linear(x, w, at::Tensor())) <
                   (rows <= ops::kFewRows ? 1e-4 : 1e-5));
      }
    }
    ++checked;
  }
  BOOST_TEST(checked >= 7);
}

BOOST_AUTO_TEST_CASE(gguf_quantizers_write_blocks_the_reader_decodes) {
  // Our Q4_0 / Q4_1 / Q8_0 quantizers (for merging into a GGUF base) write blocks that
  // io::dequantize_blocks reads back to the values we compute with, within the formats'
  // steps of the originals.
  at::manual_seed(12);
  const at::Tensor w = at::randn({40, 96}) * 0.2;
  for (auto t : {io::DType::Q4_0, io::DType::Q4_1, io::DType::Q8_0}) {
    const auto q = quant::GgufBlockWeight::quantize(w, t, "w");
    std::vector<float> decoded(40 * 96);
    io::decode_to_float(t, q->blocks().data_ptr<uint8_t>(), decoded.size(), decoded.data());
    const at::Tensor d = at::from_blob(decoded.data(), {40, 96}).clone();
    BOOST_TEST_CONTEXT(q->format()) {
      BOOST_TEST(at::equal(q->dequantize(), d));
      const at::Tensor bmax = std::get<0>(w.view({40, 3, 32}).abs().max(-1)).repeat_interleave(32, 1);
      const double steps = t == io::DType::Q8_0 ? 1.0 / 127 : t == io::DType::Q4_0 ? 2.0 / 8 : 2.0 / 15;
      // Half a step (Q4_0: up to a whole one at the end opposite its signed max), plus
      // the float16 rounding of the scale and minimum (2^-11 relative).
      BOOST_TEST(((d - w).abs() <= bmax * (steps * 0.5 + 2e-3)).all().item<bool>());
      // Re-quantizing keeps the format.
      BOOST_TEST(q->requantize(w, "w")->format() == q->format());
    }
  }
  BOOST_CHECK_THROW(quant::GgufBlockWeight::quantize(at::randn({4, 40}), io::DType::Q8_0, "w"), ValueError);
}

BOOST_AUTO_TEST_CASE(nf4_table_and_double_quantization_match_bitsandbytes) {
  // tests/fixtures/quant/bnb_double_quant.json: bitsandbytes 0.42's NF4 levels, its
  // 8-bit dynamic map, and its blockwise quantization of 600 group maxima
  // (make_bnb_quant_fixture.py).
  const nlohmann::json ref = nlohmann::json::parse(
      peft_test::read_file(peft_test::fixtures_dir() / "quant" / "bnb_double_quant.json"));
  for (int i = 0; i < 16; ++i) BOOST_TEST(Group4Weight::nf4_table()[i] == ref.at("nf4")[i].get<float>());
  for (int i = 0; i < 256; ++i) BOOST_TEST_CONTEXT("dynamic map " << i) {
      BOOST_TEST(Group4Weight::dynamic_map()[i] == ref.at("dynamic_map")[i].get<float>());
    }
  // A weight whose NF4 group maxima are exactly the fixture's: group g of the flattened
  // rows holds absmax[g] at its first column, zeros elsewhere.
  const auto& absmax = ref.at("absmax");
  const int64_t groups = static_cast<int64_t>(absmax.size()), g = 64, per_row = 60;
  at::Tensor w = at::zeros({groups / per_row, per_row * g});
  for (int64_t i = 0; i < groups; ++i) w[i / per_row][(i % per_row) * g] = absmax[i].get<float>();
  const auto q = Group4Weight::quantize(w, QuantType::nf4, g, true, "fixture");
  BOOST_TEST(q->scale_offset() == ref.at("offset").get<float>());
  const at::Tensor codes = q->scale_codes(), bmax = q->scale_block_max();
  BOOST_REQUIRE_EQUAL(bmax.numel(), 3);
  for (int64_t b = 0; b < 3; ++b) BOOST_TEST(bmax[b].item<float>() == ref.at("block_absmax")[b].get<float>());
  int same = 0;
  for (int64_t i = 0; i < groups; ++i) same += codes[i].item<int>() == ref.at("codes")[i].get<int>();
  BOOST_TEST(same == groups);
  // Decoded: map[code] * block max + offset, bitsandbytes' formula. Its 0.42 CPU
  // quantize_blockwise overwrites the map it is given in place, first entry -0.99297 ->
  // -1 (checked: state.code is the same tensor, and reads -1 after the call), so code 0
  // decodes to -1 x block max there (one value here, index 83); we keep the map as
  // create_dynamic_map defines it.
  const at::Tensor scales = q->scales().reshape({-1});
  for (int64_t i = 0; i < groups; ++i)
    if (ref.at("codes")[i].get<int>() != 0) BOOST_TEST_CONTEXT("scale " << i) {
        BOOST_TEST(std::abs(scales[i].item<float>() - ref.at("dequantized")[i].get<float>()) <= 1e-8);
      }
}
