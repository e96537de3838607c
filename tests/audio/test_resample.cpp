// The resampler keeps in-band tones (frequency, amplitude and phase), removes what the
// output rate cannot represent, and produces the promised number of samples.
#define BOOST_TEST_MODULE resample
#include <cmath>
#include <vector>

#include "peft/audio/resample.h"
#include "peft/error.h"
#include "test_support.h"

using namespace peft::audio;

namespace {

constexpr double kPi = 3.14159265358979323846;

std::vector<float> sine(double freq, int rate, size_t n, double amplitude = 0.5) {
  std::vector<float> x(n);
  for (size_t i = 0; i < n; ++i) x[i] = static_cast<float>(amplitude * std::sin(2 * kPi * freq * i / rate));
  return x;
}

// Samples far enough from both ends that the zero padding outside the signal does not reach them.
struct Interior {
  size_t begin, end;
};
Interior interior(const Resampler& r, size_t out_n) {
  const double in_per_out = double(r.in_rate()) / r.out_rate();
  const size_t margin = static_cast<size_t>(r.taps() / in_per_out) + 4;
  return {margin, out_n - margin};
}

// Root-mean-square of y over [begin, end).
double rms(const std::vector<float>& y, Interior in) {
  double s = 0;
  for (size_t i = in.begin; i < in.end; ++i) s += double(y[i]) * y[i];
  return std::sqrt(s / double(in.end - in.begin));
}

}  // namespace

BOOST_AUTO_TEST_CASE(in_band_sine_keeps_frequency_amplitude_and_phase) {
  for (int rate : {44100, 48000, 8000, 22050, 11025, 32000, 96000, 44101}) {
    BOOST_TEST_CONTEXT("rate " << rate) {
      const size_t n = static_cast<size_t>(rate);  // 1 s
      const Resampler r(rate);
      const std::vector<float> y = r.process(sine(1000.0, rate, n));
      const Interior in = interior(r, y.size());
      BOOST_REQUIRE_LT(in.begin, in.end);

      // Correlation with the ideal 1 kHz sine and cosine at 16 kHz gives amplitude and phase.
      double c_sin = 0, c_cos = 0, ideal_energy = 0;
      for (size_t i = in.begin; i < in.end; ++i) {
        const double w = 2 * kPi * 1000.0 * i / 16000.0;
        c_sin += y[i] * std::sin(w);
        c_cos += y[i] * std::cos(w);
        ideal_energy += std::sin(w) * std::sin(w);
      }
      const double amplitude = c_sin / ideal_energy;
      BOOST_CHECK_SMALL(amplitude / 0.5 - 1.0, 1e-3);
      BOOST_CHECK_SMALL(c_cos / ideal_energy, 1e-3);  // no phase shift

      // Sample by sample against the ideal sine, relative to its amplitude.
      double worst = 0;
      for (size_t i = in.begin; i < in.end; ++i)
        worst = std::max(worst, std::abs(y[i] - 0.5 * std::sin(2 * kPi * 1000.0 * i / 16000.0)) / 0.5);
      BOOST_CHECK_LT(worst, 1e-3);
      BOOST_TEST_MESSAGE("rate " << rate << ": amplitude error " << amplitude / 0.5 - 1.0
                                 << ", max sample error " << worst << ", taps " << r.taps());
    }
  }
}

BOOST_AUTO_TEST_CASE(passband_is_flat_to_7_khz) {
  for (int rate : {44100, 48000}) {
    const Resampler r(rate);
    for (double f : {100.0, 3000.0, 6000.0, 7000.0}) {
      const std::vector<float> y = r.process(sine(f, rate, static_cast<size_t>(rate)));
      const double gain = rms(y, interior(r, y.size())) / (0.5 / std::sqrt(2.0));
      BOOST_TEST_CONTEXT("rate " << rate << " f " << f) { BOOST_CHECK_SMALL(gain - 1.0, 2e-3); }
    }
  }
}

