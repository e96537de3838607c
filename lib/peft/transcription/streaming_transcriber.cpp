#include "peft/transcription/streaming_transcriber.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>

#include "peft/error.h"
#include "peft/models/whisper.h"
#include "peft/text/whisper_tokenizer.h"

namespace peft::transcription {

namespace {

constexpr double kWindowSeconds = 30.0;  // one Whisper window: the buffer must fit it
// After two decodes without text, all but this much of the audio is dropped: the onset
// of a word too short for Whisper to have recognised yet.
constexpr double kSilenceMarginSeconds = 0.5;
// A buffer whose samples all stay below this (-78 dBFS, 4 steps of 16-bit audio) is
// digital silence: not decoded, as Whisper may "hear" a word or two in it ("You").
constexpr float kDigitalSilence = 1.0f / 8192;
constexpr int64_t kSamplesPerFrame = 160;  // mel hop

[[noreturn]] void bad(const std::string& name, double value, const std::string& rule) {
  throw ValueError("StreamingOptions." + name + " = " + std::to_string(value) + ": " + rule);
}

int64_t to_samples(double seconds) {
  return static_cast<int64_t>(std::llround(seconds * StreamingTranscriber::kSampleRate));
}

}  // namespace

void StreamingOptions::validate() const {
  if (!(step_seconds > 0) || !std::isfinite(step_seconds)) bad("step_seconds", step_seconds, "must be > 0");
  if (to_samples(step_seconds) < 1) bad("step_seconds", step_seconds, "must be at least one sample");
  if (!(max_latency_seconds > 0) || !std::isfinite(max_latency_seconds))
    bad("max_latency_seconds", max_latency_seconds, "must be > 0");
  if (step_seconds + max_latency_seconds > kWindowSeconds)
    bad("max_latency_seconds", max_latency_seconds,
        "plus step_seconds (" + std::to_string(step_seconds) +
            ") must be at most 30 s: the uncommitted audio is decoded as one Whisper window");
  decoding.validate();
}

StreamingOptions StreamingOptions::with_latency(double latency_seconds, DecodingOptions decoding) {
  StreamingOptions o;
  o.decoding = std::move(decoding);
  o.step_seconds = std::min(1.0, latency_seconds / 4);
  o.max_latency_seconds = latency_seconds - o.step_seconds;
  return o;
}

StreamingTranscriber::StreamingTranscriber(std::shared_ptr<const models::WhisperModel> model,
                                           std::shared_ptr<const text::WhisperTokenizer> tokenizer,
                                           StreamingOptions options)
    : model_(std::move(model)), tokenizer_(std::move(tokenizer)), options_(std::move(options)) {
  if (!model_ || !tokenizer_) throw ValueError("StreamingTranscriber: model and tokenizer must not be null");
  options_.validate();
  step_samples_ = to_samples(options_.step_seconds);
  latency_samples_ = to_samples(options_.max_latency_seconds);
  window_samples_ = to_samples(kWindowSeconds);
}

double StreamingTranscriber::position() const { return offset_ + static_cast<double>(fed_) / kSampleRate; }

double StreamingTranscriber::uncommitted_seconds() const {
  return static_cast<double>(buffer_.size()) / kSampleRate;
}

void StreamingTranscriber::reset(double timeline_offset) {
  if (!std::isfinite(timeline_offset))
    throw ValueError("StreamingTranscriber::reset: timeline offset " + std::to_string(timeline_offset) +
                     " is not finite");
  offset_ = timeline_offset;
  fed_ = 0;
  buffer_start_ = 0;
  buffer_.clear();
  since_decode_ = 0;
  last_decode_end_ = -1;
  previous_.clear();
  partial_.clear();
  prompt_.clear();
  finished_ = false;
}

void StreamingTranscriber::set_adapter(std::shared_ptr<const adapters::BoundAdapter> adapter) {
  options_.decoding.adapter = std::move(adapter);
}

StreamUpdate StreamingTranscriber::push(const float* samples, size_t n, PushMode mode) {
  if (finished_) throw Error("StreamingTranscriber::push after finish(): call reset() to start a new stream");
  // Checked before anything is consumed, so a caller can report the error and go on.
  for (size_t i = 0; i < n; ++i)
    if (!std::isfinite(samples[i])) {
      const int64_t index = fed_ + static_cast<int64_t>(i);
      throw ValueError("StreamingTranscriber::push: sample " + std::to_string(index) + " of the stream (" +
                       std::to_string(offset_ + static_cast<double>(index) / kSampleRate) + " s, index " +
                       std::to_string(i) + " of this push) is " +
                       (std::isnan(samples[i]) ? "NaN" : "infinite"));
    }
  StreamUpdate update;
  size_t done = 0;
  // Cut at every step boundary, so decodes happen at the same stream times whatever
  // the chunking, and the buffer never exceeds max_latency + step.
  while (done < n) {
    const size_t take = std::min(n - done, static_cast<size_t>(step_samples_ - since_decode_));
    buffer_.insert(buffer_.end(), samples + done, samples + done + take);
    done += take;
    fed_ += static_cast<int64_t>(take);
    since_decode_ += static_cast<int64_t>(take);
    if (since_decode_ == step_samples_) {
      since_decode_ = 0;
      // Catching up, only the last boundary of this push decodes, or an earlier one when
      // another step of audio would no longer fit one Whisper window.
      const bool another_boundary = n - done >= static_cast<size_t>(step_samples_);
      const bool window_full = static_cast<int64_t>(buffer_.size()) + step_samples_ > window_samples_;
      if (mode == PushMode::every_step || !another_boundary || window_full) decode(update);
    }
  }
  update.partial = partial_;
  return update;
}

StreamUpdate StreamingTranscriber::finish() {
  StreamUpdate update;
  if (finished_) return update;
  if (!buffer_.empty()) {
    std::vector<Piece> rest;
    if (last_decode_end_ == fed_) {
      rest = previous_;  // the last decode heard everything there is
    } else {
      rest = transcribe_buffer();
      ++update.decodes;
    }
    commit(rest, rest.size(), update);
  }
  trim_to(fed_);
  previous_.clear();
  partial_.clear();
  finished_ = true;
  return update;
}

std::vector<StreamingTranscriber::Piece> StreamingTranscriber::transcribe_buffer() {
  DecodingOptions o = options_.decoding;
  if (o.condition_on_previous_text && !prompt_.empty()) {
    o.initial_prompt_tokens = prompt_;
    o.initial_prompt.clear();
  }
  if (std::all_of(buffer_.begin(), buffer_.end(), [](float x) { return std::abs(x) < kDigitalSilence; }))
    return {};
  TranscriptionInfo info;
  std::vector<Segment> segments = transcribe(*model_, *tokenizer_, buffer_, o, &info);
  // A repetition loop (text that compresses too well: faster-whisper's test) mostly comes
  // from the prompt, Whisper copying the committed text it is conditioned on, and then
  // feeds itself through every later prompt. Decode again without the prompt, which is
  // dropped for good, and keep no text if that loops too: live decoding runs without
  // temperature fallback by default, so this is its only guard. (Seen on 10 minutes of
  // the pocketsphinx utterances repeated: after 4 minutes every decode said "10. 10. ...".)
  if (loops(segments)) {
    if (!o.initial_prompt_tokens.empty() || !o.initial_prompt.empty()) {
      prompt_.clear();
      o.initial_prompt_tokens.clear();
      o.initial_prompt.clear();
      segments = transcribe(*model_, *tokenizer_, buffer_, o, &info);
    }
    if (loops(segments)) segments.clear();
  }
  language_ = info.language;
  std::vector<Piece> pieces;
  pieces.reserve(segments.size());
  for (Segment& s : segments) {
    Piece p;
    // Whisper may place a timestamp past the audio it was given (the window is padded
    // to 30 s): times are clamped to what was fed.
    p.start = std::clamp(buffer_start_ + to_samples(s.start), buffer_start_, fed_);
    p.end = std::clamp(buffer_start_ + to_samples(s.end), p.start, fed_);
    s.start = offset_ + static_cast<double>(p.start) / kSampleRate;
    s.end = offset_ + static_cast<double>(p.end) / kSampleRate;
    for (Word& w : s.words) {  // the same mapping and clamping as the segment's times
      const int64_t ws = std::clamp(buffer_start_ + to_samples(w.start), p.start, p.end);
      const int64_t we = std::clamp(buffer_start_ + to_samples(w.end), ws, p.end);
      w.start = offset_ + static_cast<double>(ws) / kSampleRate;
      w.end = offset_ + static_cast<double>(we) / kSampleRate;
    }
    s.seek += buffer_start_ / kSamplesPerFrame;
    s.tokens.erase(
        std::remove_if(s.tokens.begin(), s.tokens.end(), [&](int64_t id) { return id >= tokenizer_->eot(); }),
        s.tokens.end());
    p.segment = std::move(s);
    pieces.push_back(std::move(p));
  }
  return pieces;
}

bool StreamingTranscriber::loops(const std::vector<Segment>& segments) const {
  const auto& threshold = options_.decoding.compression_ratio_threshold;
  return threshold && std::any_of(segments.begin(), segments.end(),
                                  [&](const Segment& s) { return s.compression_ratio > *threshold; });
}

void StreamingTranscriber::trim_to(int64_t sample) {
  sample = std::clamp(sample, buffer_start_, fed_);
  buffer_.erase(buffer_.begin(), buffer_.begin() + static_cast<std::ptrdiff_t>(sample - buffer_start_));
  buffer_start_ = sample;
}

void StreamingTranscriber::commit(const std::vector<Piece>& pieces, size_t count, StreamUpdate& update) {
  if (count == 0) return;
  // transcribe() keeps at most n_text_ctx / 2 - 1 prompt tokens: no need to hold more.
  const size_t keep = static_cast<size_t>(model_->dims().n_text_ctx / 2 - 1);
  for (size_t i = 0; i < count; ++i) {
    const auto& tokens = pieces[i].segment.tokens;
    prompt_.insert(prompt_.end(), tokens.begin(), tokens.end());
    // As transcribe() does between windows: text decoded hot conditions nothing after it.
    if (pieces[i].segment.temperature > options_.decoding.prompt_reset_on_temperature) prompt_.clear();
    update.committed.push_back(pieces[i].segment);
  }
  if (prompt_.size() > keep)
    prompt_.erase(prompt_.begin(), prompt_.end() - static_cast<std::ptrdiff_t>(keep));
  trim_to(pieces[count - 1].end);
}

void StreamingTranscriber::set_partial(std::vector<Piece> pieces) {
  partial_.clear();
  for (const Piece& p : pieces) partial_.push_back(p.segment);
  previous_ = std::move(pieces);
}

void StreamingTranscriber::decode(StreamUpdate& update) {
  const int64_t now = fed_;
  const int64_t previous_end = last_decode_end_;
  std::vector<Piece> current = transcribe_buffer();
  ++update.decodes;

  // Local agreement: the leading segments inside the common token prefix of this decode
  // and the previous one, and heard whole by both.
  size_t agreed = 0;
  if (previous_end >= 0) {
    std::vector<int64_t> mine, theirs;
    for (const Piece& p : current) mine.insert(mine.end(), p.segment.tokens.begin(), p.segment.tokens.end());
    for (const Piece& p : previous_)
      theirs.insert(theirs.end(), p.segment.tokens.begin(), p.segment.tokens.end());
    const size_t common = static_cast<size_t>(
        std::mismatch(mine.begin(), mine.end(), theirs.begin(), theirs.end()).first - mine.begin());
    size_t used = 0;
    for (; agreed < current.size(); ++agreed) {
      used += current[agreed].segment.tokens.size();
      if (used > common) break;
    }
  }
  commit(current, agreed, update);
  current.erase(current.begin(), current.begin() + static_cast<std::ptrdiff_t>(agreed));

  // Silence: neither this decode nor the previous one found text in what is left.
  const bool previous_silent =
      std::all_of(previous_.begin(), previous_.end(), [&](const Piece& p) { return p.end <= buffer_start_; });
  if (previous_end >= 0 && current.empty() && previous_silent)
    trim_to(now - to_samples(kSilenceMarginSeconds));

  // Latency bound: audio older than max_latency_seconds must go. Segments that start in
  // it are committed (in order, as this decode has them); the rest of it has no text.
  const int64_t oldest_allowed = now - latency_samples_;
  if (buffer_start_ < oldest_allowed) {
    size_t forced = 0;
    while (forced < current.size() && current[forced].start < oldest_allowed) ++forced;
    commit(current, forced, update);
    current.erase(current.begin(), current.begin() + static_cast<std::ptrdiff_t>(forced));
    trim_to(oldest_allowed);
  }

  set_partial(std::move(current));
  last_decode_end_ = now;
}

}  // namespace peft::transcription
