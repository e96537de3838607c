// Whisper's log-mel front end (openai whisper/audio.py log_mel_spectrogram, re-derived):
//   16 kHz mono float -> centred STFT (n_fft 400, hop 160, periodic Hann, reflect padding),
//   last frame dropped -> power |X|^2 -> Slaney mel filterbank (librosa.filters.mel, fmin 0,
//   fmax 8000, slaney area norm) -> log10(max(x, 1e-10)) -> max(L, max(L) - 8) -> (L + 4) / 4.
// N samples give floor(N / 160) frames; 30 s (480000 samples) give 3000.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstddef>
#include <cstdint>

namespace peft::audio {

constexpr int kNFft = 400;
constexpr int kHopLength = 160;
constexpr int64_t kChunkSamples = 480000;  // one 30 s Whisper window at 16 kHz
constexpr int64_t kChunkFrames = 3000;     // its log-mel frames

// The Slaney-style mel filterbank, [n_mels, 201] float32, as librosa.filters.mel(sr=16000,
// n_fft=400, n_mels) computes it: the triangles are evaluated in double and rounded to float,
// then scaled by 2 / (bandwidth in Hz) and rounded again, exactly as librosa's float32 path
// does, so the values equal whisper's assets/mel_filters.npz. Throws peft::ValueError for
// n_mels < 1.
at::Tensor mel_filters(int n_mels);

// Log-mel spectrogram of 16 kHz audio. `audio` is [N] or [B, N], any floating dtype (computed
// in float32); `pad_samples` zeros are appended first (openai transcribe pads 30 s, i.e.
// kChunkSamples, so the last window is complete). Returns float32 [n_mels, frames] or
// [B, n_mels, frames] with frames = floor((N + pad_samples) / 160).
//
// Defined where whisper is not: fewer than 160 samples (including none) give 0 frames
// instead of an error; 160..200 samples, too short for a single reflection of the 200-sample
// padding, are reflected repeatedly (numpy's "reflect" rule). For [B, N] input the "max - 8"
// floor uses each item's own maximum, so a batch equals its items computed one by one
// (whisper's code would take the maximum over the whole batch).
//
// Throws peft::ValueError naming the first NaN or infinite sample's index, for a wrong rank,
// for a non-floating dtype, for n_mels < 1 or pad_samples < 0.
at::Tensor log_mel_spectrogram(const at::Tensor& audio, int n_mels = 80, int64_t pad_samples = 0);

// Same, for samples in memory (copied; the caller keeps ownership).
at::Tensor log_mel_spectrogram(const float* samples, size_t n, int n_mels = 80, int64_t pad_samples = 0);

// Zero-pads or trims the last dimension to `length`: audio to kChunkSamples before the
// spectrogram (as transformers does), or a log-mel segment to kChunkFrames (as openai's
// transcribe does with each window). Throws peft::ValueError for length < 0 or a 0-d tensor.
at::Tensor pad_or_trim(const at::Tensor& x, int64_t length);

}  // namespace peft::audio
