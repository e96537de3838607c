#include "peft/audio/log_mel.h"

#include <ATen/ATen.h>

#include <cmath>
#include <string>
#include <vector>

#include "peft/error.h"

namespace peft::audio {

namespace {

constexpr double kSampleRate = 16000.0;
constexpr int kFreqBins = kNFft / 2 + 1;  // 201 one-sided bins
constexpr int64_t kCenterPad = kNFft / 2;

// Slaney's mel scale (librosa htk=False): linear below 1 kHz at 200/3 Hz per mel,
// logarithmic above with 27 mels per factor 6.4.
constexpr double kLinearHzPerMel = 200.0 / 3.0;
constexpr double kLogStartHz = 1000.0;
constexpr double kLogStartMel = kLogStartHz / kLinearHzPerMel;  // 15
const double kLogStep = std::log(6.4) / 27.0;

double hz_to_mel(double hz) {
  return hz >= kLogStartHz ? kLogStartMel + std::log(hz / kLogStartHz) / kLogStep : hz / kLinearHzPerMel;
}

double mel_to_hz(double mel) {
  return mel >= kLogStartMel ? kLogStartHz * std::exp(kLogStep * (mel - kLogStartMel))
                             : mel * kLinearHzPerMel;
}

// Index of the reflection of position i (which may lie outside [0, n)) into [0, n),
// reflecting as many times as needed, without repeating the edge sample. n >= 2.
int64_t reflect_index(int64_t i, int64_t n) {
  const int64_t period = 2 * (n - 1);
  int64_t j = i % period;
  if (j < 0) j += period;
  return j < n ? j : period - j;
}

std::string sample_position(int64_t flat, const at::Tensor& audio) {
  if (audio.dim() == 1) return "sample " + std::to_string(flat);
  const int64_t n = audio.size(1);
  return "sample " + std::to_string(flat % n) + " of batch item " + std::to_string(flat / n);
}

}  // namespace

at::Tensor mel_filters(int n_mels) {
  if (n_mels < 1) throw ValueError("mel_filters: n_mels must be >= 1, got " + std::to_string(n_mels));
  // Band edges: n_mels + 2 points equally spaced in mel from 0 Hz to Nyquist, spaced the
  // way numpy.linspace does (start + i * step, the last point exactly the end).
  const int points = n_mels + 2;
  const double mel_lo = hz_to_mel(0.0), mel_hi = hz_to_mel(kSampleRate / 2);
  const double step = (mel_hi - mel_lo) / (points - 1);
  std::vector<double> edge_hz(points);
  for (int i = 0; i < points; ++i) edge_hz[i] = mel_to_hz(i == points - 1 ? mel_hi : mel_lo + i * step);

  std::vector<float> w(size_t(n_mels) * kFreqBins);
  for (int m = 0; m < n_mels; ++m) {
    const double lo = edge_hz[m], mid = edge_hz[m + 1], hi = edge_hz[m + 2];
    // Area normalisation: each triangle integrates to the same energy whatever its width.
    const double norm = 2.0 / (hi - lo);
    for (int k = 0; k < kFreqBins; ++k) {
      const double f = k * kSampleRate / kNFft;
      const double rising = (f - lo) / (mid - lo);
      const double falling = (hi - f) / (hi - mid);
      // librosa stores the triangle in float32 first, then multiplies by the norm in double
      // and rounds again; doing the same keeps the values bit-identical to whisper's table.
      const float tri = static_cast<float>(std::max(0.0, std::min(rising, falling)));
      w[size_t(m) * kFreqBins + k] = static_cast<float>(double{tri} * norm);
    }
  }
  return at::from_blob(w.data(), {n_mels, kFreqBins}, at::TensorOptions().dtype(at::kFloat)).clone();
}

at::Tensor log_mel_spectrogram(const at::Tensor& audio, int n_mels, int64_t pad_samples) {
  if (audio.dim() != 1 && audio.dim() != 2)
    throw ValueError("log_mel_spectrogram: audio must be [N] or [B, N], got " + std::to_string(audio.dim()) +
                     " dimensions");
  if (!at::isFloatingType(audio.scalar_type()))
    throw ValueError(std::string("log_mel_spectrogram: audio must be floating point, got ") +
                     c10::toString(audio.scalar_type()));
  if (n_mels < 1) throw ValueError("log_mel_spectrogram: n_mels must be >= 1, got " + std::to_string(n_mels));
  if (pad_samples < 0)
    throw ValueError("log_mel_spectrogram: pad_samples must be >= 0, got " + std::to_string(pad_samples));

  at::Tensor x = audio.to(at::kFloat).contiguous();
  // One NaN would turn the global maximum, and so every frame, into NaN: refuse it up front.
  const at::Tensor bad = at::logical_not(at::isfinite(x)).flatten();
  if (bad.any().item<bool>()) {
    const int64_t flat = bad.nonzero().select(1, 0)[0].item<int64_t>();
    throw ValueError("log_mel_spectrogram: " + sample_position(flat, x) + " is " +
                     std::to_string(x.flatten()[flat].item<float>()) + ", audio must be finite");
  }
  if (pad_samples > 0) x = at::constant_pad_nd(x, {0, pad_samples}, 0.0);

  const bool batched = x.dim() == 2;
  const int64_t n = x.size(-1);
  const int64_t frames = n / kHopLength;
  if (frames == 0) {
    return batched ? at::zeros({x.size(0), n_mels, 0}, x.options()) : at::zeros({n_mels, 0}, x.options());
  }

  // Centre the frames: reflect 200 samples at each end, as torch.stft(center=True) does.
  std::vector<int64_t> index(size_t(n + 2 * kCenterPad));
  for (int64_t i = 0; i < int64_t(index.size()); ++i) index[size_t(i)] = reflect_index(i - kCenterPad, n);
  const at::Tensor gather =
      at::from_blob(index.data(), {int64_t(index.size())}, at::TensorOptions().dtype(at::kLong));
  const at::Tensor padded = x.index_select(-1, gather);

  const at::Tensor window = at::hann_window(kNFft, /*periodic=*/true, at::TensorOptions().dtype(at::kFloat));
  const at::Tensor spec = at::stft(padded, kNFft, kHopLength, kNFft, window, /*normalized=*/false,
                                   /*onesided=*/true, /*return_complex=*/true);
  // n / 160 + 1 frames come out; whisper drops the last so 30 s give exactly 3000.
  const at::Tensor power = spec.slice(-1, 0, frames).abs().pow(2);

  const at::Tensor mel = at::matmul(mel_filters(n_mels), power);
  at::Tensor log_spec = at::clamp_min(mel, 1e-10).log10();
  // Dynamic range: nothing more than 80 dB below the loudest bin of the input.
  const at::Tensor peak = batched ? log_spec.amax({-2, -1}, /*keepdim=*/true) : log_spec.max();
  log_spec = at::maximum(log_spec, peak - 8.0);
  return (log_spec + 4.0) / 4.0;
}

at::Tensor log_mel_spectrogram(const float* samples, size_t n, int n_mels, int64_t pad_samples) {
  // A non-owning view is enough: every path above returns freshly allocated memory.
  const at::Tensor audio =
      at::from_blob(const_cast<float*>(samples), {int64_t(n)}, at::TensorOptions().dtype(at::kFloat));
  return log_mel_spectrogram(audio, n_mels, pad_samples);
}

at::Tensor pad_or_trim(const at::Tensor& x, int64_t length) {
  if (x.dim() < 1) throw ValueError("pad_or_trim: needs a tensor with at least 1 dimension");
  if (length < 0) throw ValueError("pad_or_trim: length must be >= 0, got " + std::to_string(length));
  const int64_t have = x.size(-1);
  if (have == length) return x;
  if (have > length) return x.slice(-1, 0, length);
  return at::constant_pad_nd(x, {0, length - have}, 0.0);
}

}  // namespace peft::audio
