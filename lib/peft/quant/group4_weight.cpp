#include "peft/quant/group4_weight.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>

#include "peft/error.h"
#include "peft/ops/blas_linear.h"
#include "peft/ops/few_rows_linear.h"
#include "peft/ops/packed_linear.h"

namespace peft::quant {

namespace {

constexpr int64_t kScaleBlock = 256;  // bitsandbytes quantizes the absmax values in blocks of 256

std::array<float, 16> int4_table() {
  std::array<float, 16> t{};
  for (int c = 0; c < 16; ++c) t[c] = static_cast<float>(c - 8);
  return t;
}

at::Tensor as_tensor(const float* v, int64_t n) {
  return at::from_blob(const_cast<float*>(v), {n}, at::TensorOptions().dtype(at::kFloat)).clone();
}

// Index of the nearest of `levels` (ascending) for each value of x: the number of
// midpoints between consecutive levels lying strictly below it (a tie goes to the lower).
at::Tensor nearest_level(const at::Tensor& x, const float* levels, int64_t n) {
  std::vector<float> mid(static_cast<size_t>(n - 1));
  for (int64_t i = 0; i + 1 < n; ++i) mid[i] = (levels[i] + levels[i + 1]) / 2;
  return at::bucketize(x, as_tensor(mid.data(), n - 1), /*out_int32=*/false, /*right=*/false);
}

}  // namespace

const std::array<float, 16>& Group4Weight::nf4_table() {
  // bitsandbytes' get_4bit_type("nf4"), as float32 (create_normal_map(offset=0.9677083):
  // 8 positive and 7 negative N(0, 1) quantiles plus 0, divided by the largest).
  static const std::array<float, 16> t = {
      -1.0f,
      -0.6961928009986877f,
      -0.5250730514526367f,
      -0.39491748809814453f,
      -0.28444138169288635f,
      -0.18477343022823334f,
      -0.09105003625154495f,
      0.0f,
      0.07958029955625534f,
      0.16093020141124725f,
      0.24611230194568634f,
      0.33791524171829224f,
      0.44070982933044434f,
      0.5626170039176941f,
      0.7229568362236023f,
      1.0f,
  };
  return t;
}

const std::array<float, 256>& Group4Weight::dynamic_map() {
  // create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8): for exponent
  // i = 0..6, the 2^i midpoints of linspace(0.1, 1, 2^i + 1) scaled by 10^(i - 6), with
  // both signs (254 values), plus 0 and 1; sorted.
  static const std::array<float, 256> map = [] {
    std::vector<float> v;
    for (int i = 0; i < 7; ++i) {
      // Through libtorch's own linspace and float32 arithmetic, as bitsandbytes computes it
      // (a hand-written linspace differs from torch's vectorised one in the last bit).
      const at::Tensor b =
          at::linspace(0.1, 1.0, (int64_t{1} << i) + 1, at::TensorOptions().dtype(at::kFloat));
      const int64_t n = b.size(0) - 1;
      const at::Tensor means = (b.narrow(0, 0, n) + b.narrow(0, 1, n)) / 2.0;
      const at::Tensor pos = means * std::pow(10.0, i - 6), neg = means * -std::pow(10.0, i - 6);
      for (int64_t j = 0; j < n; ++j) {
        v.push_back(pos[j].item<float>());
        v.push_back(neg[j].item<float>());
      }
    }
    v.push_back(0.0f);
    v.push_back(1.0f);
    std::sort(v.begin(), v.end());
    std::array<float, 256> out{};
    std::copy(v.begin(), v.end(), out.begin());
    return out;
  }();
  return map;
}

std::shared_ptr<const Group4Weight> Group4Weight::quantize(const at::Tensor& weight, QuantType type,
                                                           int64_t group, bool double_quant,
                                                           const std::string& name) {
  if (type != QuantType::int4 && type != QuantType::nf4)
    throw ValueError(name + ": Group4Weight quantizes to int4 or nf4, not " + to_string(type));
  check_float_matrix(weight, name);
  QuantOptions opts;
  opts.group_size = group;
  opts.validate();
  const int64_t out = weight.size(0), in = weight.size(1);
  if (in % group != 0)
    throw ValueError(name + ": in_features " + std::to_string(in) + " is not a multiple of the group size " +
                     std::to_string(group));

  auto q = std::shared_ptr<Group4Weight>(new Group4Weight(out, in));
  q->type_ = type;
  q->group_ = group;
  q->table_ = type == QuantType::nf4 ? nf4_table() : int4_table();

  at::Tensor scales = at::empty({out, in / group}, at::TensorOptions().dtype(at::kFloat));
  q->packed_ = at::empty({out, in / 2}, at::TensorOptions().dtype(at::kByte));
  // By blocks of rows: the float32 temporaries stay a few MB for any matrix.
  constexpr int64_t kQuantizeRows = 2048;
  for (int64_t r0 = 0; r0 < out; r0 += kQuantizeRows) {
    const int64_t n = std::min(kQuantizeRows, out - r0);
    const at::Tensor w = weight.narrow(0, r0, n).to(at::kFloat).reshape({n, in / group, group});
    const at::Tensor amax = std::get<0>(w.abs().max(-1));  // [n, in / group]
    const at::Tensor s = type == QuantType::nf4 ? amax : amax / 7.0;
    const at::Tensor safe = at::where(s > 0, s, at::ones_like(s)).unsqueeze(-1);
    at::Tensor codes = type == QuantType::int4
                           ? at::round(w / safe).clamp_(-7, 7).add_(8)
                           : nearest_level((w / safe).clamp_(-1, 1), q->table_.data(), 16);
    codes = codes.to(at::kByte).reshape({n, in});
    scales.narrow(0, r0, n).copy_(s);
    q->packed_.narrow(0, r0, n).copy_(
        codes.slice(1, 0, in, 2).bitwise_or(codes.slice(1, 1, in, 2).bitwise_left_shift(4)));
  }

  if (!double_quant) {
    q->scales_ = scales.contiguous();
    return q;
  }
  const at::Tensor s = scales.reshape({-1});
  const int64_t count = s.numel(), blocks = (count + kScaleBlock - 1) / kScaleBlock;
  q->scale_offset_ = s.mean().item<float>();
  at::Tensor centred = at::zeros({blocks * kScaleBlock}, s.options());
  centred.narrow(0, 0, count).copy_(s - q->scale_offset_);
  centred = centred.view({blocks, kScaleBlock});
  q->scale_max_ = std::get<0>(centred.abs().max(1)).contiguous();
  const at::Tensor m = at::where(q->scale_max_ > 0, q->scale_max_, at::ones_like(q->scale_max_)).unsqueeze(1);
  q->scale_codes_ = nearest_level((centred / m).clamp_(-1, 1), dynamic_map().data(), 256)
                        .to(at::kByte)
                        .reshape({-1})
                        .narrow(0, 0, count)
                        .contiguous();
  return q;
}

at::Tensor Group4Weight::scales_of(int64_t row0, int64_t rows) const {
  const int64_t per_row = in_features() / group_;
  if (scales_.defined()) return scales_.narrow(0, row0, rows);
  at::Tensor out = at::empty({rows, per_row}, at::TensorOptions().dtype(at::kFloat));
  const uint8_t* codes = scale_codes_.data_ptr<uint8_t>();
  const float* m = scale_max_.data_ptr<float>();
  const auto& map = dynamic_map();
  float* o = out.data_ptr<float>();
  for (int64_t i = 0, first = row0 * per_row; i < rows * per_row; ++i) {
    const int64_t j = first + i;
    o[i] = map[codes[j]] * m[j / kScaleBlock] + scale_offset_;
  }
  return out;
}

at::Tensor Group4Weight::scales() const { return scales_of(0, out_features()); }

std::string Group4Weight::format() const {
  return to_string(type_) + " g" + std::to_string(group_) + (double_quant() ? " dq" : "");
}

void Group4Weight::dequantize_into(int64_t row0, int64_t rows, float* out) const {
  const at::Tensor s = scales_of(row0, rows).contiguous();
  ops::PackedWeight p;
  p.format = ops::PackedFormat::kNibbleGroups;
  p.n = rows;
  p.k = in_features();
  p.data = packed_.data_ptr<uint8_t>() + row0 * (in_features() / 2);
  p.group_scale = s.data_ptr<float>();
  p.group = group_;
  p.lut = table_.data();
  ops::dequantize_packed(p, 0, rows, out);
}

int64_t Group4Weight::bytes() const {
  int64_t n = packed_.numel();
  if (scales_.defined()) n += scales_.numel() * 4;
  if (scale_codes_.defined()) n += scale_codes_.numel() + scale_max_.numel() * 4 + 4;
  return n;
}

std::shared_ptr<const QuantizedWeight> Group4Weight::requantize(const at::Tensor& weight,
                                                                const std::string& name) const {
  if (weight.dim() != 2 || weight.size(0) != out_features() || weight.size(1) != in_features())
    throw ShapeError(name + ": re-quantizing a " + format() + " [" + std::to_string(out_features()) + ", " +
                     std::to_string(in_features()) + "] weight with another shape");
  return quantize(weight, type_, group_, double_quant(), name);
}

at::Tensor Group4Weight::linear(const at::Tensor& x, const at::Tensor& bias, Path path) const {
  const int64_t rows = rows_of(x);
  if (path == Path::kAuto) path = rows <= ops::kFewRows ? Path::kKernel : Path::kDequantBlas;
  if (path == Path::kDequantBlas) return dequantized_linear(x, bias);
  const at::Tensor s = scales_of(0, out_features()).contiguous();
  ops::PackedWeight p;
  p.format = ops::PackedFormat::kNibbleGroups;
  p.n = out_features();
  p.k = in_features();
  p.data = packed_.data_ptr<uint8_t>();
  p.group_scale = s.data_ptr<float>();
  p.group = group_;
  p.lut = table_.data();
  return ops::few_rows_linear_packed(x, p, bias);
}

}  // namespace peft::quant
