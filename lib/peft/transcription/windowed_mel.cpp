#include "peft/transcription/windowed_mel.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "peft/audio/log_mel.h"
#include "peft/error.h"

namespace peft::transcription {

namespace {

constexpr int64_t kHop = audio::kHopLength;
constexpr int64_t kPadSamples = kHop;  // faster-whisper's FeatureExtractor(padding=160)
constexpr int64_t kContextFrames = 2;  // a frame reaches n_fft / 2 = 200 samples < 2 hops back

}  // namespace

WindowedLogMel::WindowedLogMel(const float* samples, size_t n, int n_mels)
    : samples_(samples), n_(n), n_mels_(n_mels) {
  for (size_t i = 0; i < n; ++i)
    if (!std::isfinite(samples[i]))
      throw ValueError("audio sample " + std::to_string(i) + " is " +
                       (std::isnan(samples[i]) ? "NaN" : "infinite"));
  if (n_mels < 1) throw ValueError("WindowedLogMel: n_mels " + std::to_string(n_mels) + " < 1");
  total_frames_ = static_cast<int64_t>(n + kPadSamples) / kHop;
  content_frames_ = total_frames_ - 1;
  // Pass 1: the global maximum, in 30 s chunks. Each chunk's maximum survives its own
  // floor unchanged, so the largest chunk maximum is the whole file's.
  float max_value = -std::numeric_limits<float>::infinity();
  for (int64_t first = 0; first < total_frames_; first += audio::kChunkFrames) {
    const int64_t count = std::min(audio::kChunkFrames, total_frames_ - first);
    max_value = std::max(max_value, raw_frames(first, count).max().item<float>());
  }
  floor_ = max_value - 2.0f;  // (L + 4) / 4 with L = max - 8
}

at::Tensor WindowedLogMel::raw_frames(int64_t first, int64_t count) const {
  const int64_t padded = static_cast<int64_t>(n_) + kPadSamples;
  // Slice with context, aligned to the hop so slice frame j is global frame begin/hop + j.
  // At the file's ends the slice ends where the file does, so log_mel_spectrogram's
  // reflection padding is the whole-file one.
  const int64_t begin = std::max<int64_t>(0, first - kContextFrames) * kHop;
  const int64_t end = std::min(padded, (first + count + 1) * kHop);
  std::vector<float> slice(static_cast<size_t>(end - begin), 0.0f);
  const int64_t copy_end = std::min<int64_t>(end, static_cast<int64_t>(n_));
  if (copy_end > begin) std::copy(samples_ + begin, samples_ + copy_end, slice.begin());
  at::Tensor mel = audio::log_mel_spectrogram(slice.data(), slice.size(), n_mels_, 0);
  return mel.slice(1, first - begin / kHop, first - begin / kHop + count);
}

at::Tensor WindowedLogMel::frames(int64_t first, int64_t count) const {
  if (first < 0 || count < 0 || first + count > total_frames_)
    throw ValueError("WindowedLogMel: frames [" + std::to_string(first) + ", " +
                     std::to_string(first + count) + ") outside [0, " + std::to_string(total_frames_) + ")");
  if (count == 0) return at::zeros({n_mels_, 0}, at::kFloat);
  return raw_frames(first, count).clamp_min(floor_);
}

at::Tensor WindowedLogMel::window(int64_t seek) const {
  const int64_t count = std::min(audio::kChunkFrames, content_frames_ - seek);
  if (seek < 0 || count <= 0)
    throw ValueError("WindowedLogMel: seek " + std::to_string(seek) + " outside [0, " +
                     std::to_string(content_frames_) + ")");
  return audio::pad_or_trim(frames(seek, count), audio::kChunkFrames);
}

}  // namespace peft::transcription
