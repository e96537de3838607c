#include "peft/transcription/whisper_decoding.h"

#include <ATen/ATen.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <set>

#include "peft/audio/log_mel.h"
#include "peft/error.h"
#include "peft/models/whisper.h"
#include "peft/text/whisper_tokenizer.h"
#include "peft/transcription/logit_filters.h"
#include "peft/transcription/search.h"
#include "peft/transcription/windowed_mel.h"
#include "peft/transcription/word_timestamps.h"

namespace peft::transcription {

namespace {

constexpr double kTimePerFrame = 0.01;   // hop 160 / 16 kHz
constexpr double kTimePrecision = 0.02;  // one timestamp token step
constexpr int64_t kInputStride = 2;      // mel frames per encoder frame (conv2 stride)

std::string strip(const std::string& s) {
  const char* ws = " \t\n\r\f\v";
  const size_t b = s.find_first_not_of(ws);
  if (b == std::string::npos) return {};
  return s.substr(b, s.find_last_not_of(ws) - b + 1);
}

struct Decoded {
  WindowResult result;
  double avg_logprob = 0;
  float temperature = 0;
  double compression_ratio = 0;
};

class Transcriber {
 public:
  Transcriber(const models::WhisperModel& model, const text::WhisperTokenizer& tokenizer,
              const DecodingOptions& options)
      : model_(model), tok_(tokenizer), opt_(options), rng_(options.seed) {
    ids_.sot = tok_.sot();
    ids_.eot = tok_.eot();
    ids_.no_speech = tok_.no_speech();
    ids_.no_timestamps = tok_.no_timestamps();
    LogitFilterConfig fc;
    fc.suppress = suppressed_tokens(tok_, opt_.suppress_tokens);
    if (opt_.suppress_blank) {
      fc.suppress_begin = tok_.encode(" ");
      fc.suppress_begin.push_back(tok_.eot());
    }
    fc.eot = tok_.eot();
    fc.no_timestamps = tok_.no_timestamps();
    fc.timestamp_begin = tok_.timestamp_begin();
    // Python's round(): halves to even, which nearbyint does in the default rounding mode.
    fc.max_initial_timestamp_index =
        static_cast<int64_t>(std::nearbyint(opt_.max_initial_timestamp / kTimePrecision));
    fc.timestamp_rules = !opt_.without_timestamps;
    filters_ = std::make_unique<LogitFilters>(std::move(fc));
    max_length_ = model_.dims().n_text_ctx;
    sot_sequence_ = tok_.sot_sequence(tok_.multilingual() ? opt_.language : "", opt_.task);
  }

  std::vector<Segment> run(const std::vector<float>& samples, TranscriptionInfo& info);

 private:
  std::vector<int64_t> prompt(const std::vector<int64_t>& previous) const;
  Decoded decode_with_fallback(const at::Tensor& features, const std::vector<int64_t>& prompt);
  // Returns whether the tokens end on a single timestamp.
  bool split(const std::vector<int64_t>& tokens, int64_t seek, int64_t segment_size,
             std::vector<Segment>& out, int64_t& next_seek) const;

