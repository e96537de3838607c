#include "peft/audio/vad_gate.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>

#include "peft/error.h"

namespace peft::audio {

namespace {

constexpr double kChunkMs = 1000.0 * kVadChunkSamples / kVadSampleRate;  // 32 ms

[[noreturn]] void bad(const std::string& name, double value, const std::string& rule) {
  throw ValueError("VadGateOptions." + name + " = " + std::to_string(value) + ": " + rule);
}

}  // namespace

void VadGateOptions::validate() const {
  if (!(threshold > 0 && threshold < 1)) bad("threshold", threshold, "must be in (0, 1)");
  if (neg_threshold && !(*neg_threshold > 0 && *neg_threshold <= threshold))
    bad("neg_threshold", *neg_threshold, "must be in (0, threshold]");
  if (min_silence_ms < 0) bad("min_silence_ms", min_silence_ms, "must be >= 0");
  if (pad_ms < 0 || pad_ms > 2000) bad("pad_ms", pad_ms, "must be in [0, 2000]");
}

VadGate::VadGate(SileroVad vad, VadGateOptions options) : vad_(std::move(vad)), options_(std::move(options)) {
  options_.validate();
  neg_threshold_ =
      options_.neg_threshold ? *options_.neg_threshold : std::max(options_.threshold - 0.15, 0.01);
  pad_chunks_ = static_cast<int64_t>(std::ceil(options_.pad_ms / kChunkMs));
  min_silence_chunks_ =
      std::max<int64_t>(1, static_cast<int64_t>(std::ceil(options_.min_silence_ms / kChunkMs)));
}

void VadGate::classify(const std::vector<float>& probabilities) {
  for (float p : probabilities) {
    bool speech = false;
    if (p >= options_.threshold) {
      triggered_ = true;
      silent_run_ = 0;
      speech = true;
    } else if (triggered_) {
      silent_run_ = p < neg_threshold_ ? silent_run_ + 1 : 0;
      if (silent_run_ >= min_silence_chunks_) {
        triggered_ = false;
        silent_run_ = 0;
      } else {
        speech = true;  // a pause inside speech
      }
    }
    speech_.push_back(speech);
    ++classified_;
  }
}

void VadGate::release(std::vector<float>& out, bool all) {
  while (!samples_.empty() && (all || released_chunks_ + pad_chunks_ < classified_)) {
    const int64_t i = released_chunks_;
    const int64_t lo = std::max(i - pad_chunks_, first_state_);
    const int64_t hi = std::min(i + pad_chunks_, classified_ - 1);
    bool keep = false;
    for (int64_t k = lo; k <= hi && !keep; ++k) keep = speech_[static_cast<size_t>(k - first_state_)];
    const size_t n = std::min(samples_.size(), kVadChunkSamples);
    for (size_t j = 0; j < n; ++j) out.push_back(keep ? samples_[j] : 0.0f);
    samples_.erase(samples_.begin(), samples_.begin() + static_cast<std::ptrdiff_t>(n));
    if (keep) kept_ += static_cast<int64_t>(n);
    released_ += static_cast<int64_t>(n);
    ++released_chunks_;
    // States older than the padding reach of the next chunk are no longer needed.
    while (!speech_.empty() && first_state_ < released_chunks_ - pad_chunks_) {
      speech_.pop_front();
      ++first_state_;
    }
  }
}

std::vector<float> VadGate::process(const float* samples, size_t n) {
  std::vector<float> probabilities = vad_.feed(samples, n);  // throws before consuming anything
  samples_.insert(samples_.end(), samples, samples + n);
  classify(probabilities);
  std::vector<float> out;
  release(out, false);
  return out;
}

std::vector<float> VadGate::finish() {
  classify(vad_.finish());
  std::vector<float> out;
  release(out, true);
  reset();
  return out;
}

void VadGate::reset() {
  vad_.reset();
  samples_.clear();
  speech_.clear();
  first_state_ = classified_ = released_chunks_ = 0;
  triggered_ = false;
  silent_run_ = 0;
}

}  // namespace peft::audio
