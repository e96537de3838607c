// Sample-rate conversion for the ASR front end: any rate to 16 kHz (or any other pair).
// Torch-free.
//
// The filter: a band-limited windowed sinc evaluated on the exact rational time grid.
// With g = gcd(in, out), L = out/g and M = in/g, output sample n sits at input time
// t = n*M/L and is sum_k x[k] h(t - k) with
//   h(d) = 2 fc sinc(2 fc d) * kaiser(d / R),   fc = 0.475 * min(1, out/in)  [cycles/input sample]
// so the passband is flat (ripple < 1e-4) to 90 % of the lower Nyquist frequency (7.2 kHz
// when going to 16 kHz) and the stopband starts at the lower Nyquist (8 kHz), attenuated by
// at least 90 dB (Kaiser beta 8.96). The half-width R follows Kaiser's length formula for a
// transition band of 10 % of the lower Nyquist: about 57 / min(1, out/in) input samples, so
// 44.1 kHz -> 16 kHz uses 316 taps per output sample. The kernel is symmetric around t:
// no delay, output sample 0 lines up with input sample 0. Samples outside the input count as
// zero. For the usual rates (L*taps <= 2^21 coefficients) every one of the L phases is
// tabulated exactly; for odd rate pairs (say 44101 Hz) 512 phases are tabulated and the
// coefficients for the exact phase are interpolated linearly between neighbours
// (interpolation error below -110 dB).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace peft::audio {

constexpr int kWhisperSampleRate = 16000;

class Resampler {
 public:
  // Throws peft::ValueError for a rate <= 0.
  explicit Resampler(int in_rate, int out_rate = kWhisperSampleRate);

  // Converts a whole signal; output_length(n) samples come out.
  std::vector<float> process(const float* input, size_t n) const;
  std::vector<float> process(const std::vector<float>& input) const {
    return process(input.data(), input.size());
  }

  // round(n * out / in), halves rounded up.
  size_t output_length(size_t n) const;
  int in_rate() const { return in_rate_; }
  int out_rate() const { return out_rate_; }
  // Taps per output sample (0 for the identity).
  int taps() const { return taps_; }

 private:
  int in_rate_;
  int out_rate_;
  uint64_t up_ = 1;    // L
  uint64_t down_ = 1;  // M
  int taps_ = 0;
  int half_ = 0;    // ceil(R): taps reach from base - half + 1 to base + half
  int phases_ = 0;  // rows in table_ (L, or the interpolation grid + 1)
  bool interpolate_ = false;
  std::vector<float> table_;  // phases_ x taps_
};

// One-shot helper: `input` at in_rate converted to out_rate (a copy when they are equal).
std::vector<float> resample(const std::vector<float>& input, int in_rate, int out_rate = kWhisperSampleRate);

}  // namespace peft::audio
