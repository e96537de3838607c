#include "peft/audio/resample.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include "peft/error.h"

namespace peft::audio {

namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr double kStopbandDb = 90.0;
// Transition band as a fraction of the lower Nyquist frequency: passband to 0.9, stop at 1.0.
constexpr double kTransition = 0.10;
constexpr uint64_t kMaxExactCoefficients = uint64_t{1} << 21;
constexpr int kInterpolatedPhases = 512;

// Modified Bessel function of the first kind, order 0, by its power series (converges
// quickly for the beta values a Kaiser window uses).
double bessel_i0(double x) {
  const double q = x * x / 4.0;
  double term = 1.0, sum = 1.0;
  for (int k = 1; k < 200 && term > sum * 1e-17; ++k) {
    term *= q / (double(k) * k);
    sum += term;
  }
  return sum;
}

}  // namespace

Resampler::Resampler(int in_rate, int out_rate) : in_rate_(in_rate), out_rate_(out_rate) {
  if (in_rate <= 0 || out_rate <= 0)
    throw ValueError("resampler: sample rates must be > 0, got " + std::to_string(in_rate) + " -> " +
                     std::to_string(out_rate));
  if (in_rate == out_rate) return;
  const uint64_t g = std::gcd(uint64_t(in_rate), uint64_t(out_rate));
  up_ = uint64_t(out_rate) / g;
  down_ = uint64_t(in_rate) / g;

  // Everything below is in input samples; `ratio` scales the band to the lower Nyquist.
  const double ratio = std::min(1.0, double(out_rate) / in_rate);
  const double cutoff = 0.5 * ratio * (1.0 - kTransition / 2);  // middle of the transition band
  const double width = 0.5 * ratio * kTransition;               // cycles per input sample
  const double beta = 0.1102 * (kStopbandDb - 8.7);
  // Kaiser's estimate of the filter order for this attenuation and transition width.
  const double order = (kStopbandDb - 7.95) / (2.285 * 2.0 * kPi * width);
  half_ = static_cast<int>(std::ceil(order / 2.0));
  taps_ = 2 * half_;

  interpolate_ = up_ * uint64_t(taps_) > kMaxExactCoefficients;
  phases_ = interpolate_ ? kInterpolatedPhases + 1 : static_cast<int>(up_);
  const double phase_step = interpolate_ ? 1.0 / kInterpolatedPhases : 1.0 / double(up_);

  const double i0_beta = bessel_i0(beta);
  table_.resize(size_t(phases_) * taps_);
  for (int p = 0; p < phases_; ++p) {
    const double frac = p * phase_step;  // t - floor(t)
    for (int j = 0; j < taps_; ++j) {
      // Tap j multiplies x[floor(t) - half + 1 + j], at distance d = t - k.
      const double d = frac + half_ - 1 - j;
      const double u = d / half_;
      double h = 0.0;
      if (std::abs(u) < 1.0) {
        const double arg = 2.0 * cutoff * d;
        const double sinc = arg == 0.0 ? 1.0 : std::sin(kPi * arg) / (kPi * arg);
        h = 2.0 * cutoff * sinc * bessel_i0(beta * std::sqrt(1.0 - u * u)) / i0_beta;
      }
      table_[size_t(p) * taps_ + j] = static_cast<float>(h);
    }
  }
}

size_t Resampler::output_length(size_t n) const {
  if (up_ == down_) return n;
  return static_cast<size_t>((uint64_t(n) * up_ + down_ / 2) / down_);
}

std::vector<float> Resampler::process(const float* input, size_t n) const {
  if (up_ == down_) return std::vector<float>(input, input + n);
  const size_t out_n = output_length(n);
  std::vector<float> out(out_n);
  std::vector<float> blended(interpolate_ ? taps_ : 0);
  const int64_t len = static_cast<int64_t>(n);

  // t = i*M/L kept as base + phase/L so the grid never drifts.
  uint64_t base = 0, phase = 0;
  for (size_t i = 0; i < out_n; ++i) {
    const float* coef;
    if (interpolate_) {
      const double pos = double(phase) / double(up_) * kInterpolatedPhases;
      const int row = std::min(static_cast<int>(pos), kInterpolatedPhases - 1);
      const float a = static_cast<float>(pos - row);
      const float* r0 = &table_[size_t(row) * taps_];
      const float* r1 = r0 + taps_;
      for (int j = 0; j < taps_; ++j) blended[j] = r0[j] + a * (r1[j] - r0[j]);
      coef = blended.data();
    } else {
      coef = &table_[size_t(phase) * taps_];
    }
    const int64_t k0 = static_cast<int64_t>(base) - half_ + 1;
    const int64_t j_lo = std::max<int64_t>(0, -k0);
    const int64_t j_hi = std::min<int64_t>(taps_, len - k0);
    float acc = 0.0f;
    for (int64_t j = j_lo; j < j_hi; ++j) acc += coef[j] * input[k0 + j];
    out[i] = acc;

    phase += down_;
    base += phase / up_;
    phase %= up_;
  }
  return out;
}

std::vector<float> resample(const std::vector<float>& input, int in_rate, int out_rate) {
  return Resampler(in_rate, out_rate).process(input);
}

}  // namespace peft::audio