  const models::WhisperModel& model_;
  const text::WhisperTokenizer& tok_;
  const DecodingOptions& opt_;
  std::mt19937_64 rng_;
  SpecialIds ids_;
  std::unique_ptr<LogitFilters> filters_;
  int64_t max_length_ = 448;
  std::vector<int64_t> sot_sequence_;
};

std::vector<int64_t> Transcriber::prompt(const std::vector<int64_t>& previous) const {
  std::vector<int64_t> p;
  if (!previous.empty()) {
    p.push_back(tok_.sot_prev());
    const size_t keep = std::min(previous.size(), static_cast<size_t>(max_length_ / 2 - 1));
    p.insert(p.end(), previous.end() - static_cast<std::ptrdiff_t>(keep), previous.end());
  }
  p.insert(p.end(), sot_sequence_.begin(), sot_sequence_.end());
  if (opt_.without_timestamps) p.push_back(tok_.no_timestamps());
  return p;
}

Decoded Transcriber::decode_with_fallback(const at::Tensor& features, const std::vector<int64_t>& prompt) {
  int64_t max_length = max_length_;
  if (opt_.max_new_tokens) {
    max_length = static_cast<int64_t>(prompt.size()) + *opt_.max_new_tokens;
    if (max_length > max_length_)
      throw ValueError("prompt of " + std::to_string(prompt.size()) + " tokens + max_new_tokens " +
                       std::to_string(*opt_.max_new_tokens) + " exceeds the model's " +
                       std::to_string(max_length_) + " positions");
  }
  std::vector<Decoded> all, below_ratio;
  float temperature = 0;
  for (float t : opt_.temperatures) {
    temperature = t;
    SearchOptions so;
    so.beam_size = t > 0 ? 1 : opt_.beam_size;
    so.patience = opt_.patience;
    so.length_penalty = opt_.length_penalty;
    so.temperature = t;
    so.num_hypotheses = t > 0 ? opt_.best_of : 1;
    so.max_length = max_length;
    so.adapter = opt_.adapter.get();
    Decoded d;
    d.result = generate_window(model_, features, prompt, ids_, *filters_, so, rng_);
    d.temperature = t;
    // faster-whisper recovers the cumulative logprob from CTranslate2's normalised score
    // and divides by length + 1 (the <|endoftext|> step counts).
    const double length = static_cast<double>(d.result.tokens.size());
    const double cumulative = static_cast<double>(d.result.score) * std::pow(length, opt_.length_penalty);
    d.avg_logprob = cumulative / (length + 1);
    d.compression_ratio = compression_ratio(strip(tok_.decode(d.result.tokens)));
    all.push_back(d);

    bool fallback = false;
    if (opt_.compression_ratio_threshold) {
      if (d.compression_ratio > *opt_.compression_ratio_threshold)
        fallback = true;  // too repetitive
      else
        below_ratio.push_back(d);
    }
    if (opt_.log_prob_threshold && d.avg_logprob < *opt_.log_prob_threshold) fallback = true;
    if (opt_.no_speech_threshold && d.result.no_speech_prob > *opt_.no_speech_threshold &&
        opt_.log_prob_threshold && d.avg_logprob < *opt_.log_prob_threshold)
      fallback = false;  // silence: no temperature will help
    if (!fallback) return d;
  }
  const auto& pool = below_ratio.empty() ? all : below_ratio;
  Decoded best = *std::max_element(pool.begin(), pool.end(), [](const Decoded& a, const Decoded& b) {
    return a.avg_logprob < b.avg_logprob;
  });
  best.temperature = temperature;  // the last one tried decides the prompt reset
  return best;
}

bool Transcriber::split(const std::vector<int64_t>& tokens, int64_t seek, int64_t segment_size,
                        std::vector<Segment>& out, int64_t& next_seek) const {
  const int64_t ts0 = tok_.timestamp_begin();
  const auto is_ts = [&](int64_t id) { return id >= ts0; };
  const double time_offset = static_cast<double>(seek) * kTimePerFrame;
  const size_t n = tokens.size();
  const bool single_timestamp_ending = n >= 2 && !is_ts(tokens[n - 2]) && is_ts(tokens[n - 1]);
  std::vector<size_t> slices;
  for (size_t i = 1; i < n; ++i)
    if (is_ts(tokens[i]) && is_ts(tokens[i - 1])) slices.push_back(i);

  next_seek = seek;
  if (!slices.empty()) {
    if (single_timestamp_ending) slices.push_back(n);
    size_t last = 0;
    for (size_t cut : slices) {
      Segment s;
      s.seek = seek;
      s.tokens.assign(tokens.begin() + static_cast<std::ptrdiff_t>(last),
                      tokens.begin() + static_cast<std::ptrdiff_t>(cut));
      s.start = time_offset + static_cast<double>(s.tokens.front() - ts0) * kTimePrecision;
      s.end = time_offset + static_cast<double>(s.tokens.back() - ts0) * kTimePrecision;
      out.push_back(std::move(s));
      last = cut;
    }
    if (single_timestamp_ending)
      next_seek += segment_size;  // nothing is said after the last timestamp
    else
      next_seek += (tokens[last - 1] - ts0) * kInputStride;  // redo the unfinished segment
  } else {
    double duration = static_cast<double>(segment_size) * kTimePerFrame;
    int64_t last_ts = -1;
    for (int64_t id : tokens)
      if (is_ts(id)) last_ts = id;
    if (last_ts >= 0 && last_ts != ts0) duration = static_cast<double>(last_ts - ts0) * kTimePrecision;
    Segment s;
    s.seek = seek;
    s.start = time_offset;
    s.end = time_offset + duration;
    s.tokens = tokens;
    out.push_back(std::move(s));
    next_seek += segment_size;
  }
  return single_timestamp_ending;
}

// faster-whisper's get_end: the end of the last word, else of the last segment.
double last_end(const std::vector<Segment>& segments) {
  for (auto s = segments.rbegin(); s != segments.rend(); ++s)
    if (!s->words.empty()) return s->words.back().end;
  return segments.back().end;
}

std::vector<Segment> Transcriber::run(const std::vector<float>& samples, TranscriptionInfo& info) {
  std::vector<Segment> segments;
  info = {};
  info.language = tok_.multilingual() ? opt_.language : "en";  // faster-whisper: .en models say "en"
  if (samples.empty()) return segments;
  const WindowedLogMel mel(samples.data(), samples.size(), static_cast<int>(model_.dims().n_mels));
  const int64_t content_frames = mel.content_frames();
  if (tok_.multilingual() && opt_.language.empty()) {
    LanguageDetectionOptions lo;
    lo.segments = opt_.language_detection_segments;
    lo.threshold = opt_.language_detection_threshold;
    lo.adapter = opt_.adapter.get();
    DetectedLanguage d = detect_language(model_, tok_, mel, lo);
    info.language = d.language;
    info.language_probability = d.probability;
    info.all_language_probs = std::move(d.all);
    sot_sequence_ = tok_.sot_sequence(info.language, opt_.task);
  }

  std::vector<int64_t> all_tokens;
  for (int64_t id : opt_.initial_prompt_tokens)
    if (id >= tok_.eot())
      throw ValueError("transcribe: initial_prompt_tokens holds " + std::to_string(id) +
                       ", not an ordinary text token (< " + std::to_string(tok_.eot()) + ")");
  if (!opt_.initial_prompt_tokens.empty())
    all_tokens = opt_.initial_prompt_tokens;
  else if (!strip(opt_.initial_prompt).empty())
    all_tokens = tok_.encode(" " + strip(opt_.initial_prompt));
  size_t prompt_reset_since = 0;
  double last_speech_timestamp = 0;

  int64_t seek = 0;
  while (seek < content_frames) {
    const int64_t segment_size = std::min(audio::kChunkFrames, content_frames - seek);
    at::Tensor features = model_.encode(mel.window(seek).unsqueeze(0), opt_.adapter.get());
    const std::vector<int64_t> previous(all_tokens.begin() + static_cast<std::ptrdiff_t>(prompt_reset_since),
                                        all_tokens.end());
    Decoded d = decode_with_fallback(features, prompt(previous));

    if (opt_.no_speech_threshold) {
      bool skip = d.result.no_speech_prob > *opt_.no_speech_threshold;
      if (opt_.log_prob_threshold && d.avg_logprob > *opt_.log_prob_threshold) skip = false;
      if (skip) {
        seek += segment_size;
        continue;
      }
    }

    std::vector<Segment> window_segments;
    int64_t next_seek = seek;
    const bool single_timestamp_ending =
        split(d.result.tokens, seek, segment_size, window_segments, next_seek);
    if (opt_.word_timestamps) {
      add_word_timestamps(window_segments, model_, tok_, features, sot_sequence_, info.language, segment_size,
                          opt_.prepend_punctuations, opt_.append_punctuations, last_speech_timestamp,
                          opt_.adapter.get());
      const double time_offset = static_cast<double>(seek) * kTimePerFrame;
      // The next window starts where the last word ends, not at the last timestamp.
      if (!single_timestamp_ending && last_end(window_segments) > time_offset)
        next_seek = static_cast<int64_t>(std::nearbyint(last_end(window_segments) * 100.0));
      last_speech_timestamp = last_end(window_segments);
    }
    for (Segment& s : window_segments) {
      s.text = tok_.decode(s.tokens);
      if (s.start == s.end || strip(s.text).empty()) continue;
      all_tokens.insert(all_tokens.end(), s.tokens.begin(), s.tokens.end());
      s.avg_logprob = d.avg_logprob;
      s.no_speech_prob = d.result.no_speech_prob;
      s.temperature = d.temperature;
      s.compression_ratio = d.compression_ratio;
      segments.push_back(std::move(s));
    }
    if (!opt_.condition_on_previous_text || d.temperature > opt_.prompt_reset_on_temperature)
      prompt_reset_since = all_tokens.size();
    seek = next_seek;
  }
  return segments;
}

}  // namespace

double compression_ratio(const std::string& text) {
  if (text.empty()) return 0.0;  // zlib's 8 bytes for nothing: faster-whisper gets 0 too
  uLongf size = compressBound(static_cast<uLong>(text.size()));
  std::vector<Bytef> buffer(size);
  if (compress2(buffer.data(), &size, reinterpret_cast<const Bytef*>(text.data()),
                static_cast<uLong>(text.size()), Z_DEFAULT_COMPRESSION) != Z_OK)
    throw Error("zlib compress2 failed on " + std::to_string(text.size()) + " bytes");
  return static_cast<double>(text.size()) / static_cast<double>(size);
}

std::vector<int64_t> suppressed_tokens(const text::WhisperTokenizer& tokenizer,
                                       const std::vector<int64_t>& requested) {
  if (requested.empty()) return {};
  std::set<int64_t> ids;
  for (int64_t id : requested)
    if (id >= 0) ids.insert(id);
  if (std::find(requested.begin(), requested.end(), -1) != requested.end())
    for (int64_t id : tokenizer.non_speech_tokens()) ids.insert(id);
  if (tokenizer.transcribe()) ids.insert(*tokenizer.transcribe());
  if (tokenizer.translate()) ids.insert(*tokenizer.translate());
  for (int64_t id : {tokenizer.sot(), tokenizer.sot_prev(), tokenizer.sot_lm(), tokenizer.no_speech()})
    ids.insert(id);
  return {ids.begin(), ids.end()};
}

std::vector<Segment> transcribe(const models::WhisperModel& model, const text::WhisperTokenizer& tokenizer,
                                const std::vector<float>& samples, const DecodingOptions& options,
                                TranscriptionInfo* info) {
  options.validate();
  Transcriber transcriber(model, tokenizer, options);
  TranscriptionInfo local;
  return transcriber.run(samples, info ? *info : local);
}

}  // namespace peft::transcription
