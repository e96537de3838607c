#include "peft/audio/vad.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/serialization/import.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "peft/error.h"

namespace peft::audio {

namespace {

constexpr int64_t kChunk = static_cast<int64_t>(kVadChunkSamples);

// First line of a c10::Error without the C++ backtrace libtorch appends.
std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

std::string describe_non_finite(float v) { return std::isnan(v) ? "NaN" : "infinite"; }

void check_rate(int sample_rate) {
  if (sample_rate != kVadSampleRate)
    throw ValueError("silero VAD: sample rate " + std::to_string(sample_rate) +
                     " Hz is not supported, resample to 16000 Hz first");
}

// Python's floor division, for the padding step (a negative gap must round down there too).
int64_t floor_half(int64_t v) { return v >= 0 ? v / 2 : -((-v + 1) / 2); }

}  // namespace

double VadOptions::effective_neg_threshold() const {
  return neg_threshold ? *neg_threshold : std::max(threshold - 0.15, 0.01);
}

void VadOptions::validate() const {
  auto fail = [](const std::string& name, const std::string& value, const char* problem) {
    throw ValueError("VadOptions: " + name + " = " + value + ": " + problem);
  };
  if (!(threshold >= 0.0 && threshold <= 1.0))
    fail("threshold", std::to_string(threshold), "must lie in [0, 1]");
  if (neg_threshold && !(*neg_threshold >= 0.0 && *neg_threshold <= 1.0))
    fail("neg_threshold", std::to_string(*neg_threshold), "must lie in [0, 1]");
  const std::pair<const char*, int> durations[] = {
      {"min_speech_duration_ms", min_speech_duration_ms},
      {"min_silence_duration_ms", min_silence_duration_ms},
      {"speech_pad_ms", speech_pad_ms},
      {"min_silence_at_max_speech_ms", min_silence_at_max_speech_ms}};
  for (const auto& [name, value] : durations)
    if (value < 0) fail(name, std::to_string(value), "must not be negative");
  // NaN fails this too; infinity (the default) means no limit.
  if (!(max_speech_duration_s > 0.0))
    fail("max_speech_duration_s", std::to_string(max_speech_duration_s), "must be positive");
}

std::vector<SpeechTimestamp> speech_timestamps_from_probabilities(const std::vector<float>& probabilities,
                                                                  int64_t num_samples,
                                                                  const VadOptions& options) {
  options.validate();
  if (num_samples < 0)
    throw ValueError("speech timestamps: negative sample count " + std::to_string(num_samples));
  const int64_t expected_chunks = (num_samples + kChunk - 1) / kChunk;
  if (static_cast<int64_t>(probabilities.size()) != expected_chunks)
    throw ValueError("speech timestamps: " + std::to_string(probabilities.size()) + " probabilities for " +
                     std::to_string(num_samples) + " samples, expected " + std::to_string(expected_chunks) +
                     " (one per 512-sample chunk)");

  // The limits are kept as doubles and compared with integer sample positions, as the
  // python code does, so fractional millisecond products round the same way.
  const double rate = kVadSampleRate;
  const double threshold = options.threshold;
  const double neg_threshold = options.effective_neg_threshold();
  const double min_speech = rate * options.min_speech_duration_ms / 1000.0;
  const int64_t pad = int64_t{kVadSampleRate} * options.speech_pad_ms / 1000;  // 16 per ms: exact
  const double max_speech = rate * options.max_speech_duration_s - kChunk - 2.0 * static_cast<double>(pad);
  const double min_silence = rate * options.min_silence_duration_ms / 1000.0;
  const double min_silence_at_max = rate * options.min_silence_at_max_speech_ms / 1000.0;

  std::vector<SpeechTimestamp> speeches;
  bool triggered = false;
  bool in_segment = false;  // a segment is in progress (python: current_speech non-empty)
  int64_t start = 0;        // its start
  // Sample positions where 0 means "none", as in the reference: a silence can never start
  // at sample 0 inside speech, because speech starting at chunk 0 skips the silence check.
  int64_t temp_end = 0;                             // where the current silence inside speech began
  int64_t prev_end = 0;                             // legacy split: the last pause long enough to cut at
  int64_t next_start = 0;                           // legacy split: where speech resumed after prev_end
  std::vector<std::pair<int64_t, int64_t>> pauses;  // (start, length) of pauses inside the segment

  auto close = [&]() {
    in_segment = false;
    prev_end = next_start = temp_end = 0;
    pauses.clear();
  };

  for (size_t i = 0; i < probabilities.size(); ++i) {
    const double p = probabilities[i];
    const int64_t cur = kChunk * static_cast<int64_t>(i);

    // Speech again after a tentative end: remember the pause as a split candidate.
    if (p >= threshold && temp_end) {
      const int64_t pause = cur - temp_end;
      if (static_cast<double>(pause) > min_silence_at_max) pauses.emplace_back(temp_end, pause);
      temp_end = 0;
      if (next_start < prev_end) next_start = cur;
    }

    if (p >= threshold && !triggered) {
      triggered = true;
      in_segment = true;
      start = cur;
      continue;
    }

    if (triggered && static_cast<double>(cur - start) > max_speech) {
      if (options.split_at_longest_silence && !pauses.empty()) {
        // The first of the longest pauses (python's max keeps the first maximum).
        auto longest = pauses.begin();
        for (auto it = pauses.begin(); it != pauses.end(); ++it)
          if (it->second > longest->second) longest = it;
        const auto [cut, length] = *longest;
        speeches.push_back({start, cut});
        const int64_t resume = cut + length;
        close();
        // The reference compares against cut + cur here, which holds whenever the pause
        // lies before the current chunk, i.e. always: the segment goes on at the pause's end.
        if (resume < cut + cur) {
          in_segment = true;
          start = resume;
        } else {
          triggered = false;
        }
        // No `continue`: this chunk is still checked for silence below.
      } else if (prev_end) {
        speeches.push_back({start, prev_end});
        const bool still_silent = next_start < prev_end;
        const int64_t resume = next_start;
        close();
        if (still_silent) {
          triggered = false;
        } else {
          in_segment = true;
          start = resume;
        }
      } else {
        // No pause to cut at: cut right here.
        speeches.push_back({start, cur});
        close();
        triggered = false;
        continue;
      }
    }

    if (p < neg_threshold && triggered) {
      if (!temp_end) temp_end = cur;
      const int64_t silence = cur - temp_end;
      if (!options.split_at_longest_silence && static_cast<double>(silence) > min_silence_at_max)
        prev_end = temp_end;
      if (static_cast<double>(silence) < min_silence) continue;
      if (static_cast<double>(temp_end - start) > min_speech) speeches.push_back({start, temp_end});
      close();
      triggered = false;
      continue;
    }
  }

  if (in_segment && static_cast<double>(num_samples - start) > min_speech)
    speeches.push_back({start, num_samples});

  // Padding: each segment grows by `pad` on both sides, but two segments closer than
  // 2 * pad share the gap between them half and half.
  for (size_t i = 0; i < speeches.size(); ++i) {
    SpeechTimestamp& s = speeches[i];
    if (i == 0) s.start_sample = std::max<int64_t>(0, s.start_sample - pad);
    if (i + 1 < speeches.size()) {
      SpeechTimestamp& next = speeches[i + 1];
      const int64_t gap = next.start_sample - s.end_sample;
      if (gap < 2 * pad) {
        s.end_sample += floor_half(gap);
        next.start_sample = std::max<int64_t>(0, next.start_sample - floor_half(gap));
      } else {
        s.end_sample = std::min(num_samples, s.end_sample + pad);
        next.start_sample = std::max<int64_t>(0, next.start_sample - pad);
      }
    } else {
      s.end_sample = std::min(num_samples, s.end_sample + pad);
    }
  }
  return speeches;
}

struct SileroVad::Impl {
  std::string path;
  torch::jit::Module module;
  std::vector<float> pending;  // fewer than 512 samples waiting for the rest of their chunk
  int64_t fed = 0;

