#include "peft/transcription/batched_transcription.h"

#include <ATen/ATen.h>

#include <cmath>
#include <random>

#include "peft/error.h"
#include "peft/models/whisper.h"
#include "peft/text/whisper_tokenizer.h"
#include "peft/transcription/language_detection.h"
#include "peft/transcription/logit_filters.h"
#include "peft/transcription/search.h"
#include "peft/transcription/windowed_mel.h"

namespace peft::transcription {

namespace {

constexpr double kChunkSeconds = 30.0;
constexpr double kSampleRate = 16000.0;
constexpr double kTimePrecision = 0.02;  // one timestamp token step

struct Chunk {
  int64_t offset = 0;  // first sample in the joined speech
  int64_t length = 0;  // samples
};

// faster-whisper's collect_chunks: consecutive speech pieces joined while the total
// stays within 30 s.
std::vector<Chunk> join_pieces(const audio::SpeechChunks& speech, int64_t max_samples) {
  std::vector<Chunk> chunks;
  int64_t begin = 0;
  Chunk current;
  for (int64_t end : speech.ends_in_audio) {
    const int64_t piece = end - begin;
    if (current.length > 0 && current.length + piece > max_samples) {
      chunks.push_back(current);
      current = Chunk{begin, 0};
    }
    current.length += piece;
    begin = end;
  }
  if (current.length > 0) chunks.push_back(current);
  return chunks;
}

// faster-whisper's _split_segments_by_timestamps for a chunk (seek 0, never re-decoded).
std::vector<Segment> split(const std::vector<int64_t>& tokens, int64_t ts0, double time_offset,
                           double chunk_duration) {
  std::vector<Segment> out;
  const auto is_ts = [&](int64_t id) { return id >= ts0; };
  const size_t n = tokens.size();
  std::vector<size_t> slices;
  for (size_t i = 1; i < n; ++i)
    if (is_ts(tokens[i]) && is_ts(tokens[i - 1])) slices.push_back(i);
  if (!slices.empty()) {
    if (n >= 2 && !is_ts(tokens[n - 2]) && is_ts(tokens[n - 1])) slices.push_back(n);
    size_t last = 0;
    for (size_t cut : slices) {
      Segment s;
      s.tokens.assign(tokens.begin() + static_cast<std::ptrdiff_t>(last),
                      tokens.begin() + static_cast<std::ptrdiff_t>(cut));
      s.start = time_offset + static_cast<double>(s.tokens.front() - ts0) * kTimePrecision;
      s.end = time_offset + static_cast<double>(s.tokens.back() - ts0) * kTimePrecision;
      out.push_back(std::move(s));
      last = cut;
    }
    return out;
  }
  double duration = chunk_duration;
  int64_t last_ts = -1;
  for (int64_t id : tokens)
    if (is_ts(id)) last_ts = id;
  if (last_ts >= 0 && last_ts != ts0) duration = static_cast<double>(last_ts - ts0) * kTimePrecision;
  Segment s;
  s.start = time_offset;
  s.end = time_offset + duration;
  s.tokens = tokens;
  out.push_back(std::move(s));
  return out;
}

bool blank(const std::string& s) { return s.find_first_not_of(" \t\n\r\f\v") == std::string::npos; }

}  // namespace

std::vector<Segment> transcribe_batched(const models::WhisperModel& model,
                                        const text::WhisperTokenizer& tokenizer, audio::SileroVad& vad,
                                        const std::vector<float>& samples, const DecodingOptions& options,
                                        const BatchedOptions& batched, TranscriptionInfo* info) {
  options.validate();
  if (batched.batch_size < 1)
    throw ValueError("BatchedOptions.batch_size = " + std::to_string(batched.batch_size) + ": must be >= 1");
  for (size_t i = 0; i < samples.size(); ++i)
    if (!std::isfinite(samples[i]))
      throw ValueError("transcribe_batched: sample " + std::to_string(i) + " is NaN or infinite");
  TranscriptionInfo local;
  TranscriptionInfo& language = info ? *info : local;
  language = {};
  language.language = tokenizer.multilingual() ? options.language : "en";

  audio::VadOptions vo;
  if (batched.vad) {
    vo = *batched.vad;
  } else {  // faster-whisper's VadOptions for this mode, and its splitting algorithm
    vo.min_silence_duration_ms = 160;
    vo.min_speech_duration_ms = 0;
    vo.split_at_longest_silence = false;
  }
  vo.max_speech_duration_s = kChunkSeconds;
  const auto pieces = vad.speech_timestamps(samples, vo);
  if (pieces.empty()) return {};
  const audio::SpeechChunks speech = audio::collect_speech_chunks(samples, pieces);
  const std::vector<Chunk> chunks = join_pieces(speech, static_cast<int64_t>(kChunkSeconds * kSampleRate));

  if (tokenizer.multilingual() && options.language.empty()) {
    const WindowedLogMel mel(speech.audio.data(), speech.audio.size(), static_cast<int>(model.dims().n_mels));
    LanguageDetectionOptions lo;
    lo.segments = options.language_detection_segments;
    lo.threshold = options.language_detection_threshold;
    lo.adapter = options.adapter.get();
    DetectedLanguage d = detect_language(model, tokenizer, mel, lo);
    language.language = d.language;
    language.language_probability = d.probability;
    language.all_language_probs = std::move(d.all);
  }

  // The prompt every chunk gets: the initial prompt (if any), the task tokens.
  std::vector<int64_t> prompt;
  std::vector<int64_t> initial = options.initial_prompt_tokens;
  if (initial.empty() && !blank(options.initial_prompt))
    initial = tokenizer.encode(" " + options.initial_prompt);
  if (!initial.empty()) {
    prompt.push_back(tokenizer.sot_prev());
    const size_t keep = std::min(initial.size(), static_cast<size_t>(model.dims().n_text_ctx / 2 - 1));
    prompt.insert(prompt.end(), initial.end() - static_cast<std::ptrdiff_t>(keep), initial.end());
  }
  const auto sot = tokenizer.sot_sequence(tokenizer.multilingual() ? language.language : "", options.task);
  prompt.insert(prompt.end(), sot.begin(), sot.end());
  if (options.without_timestamps) prompt.push_back(tokenizer.no_timestamps());

  LogitFilterConfig fc;
  fc.suppress = suppressed_tokens(tokenizer, options.suppress_tokens);
  if (options.suppress_blank) {
    fc.suppress_begin = tokenizer.encode(" ");
    fc.suppress_begin.push_back(tokenizer.eot());
  }
  fc.eot = tokenizer.eot();
  fc.no_timestamps = tokenizer.no_timestamps();
  fc.timestamp_begin = tokenizer.timestamp_begin();
  // The pipeline sets max_initial_timestamp 0.0 but never passes it to CTranslate2, whose
  // default (50: 1.0 s) applies; ours is options.max_initial_timestamp (default 1.0 s).
  fc.max_initial_timestamp_index =
      static_cast<int64_t>(std::nearbyint(options.max_initial_timestamp / kTimePrecision));
  fc.timestamp_rules = !options.without_timestamps;
  const LogitFilters filters(std::move(fc));
  const SpecialIds ids{tokenizer.sot(), tokenizer.eot(), tokenizer.no_speech(), tokenizer.no_timestamps()};

  SearchOptions so;
  so.temperature = options.temperatures.front();
  so.beam_size = so.temperature > 0 ? 1 : options.beam_size;
  so.patience = options.patience;
  so.length_penalty = options.length_penalty;
  so.max_length = model.dims().n_text_ctx;
  so.adapter = options.adapter.get();
  if (options.max_new_tokens) so.max_length = static_cast<int64_t>(prompt.size()) + *options.max_new_tokens;
  if (so.max_length > model.dims().n_text_ctx)
    throw ValueError("transcribe_batched: prompt of " + std::to_string(prompt.size()) +
                     " tokens + max_new_tokens " + std::to_string(*options.max_new_tokens) +
                     " exceeds the model's " + std::to_string(model.dims().n_text_ctx) + " positions");
  std::mt19937_64 rng(options.seed);

  std::vector<Segment> segments;
  for (size_t first = 0; first < chunks.size(); first += static_cast<size_t>(batched.batch_size)) {
    const size_t count = std::min(chunks.size() - first, static_cast<size_t>(batched.batch_size));
    // Each chunk's log-mel on its own (its own max - 8 floor), as the pipeline does, and
    // encoded on its own: the encoder's GEMMs are already large, and its attention scores
    // ([heads, 1500, 1500] per layer) would take hundreds of MB for a whole batch at once.
    std::vector<at::Tensor> encoded;
    for (size_t i = first; i < first + count; ++i) {
      const WindowedLogMel mel(speech.audio.data() + chunks[i].offset, static_cast<size_t>(chunks[i].length),
                               static_cast<int>(model.dims().n_mels));
      encoded.push_back(model.encode(mel.window(0).unsqueeze(0), options.adapter.get()));
    }
    const at::Tensor features = at::cat(encoded, 0);
    const std::vector<WindowResult> results =
        generate_windows(model, features, prompt, ids, filters, so, rng);
    for (size_t j = 0; j < count; ++j) {
      const Chunk& c = chunks[first + j];
      const WindowResult& r = results[j];
      const double length = static_cast<double>(r.tokens.size());
      const double avg_logprob =
          static_cast<double>(r.score) * std::pow(length, options.length_penalty) / (length + 1);
      const double offset = static_cast<double>(c.offset) / kSampleRate;
      const double duration = static_cast<double>(c.length) / kSampleRate;
      for (Segment& s : split(r.tokens, tokenizer.timestamp_begin(), offset, duration)) {
        s.text = tokenizer.decode(s.tokens);
        if (blank(s.text)) continue;
        s.seek = static_cast<int64_t>(offset * 100);
        s.avg_logprob = avg_logprob;
        s.no_speech_prob = r.no_speech_prob;
        s.temperature = so.temperature;
        s.compression_ratio = compression_ratio(s.text);
        s.start = speech.to_original(s.start);
        s.end = speech.to_original(s.end, /*is_end=*/true);
        segments.push_back(std::move(s));
      }
    }
  }
  return segments;
}

}  // namespace peft::transcription
