// faster-whisper's features for long-form decoding, one window at a time.
//
// faster-whisper computes the log-mel of the WHOLE audio (plus 160 zero samples) once,
// so its "max - 8" floor uses the maximum over the whole file, then cuts 3000-frame
// windows out of it and zero-pads the last (with 0.0 in the log-mel domain, not with
// the spectrum of silence as openai's 30 s audio padding does). Holding that
// spectrogram costs 80 floats per 10 ms (115 MB per hour) plus the STFT's working
// memory, so this class gets the same numbers in two bounded passes instead: the
// constructor scans the audio in 30 s chunks for the global maximum, and window()
// recomputes only the frames asked for (with two frames of context on either side, so
// every frame sees exactly the samples it sees in the whole-file STFT) and applies the
// global floor. The floor commutes with the per-chunk one log_mel_spectrogram already
// applied because both are max() with a monotone transform.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstddef>
#include <cstdint>

namespace peft::transcription {

class WindowedLogMel {
 public:
  // `samples` (16 kHz mono) must outlive this object. Throws peft::ValueError naming the
  // first NaN or infinite sample.
  WindowedLogMel(const float* samples, size_t n, int n_mels = 80);

  // Frames faster-whisper decodes: floor(n / 160) (its feature count minus one).
  int64_t content_frames() const { return content_frames_; }

  // Frames [first, first + count) of the whole-file log-mel, float32 [n_mels, count];
  // count may reach content_frames() + 1 (the frame of the 160 padding samples).
  at::Tensor frames(int64_t first, int64_t count) const;

  // A 3000-frame window starting at `seek`: min(3000, content_frames - seek) frames,
  // zero-padded to 3000 like faster-whisper's pad_or_trim. [n_mels, 3000].
  at::Tensor window(int64_t seek) const;

 private:
  at::Tensor raw_frames(int64_t first, int64_t count) const;  // per-chunk floor only

  const float* samples_;
  size_t n_;
  int n_mels_;
  int64_t total_frames_ = 0;  // of audio + 160 zeros, last STFT frame dropped
  int64_t content_frames_ = 0;
  float floor_ = 0;  // the global floor in the normalised domain: (max - 8 + 4) / 4
};

}  // namespace peft::transcription