BOOST_AUTO_TEST_CASE(tones_above_8_khz_are_removed) {
  // From 44.1 kHz (and 48 kHz) everything from the output Nyquist up must go: a leftover
  // would alias to a false in-band tone.
  for (int rate : {44100, 48000}) {
    const Resampler r(rate);
    for (double f : {8000.0, 8200.0, 9000.0, 12000.0, 15000.0, 20000.0}) {
      const std::vector<float> y = r.process(sine(f, rate, static_cast<size_t>(rate)));
      const double db = 20 * std::log10(rms(y, interior(r, y.size())) / (0.5 / std::sqrt(2.0)) + 1e-30);
      BOOST_TEST_CONTEXT("rate " << rate << " f " << f << " Hz: " << db << " dB") {
        BOOST_CHECK_LT(db, -60.0);
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(upsampling_has_no_images) {
  // 8 kHz -> 16 kHz: a 3 kHz tone must not leave an image at 5 kHz. Measure everything
  // that is not the tone by subtracting the ideal sine.
  const Resampler r(8000);
  const std::vector<float> y = r.process(sine(3000.0, 8000, 8000));
  const Interior in = interior(r, y.size());
  double err = 0;
  for (size_t i = in.begin; i < in.end; ++i) {
    const double d = y[i] - 0.5 * std::sin(2 * kPi * 3000.0 * i / 16000.0);
    err += d * d;
  }
  const double db = 10 * std::log10(err / double(in.end - in.begin) / (0.125) + 1e-30);
  BOOST_CHECK_LT(db, -60.0);
}

BOOST_AUTO_TEST_CASE(output_lengths) {
  for (int rate : {44100, 48000, 8000, 22050, 16000, 11025, 44101, 7}) {
    const Resampler r(rate);
    for (size_t n :
         {size_t(0), size_t(1), size_t(2), size_t(3), size_t(441), size_t(12345), size_t(100003)}) {
      const double expect = std::round(double(n) * 16000.0 / rate);
      BOOST_TEST_CONTEXT("rate " << rate << " n " << n) {
        BOOST_CHECK_LE(std::abs(double(r.output_length(n)) - expect), 1.0);
        if (expect > 1e6) continue;  // 7 Hz -> 16 kHz: the length formula is enough
        BOOST_CHECK_EQUAL(r.process(std::vector<float>(n, 0.1f)).size(), r.output_length(n));
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(identity_at_16k) {
  std::vector<float> x = sine(440.0, 16000, 1000);
  x[17] = 1e30f;  // copied as is, not filtered
  const Resampler r(16000);
  BOOST_CHECK_EQUAL(r.taps(), 0);
  const std::vector<float> y = r.process(x);
  BOOST_CHECK(y == x);
  BOOST_CHECK(resample(x, 16000) == x);
}

BOOST_AUTO_TEST_CASE(dc_and_other_output_rates) {
  // A constant stays the constant away from the edges, whichever pair of rates.
  for (auto [in_rate, out_rate] : {std::pair{44100, 16000}, {16000, 44100}, {48000, 22050}, {16000, 8000}}) {
    const Resampler r(in_rate, out_rate);
    const std::vector<float> y = r.process(std::vector<float>(size_t(in_rate), 0.25f));
    const size_t margin = static_cast<size_t>(r.taps() * double(out_rate) / in_rate) + 4;
    for (size_t i = margin; i + margin < y.size(); ++i) BOOST_REQUIRE_SMALL(y[i] - 0.25f, 1e-4f);
  }
}

BOOST_AUTO_TEST_CASE(bad_rates) {
  PEFT_CHECK_THROW_MSG(Resampler(0), peft::ValueError, {"sample rates must be > 0", "0 -> 16000"});
  PEFT_CHECK_THROW_MSG(Resampler(16000, -1), peft::ValueError, {"-1"});
}
