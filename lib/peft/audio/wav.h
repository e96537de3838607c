// Reading and writing uncompressed WAV (RIFF/WAVE) audio, and raw float32 files, as
// mono float samples. Torch-free: the ASR front end and the tools share it.
//
// Accepted: format tags PCM (1), IEEE float (3) and WAVE_FORMAT_EXTENSIBLE (0xFFFE)
// whose sub-format is PCM or float; PCM in 8 (unsigned), 16, 24 and 32 bits, float in
// 32 and 64 bits; any channel count, mixed down to mono by averaging the channels.
// PCM becomes [-1, 1) by dividing by 2^(bits-1); float samples pass through unchanged
// (neither clamped nor checked for NaN: the log-mel front end rejects non-finite input).
//
// Damaged files: anything malformed throws peft::FormatError "<file>: <where>: <problem>",
// except one case that is tolerated on purpose, like sox, ffmpeg and libsndfile do:
// a data chunk whose declared size runs past the end of the file (a recorder that was
// killed before patching the header, or a streaming writer's 0xFFFFFFFF placeholder)
// is clamped to the whole sample frames actually present, and WavAudio::truncated says
// so. A trailing partial frame (data size not a multiple of the frame size) is dropped
// the same way. Any other chunk running past the end of the file is an error, because
// then the fmt or data chunk that should follow it is missing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace peft::audio {

struct WavAudio {
  std::vector<float> samples;  // mono, one per sample frame
  int sample_rate = 0;         // Hz, as the fmt chunk says
  int channels = 0;            // in the file, before the mixdown
  int bits_per_sample = 0;     // container size of one sample in the file
  bool is_float = false;       // IEEE float (true) or integer PCM (false) in the file
  bool truncated = false;      // the data chunk was clamped to what the file holds
};

// Reads a WAV file. Throws peft::IoError when it cannot be read, peft::FormatError when
// its content is malformed or uses an unsupported encoding.
WavAudio read_wav(const std::string& path);

// Parses WAV bytes already in memory; `name` is used in error messages.
WavAudio parse_wav(const uint8_t* data, size_t size, const std::string& name);

// Reads headerless little-endian float32 mono samples; the caller knows the rate.
// Throws peft::FormatError when the size is not a multiple of 4.
std::vector<float> read_raw_f32(const std::string& path);

enum class WavEncoding {
  kPcm16,    // 16-bit integer PCM: samples clamped to [-1, 1) and rounded to nearest
  kFloat32,  // IEEE float, samples written as they are
};

// Writes mono samples as a canonical 44-byte-header WAV (46 for float, which carries a
// cbSize field). Throws peft::ValueError for a rate <= 0 or data over 4 GiB,
// peft::IoError when the file cannot be written.
void write_wav(const std::string& path, const std::vector<float>& samples, int sample_rate,
               WavEncoding encoding = WavEncoding::kPcm16);

}  // namespace peft::audio