  // One 512-sample chunk through the model; the module keeps the context and LSTM state.
  float run_chunk(const float* chunk) {
    at::NoGradGuard no_grad;
    try {
      // A copy, so the module never holds on to the caller's memory.
      at::Tensor x = at::from_blob(const_cast<float*>(chunk), {1, kChunk}, at::kFloat).clone();
      const at::Tensor out = module.forward({x, int64_t{kVadSampleRate}}).toTensor();
      if (out.numel() != 1)
        throw FormatError(path, "forward",
                          "returned " + std::to_string(out.numel()) + " values for one chunk, expected 1");
      return out.to(at::kFloat).item<float>();
    } catch (const c10::Error& e) {
      throw FormatError(path, "forward", first_line(e.what_without_backtrace()));
    }
  }

  void reset_states() {
    try {
      module.run_method("reset_states");
    } catch (const c10::Error& e) {
      throw FormatError(path, "reset_states", first_line(e.what_without_backtrace()));
    }
    pending.clear();
    fed = 0;
  }
};

SileroVad::SileroVad(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SileroVad::SileroVad(SileroVad&&) noexcept = default;
SileroVad& SileroVad::operator=(SileroVad&&) noexcept = default;
SileroVad::~SileroVad() = default;

SileroVad SileroVad::load(const std::string& path) {
  // Checked here because torch::jit::load reports a missing file as a generic c10::Error.
  {
    std::ifstream probe(path, std::ios::binary);
    if (!probe) throw IoError(path + ": cannot open: " + std::strerror(errno));
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) throw IoError(path + ": not a regular file");
  }
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  try {
    impl->module = torch::jit::load(path, at::Device(at::kCPU));
  } catch (const c10::Error& e) {
    throw FormatError(path, "TorchScript", first_line(e.what_without_backtrace()));
  } catch (const std::exception& e) {
    // The zip reader and the unpickler also throw plain std exceptions on damaged files.
    throw FormatError(path, "TorchScript", first_line(e.what()));
  }
  for (const char* method : {"forward", "reset_states"})
    if (!impl->module.find_method(method))
      throw FormatError(path, "TorchScript", std::string("no ") + method + " method: not a Silero VAD model");
  impl->module.eval();
  // One chunk of silence, so a module with the right method names but the wrong signature
  // fails here, naming the file, rather than on the first real audio.
  impl->reset_states();
  const std::vector<float> zeros(kVadChunkSamples, 0.0f);
  impl->run_chunk(zeros.data());
  impl->reset_states();
  return SileroVad(std::move(impl));
}

std::vector<float> SileroVad::feed(const float* samples, size_t count) {
  for (size_t i = 0; i < count; ++i)
    if (!std::isfinite(samples[i]))
      throw ValueError("silero VAD input: sample " + std::to_string(impl_->fed + static_cast<int64_t>(i)) +
                       " is " + describe_non_finite(samples[i]));
  std::vector<float> probabilities;
  size_t used = 0;
  if (!impl_->pending.empty()) {
    const size_t take = std::min(count, kVadChunkSamples - impl_->pending.size());
    impl_->pending.insert(impl_->pending.end(), samples, samples + take);
    used = take;
    if (impl_->pending.size() == kVadChunkSamples) {
      probabilities.push_back(impl_->run_chunk(impl_->pending.data()));
      impl_->pending.clear();
    }
  }
  // Whole chunks straight from the caller's buffer.
  for (; count - used >= kVadChunkSamples; used += kVadChunkSamples)
    probabilities.push_back(impl_->run_chunk(samples + used));
  impl_->pending.insert(impl_->pending.end(), samples + used, samples + count);
  impl_->fed += static_cast<int64_t>(count);
  return probabilities;
}

std::vector<float> SileroVad::finish() {
  std::vector<float> probabilities;
  if (!impl_->pending.empty()) {
    impl_->pending.resize(kVadChunkSamples, 0.0f);  // the reference zero-pads the last chunk
    probabilities.push_back(impl_->run_chunk(impl_->pending.data()));
  }
  impl_->reset_states();
  return probabilities;
}

void SileroVad::reset() { impl_->reset_states(); }

int64_t SileroVad::samples_fed() const { return impl_->fed; }

const std::string& SileroVad::path() const { return impl_->path; }

std::vector<float> SileroVad::speech_probabilities(const std::vector<float>& samples, int sample_rate) {
  check_rate(sample_rate);
  reset();
  std::vector<float> probabilities;
  try {
    probabilities = feed(samples);
  } catch (...) {
    reset();
    throw;
  }
  const std::vector<float> last = finish();
  probabilities.insert(probabilities.end(), last.begin(), last.end());
  return probabilities;
}

std::vector<SpeechTimestamp> SileroVad::speech_timestamps(const std::vector<float>& samples,
                                                          const VadOptions& options, int sample_rate) {
  options.validate();  // before spending time on the model
  const std::vector<float> probabilities = speech_probabilities(samples, sample_rate);
  return speech_timestamps_from_probabilities(probabilities, static_cast<int64_t>(samples.size()), options);
}

SpeechChunks collect_speech_chunks(const std::vector<float>& samples,
                                   const std::vector<SpeechTimestamp>& segments, int sample_rate) {
  if (sample_rate <= 0) throw ValueError("collect_speech_chunks: sample rate " + std::to_string(sample_rate));
  SpeechChunks out;
  out.sample_rate = sample_rate;
  int64_t previous_end = 0;
  for (size_t i = 0; i < segments.size(); ++i) {
    const SpeechTimestamp& s = segments[i];
    if (s.start_sample < previous_end || s.end_sample < s.start_sample ||
        s.end_sample > static_cast<int64_t>(samples.size()))
      throw ValueError("collect_speech_chunks: segment " + std::to_string(i) + " [" +
                       std::to_string(s.start_sample) + ", " + std::to_string(s.end_sample) +
                       ") is out of order, reversed or outside the " + std::to_string(samples.size()) +
                       " samples");
    out.audio.insert(out.audio.end(), samples.begin() + s.start_sample, samples.begin() + s.end_sample);
    out.segments.push_back(s);
    out.ends_in_audio.push_back(static_cast<int64_t>(out.audio.size()));
    previous_end = s.end_sample;
  }
  return out;
}

double SpeechChunks::to_original(double t, bool is_end) const {
  if (!(t >= 0.0) || !std::isfinite(t))
    throw ValueError("SpeechChunks::to_original: time " + std::to_string(t) + " s is negative or not finite");
  if (segments.empty()) return t;
  const int64_t sample = static_cast<int64_t>(t * sample_rate);
  size_t index = segments.size() - 1;
  const auto exact = std::find(ends_in_audio.begin(), ends_in_audio.end(), sample);
  if (is_end && exact != ends_in_audio.end()) {
    index = static_cast<size_t>(exact - ends_in_audio.begin());
  } else {
    const auto after = std::upper_bound(ends_in_audio.begin(), ends_in_audio.end(), sample);
    index = std::min(index, static_cast<size_t>(after - ends_in_audio.begin()));
  }
  const SpeechTimestamp& s = segments[index];
  const int64_t start_in_audio = ends_in_audio[index] - (s.end_sample - s.start_sample);
  return t + static_cast<double>(s.start_sample - start_in_audio) / sample_rate;
}

}  // namespace peft::audio
