#include "peft/transcription/logit_filters.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "peft/error.h"

namespace peft::transcription {

namespace {

constexpr float kDisabled = -std::numeric_limits<float>::infinity();

void disable_range(float* row, int64_t begin, int64_t end) {
  std::fill(row + std::max<int64_t>(begin, 0), row + std::max(begin, end), kDisabled);
}

// CTranslate2 compares the timestamps' total log probability with the best text token's
// after a log-softmax over the whole row; the softmax's normaliser cancels out of that
// comparison, but it is kept so rounding follows the same path.
bool timestamp_mass_wins(const float* row, int64_t vocab, int64_t timestamp_begin) {
  at::Tensor lp = at::log_softmax(at::from_blob(const_cast<float*>(row), {vocab}, at::kFloat), 0);
  const float text_max = lp.slice(0, 0, timestamp_begin).max().item<float>();
  const float timestamp_mass = lp.slice(0, timestamp_begin, vocab).logsumexp(0).item<float>();
  return timestamp_mass > text_max;
}

}  // namespace

LogitFilters::LogitFilters(LogitFilterConfig config) : config_(std::move(config)) {
  if (config_.timestamp_rules &&
      (config_.eot < 0 || config_.no_timestamps < 0 || config_.timestamp_begin <= config_.eot))
    throw ValueError("LogitFilters: timestamp rules need eot < timestamp_begin and a <|notimestamps|> id");
  if (config_.max_initial_timestamp_index < 0)
    throw ValueError("LogitFilters: max_initial_timestamp_index " +
                     std::to_string(config_.max_initial_timestamp_index) + " is negative");
}

void LogitFilters::apply(at::Tensor& logits, const std::vector<std::vector<int64_t>>& sequences) const {
  if (logits.dim() != 2 || logits.scalar_type() != at::kFloat || !logits.is_contiguous())
    throw ValueError("LogitFilters: logits must be contiguous float32 [N, V]");
  const int64_t rows = logits.size(0), vocab = logits.size(1);
  if (static_cast<int64_t>(sequences.size()) != rows)
    throw ValueError("LogitFilters: " + std::to_string(sequences.size()) + " sequences for " +
                     std::to_string(rows) + " logit rows");
  float* data = logits.data_ptr<float>();
  for (int64_t i = 0; i < rows; ++i) {
    float* row = data + i * vocab;
    for (int64_t id : config_.suppress)
      if (id >= 0 && id < vocab) row[id] = kDisabled;
    if (sequences[i].empty())
      for (int64_t id : config_.suppress_begin)
        if (id >= 0 && id < vocab) row[id] = kDisabled;
    if (config_.timestamp_rules) apply_timestamp_rules(row, vocab, sequences[i]);
  }
}

void LogitFilters::apply_timestamp_rules(float* row, int64_t vocab,
                                         const std::vector<int64_t>& generated) const {
  const int64_t ts_begin = config_.timestamp_begin;
  const auto is_timestamp = [&](int64_t id) { return id >= ts_begin; };
  // The model learned <|notimestamps|> as a prompt token; generated text never has it.
  row[config_.no_timestamps] = kDisabled;

  if (generated.empty()) {
    // A window starts with a timestamp, no later than max_initial_timestamp.
    disable_range(row, 0, ts_begin);
    disable_range(row, ts_begin + config_.max_initial_timestamp_index + 1, vocab);
    return;
  }

  bool check_mass = true;
  const int64_t last = generated.back();
  const int64_t penultimate = generated.size() >= 2 ? generated[generated.size() - 2] : last;
  const bool open_end = is_timestamp(last) && !is_timestamp(penultimate);
  if (is_timestamp(last)) {
    if (is_timestamp(penultimate)) {
      // A closed pair (or the opening timestamp alone): text or <|endoftext|> must follow.
      disable_range(row, ts_begin, vocab);
      check_mass = false;
    } else {
      // An open segment end: the next is its closing partner's start or <|endoftext|>.
      disable_range(row, 0, config_.eot);
    }
  }
  // Timestamps never go back in time. Only a segment's closing timestamp may equal the
  // one before it; after a closed pair or text the next one must be later, so that
  // every segment has a nonzero length (openai's rule, which CTranslate2 4.x applies).
  for (auto it = generated.rbegin(); it != generated.rend(); ++it)
    if (is_timestamp(*it)) {
      disable_range(row, ts_begin, open_end ? *it : *it + 1);
      break;
    }
  if (check_mass && timestamp_mass_wins(row, vocab, ts_begin)) disable_range(row, 0, ts_begin);
}

}  // namespace peft::transcription
